// A busybox root file system, tarred: the image of the Docker, containerd and
// Podman fixtures.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { run } from './helpers';

/** Debian's udhcpc script uses only busybox applets; this is the fallback if it is not installed. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) busybox ip link set "$interface" up; busybox ip -4 addr flush dev "$interface" ;;
  bound|renew)
    busybox ifconfig "$interface" \${mtu:+mtu $mtu} "$ip" netmask "$subnet" \${broadcast:+broadcast $broadcast}
    busybox ip -4 route flush exact 0.0.0.0/0 dev "$interface"
    [ -n "$router" ] && busybox ip -4 route add default via "\${router%% *}" dev "$interface"
    R=""; [ -n "$domain" ] && R="domain $domain"
    for i in $dns; do R="$R
nameserver $i"; done
    echo "$R" > /etc/resolv.conf ;;
esac
exit 0
`;

/**
 * A rootfs holding the installed /bin/busybox (Debian's busybox-static: a
 * static binary, so nothing else is needed), a symlink per applet, minimal
 * /etc, and a udhcpc default.script; tarred to `tarFile`.
 */
export async function busyboxRootfsTar(rootfs: string, tarFile: string, busybox = '/bin/busybox'): Promise<void> {
  const applets = (await run(busybox, ['--list-full'])).split('\n').map((s) => s.trim()).filter(Boolean);
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/udhcpc', 'usr/share/udhcpc', 'root', 'tmp', 'var/run', 'proc', 'sys', 'dev']) {
    mkdirSync(join(rootfs, d), { recursive: true });
  }
  chmodSync(join(rootfs, 'tmp'), 0o1777);
  copyFileSync(busybox, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const a of applets) {
    if (a === 'bin/busybox') continue;
    const p = join(rootfs, a);
    mkdirSync(dirname(p), { recursive: true });
    if (!existsSync(p)) symlinkSync('/bin/busybox', p);
  }
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  const script = existsSync('/etc/udhcpc/default.script') ? readFileSync('/etc/udhcpc/default.script', 'utf8') : UDHCPC_SCRIPT;
  for (const p of ['etc/udhcpc/default.script', 'usr/share/udhcpc/default.script']) {
    writeFileSync(join(rootfs, p), script, { mode: 0o755 });
  }
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarFile, '.']);
}
