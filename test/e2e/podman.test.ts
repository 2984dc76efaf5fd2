// Podman (Debian's 4.3, crun, its CNI network backend) running containers on
// a pipework-cni network: two containers ping each other, `--mac-address` and
// `--ip` are the container interface's, `podman rm -f` leaves nothing on the
// host. Podman runs in a mount namespace of its own (a child of the test
// run's private one) where /sys/fs/cgroup/unified is unmounted: crun refuses
// the hybrid cgroup layout this machine has. Its storage (vfs), run state,
// CNI configuration and host-local state all live in one temp dir; the
// containers get explicit rlimits, since raising RLIMIT_NOFILE to Podman's
// default needs CAP_SYS_RESOURCE, which these machines do not give.
// Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/podman.test.ts
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync, rmSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxRootfsTar } from '../support/daemons/busybox';
import { run, tmpDir, waitFor } from '../support/daemons/helpers';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/podman.test.ts starts containers: only inside scripts/in-netns.js');
}

const CNI_BIN = resolve(__dirname, '../../bin/pipework-cni.js');
const SYSTEM_CNI = '/usr/lib/cni';
const has = (b: string) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status === 0;
const HAVE_PODMAN = has('podman') && has('crun');
const BRIDGE = 'pwpod0';

let dir = '';
let sandbox: ChildProcess | undefined;
let podmanArgs: string[] = [];

/** `podman ARGS` in the sandbox's mount namespace; resolves with stdout. */
const podman = (...args: string[]) => run('nsenter', [`--mount=/proc/${sandbox!.pid}/ns/mnt`, '--', 'podman', ...podmanArgs, ...args],
  { env: { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') }, timeoutMs: 120_000 });

function ipj(netns: string, ...args: string[]): any[] {
  const out = execFileSync('nsenter', [`--net=${netns}`, '--', 'ip', '-j', ...args], { encoding: 'utf8' }).trim();
  return out ? JSON.parse(out) : [];
}
const bridgePorts = () => ipj(`/proc/${process.pid}/ns/net`, 'link', 'show', 'master', BRIDGE).map((l) => l.ifname);
/** host-local's reservations: one file per address in its dataDir (besides its lock and last-reserved files). */
const reservations = () => readdirSync(join(dir, 'ipam', 'pwnet')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort();

describe.skipIf(!HAVE_PODMAN)('Podman (crun, CNI backend) on a pipework-cni network', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    dir = tmpDir('podman');
    for (const d of ['net.d', 'root', 'runroot', 'tmp', 'ipam', 'bin', 'rootfs']) mkdirSync(join(dir, d));
    for (const f of readdirSync(SYSTEM_CNI)) symlinkSync(join(SYSTEM_CNI, f), join(dir, 'bin', f));
    symlinkSync(CNI_BIN, join(dir, 'bin', 'pipework'));
    writeFileSync(join(dir, 'net.d', 'pwnet.conflist'), JSON.stringify({
      cniVersion: '1.0.0',
      name: 'pwnet',
      plugins: [{
        type: 'pipework', mode: 'bridge', bridge: BRIDGE,
        ipam: { type: 'host-local', subnet: '10.88.9.0/24', gateway: '10.88.9.1', dataDir: join(dir, 'ipam') },
      }],
    }));
    writeFileSync(join(dir, 'containers.conf'), [
      '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', `events_logfile_path = "${dir}/events.log"`,
      'runtime = "crun"', `tmp_dir = "${dir}/tmp"`,
      '[network]', 'network_backend = "cni"', `cni_plugin_dirs = ["${dir}/bin"]`, `network_config_dir = "${dir}/net.d"`,
      '',
    ].join('\n'));
    podmanArgs = ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs'];
    sandbox = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
      'umount /sys/fs/cgroup/unified 2>/dev/null; echo ready; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    sandbox.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    await waitFor(() => out.includes('ready'), 10_000, 'the Podman sandbox');
    await busyboxRootfsTar(join(dir, 'rootfs'), join(dir, 'rootfs.tar'));
    await podman('import', join(dir, 'rootfs.tar'), 'localhost/pwbusybox');
  }, 180_000);

  afterAll(async () => {
    if (sandbox) {
      await podman('rm', '-af', '-t', '0').catch(() => undefined);
      sandbox.stdin!.end();
      await new Promise((r) => (sandbox!.exitCode !== null ? r(null) : sandbox!.once('exit', r)));
    }
    spawnSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('two containers ping each other; --mac-address and --ip are theirs; rm -f leaves nothing', async () => {
    // Explicit rlimits (see the top of this file); NET_RAW for busybox ping.
    const runArgs = ['run', '-d', '--network', 'pwnet', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', '--cap-add', 'NET_RAW'];
    await podman(...runArgs, '--name', 'pw1', '--mac-address', '02:aa:bb:cc:dd:01', '--ip', '10.88.9.50', 'localhost/pwbusybox', 'sleep', '600');
    await podman(...runArgs, '--name', 'pw2', 'localhost/pwbusybox', 'sleep', '600');
    const pid = async (c: string) => Number((await podman('inspect', '-f', '{{.State.Pid}}', c)).trim());
    const [pid1, pid2] = [await pid('pw1'), await pid('pw2')];

    const eth0 = (p: number) => ipj(`/proc/${p}/ns/net`, 'addr', 'show', 'dev', 'eth0')[0];
    const e1 = eth0(pid1);
    expect(e1.address).toBe('02:aa:bb:cc:dd:01');
    expect(e1.addr_info.filter((a: any) => a.family === 'inet')).toEqual([expect.objectContaining({ local: '10.88.9.50', prefixlen: 24 })]);
    const ip2 = eth0(pid2).addr_info.find((a: any) => a.family === 'inet').local;
    expect(ip2).toMatch(/^10\.88\.9\.\d+$/);
    expect(bridgePorts()).toHaveLength(2);
    expect(reservations()).toEqual(['10.88.9.50', ip2].sort());

    await podman('exec', 'pw1', 'ping', '-c', '1', '-W', '2', ip2);
    await podman('exec', 'pw2', 'ping', '-c', '1', '-W', '2', '10.88.9.50');

    await podman('rm', '-f', '-t', '0', 'pw1', 'pw2');
    expect(bridgePorts()).toEqual([]);
    expect(reservations()).toEqual([]);
    expect((await podman('ps', '-aq')).trim()).toBe('');
  });
});
