// Open vSwitch (userspace datapath): ovsdb-server and ovs-vswitchd.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { assertPrivateNamespaces, cleanup, removeDir, run, since, sleep, tmpDir, waitFor } from './helpers';
import { Daemon, inNetns } from './processes';

export const OVS_RUNDIR = '/run/openvswitch';
export const OVS_DB_SOCK = `${OVS_RUNDIR}/db.sock`;

export interface Ovs {
  /** `ovs-vsctl --timeout=10 ARGS` against the default socket; resolves with stdout. */
  vsctl(args: string[]): Promise<string>;
  ovsdbPid: number;
  vswitchdPid: number;
  startupMs: number;
  stop(): Promise<void>;
}

/**
 * ovsdb-server + ovs-vswitchd with the socket at the default
 * /run/openvswitch/db.sock (that /run is the test run's private tmpfs), so a
 * plain `ovs-vsctl` in the code under test talks to this instance.
 *
 * This kernel has no Open vSwitch datapath module: bridges MUST use the
 * userspace datapath, so a test creates one with
 *     ovs-vsctl add-br X -- set bridge X datapath_type=netdev
 * (or `vsctl(['add-br', X, '--', 'set', 'bridge', X, 'datapath_type=netdev'])`).
 * A plain `ovs-vsctl add-br X` (what the original pipework runs) makes a
 * bridge whose datapath cannot be opened: the record exists but no port works.
 * Ports: `ovs-vsctl add-port X veth0 [tag=N]` with a veth in the test's netns.
 *
 * `opts.netns`: run ovs-vswitchd (which owns the bridge devices) in that netns.
 *
 * Only one instance per test run (the socket path is fixed); stop() removes
 * every bridge's datapath (`exit --cleanup`), so the netdev taps vanish too.
 */
export async function startOvs(opts: { netns?: string } = {}): Promise<Ovs> {
  assertPrivateNamespaces();
  const t0 = performance.now();
  if (existsSync(OVS_DB_SOCK)) {
    if (await socketAnswers(OVS_DB_SOCK)) throw new Error(`${OVS_DB_SOCK} is in use: only one startOvs() at a time per test run`);
    rmSync(OVS_DB_SOCK, { force: true });
  }
  mkdirSync(OVS_RUNDIR, { recursive: true });
  const dir = tmpDir('ovs');
  const db = join(dir, 'conf.db');
  const dbCtl = join(dir, 'ovsdb-server.ctl');
  const vsCtl = join(dir, 'ovs-vswitchd.ctl');
  let ovsdb: Daemon | undefined;
  let vswitchd: Daemon | undefined;
  const vsctl = (args: string[]) => run('ovs-vsctl', [`--db=unix:${OVS_DB_SOCK}`, '--timeout=10', ...args]);

  const stop = async () => {
    await cleanup([
      async () => {
        if (!vswitchd || vswitchd.exit) return;
        // Graceful: delete the datapaths (and their tap devices) first.
        await run('ovs-appctl', ['-t', vsCtl, 'exit', '--cleanup'], { timeoutMs: 10_000, allowFailure: true });
        await Promise.race([vswitchd.wait(), sleep(5000)]);
      },
      () => vswitchd?.stop(),
      () => ovsdb?.stop(),
      () => rmSync(OVS_DB_SOCK, { force: true }),
      () => removeDir(dir),
    ]);
  };

  try {
    await run('ovsdb-tool', ['create', db, '/usr/share/openvswitch/vswitch.ovsschema']);
    ovsdb = new Daemon('ovsdb-server', join(dir, 'ovsdb-server.log'), 'ovsdb-server', [
      db, `--remote=punix:${OVS_DB_SOCK}`, `--unixctl=${dbCtl}`, `--pidfile=${join(dir, 'ovsdb-server.pid')}`,
    ]);
    const o = ovsdb;
    await waitFor(() => { o.check(); return existsSync(OVS_DB_SOCK); }, 10_000, 'ovsdb-server socket');
    await run('ovs-vsctl', [`--db=unix:${OVS_DB_SOCK}`, '--no-wait', 'init']);
    // vswitchd creates the bridges' devices in its own netns: that is the one that matters.
    vswitchd = new Daemon('ovs-vswitchd', join(dir, 'ovs-vswitchd.log'), ...inNetns(opts.netns, 'ovs-vswitchd', [
      `unix:${OVS_DB_SOCK}`, `--unixctl=${vsCtl}`, `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`,
    ]));
    const v = vswitchd;
    await waitFor(() => { v.check(); return existsSync(vsCtl); }, 10_000, 'ovs-vswitchd control socket');
    // A change to the database bumps next_cfg, and ovs-vsctl then waits until
    // ovs-vswitchd has applied it: from here on vswitchd is really serving.
    await vsctl(['set', 'Open_vSwitch', '.', 'external_ids:pipework-test=ready']);
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
  return { vsctl, ovsdbPid: ovsdb.pid, vswitchdPid: vswitchd.pid, startupMs: since(t0), stop };
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
