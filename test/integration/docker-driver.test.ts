// The Docker driver's rollback (src/docker/driver.ts over exec's undo log):
// a CreateNetwork or Join that fails after it made links takes them away
// again, and leaves its record as it was. The fault is a real one: the state
// directory turned into a file, so the save that ends the request fails after
// the links were made. The driver works in the netns it runs in: only inside
// scripts/in-netns.js.
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Driver, linkNames } from '../../src/docker/driver';
import { type LinkJson, ip, ipj, links } from '../helpers/kernel';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/integration/docker-driver.test.ts changes links in its own netns: only inside scripts/in-netns.js');
}

const dir = mkdtempSync(join(tmpdir(), 'pw-driver-'));
const stateDir = join(dir, 'state');
let driver: Driver;
let self: number;

/** The next save fails: the state directory is a file now (mkdir: EEXIST). */
const breakStateDir = () => {
  rmSync(stateDir, { recursive: true, force: true });
  writeFileSync(stateDir, '');
};
const mendStateDir = () => {
  rmSync(stateDir, { force: true });
  mkdirSync(stateDir);
};
const names = () => links(self).map((l) => l.ifname);
const portsOf = (bridge: string) => ipj<LinkJson[]>(self, 'link', 'show', 'master', bridge).map((l) => l.ifname);
const generic = (options: Record<string, string>) => ({ 'com.docker.network.generic': options });

beforeAll(() => {
  self = openSync('/proc/self/ns/net', 'r');
  mkdirSync(stateDir);
  driver = Driver.open(join(stateDir, 'plugin.json'));
});

afterAll(() => {
  driver?.close();
  for (const l of ['brdrv0', 'drvphys0']) if (names().includes(l)) ip(self, 'link', 'del', l);
  closeSync(self);
  rmSync(dir, { recursive: true, force: true });
});

describe('Docker driver: a request that fails after it made links is rolled back', () => {
  it('CreateNetwork: the bridge it created is deleted, no network recorded', async () => {
    breakStateDir();
    await expect(driver.createNetwork({ NetworkID: 'neta', Options: generic({ parent: 'brdrv0' }) })).rejects.toThrow(/EEXIST/);
    expect(names()).not.toContain('brdrv0');
    expect(driver.snapshot().networks).toEqual({});
    mendStateDir();
  });

  it('Join on a bridge network: the veth is deleted, the bridge keeps no port, the endpoint is as before; a Join after that works', async () => {
    await driver.createNetwork({ NetworkID: 'netb', Options: generic({ parent: 'brdrv0' }) });
    await driver.createEndpoint({ NetworkID: 'netb', EndpointID: 'epb', Interface: { Address: '10.76.0.2/24' } });
    const endpoint = driver.snapshot().endpoints.epb;
    const { srcName, hostName } = linkNames('epb');
    breakStateDir();
    await expect(driver.join({ NetworkID: 'netb', EndpointID: 'epb', SandboxKey: '/nowhere' })).rejects.toThrow(/EEXIST/);
    expect(names()).not.toContain(srcName);
    expect(names()).not.toContain(hostName);
    expect(portsOf('brdrv0')).toEqual([]);
    expect(driver.snapshot().endpoints.epb).toEqual(endpoint);
    mendStateDir();
    expect(await driver.join({ NetworkID: 'netb', EndpointID: 'epb', SandboxKey: '/nowhere' })).toEqual({ InterfaceName: { SrcName: srcName, DstPrefix: 'eth' } });
    expect(portsOf('brdrv0')).toEqual([hostName]);
    await driver.leave({ NetworkID: 'netb', EndpointID: 'epb' });
    await driver.deleteEndpoint({ NetworkID: 'netb', EndpointID: 'epb' });
    await driver.deleteNetwork({ NetworkID: 'netb' });
    expect(names()).not.toContain('brdrv0');
  });

  it('Join on a macvlan network: the macvlan is deleted, the parent keeps none', async () => {
    ip(self, 'link', 'add', 'drvphys0', 'up', 'type', 'veth', 'peer', 'name', 'drvphys1'); // a "physical" interface (no dummy module here)
    await driver.createNetwork({ NetworkID: 'netc', Options: generic({ parent: 'drvphys0', mode: 'macvlan' }) });
    await driver.createEndpoint({ NetworkID: 'netc', EndpointID: 'epc', Interface: { Address: '10.77.0.2/24' } });
    const { srcName } = linkNames('epc');
    const before = names();
    breakStateDir();
    await expect(driver.join({ NetworkID: 'netc', EndpointID: 'epc' })).rejects.toThrow(/EEXIST/);
    expect(names()).toEqual(before);
    expect(names()).not.toContain(srcName);
    expect(driver.snapshot().endpoints.epc.srcName).toBeUndefined();
    mendStateDir();
    await driver.deleteEndpoint({ NetworkID: 'netc', EndpointID: 'epc' });
    await driver.deleteNetwork({ NetworkID: 'netc' });
  });
});
