// A private /etc for DHCP clients (and anything else that writes /etc).
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunOptions, assertPrivateNamespaces, cleanup, nsIno, removeDir, run, tmpDir, waitFor } from './helpers';
import { Daemon, procsInNamespace, terminate } from './processes';

export interface PrivateEtc {
  /** `/proc/<holder>/ns/mnt` and `/proc/<holder>/ns/uts`: the private mount and UTS namespaces. */
  mntNs: string;
  utsNs: string;
  /** PID of the process that holds the namespaces open (`unshare … sleep infinity`). */
  holderPid: number;
  /** argv prefix that runs a command inside: `['nsenter', '--mount=…', '--uts=…', '--']`. */
  prefix: string[];
  /** `[...prefix, ...argv]`: spawn this instead of argv. */
  wrap(argv: string[]): string[];
  /** Runs argv inside; resolves with stdout. */
  run(argv: string[], opts?: RunOptions): Promise<string>;
  /** What was written to /etc inside (overlay upper dir), e.g. `${etcUpper}/resolv.conf`. */
  etcUpper: string;
  /** Same for /var/lib (dhclient/dhcpcd lease files). */
  varLibUpper: string;
  /** Content of /etc/FILE as written inside, or undefined if it was not written there. */
  written(file: string): string | undefined;
  stop(): Promise<void>;
}

/**
 * Private mount + UTS namespaces, held open by a `sleep` we spawn, in which
 * /etc and /var/lib are overlays whose upper dirs are scratch dirs. DHCP
 * client scripts write /etc/resolv.conf (dhclient-script even creates
 * /etc/resolv.conf.dhclient-new.PID next to it), dhclient and dhcpcd write
 * leases under /var/lib, and they may set the hostname: run them (or the
 * pipework command that runs them) through `wrap()` and all of that lands in
 * the scratch dirs and the private UTS namespace. `ip netns exec` inside
 * keeps working (it unshares again from this mount namespace).
 *
 * (A holder process rather than `unshare --mount=FILE`: binding a mount
 * namespace file fails now and then with EINVAL on this 6.x kernel, whose
 * loop check compares namespace sequence numbers.)
 *
 * stop(): processes still in the UTS namespace (e.g. a daemonized dhclient;
 * `ip netns exec` does not change UTS) are killed by PID, then the holder,
 * then the dir is removed.
 */
export async function startPrivateEtc(): Promise<PrivateEtc> {
  assertPrivateNamespaces();
  const dir = tmpDir('etc');
  const etcUpper = join(dir, 'etc-upper');
  const varLibUpper = join(dir, 'varlib-upper');
  for (const d of [etcUpper, varLibUpper, join(dir, 'etc-work'), join(dir, 'varlib-work')]) mkdirSync(d);
  // unshare execs sleep: the PID we get is the holder inside the new namespaces.
  const holder = new Daemon('namespace holder', join(dir, 'holder.log'), 'unshare',
    ['--mount', '--uts', '--propagation', 'private', 'sleep', 'infinity']);
  const mntNs = `/proc/${holder.pid}/ns/mnt`;
  const utsNs = `/proc/${holder.pid}/ns/uts`;
  const prefix = ['nsenter', `--mount=${mntNs}`, `--uts=${utsNs}`, '--'];
  const wrap = (argv: string[]) => [...prefix, ...argv];
  const runIn = (argv: string[], opts?: RunOptions) => {
    const [cmd, ...args] = wrap(argv);
    return run(cmd, args, opts);
  };
  let utsIno: number | undefined;

  const stop = async () => {
    await cleanup([
      async () => {
        if (utsIno === undefined) return;
        for (const p of procsInNamespace('uts', utsIno)) if (p.pid !== holder.pid) await terminate(p, 2000);
      },
      () => holder.stop(),
      () => removeDir(dir),
    ]);
  };

  try {
    const ourMnt = nsIno('/proc/self/ns/mnt');
    const ourUts = nsIno('/proc/self/ns/uts');
    await waitFor(() => {
      holder.check();
      const comm = readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim();
      const m = nsIno(mntNs);
      const u = nsIno(utsNs);
      return comm === 'sleep' && m !== undefined && m !== ourMnt && u !== undefined && u !== ourUts;
    }, 10_000, 'private mount/UTS namespaces');
    utsIno = nsIno(utsNs);
    await runIn(['mount', '-t', 'overlay', 'pipework-etc', '-o',
      `lowerdir=/etc,upperdir=${etcUpper},workdir=${join(dir, 'etc-work')}`, '/etc']);
    await runIn(['mount', '-t', 'overlay', 'pipework-varlib', '-o',
      `lowerdir=/var/lib,upperdir=${varLibUpper},workdir=${join(dir, 'varlib-work')}`, '/var/lib']);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return {
    mntNs,
    utsNs,
    holderPid: holder.pid,
    prefix,
    wrap,
    run: runIn,
    etcUpper,
    varLibUpper,
    written: (file: string) => {
      try { return readFileSync(join(etcUpper, file), 'utf8'); } catch { return undefined; }
    },
    stop,
  };
}
