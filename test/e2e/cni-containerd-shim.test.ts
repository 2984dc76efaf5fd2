// The native shim installed as containerd's `pipework` CNI plugin
// (`ctr run --cni`, Debian's containerd + runc): two containers ping each
// other, `ctr run --rm` sends DEL and the host side and the reservation go;
// once with `pipework daemon` serving the calls (no Node plugin process runs)
// and once without one (the shim execs pipework-cni).
// Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cni-containerd-shim.test.ts
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/daemons/helpers';
import { SHIM, SYSTEM_CNI, ip, ports, reservations, scratch, startPipeworkDaemon, stopChild } from './cni/harness';
import { pingFrom, startContainerd, type Containerd } from './cni/containerd';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/cni-containerd-shim.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const HOST = 'pwctrsh';
const BRIDGE = 'pwctrsh0';
const hasContainerd = ['containerd', 'ctr', 'runc'].every((b) => spawnSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' }).status === 0)
  && existsSync(`${SYSTEM_CNI}/host-local`) && existsSync(`${SYSTEM_CNI}/loopback`);

const { addNs, dir, cleanup } = scratch('ctr-shim');
let ctd: Containerd | undefined;
let daemon: ChildProcess | undefined;

afterEach(async () => {
  try {
    await ctd?.stop();
  } finally {
    ctd = undefined;
    await stopChild(daemon);
    daemon = undefined;
    cleanup();
  }
}, 120_000);

/** Address of eth0 inside a running container. */
async function addressIn(c: Containerd, name: string): Promise<string> {
  const out = await c.ctr(['task', 'exec', '--exec-id', `ip-${name}`, name, '/bin/busybox', 'ip', '-4', 'addr', 'show', 'eth0']);
  const m = / inet (\d+\.\d+\.\d+\.\d+)\/24 /.exec(out);
  if (!m) throw new Error(`no IPv4 address on eth0 in ${name}: ${out}`);
  return m[1];
}

describe.skipIf(!hasContainerd)('the native shim as containerd\'s CNI plugin', () => {
  for (const withDaemon of [true, false]) {
    it(`${withDaemon ? 'with pipework daemon' : 'without a daemon (fallback to pipework-cni)'}: two containers ping each other; --rm sends DEL and the host side goes`, async () => {
      addNs(HOST);
      ip(HOST, 'link', 'set', 'lo', 'up');
      const socket = join(dir(), withDaemon ? 'pipework.sock' : 'no-daemon.sock');
      if (withDaemon) daemon = await startPipeworkDaemon(HOST, socket);
      const c = ctd = await startContainerd({
        hostNetns: HOST,
        plugin: SHIM,
        env: { PIPEWORK_SOCKET: socket },
        conflist: (ipamDir) => ({
          cniVersion: '1.0.0',
          name: 'pwshim',
          plugins: [{ type: 'pipework', bridge: BRIDGE, ipam: { type: 'host-local', subnet: '10.66.11.0/24', dataDir: ipamDir } }],
        }),
      });
      const c1 = c.runContainer('c1', ['/bin/busybox', 'sleep', '300']);
      const c2 = c.runContainer('c2', ['/bin/busybox', 'sleep', '300']);
      await waitFor(async () => {
        for (const x of [c1, c2]) if (x.child.exitCode !== null) throw new Error(`ctr run exited early: ${x.output()}`);
        return (await c.ctr(['tasks', 'ls'])).split('\n').filter((l) => / RUNNING/.test(l)).length === 2;
      }, 60_000, 'both tasks RUNNING', 100);

      const [ip1, ip2] = [await addressIn(c, 'c1'), await addressIn(c, 'c2')];
      expect(Object.keys(reservations(c.ipamDir, 'pwshim')).sort()).toEqual([ip1, ip2].sort());
      expect(ports(HOST, BRIDGE)).toHaveLength(2);
      expect(await pingFrom(c, 'c1', ip2)).toMatch(/2 packets transmitted, 2 packets received/);
      expect(await pingFrom(c, 'c2', ip1)).toMatch(/2 packets transmitted, 2 packets received/);

      for (const [name, x, addr, left] of [['c2', c2, ip2, 1], ['c1', c1, ip1, 0]] as const) {
        await c.ctr(['task', 'kill', '-s', 'SIGKILL', name]);
        await Promise.race([x.exited, new Promise((_, rej) => setTimeout(() => rej(new Error(`ctr run ${name} did not exit`)), 30_000))]);
        expect(ports(HOST, BRIDGE)).toHaveLength(left);
        expect(Object.keys(reservations(c.ipamDir, 'pwshim'))).not.toContain(addr);
      }
      expect(reservations(c.ipamDir, 'pwshim')).toEqual({});
      // Who served the calls: the Node plugin logs each call it runs (PIPEWORK_CNI_LOG is in ctr's environment).
      const nodeCalls = c.cniLog();
      if (withDaemon) expect(nodeCalls).toEqual([]);
      else {
        expect(nodeCalls.filter((l) => l.command === 'ADD').map((l) => l.code)).toEqual([0, 0]);
        expect(nodeCalls.filter((l) => l.command === 'DEL' && l.code === 0).length).toBeGreaterThanOrEqual(2);
      }
    }, 180_000);
  }
});
