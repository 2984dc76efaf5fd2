// The native shim with the real `pipework daemon` behind it answers exactly
// what the Node plugin (bin/pipework-cni.js) answers: stdout and exit status
// compared for ADD, CHECK, DEL, STATUS, GC and VERSION over a matrix of
// configurations (bridge, macvlan, chained prevResult, cniVersion
// 0.4.0/1.0.0/1.1.0, bad ones), each pair run into twin namespaces on twin
// IPAM dataDirs. And the daemon killed mid-ADD: the shim fails with a CNI
// error the runtime retries, and DEL then ADD on a restarted daemon converge.
// Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cni-shim-daemon.test.ts
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../support/daemons/helpers';
import { SHIM, SYSTEM_CNI, addrs, cni, ip, link, reservations, scratch, startPipeworkDaemon, stopChild, type CniEnv, type CniRun } from './cni/harness';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/cni-shim-daemon.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

const HOST = 'pwshdh';
const { addNs, dir, cleanup } = scratch('shim-daemon');
const daemons: ChildProcess[] = [];

afterEach(async () => {
  for (const d of daemons.splice(0)) await stopChild(d);
  cleanup();
}, 60_000);

const startDaemon = async (socket: string) => {
  const d = await startPipeworkDaemon(HOST, socket);
  daemons.push(d);
  return d;
};

const shim = (socket: string, env: CniEnv, input: unknown) => cni(HOST, { ...env, PIPEWORK_SOCKET: socket }, input, { argv0: [SHIM] });

/** What differs between twin namespaces and nothing else: netns paths, veth names (from netns inodes), MACs. */
const twin = (s: string, netns: string) => s.split(netns).join('<netns>')
  .replace(/"mac":"[0-9a-f:]+"/g, '"mac":"<mac>"').replace(/veth[0-9a-z]+/g, '<veth>');

describe('shim + pipework daemon answer what pipework-cni answers', () => {
  it('ADD, CHECK, DEL, STATUS, GC, VERSION over bridge, macvlan, chained, three versions and bad configurations', async () => {
    addNs(HOST);
    ip(HOST, 'link', 'set', 'lo', 'up');
    ip(HOST, 'link', 'add', 'pwshdm0', 'type', 'veth', 'peer', 'name', 'pwshdm1');
    ip(HOST, 'link', 'set', 'pwshdm0', 'up');
    const socket = join(dir(), 'pipework.sock');
    await startDaemon(socket);
    const [ipamA, ipamB] = [dir(), dir()];
    const ipam = (d: string) => ({ type: 'host-local', subnet: '10.84.0.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir: d });
    const chained = {
      cniVersion: '1.0.0', interfaces: [{ name: 'lo0' }], ips: [{ address: '192.0.2.5/24', interface: 0 }], dns: { nameservers: ['192.0.2.53'] },
    };
    const configs: Record<string, (d: string) => unknown> = {
      'bridge 1.0.0': (d) => ({ cniVersion: '1.0.0', name: 'shd', type: 'pipework', bridge: 'pwshd0', ipam: ipam(d) }),
      'bridge 1.1.0, mtu, mac': (d) => ({ cniVersion: '1.1.0', name: 'shd', type: 'pipework', bridge: 'pwshd0', mtu: 1400, mac: '02:00:00:00:00:42', ipam: ipam(d) }),
      'macvlan 1.1.0': (d) => ({ cniVersion: '1.1.0', name: 'shd', type: 'pipework', mode: 'macvlan', master: 'pwshdm0', ipam: ipam(d) }),
      'chained after another plugin': (d) => ({ cniVersion: '1.0.0', name: 'shd', type: 'pipework', bridge: 'pwshd0', ipam: ipam(d), prevResult: chained }),
      '0.4.0': (d) => ({ cniVersion: '0.4.0', name: 'shd', type: 'pipework', ipam: ipam(d) }),
      'no IPAM plugin of that name': () => ({ cniVersion: '1.0.0', name: 'shd', type: 'pipework', ipam: { type: 'no-such-ipam' } }),
      'bad mode': () => ({ cniVersion: '1.0.0', name: 'shd', type: 'pipework', mode: 'tunnel' }),
      'bad mtu and name': () => ({ cniVersion: '1.1.0', name: 'bad name', type: 'pipework', mtu: 9 }),
      'host-local refusing its range': (d) => ({ cniVersion: '1.0.0', name: 'shd', type: 'pipework', ipam: { ...ipam(d), subnet: '10.84.0.1/24' } }),
      'not JSON': () => '{"cniVersion": "1.0.0", name',
      'empty': () => '',
    };
    let n = 0;
    for (const [what, conf] of Object.entries(configs)) {
      const [nsA, nsB] = [addNs(`pwshda${n}`), addNs(`pwshdb${n}`)];
      const id = `c${n++}`;
      const env = (netns: string, command: string): CniEnv => ({
        CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: SYSTEM_CNI,
      });
      const both = async (command: string, a: unknown, b: unknown): Promise<[CniRun, CniRun]> => {
        const [x, y] = [await cni(HOST, env(nsA, command), a), await shim(socket, env(nsB, command), b)];
        expect({ code: y.code, stdout: twin(y.stdout, `/run/netns/${nsB}`) }, `${what}: ${command}`)
          .toEqual({ code: x.code, stdout: twin(x.stdout, `/run/netns/${nsA}`) });
        return [x, y];
      };
      const [confA, confB] = [conf(ipamA), conf(ipamB)];
      const withPrev = (c: unknown, r: CniRun) => (typeof c === 'object' && r.json ? { ...(c as object), prevResult: r.json } : c);
      const [addA, addB] = await both('ADD', confA, confB);
      expect(addA.code, `${what}: ADD ${addA.stdout}`).toBe(/^(bridge|macvlan|chained)/.test(what) ? 0 : 1);
      if (addA.code === 0) {
        expect(addrs(nsB, 'eth0')).toEqual(addrs(nsA, 'eth0'));
        expect(reservations(ipamB, 'shd')).toEqual(reservations(ipamA, 'shd'));
      }
      await both('CHECK', withPrev(confA, addA), withPrev(confB, addB));
      for (const command of ['STATUS', 'GC', 'VERSION']) {
        // GC keeps this attachment; the 1.0.0 configurations are refused STATUS and GC (code 1), the same way.
        const v = (c: unknown) => (typeof c === 'object' ? { ...(c as object), 'cni.dev/valid-attachments': [{ containerID: id, ifname: 'eth0' }] } : c);
        await both(command, v(confA), v(confB));
      }
      await both('DEL', withPrev(confA, addA), withPrev(confB, addB));
      expect(link(nsB, 'eth0')).toBeUndefined();
      expect(reservations(ipamB, 'shd')).toEqual(reservations(ipamA, 'shd'));
    }
    // The environment checked the same way: missing or bad variables.
    for (const env of [{}, { CNI_COMMAND: 'FROB' }, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: '-x', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' }, { CNI_COMMAND: 'DEL' }]) {
      const conf = { cniVersion: '1.0.0', name: 'shd', type: 'pipework' };
      const [x, y] = [await cni(HOST, env, conf), await shim(socket, env, conf)];
      expect({ code: y.code, stdout: y.stdout }, JSON.stringify(env)).toEqual({ code: x.code, stdout: x.stdout });
    }
  }, 240_000);

  it('the daemon killed mid-ADD: the shim answers a CNI error to retry, nothing is left half-made after DEL, and ADD then works', async () => {
    addNs(HOST);
    ip(HOST, 'link', 'set', 'lo', 'up');
    const c1 = addNs('pwshdk1');
    const socket = join(dir(), 'pipework.sock');
    const daemon = await startDaemon(socket);
    // An IPAM plugin that takes its time: the ADD is in flight in the daemon when it is killed.
    const plugins = dir();
    const marker = join(plugins, 'started');
    writeFileSync(join(plugins, 'slow-ipam'), `#!/bin/sh
cat > /dev/null
case "$CNI_COMMAND" in
  ADD) touch ${marker}; sleep 3; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.85.0.5/24"}]}';;
  VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}';;
esac
`);
    chmodSync(join(plugins, 'slow-ipam'), 0o755);
    const conf = { cniVersion: '1.0.0', name: 'shk', type: 'pipework', bridge: 'pwshk0', ipam: { type: 'slow-ipam' } };
    const env = (command: string): CniEnv => ({ CNI_COMMAND: command, CNI_CONTAINERID: 'k1', CNI_NETNS: `/run/netns/${c1}`, CNI_IFNAME: 'eth0', CNI_PATH: plugins });
    const call = shim(socket, env('ADD'), conf);
    await waitFor(() => existsSync(marker), 20_000, 'the ADD to reach IPAM');
    daemon.kill('SIGKILL');
    const r = await call;
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ cniVersion: '1.0.0', code: 11 });
    expect(r.json.msg).toMatch(/closed the connection/);
    // The runtime's answer to a failed ADD: DEL, then ADD again (here with a restarted daemon).
    await startDaemon(socket);
    const del = await shim(socket, env('DEL'), conf);
    expect({ code: del.code, stdout: del.stdout }).toEqual({ code: 0, stdout: '' });
    expect(link(c1, 'eth0')).toBeUndefined();
    const again = await shim(socket, env('ADD'), conf);
    expect(again.code, again.stdout).toBe(0);
    expect(addrs(c1, 'eth0')).toEqual(['10.85.0.5/24']);
  }, 120_000);
});
