// The native CNI shim (native/cni-shim.c, build/Release/pipework-cni-shim):
// with no daemon it is the Node plugin (exec'd with stdin intact: same
// stdout and exit status, into real namespaces); what it sends a daemon
// (the contract's request, stdin and environment escaped right); and every
// way a daemon can fail it (HTTP errors, garbage, silence, a connection cut or
// the daemon killed mid-call, oversized stdin) ending in a CNI error result
// with a code. The daemon side here is test/e2e/cni/contract-daemon.js, which
// misbehaves on demand; shim + the real daemon: cni-daemon.test.ts.
// Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/cni-shim.test.ts
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, SHIM, SYSTEM_CNI, addrs, cni, link, scratch, type CniEnv, type CniRun } from './cni/harness';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/cni-shim.test.ts changes network namespaces: only inside scripts/in-netns.js');
}

if (!existsSync(SHIM)) throw new Error(`${SHIM} is missing: npm install builds it`);
const CONTRACT_DAEMON = resolve(__dirname, 'cni/contract-daemon.js');

const HOST = 'pwshimh';
const { addNs, dir, cleanup } = scratch('shim');
const daemons: ChildProcess[] = [];

afterEach(() => {
  for (const d of daemons.splice(0)) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
  cleanup();
});

/** The contract stand-in listening on a fresh socket in `mode`. */
async function contractDaemon(mode: string): Promise<{ socket: string; child: ChildProcess }> {
  const socket = join(dir(), 'pipework.sock');
  const child = spawn(process.execPath, [CONTRACT_DAEMON, socket, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  daemons.push(child);
  await new Promise<void>((ok, fail) => {
    child.stdout.once('data', () => ok());
    child.once('exit', (code) => fail(new Error(`contract daemon exited ${code}`)));
  });
  return { socket, child };
}

const shim = (env: CniEnv, input: unknown, socket: string, extra: Record<string, string> = {}) =>
  cni(HOST, { ...env, PIPEWORK_SOCKET: socket, ...extra }, input, { argv0: [SHIM] });

function expectCniError(r: CniRun, code: number, msg: RegExp, cniVersion = '1.1.0'): void {
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(Object.keys(r.json ?? {}).sort(), r.stdout).toEqual(['cniVersion', 'code', 'details', 'msg']);
  expect(r.json).toMatchObject({ cniVersion, code });
  expect(`${r.json.msg} ${r.json.details}`).toMatch(msg);
}

const bridgeConf = (dataDir: string, cniVersion = '1.0.0') => ({
  cniVersion, name: 'shimnet', type: 'pipework', bridge: 'pwshim0',
  ipam: { type: 'host-local', subnet: '10.83.0.0/24', dataDir },
});

describe('the shim with no daemon: the Node plugin, exec\'d with the same stdin', () => {
  it('answers exactly what pipework-cni answers (VERSION, refusals, ADD, CHECK, DEL into real namespaces)', async () => {
    addNs(HOST);
    const [c1, c2] = [addNs('pwshim1'), addNs('pwshim2')];
    const [d1, d2] = [dir(), dir()];
    const missing = join(dir(), 'no-daemon.sock');
    const versionCases: [CniEnv, unknown][] = [
      [{ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' }],
      [{ CNI_COMMAND: 'VERSION' }, ''],
      [{ CNI_COMMAND: 'ADD' }, 'not json'],
      [{}, bridgeConf(d1)],
      [{ CNI_COMMAND: 'STATUS' }, bridgeConf(d1, '0.4.0')],
    ];
    for (const [env, input] of versionCases) {
      const [a, b] = [await shim(env, input, missing), await cni(HOST, env, input)];
      expect({ code: a.code, stdout: a.stdout }, JSON.stringify([env, input])).toEqual({ code: b.code, stdout: b.stdout });
    }
    // Attachments: the same steps into twin namespaces on twin dataDirs give the same results, MACs aside.
    const env = (netns: string, command: string): CniEnv => ({
      CNI_COMMAND: command, CNI_CONTAINERID: 'twin', CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: SYSTEM_CNI,
    });
    const macless = (s: string) => s.replace(/"mac":"[0-9a-f:]+"/g, '"mac":"-"').replace(/"name":"veth[^"]*"/g, '"name":"veth-"');
    const [a, b] = [await shim(env(c1, 'ADD'), bridgeConf(d1), missing), await cni(HOST, env(c2, 'ADD'), bridgeConf(d2))];
    expect(a.code).toBe(0);
    expect(macless(a.stdout).replace(c1, 'NS')).toBe(macless(b.stdout).replace(c2, 'NS'));
    expect(addrs(c1, 'eth0')).toEqual(['10.83.0.2/24']);
    const prev = (r: CniRun) => ({ ...bridgeConf(d1), prevResult: r.json });
    const check = await shim(env(c1, 'CHECK'), prev(a), missing);
    expect({ code: check.code, stdout: check.stdout }).toEqual({ code: 0, stdout: '' });
    const del = await shim(env(c1, 'DEL'), prev(a), missing);
    expect({ code: del.code, stdout: del.stdout }).toEqual({ code: 0, stdout: '' });
    expect(link(c1, 'eth0')).toBeUndefined();
  });

  it('falls back when the socket path is a plain file, and says so when the Node plugin cannot be found', async () => {
    addNs(HOST);
    const file = join(dir(), 'not-a-socket');
    writeFileSync(file, '');
    const v = await shim({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' }, file);
    expect(v.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['1.0.0', '1.1.0'] });
    const none = await shim({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' }, file, { PIPEWORK_CNI_PLUGIN: '/nonexistent/pipework-cni.js' });
    expectCniError(none, 999, /no pipework daemon .*not-a-socket.*Node plugin cannot be started/, '1.1.0');
    // The plugin named by PIPEWORK_CNI_PLUGIN is the one run.
    const named = await shim({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.1.0' }, file, { PIPEWORK_CNI_PLUGIN: BIN });
    expect(named.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] });
  });
});

describe('the shim and a daemon: the contract', () => {
  it('sends POST /v1/cni with the CNI_* variables and stdin as JSON strings, escaped right', async () => {
    addNs(HOST);
    const { socket } = await contractDaemon('echo');
    // Quotes, backslashes, control characters, non-ASCII, and bytes that are not UTF-8 (decoded as Node decodes them).
    const stdin = Buffer.concat([
      Buffer.from('{"cniVersion":"1.0.0","q":"\\"x\\"\\\\","ctl":"\t\u0001\u001f\u007f","u":"é😀"}\n'),
      Buffer.from([0xff, 0xc3, 0x28, 0xe2, 0x82, 0x41, 0xf0, 0x9f, 0x98, 0xed, 0xa0, 0x80, 0xc0, 0xaf, 0x00, 0x0a]),
    ]);
    const env: CniEnv = {
      CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c"1\\', CNI_NETNS: '/run/netns/x y', CNI_IFNAME: 'eth0', CNI_ARGS: 'K=v;IgnoreUnknown=1', CNI_PATH: '/a:/b',
    };
    const r = await shim(env, stdin, socket, { NOT_CNI: 'left out' });
    expect(r.code, r.stdout).toBe(0);
    expect(r.json).toEqual({
      method: 'POST', url: '/v1/cni', type: 'application/json',
      body: { env, stdin: stdin.toString('utf8') },
    });
    // Variables that are not set are not sent (unset and empty differ to a plugin).
    const bare = await shim({ CNI_COMMAND: 'VERSION' }, '', socket);
    expect(bare.json.body).toEqual({ env: { CNI_COMMAND: 'VERSION' }, stdin: '' });
  });

  it('writes back stdout, stderr and the exit status of a chunked answer', async () => {
    addNs(HOST);
    const { socket } = await contractDaemon('chunked');
    const r = await shim({ CNI_COMMAND: 'DEL' }, '{}', socket);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 3, stdout: 'out é😀\n', stderr: 'err\n' });
  });

  it('turns an HTTP error, a garbled answer or a cut connection into a CNI error result with the config\'s cniVersion', async () => {
    addNs(HOST);
    const conf = { cniVersion: '1.0.0', name: 'n', type: 'pipework' };
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, conf, (await contractDaemon('status')).socket), 999,
      /could not run the call \(HTTP 503\) the daemon cannot take calls now/, '1.0.0');
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, conf, (await contractDaemon('garbage')).socket), 999, /not \{exitCode, stdout, stderr\}/, '1.0.0');
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, conf, (await contractDaemon('close')).socket), 11, /closed the connection without answering/, '1.0.0');
    // Stdin that is not JSON: the error result falls back to the latest version.
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, '{"cniVersion": "1.0', (await contractDaemon('close')).socket), 11, /closed the connection/);
  });

  it('gives up after PIPEWORK_SHIM_TIMEOUT, and fails cleanly when the daemon is killed mid-call', async () => {
    addNs(HOST);
    const conf = { cniVersion: '1.0.0', name: 'n', type: 'pipework' };
    const slow = await contractDaemon('hang');
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, conf, slow.socket, { PIPEWORK_SHIM_TIMEOUT: '0.3' }), 11, /did not answer in time/, '1.0.0');
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, conf, slow.socket, { PIPEWORK_SHIM_TIMEOUT: 'soon' }), 7, /PIPEWORK_SHIM_TIMEOUT/, '1.1.0');
    const victim = await contractDaemon('hang');
    const call = shim({ CNI_COMMAND: 'ADD' }, conf, victim.socket);
    await new Promise((r) => setTimeout(r, 300));
    victim.child.kill('SIGKILL');
    expectCniError(await call, 11, /closed the connection without answering.*may or may not have been carried out/, '1.0.0');
  });

  it('refuses stdin over 1 MiB before sending anything', async () => {
    addNs(HOST);
    const { socket } = await contractDaemon('echo');
    const big = JSON.stringify({ cniVersion: '1.0.0', pad: 'x'.repeat(1024 * 1024) });
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, big, socket), 7, /larger than 1048576 bytes/, '1.0.0');
    // Just under the limit in bytes but over it once escaped: refused too, with the config's version.
    const escaped = Buffer.from(`{"cniVersion":"1.0.0","pad":"${'\u0001'.repeat(200_000)}"}`);
    expectCniError(await shim({ CNI_COMMAND: 'ADD' }, escaped, socket), 7, /request to the pipework daemon is larger/, '1.0.0');
  });
});
