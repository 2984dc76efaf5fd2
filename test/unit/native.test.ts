// The addon: namespaces by fd, and the calling thread always back home.
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { native, type PipeworkNative } from '../../src/native';
import { getS32 } from '../../src/netlink/attributes';
import { RTM_NEWLINK } from '../../src/netlink/constants';
import { dumpLinks, parseLink } from '../../src/netlink/link';
import { createBridge } from '../../src/netlink/kinds/bridge';
import { encodeRequest, parseReplies } from '../../src/netlink/message';
import { ip, ipj } from '../helpers/kernel';

const here = () => statSync('/proc/thread-self/ns/net').ino;

const ROOT = path.resolve(__dirname, '../..');
/** The start of a worker script: the addon loaded there, a netlink socket, and an RTM_GETLINK dump (nlmsghdr + ifinfomsg). */
const WORKER_PRELUDE = `
  const { parentPort, workerData } = require('node:worker_threads');
  const native = require(require.resolve('node-gyp-build', { paths: [workerData.root] }))(workerData.root);
  const sock = native.openNetlinkSocket(native.newNetns()); // a netns of its own: no other test file changes its links
  const dump = new Uint8Array(32);
  dump.set([32, 0, 0, 0, 18, 0, 1, 3, 1]);`;

describe('native addon', () => {
  it('exports exactly the functions PipeworkNative declares', () => {
    // A Record over the interface's keys: a function declared but missing here, or listed but not declared, fails to compile.
    const declared: Record<keyof PipeworkNative, true> = {
      withNetns: true, netnsInode: true, newNetns: true, openNetnsPath: true, openNetnsPid: true, strerror: true, tryLock: true,
      readSmallFiles: true, openNetlinkSocket: true, netlinkTransact: true, linkCarrier: true, peerCredentials: true, spawnIsolated: true,
      openInRoot: true,
    };
    expect(Object.keys(native).sort()).toEqual(Object.keys(declared).sort());
    for (const name of Object.keys(declared)) expect(typeof native[name as keyof PipeworkNative]).toBe('function');
  });

  it('newNetns makes a new netns held only by its fd, and leaves us where we were', () => {
    const home = here();
    const fd = native.newNetns();
    try {
      expect(fstatSync(fd).ino).not.toBe(home);
      expect(here()).toBe(home);
    } finally {
      closeSync(fd);
    }
  });

  it('withNetns runs inside the netns and comes back, also when the callback throws', () => {
    const home = here();
    const fd = native.newNetns();
    try {
      expect(native.withNetns(fd, here)).toBe(fstatSync(fd).ino);
      expect(here()).toBe(home);
      expect(() => native.withNetns(fd, () => { throw new Error('boom'); })).toThrow('boom');
      expect(here()).toBe(home);
    } finally {
      closeSync(fd);
    }
  });

  it('withNetns refuses an fd that is not a netns, without moving', () => {
    const home = here();
    const file = openSync('/proc/self/status', 'r');
    try {
      expect(() => native.withNetns(file, here)).toThrow(expect.objectContaining({ syscall: 'ioctl(NS_GET_NSTYPE)', code: 'ENOTTY' }));
      expect(() => native.withNetns(-1 as number, here)).toThrow(TypeError);
      expect(here()).toBe(home);
    } finally {
      closeSync(file);
    }
  });

  it('linkCarrier: whether a link has carrier, its pending carrier change applied first (the bridge port follows at once)', async () => {
    const fd = native.newNetns();
    const sock = native.openNetlinkSocket(fd);
    try {
      ip(fd, 'link', 'add', 'br0', 'up', 'type', 'bridge');
      // Enslaved before the kernel has applied its lack of carrier, the port starts out forwarding; it is
      // disabled when that is applied: left to the kernel's worker (up to a second), now by linkCarrier.
      ip(fd, 'link', 'add', 'pwport', 'master', 'br0', 'up', 'type', 'veth', 'peer', 'name', 'pwpeer');
      const state = () => ipj<any[]>(fd, '-d', 'link', 'show', 'pwport')[0].linkinfo.info_slave_data.state;
      expect(await native.linkCarrier(sock, 'pwport')).toBe(false);
      expect(state()).toBe('disabled');
      ip(fd, 'link', 'set', 'pwpeer', 'up');
      expect(await native.linkCarrier(sock, 'pwport')).toBe(true);
      expect(state()).toBe('forwarding');
      await expect(native.linkCarrier(sock, 'pwnone')).rejects.toMatchObject({ code: 'ENODEV', syscall: 'ioctl(SIOCETHTOOL)' });
      expect(() => native.linkCarrier(sock, 'a-name-over-15-bytes')).toThrow(TypeError);
    } finally {
      closeSync(sock);
      closeSync(fd);
    }
  });

  it('openNetlinkSocket makes the socket in the netns given, refuses other fds, and never moves us', async () => {
    const home = here();
    const fd = native.newNetns();
    const file = openSync('/proc/self/status', 'r');
    try {
      const names = async (sock: number) => parseReplies(await native.netlinkTransact(sock, encodeRequest(dumpLinks(), 1)))
        .filter((r) => r.type === RTM_NEWLINK).map((r) => parseLink(r).name);
      const there = native.openNetlinkSocket(fd);
      const ours = native.openNetlinkSocket();
      expect(here()).toBe(home);
      try {
        const made = parseReplies(await native.netlinkTransact(there, encodeRequest(createBridge({ name: 'pwnativebr' }), 1)));
        expect(made.map((r) => getS32(r.payload, 0))).toEqual([0]); // the ACK: errno 0
        expect(await names(there)).toEqual(['lo', 'pwnativebr']);
        expect(await names(ours)).not.toContain('pwnativebr');
        expect(() => native.netlinkTransact(there, [encodeRequest(dumpLinks(), 1)] as unknown as Uint8Array)).toThrow(TypeError);
        await expect(native.netlinkTransact(file, encodeRequest(dumpLinks(), 1)))
          .rejects.toThrow(expect.objectContaining({ syscall: 'sendmsg', code: 'ENOTSOCK' }));
      } finally {
        closeSync(there);
        closeSync(ours);
      }
      expect(() => native.openNetlinkSocket(file)).toThrow(expect.objectContaining({ syscall: 'ioctl(NS_GET_NSTYPE)', code: 'ENOTTY' }));
      expect(here()).toBe(home);
    } finally {
      closeSync(fd);
      closeSync(file);
    }
  });

  it('netlinkTransact in a worker thread: answers there; the worker ends cleanly, and terminate() while it calls in a loop ends only the worker', async () => {
    const script = `${WORKER_PRELUDE}
      native.netlinkTransact(sock, dump).then((answer) => {
        parentPort.postMessage(answer.length);
        if (!workerData.flood) process.exit(0);
        for (;;) native.netlinkTransact(sock, dump); // until terminate() stops it, in here or between calls
      });`;
    for (const flood of [false, true]) {
      const worker = new Worker(script, { eval: true, workerData: { root: ROOT, flood } });
      const length = await new Promise<number>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
      expect(length).toBeGreaterThan(16); // at least lo, and NLMSG_DONE
      const code = flood ? await worker.terminate() : await new Promise<number>((resolve) => worker.once('exit', resolve));
      expect(code).toBe(flood ? 1 : 0);
    }
  });

  it('netlinkTransact alone: the same answer, on a thread of its own; a worker that ends with some in flight ends cleanly', async () => {
    const script = `${WORKER_PRELUDE}
      Promise.all([native.netlinkTransact(sock, dump, true), native.netlinkTransact(sock, dump)]).then(([alone, queued]) => {
        parentPort.postMessage(Buffer.from(alone).equals(Buffer.from(queued)));
        for (let i = 0; i < 20; i++) native.netlinkTransact(sock, dump, true);
        process.exit(0);
      });`;
    const worker = new Worker(script, { eval: true, workerData: { root: ROOT } });
    const same = await new Promise<boolean>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    expect(same).toBe(true);
    expect(await new Promise<number>((resolve) => worker.once('exit', resolve))).toBe(0);
  });

  it('openNetnsPid opens a live process netns through a pidfd, and names the failure otherwise', () => {
    const fd = native.openNetnsPid(process.pid);
    try {
      expect(fstatSync(fd).ino).toBe(here());
    } finally {
      closeSync(fd);
    }
    expect(() => native.openNetnsPid(4_000_000)).toThrow(expect.objectContaining({ code: 'ESRCH', errno: 3, syscall: 'pidfd_open' }));
    expect(() => native.openNetnsPid(0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('openNetnsPath accepts netns files only', () => {
    const fd = native.openNetnsPath('/proc/self/ns/net');
    closeSync(fd);
    expect(() => native.openNetnsPath('/etc/hostname')).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl(NS_GET_NSTYPE)' }));
    expect(() => native.openNetnsPath('/nonexistent')).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open' }));
    expect(() => native.openNetnsPath('/proc/self/ns/uts')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('peerCredentials names the process at the other end of a unix socket, and refuses what is not a connected socket', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pw-peercred-'));
    const server = createServer();
    try {
      const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
      await new Promise<void>((resolve) => server.listen(path.join(dir, 's'), resolve));
      const client = connect(path.join(dir, 's'));
      const peer = await accepted;
      const fd = (peer as unknown as { _handle: { fd: number } })._handle.fd;
      expect(native.peerCredentials(fd)).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
      client.destroy();
      peer.destroy();
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => native.peerCredentials('3' as unknown as number)).toThrow('socket must be a file descriptor number');
    const file = openSync('/proc/self/stat', 'r');
    try {
      expect(() => native.peerCredentials(file)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', syscall: 'getsockopt(SO_PEERCRED)' }));
    } finally {
      closeSync(file);
    }
  });

  it('strerror gives the C library text', () => {
    expect(native.strerror(17)).toBe('File exists');
  });
});
