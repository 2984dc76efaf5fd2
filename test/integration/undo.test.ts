// A failure whose rollback fails too says so: the undo log's refusals (real
// kernel refusals here) come back with the first failure, and the CLI prints
// both, instead of the undo failures being dropped.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RtnlSocket } from '../../src/netlink/socket';
import { createBridge } from '../../src/netlink/kinds/bridge';
import { deleteLinkByName } from '../../src/netlink/link';
import { NetlinkError } from '../../src/netlink/error';
import { PipeworkError, RollbackError } from '../../src/errors';
import { Undo } from '../../src/exec/undo';
import { describeError } from '../../src/cli/commands';
import { links, netnsSet } from '../helpers/kernel';

let ns: ReturnType<typeof netnsSet>;
let sock: RtnlSocket;

beforeEach(() => {
  ns = netnsSet(1);
  sock = RtnlSocket.open(ns.fds[0]);
});
afterEach(() => {
  sock.close();
  ns.close();
});

describe('rollback', () => {
  it('an undo step the kernel refuses: RollbackError with the failure as cause, the refusal in errors; the other undo steps still ran', async () => {
    const pair = { host: sock, hostFd: ns.fds[0], guest: sock, guestFd: ns.fds[0] };
    const undo = new Undo(pair);
    await sock.request(createBridge({ name: 'brundo' }));
    undo.push(() => deleteLinkByName('brundo'));
    undo.push(() => deleteLinkByName('gone0')); // never made: ENODEV when undone
    const failure = new PipeworkError('the step that failed');
    const thrown = await undo.rollBack(failure);
    expect(thrown).toBeInstanceOf(RollbackError);
    const r = thrown as RollbackError;
    expect(r.cause).toBe(failure);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toBeInstanceOf(NetlinkError);
    expect((r.errors[0] as NetlinkError).errno).toBe(19);
    expect(links(ns.fds[0]).map((l) => l.ifname)).toEqual(['lo']); // the bridge's undo ran after the refused one
    const said = describeError(r).split('\n');
    expect(said[0]).toBe('the step that failed');
    expect(said[1]).toMatch(/^pipework: undoing it failed too, left in place: .*gone0.*No such device/);
  });

  it('when every undo step succeeds, the failure itself is what is thrown (messages as before)', async () => {
    const undo = new Undo({ host: sock, hostFd: ns.fds[0], guest: sock, guestFd: ns.fds[0] });
    await sock.request(createBridge({ name: 'brundo' }));
    undo.push(() => deleteLinkByName('brundo'));
    const failure = new PipeworkError('the step that failed');
    expect(await undo.rollBack(failure)).toBe(failure);
    expect(links(ns.fds[0]).map((l) => l.ifname)).toEqual(['lo']);
  });
});
