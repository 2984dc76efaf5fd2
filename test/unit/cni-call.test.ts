// handleCniCall: one CNI call from an environment and a stdin given as
// values, answered as values (the plugin binary and the daemon both use it).
import { afterEach, describe, expect, it } from 'vitest';
import { handleCniCall } from '../../src/cni/main';

describe('handleCniCall', () => {
  const saved = process.env.CNI_COMMAND;
  afterEach(() => {
    if (saved === undefined) delete process.env.CNI_COMMAND;
    else process.env.CNI_COMMAND = saved;
  });

  it('answers VERSION with the version the stdin names, as the plugin prints it', async () => {
    const r = await handleCniCall({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.endsWith('}\n')).toBe(true);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '0.4.0' });
  });

  it("reads the call's environment, not the process's", async () => {
    process.env.CNI_COMMAND = 'VERSION';
    const r = await handleCniCall({}, '{}');
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 4, msg: 'required env variables [CNI_COMMAND] missing' });
    expect(r.stderr).toMatch(/^pipework-cni: CNI plugin "pipework"; CNI protocol versions supported: .*\n$/);
  });

  it('reads stdin through the reader only when the command needs it, and a failed read is code 5', async () => {
    let reads = 0;
    const failing = async () => { reads++; throw new Error('boom'); };
    expect((await handleCniCall({ CNI_COMMAND: 'BOGUS' }, failing)).exitCode).toBe(1);
    expect(reads).toBe(0);
    const r = await handleCniCall({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }, failing);
    expect(reads).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 5, msg: 'error reading the network config from stdin', details: 'boom' });
  });
});
