// `pipework watch --cleanup` against a real dockerd: containers started with
// pipework labels (or dreamcat4's pipework_cmd environment) are plumbed as
// they start, the ones running before the watcher at its start-up, removed
// containers are unplugged, and the watcher reconnects when Docker goes away
// and comes back. Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/watch.test.ts
import { mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/daemons/dockerd';
import { waitFor } from '../support/daemons/helpers';
import { containerCommands, expandMacros, insertGuest } from '../../src/docker/commands';
import { PipeworkProcess, containerPid, deleteLinkIfPresent, ipj, ipv4Of, linkNamed, portsOf, waitForLog } from './docker/helpers';

describe('commands from labels and environment', () => {
  const ID = 'a'.repeat(64);
  it('puts the guest where the original syntax has it', () => {
    expect(insertGuest(['br1', '10.0.0.5/24'], 'G')).toEqual(['br1', 'G', '10.0.0.5/24']);
    expect(insertGuest(['br1', '-i', 'eth2', '-l', 'web', '-a', '6', '2001:db8::5/64'], 'G'))
      .toEqual(['br1', '-i', 'eth2', '-l', 'web', '-a', '6', 'G', '2001:db8::5/64']);
    expect(insertGuest(['--nodad', '--macvlan-mode', 'vepa', 'eth0', '10.0.0.5/24', 'U:web'], 'G'))
      .toEqual(['--nodad', '--macvlan-mode', 'vepa', 'eth0', 'G', '10.0.0.5/24', 'U:web']);
    expect(insertGuest(['route', 'add', 'default', 'via', '10.0.0.1'], 'G')).toEqual(['route', 'G', 'add', 'default', 'via', '10.0.0.1']);
    expect(insertGuest(['br1'], 'G')).toEqual(['br1', 'G']);
    expect(insertGuest(['br1', '-i'], 'G')).toEqual(['br1', '-i', 'G']);
  });

  it('reads labels in order, then pipework_cmd* variables with macros expanded', () => {
    const c = {
      Id: ID, Name: '/web_3',
      Config: {
        Hostname: 'h1',
        Labels: { 'pipework.10': 'br1 -i eth3 10.0.0.7/24', pipework: "br1 '10.0.0.5/24@10.0.0.1'", 'pipework.2': 'route add 10.9.0.0/16 via 10.0.0.254', 'pipework.x': 'ignored', other: 'x' },
        Env: ['PATH=/bin', 'pipework_cmd_b=pipework br2 @CONTAINER_NAME@ 10.1.0.@INSTANCE@/24', 'pipework_cmd_a=br2 -i eth9 @CONTAINER_ID@ dhcp', 'pipework_wait=eth1', 'pipework_cmd_bad=br2 "oops'],
      },
    };
    expect(containerCommands(c)).toEqual([
      { source: 'label pipework', words: ['br1', ID, '10.0.0.5/24@10.0.0.1'] },
      { source: 'label pipework.2', words: ['route', ID, 'add', '10.9.0.0/16', 'via', '10.0.0.254'] },
      { source: 'label pipework.10', words: ['br1', '-i', 'eth3', ID, '10.0.0.7/24'] },
      { source: 'env pipework_cmd_a', words: ['br2', '-i', 'eth9', 'aaaaaaaaaaaa', 'dhcp'] },
      { source: 'env pipework_cmd_b', words: ['br2', 'web_3', '10.1.0.3/24'] },
      { source: 'env pipework_cmd_bad', words: [], error: 'unterminated double quote' },
    ]);
    expect(expandMacros('@HOSTNAME@ @COMPOSE_PROJECT_NAME@ @OTHER@', c)).toBe('h1  @OTHER@');
  });
});

const IN_NETNS = process.env.PIPEWORK_IN_NETNS === '1';

describe.skipIf(!IN_NETNS)('pipework watch against dockerd', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-watch-'));
  // The watcher reaches Docker through a symlink we control: pointing it at a
  // second dockerd is how "Docker restarted" is played (the fixture cannot
  // restart one dockerd in place: stop() removes its data).
  const SOCK = join(dir, 'docker.sock');
  let d: Dockerd | undefined;
  let d2: Dockerd | undefined;
  let w: PipeworkProcess | undefined;
  const env = () => ({ ...process.env, DOCKER_HOST: `unix://${SOCK}` });
  const pointAt = (target: string) => {
    symlinkSync(target, `${SOCK}.new`);
    renameSync(`${SOCK}.new`, SOCK);
  };
  const run = (dk: Dockerd, args: string[]) => dk.docker(['run', '-d', '--network', 'none', ...args, 'busybox', 'sleep', '1000']);

  beforeAll(async () => {
    d = await startDockerd();
    pointAt(d.socket);
  }, 120_000);

  afterAll(async () => {
    try {
      await w?.stop();
      if (process.env.PW_SHOW_LOG) console.log(w?.output());
    } finally {
      await d?.stop().catch(() => undefined);
      await d2?.stop().catch(() => undefined);
      for (const l of ['brw', 'brw2']) deleteLinkIfPresent(l);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('plumbs containers running before it, then each one that starts; unplugs them when they die', async () => {
    await run(d!, ['--name', 'pre', '--label', 'pipework=brw 10.78.0.4/24']);
    const prePid = await containerPid(d!.docker, 'pre');
    w = new PipeworkProcess(['watch', '--cleanup'], join(dir, 'watch.log'), env());
    await waitForLog(w, /pre brw \w{64} 10\.78\.0\.4\/24: ok/);
    expect(ipv4Of(prePid, 'eth1')).toEqual(['10.78.0.4/24']);
    expect(linkNamed(`veth1pl${prePid}`)?.master).toBe('brw');

    // Labels: the guest inserted after the host interface and its options; pipework.<n> in order.
    await run(d!, ['--name', 'web1', '--label', 'pipework=brw 10.78.0.5/24', '--label', 'pipework.1=route add 10.99.0.0/16 via 10.78.0.1',
      '--label', 'pipework.2=brw -i eth2 -l vweb1b 10.78.1.5/24']);
    const pid1 = await containerPid(d!.docker, 'web1');
    await waitForLog(w, /web1 brw -i eth2 -l vweb1b \w{64} 10\.78\.1\.5\/24: ok/);
    expect(ipv4Of(pid1, 'eth1')).toEqual(['10.78.0.5/24']);
    expect(ipv4Of(pid1, 'eth2')).toEqual(['10.78.1.5/24']);
    expect(ipj<any[]>(pid1, 'route', 'show', '10.99.0.0/16')[0]).toMatchObject({ dst: '10.99.0.0/16', gateway: '10.78.0.1', dev: 'eth1' });
    expect(linkNamed('vweb1b')?.master).toBe('brw');
    expect((await d!.docker(['exec', 'web1', 'ping', '-c', '1', '-W', '3', '10.78.0.4'])).length).toBeGreaterThan(0);

    // dreamcat4's environment form: the guest is in the command, as a macro.
    await run(d!, ['--name', 'dc4', '-e', 'pipework_cmd=brw -i eth1 @CONTAINER_NAME@ 10.78.0.6/24']);
    const pid2 = await containerPid(d!.docker, 'dc4');
    await waitForLog(w, /dc4 brw -i eth1 dc4 10\.78\.0\.6\/24: ok/);
    expect(ipv4Of(pid2, 'eth1')).toEqual(['10.78.0.6/24']);

    // A bad label: one log line saying why; the watcher goes on.
    await run(d!, ['--name', 'bad', '--label', 'pipework=brw 10.78.0.300/24']);
    await waitForLog(w, /bad brw \w{64} 10\.78\.0\.300\/24: Invalid IP address: 10\.78\.0\.300/);
    // No labels: nothing done, nothing logged.
    await run(d!, ['--name', 'plain']);

    // --cleanup: the netns is held until die, then the interfaces are unplugged (host ends gone with them).
    const before = portsOf('brw').length;
    await d!.docker(['rm', '-f', 'web1']);
    await waitForLog(w, /web1 unplug \w{64} -i eth2: ok/);
    await waitForLog(w, /web1 unplug \w{64} -i eth1: ok/);
    await waitFor(() => !linkNamed(`veth1pl${pid1}`) && !linkNamed('vweb1b'), 10_000, 'web1 host ends gone');
    expect(portsOf('brw').length).toBe(before - 2);
    expect(w.output()).not.toMatch(/plain|internal error/);
  }, 120_000);

  it('a restarted container is plumbed again', async () => {
    await d!.docker(['restart', '-t', '0', 'dc4']);
    const pid = await containerPid(d!.docker, 'dc4');
    await waitForLog(w!, /dc4 unplug dc4 -i eth1: ok|dc4 unplug \w{64} -i eth1: ok/);
    // eth1 does not exist until the watcher has plumbed it again: keep asking until then.
    const plumbed = () => { try { return ipv4Of(pid, 'eth1').length === 1; } catch { return false; } };
    await waitFor(plumbed, 20_000, 'dc4 plumbed again');
    expect(ipv4Of(pid, 'eth1')).toEqual(['10.78.0.6/24']);
  }, 60_000);

  it('reconnects when Docker goes away and comes back', async () => {
    const prePid = await containerPid(d!.docker, 'pre');
    // Docker goes away: its containers die (unplugged by --cleanup), then its socket.
    await d!.stop();
    d = undefined;
    await waitForLog(w!, /docker lost the event stream \(.*\); reconnecting/);
    await waitFor(() => !linkNamed(`veth1pl${prePid}`), 10_000, 'pre host end gone');
    d2 = await startDockerd();
    // Comes back (here: another dockerd behind the same socket path), with a container already running.
    await run(d2, ['--name', 'early', '--label', 'pipework=brw2 10.78.2.7/24']);
    pointAt(d2.socket);
    await waitForLog(w!, /docker connected again/, 30_000);
    await waitForLog(w!, /early brw2 \w{64} 10\.78\.2\.7\/24: ok/);
    expect(ipv4Of(await containerPid(d2.docker, 'early'), 'eth1')).toEqual(['10.78.2.7/24']);
    await run(d2, ['--name', 'late', '--label', 'pipework=brw2 10.78.2.8/24']);
    await waitForLog(w!, /late brw2 \w{64} 10\.78\.2\.8\/24: ok/);
    expect(await d2.docker(['exec', 'late', 'ping', '-c', '1', '-W', '3', '10.78.2.7'])).toMatch(/1 packets received/);
    w!.check();
  }, 180_000);

  it('a new watcher adopts what an earlier one plumbed (no second attach) and still cleans it up', async () => {
    await w!.stop('SIGTERM');
    expect(w!.exit).toEqual({ code: 143, signal: null });
    expect(w!.output()).toMatch(/pipework: SIGTERM: stopping: no new containers, finishing those in progress/);
    w = new PipeworkProcess(['watch', '--cleanup'], join(dir, 'watch2.log'), env());
    await waitForLog(w, /late brw2 \w{64} 10\.78\.2\.8\/24: eth1 is there already \(plumbed before\), skipped/);
    await waitForLog(w, /early brw2 \w{64} 10\.78\.2\.7\/24: eth1 is there already \(plumbed before\), skipped/);
    const pid = await containerPid(d2!.docker, 'late');
    expect(ipv4Of(pid, 'eth1')).toEqual(['10.78.2.8/24']);
    await d2!.docker(['rm', '-f', 'late']);
    await waitForLog(w, /late unplug \w{64} -i eth1: ok/);
    await waitFor(() => !linkNamed(`veth1pl${pid}`), 10_000, 'late host end gone');
    expect(w.output()).not.toMatch(/: (?!ok|eth1 is there)[^\n]*$/m);
  }, 60_000);
});
