// `pipework docker-plugin` against a real dockerd: Docker discovers the
// plugin on /run/docker/plugins/pipework.sock (/run is the throwaway tmpfs of
// scripts/in-netns.js), creates networks on it, runs containers that ping
// each other, survives the plugin being killed and restarted, and gets
// {"Err": ...} for requests that make no sense. Only inside scripts/in-netns.js:
//   npx tsc -p . && node scripts/in-netns.js npx vitest run test/e2e/docker-plugin.test.ts
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/daemons/dockerd';
import { waitFor } from '../support/daemons/helpers';
import { OVS_DB_SOCK, startOvs } from '../support/daemons/ovs';
import {
  type PipeworkProcess, deleteLinkIfPresent, ipj, linkNamed, links, portsOf, post, sh, socketUp, startPluginProcess, stopDockerAndPlugin,
} from './docker/helpers';

if (process.env.PIPEWORK_IN_NETNS !== '1') {
  throw new Error('test/e2e/docker-plugin.test.ts starts dockerd and changes links: only inside scripts/in-netns.js');
}

const SOCKET = '/run/docker/plugins/pipework.sock';
const dir = mkdtempSync(join(tmpdir(), 'pw-plug-'));
const STATE = join(dir, 'state.json');
let d: Dockerd | undefined;
let plugin: PipeworkProcess | undefined;
let starts = 0;

const startPlugin = () => startPluginProcess(SOCKET, STATE, join(dir, `plugin-${++starts}.log`));

const state = () => JSON.parse(readFileSync(STATE, 'utf8'));
const ipOf = async (name: string, net: string) =>
  (await d!.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name])).trim();
const canPing = async (from: string, to: string) =>
  d!.docker(['exec', from, 'ping', '-c', '1', '-W', '3', to]).then(() => true, () => false);

beforeAll(async () => {
  d = await startDockerd();
  plugin = await startPlugin();
}, 120_000);

afterAll(() => stopDockerAndPlugin(d, plugin, ['brpw', 'pwphys0', 'brpw2'], dir), 120_000);

describe('pipework docker-plugin', () => {
  it('answers the handshake and the capabilities', async () => {
    const a = await post(SOCKET, '/Plugin.Activate');
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ Implements: ['NetworkDriver'] });
    const c = await post(SOCKET, '/NetworkDriver.GetCapabilities', 'null');
    expect(c.json).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
  });

  it('bridge mode: containers on a pipework network ping each other; the state survives a plugin crash', async () => {
    await d!.docker(['network', 'create', '-d', 'pipework', '-o', 'parent=brpw', '--subnet', '10.77.0.0/24', '--gateway', '10.77.0.1', 'pwnet']);
    const br = linkNamed('brpw');
    expect(br?.linkinfo?.info_kind).toBe('bridge'); // created by the plugin (absent before), and up
    expect(br?.flags).toContain('UP');
    for (const c of ['pc1', 'pc2']) await d!.docker(['run', '-d', '--name', c, '--network', 'pwnet', 'busybox', 'sleep', '1000']);
    const ip1 = await ipOf('pc1', 'pwnet');
    const ip2 = await ipOf('pc2', 'pwnet');
    expect(ip1).toMatch(/^10\.77\.0\.\d+$/);
    expect(await canPing('pc1', ip2)).toBe(true);
    expect(await canPing('pc2', ip1)).toBe(true);

    // Kernel: one veth host end per container on brpw, up; nothing left behind in the host netns.
    const ports = portsOf('brpw');
    expect(ports.map((p) => p.ifname).sort()).toHaveLength(2);
    for (const p of ports) {
      expect(p.ifname).toMatch(/^vpw[0-9a-f]{12}$/);
      expect(p.linkinfo?.info_kind).toBe('veth');
      expect(p.flags).toContain('UP');
    }
    expect(links().filter((l) => l.ifname.startsWith('pwtmp'))).toEqual([]);
    // Inside: eth0 with Docker's address and the MAC we generated from it, default route via the gateway.
    const pid1 = Number((await d!.docker(['inspect', '-f', '{{.State.Pid}}', 'pc1'])).trim());
    const eth0 = ipj<any[]>(pid1, 'addr', 'show', 'dev', 'eth0')[0];
    expect(eth0.addr_info.find((a: any) => a.family === 'inet')).toMatchObject({ local: ip1, prefixlen: 24 });
    expect(eth0.address).toBe(`02:42:${ip1.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join(':')}`);
    expect(ipj<any[]>(pid1, 'route', 'show', 'default')[0]).toMatchObject({ gateway: '10.77.0.1', dev: 'eth0' });

    const s = state();
    const [netId] = Object.keys(s.networks);
    expect(s.networks[netId]).toMatchObject({ mode: 'bridge', parent: 'brpw', gateway: '10.77.0.1', createdBridge: true });
    expect(Object.keys(s.endpoints)).toHaveLength(2);

    // Crash: SIGKILL by PID, start again on the same state. Docker never notices.
    await plugin!.stop('SIGKILL');
    expect(socketUp(SOCKET)).toBe(true); // a stale socket file, replaced on start
    const restarted = await startPlugin();
    plugin = restarted;
    await d!.docker(['run', '-d', '--name', 'pc3', '--network', 'pwnet', 'busybox', 'sleep', '1000']);
    const ip3 = await ipOf('pc3', 'pwnet');
    expect(await canPing('pc3', ip1)).toBe(true);
    expect(portsOf('brpw')).toHaveLength(3);
    expect(Object.keys(state().endpoints)).toHaveLength(3);

    // A stopped container gives its link back (Leave), a started one gets a new one (Join).
    await d!.docker(['stop', '-t', '0', 'pc2']);
    await waitFor(() => portsOf('brpw').length === 2, 10_000, 'pc2 host end gone');
    await d!.docker(['start', 'pc2']);
    expect(portsOf('brpw')).toHaveLength(3);
    expect(await canPing('pc2', ip3)).toBe(true);

    // Teardown through Docker: Leave + DeleteEndpoint per container, then DeleteNetwork (which removes the bridge it made).
    await d!.docker(['rm', '-f', 'pc1', 'pc2', 'pc3']);
    await waitFor(() => portsOf('brpw').length === 0, 10_000, 'all host ends gone');
    expect(Object.keys(state().endpoints)).toHaveLength(0);
    await d!.docker(['network', 'rm', 'pwnet']);
    expect(linkNamed('brpw')).toBeUndefined();
    expect(state()).toEqual({ version: 1, networks: {}, endpoints: {} });
    expect(links().filter((l) => /^(pwtmp|vpw)/.test(l.ifname))).toEqual([]);
    const log = restarted.output();
    expect(log).toMatch(/NetworkDriver\.Join \w{12}\/\w{12}: ok/);
    expect(log).toMatch(/NetworkDriver\.DeleteNetwork \w{12}: ok/);
  }, 120_000);

  it('bridge mode on an existing bridge leaves the bridge alone', async () => {
    sh('ip', 'link', 'add', 'brpw2', 'type', 'bridge');
    sh('ip', 'link', 'set', 'brpw2', 'up');
    await d!.docker(['network', 'create', '-d', 'pipework', '-o', 'parent=brpw2', '-o', 'mtu=1400', '--subnet', '10.76.0.0/24', 'pwnet2']);
    await d!.docker(['run', '-d', '--name', 'pb1', '--network', 'pwnet2', 'busybox', 'sleep', '1000']);
    const [port] = portsOf('brpw2');
    expect(port.mtu).toBe(1400);
    const pid = Number((await d!.docker(['inspect', '-f', '{{.State.Pid}}', 'pb1'])).trim());
    expect(ipj<any[]>(pid, 'link', 'show', 'dev', 'eth0')[0].mtu).toBe(1400);
    await d!.docker(['rm', '-f', 'pb1']);
    await d!.docker(['network', 'rm', 'pwnet2']);
    expect(linkNamed('brpw2')).toBeDefined(); // not ours: kept
    deleteLinkIfPresent('brpw2');
  }, 60_000);

  it('macvlan mode: containers on a macvlan of a "physical" interface ping each other', async () => {
    sh('ip', 'link', 'add', 'pwphys0', 'type', 'veth', 'peer', 'name', 'pwphys1');
    sh('ip', 'link', 'set', 'pwphys0', 'up');
    sh('ip', 'link', 'set', 'pwphys1', 'up');
    await d!.docker(['network', 'create', '-d', 'pipework', '-o', 'parent=pwphys0', '-o', 'mode=macvlan', '--subnet', '10.79.0.0/24', 'pwmac']);
    for (const c of ['pm1', 'pm2']) await d!.docker(['run', '-d', '--name', c, '--network', 'pwmac', 'busybox', 'sleep', '1000']);
    const ip2 = await ipOf('pm2', 'pwmac');
    expect(await canPing('pm1', ip2)).toBe(true);
    const pid1 = Number((await d!.docker(['inspect', '-f', '{{.State.Pid}}', 'pm1'])).trim());
    const eth0 = ipj<any[]>(pid1, '-d', 'link', 'show', 'dev', 'eth0')[0];
    expect(eth0.linkinfo.info_kind).toBe('macvlan');
    expect(eth0.linkinfo.info_data.mode).toBe('bridge');
    await d!.docker(['rm', '-f', 'pm1', 'pm2']);
    await d!.docker(['network', 'rm', 'pwmac']);
    expect(links().filter((l) => /^(pwtmp|vpw)/.test(l.ifname) || l.linkinfo?.info_kind === 'macvlan')).toEqual([]);
    expect(linkNamed('pwphys0')).toBeDefined();
    deleteLinkIfPresent('pwphys0');
  }, 60_000);

  it('OVS mode: an Open vSwitch parent gets the veth host ends as ports, tagged with the VLAN', async (ctx) => {
    if (!existsSync('/usr/sbin/ovs-vswitchd') && !existsSync('/usr/bin/ovs-vswitchd')) ctx.skip('ovs-vswitchd not installed');
    if (existsSync(OVS_DB_SOCK)) ctx.skip(`${OVS_DB_SOCK} in use by another test file`);
    const ovs = await startOvs();
    try {
      await ovs.vsctl(['add-br', 'ovspw', '--', 'set', 'bridge', 'ovspw', 'datapath_type=netdev']);
      await d!.docker(['network', 'create', '-d', 'pipework', '-o', 'parent=ovspw', '-o', 'vlan=7', '--subnet', '10.74.0.0/24', 'pwovs']);
      expect(Object.values(state().networks)).toEqual([expect.objectContaining({ mode: 'ovs', parent: 'ovspw', vlan: 7 })]);
      for (const c of ['po1', 'po2']) await d!.docker(['run', '-d', '--name', c, '--network', 'pwovs', 'busybox', 'sleep', '1000']);
      const ports = (await ovs.vsctl(['list-ports', 'ovspw'])).split('\n').filter(Boolean);
      expect(ports).toHaveLength(2);
      for (const p of ports) {
        expect(p).toMatch(/^vpw[0-9a-f]{12}$/);
        expect((await ovs.vsctl(['get', 'Port', p, 'tag'])).trim()).toBe('7');
      }
      expect(await canPing('po1', await ipOf('po2', 'pwovs'))).toBe(true);
      await d!.docker(['rm', '-f', 'po1', 'po2']);
      expect((await ovs.vsctl(['list-ports', 'ovspw'])).trim()).toBe('');
      await d!.docker(['network', 'rm', 'pwovs']);
      expect((await ovs.vsctl(['br-exists', 'ovspw']).then(() => true, () => false))).toBe(true); // not ours: kept
      expect(state().networks).toEqual({});
    } finally {
      await d!.docker(['rm', '-f', 'po1', 'po2']).catch(() => '');
      await d!.docker(['network', 'rm', 'pwovs']).catch(() => '');
      await ovs.stop();
    }
  }, 90_000);

  it('refuses bad networks through docker with our message', async () => {
    const fail = (args: string[]) => d!.docker(['network', 'create', '-d', 'pipework', ...args]).then(() => '', (e: Error) => e.message);
    expect(await fail(['pwbad'])).toMatch(/option parent is required/);
    expect(await fail(['-o', 'parent=brpw', '-o', 'mode=ipvlan', 'pwbad'])).toMatch(/mode ipvlan is not bridge or macvlan/);
    expect(await fail(['-o', 'parent=brpw', '-o', 'vlan=5000', 'pwbad'])).toMatch(/vlan 5000 is not in 1-4094/);
    expect(await fail(['-o', 'parent=brpw', '-o', 'vlan=5', 'pwbad'])).toMatch(/VLAN configuration currently unsupported for Linux bridge/);
    expect(await fail(['-o', 'parent=nosuchif0', '-o', 'mode=macvlan', 'pwbad'])).toMatch(/parent interface nosuchif0 does not exist/);
    expect(await fail(['-o', 'parnet=brpw', 'pwbad'])).toMatch(/unknown option parnet/);
    expect(linkNamed('brpw')).toBeUndefined(); // nothing made for refused networks
    expect(state().networks).toEqual({});
  }, 60_000);

  it('answers invalid requests with {"Err": ...}, never crashing', async () => {
    const expectErr = async (path: string, body: string | undefined, status: number, re: RegExp) => {
      const r = await post(SOCKET, path, body);
      expect(r.status).toBe(status);
      expect(Object.keys(r.json)).toEqual(['Err']);
      expect(r.json.Err).toMatch(re);
    };
    await expectErr('/NetworkDriver.CreateNetwork', '{"NetworkID": ', 500, /invalid JSON/);
    await expectErr('/NetworkDriver.CreateNetwork', '[1,2]', 500, /must be a JSON object/);
    await expectErr('/NetworkDriver.CreateNetwork', '{}', 500, /missing NetworkID/);
    await expectErr('/NetworkDriver.CreateNetwork', '{"NetworkID": 7}', 500, /missing NetworkID/);
    await expectErr('/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: 'n1', Options: { 'com.docker.network.generic': 'x' } }), 500, /must be an object/);
    await expectErr('/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: 'n1', Options: { 'com.docker.network.generic': { parent: 'x'.repeat(20) } } }), 500, /^The parent name 'x{20}' is 20 characters long; Linux allows at most 15\.$/);
    await expectErr('/NetworkDriver.DeleteNetwork', '{"NetworkID": "nope"}', 500, /network nope not found/);
    await expectErr('/NetworkDriver.CreateEndpoint', '{"NetworkID": "nope", "EndpointID": "e1"}', 500, /network nope not found/);
    await expectErr('/NetworkDriver.Join', '{"NetworkID": "nope"}', 500, /missing EndpointID/);
    await expectErr('/NetworkDriver.Leave', '{"NetworkID": "nope", "EndpointID": "e1"}', 500, /network nope not found/);
    await expectErr('/NetworkDriver.EndpointOperInfo', '{"NetworkID": "nope", "EndpointID": "e1"}', 500, /not found/);
    await expectErr('/NetworkDriver.NoSuchMethod', '{}', 404, /does not implement/);
    expect((await post(SOCKET, '/Plugin.Activate', undefined, 'GET')).status).toBe(405);

    // A network made by hand, then endpoint requests with bad fields.
    const net = { NetworkID: 'feedbeef', IPv4Data: [{ Pool: '10.75.0.0/24', Gateway: '10.75.0.1/24' }], Options: { 'com.docker.network.generic': { parent: 'brpw3' } } };
    expect((await post(SOCKET, '/NetworkDriver.CreateNetwork', JSON.stringify(net))).json).toEqual({});
    await expectErr('/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e1', Interface: { Address: '10.75.0.300/24' } }), 500, /Invalid IP address/);
    await expectErr('/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e1', Interface: { MacAddress: 'zz' } }), 500, /Invalid MAC/);
    await expectErr('/NetworkDriver.Join', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e1' }), 500, /endpoint e1 not found/);
    // A MAC only when Docker gave none; Join's reply names the link and the gateway.
    const ep = await post(SOCKET, '/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e1', Interface: { Address: '10.75.0.2/24' } }));
    expect(ep.json).toEqual({ Interface: { MacAddress: '02:42:0a:4b:00:02' } });
    const ep2 = await post(SOCKET, '/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e2', Interface: { Address: '10.75.0.3/24', MacAddress: '02:00:00:00:00:03' } }));
    expect(ep2.json).toEqual({});
    const join = await post(SOCKET, '/NetworkDriver.Join', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e1', SandboxKey: '/nowhere' }));
    expect(join.json).toEqual({ InterfaceName: { SrcName: 'pwtmpe1', DstPrefix: 'eth' }, Gateway: '10.75.0.1' });
    expect(linkNamed('pwtmpe1')?.address).toBe('02:42:0a:4b:00:02');
    expect(portsOf('brpw3').map((l) => l.ifname)).toEqual(['vpwe1']);
    expect((await post(SOCKET, '/NetworkDriver.EndpointOperInfo', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e1' }))).json)
      .toEqual({ Value: { mode: 'bridge', parent: 'brpw3', mac: '02:42:0a:4b:00:02', host_interface: 'vpwe1' } });
    expect((await post(SOCKET, '/NetworkDriver.Leave', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: 'e1' }))).json).toEqual({});
    expect(linkNamed('pwtmpe1')).toBeUndefined();
    expect(linkNamed('vpwe1')).toBeUndefined();
    for (const e of ['e1', 'e2']) expect((await post(SOCKET, '/NetworkDriver.DeleteEndpoint', JSON.stringify({ NetworkID: 'feedbeef', EndpointID: e }))).json).toEqual({});
    expect((await post(SOCKET, '/NetworkDriver.DeleteNetwork', '{"NetworkID": "feedbeef"}')).json).toEqual({});
    expect(linkNamed('brpw3')).toBeUndefined();
    for (const m of ['DiscoverNew', 'DiscoverDelete', 'ProgramExternalConnectivity', 'RevokeExternalConnectivity']) {
      expect((await post(SOCKET, `/NetworkDriver.${m}`, '{}')).json).toEqual({});
    }
    // IPv6: the gateway goes back only to endpoints that have an IPv6 address.
    const net6 = { NetworkID: 'f00d6', IPv4Data: [{ Pool: '10.73.0.0/24', Gateway: '10.73.0.1/24' }], IPv6Data: [{ Pool: '2001:db8:73::/64', Gateway: '2001:db8:73::1/64' }],
      Options: { 'com.docker.network.generic': { parent: 'brpw3' } } };
    expect((await post(SOCKET, '/NetworkDriver.CreateNetwork', JSON.stringify(net6))).json).toEqual({});
    await post(SOCKET, '/NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: 'f00d6', EndpointID: 'e6', Interface: { Address: '10.73.0.2/24', AddressIPv6: '2001:db8:73::2/64' } }));
    expect((await post(SOCKET, '/NetworkDriver.Join', JSON.stringify({ NetworkID: 'f00d6', EndpointID: 'e6' }))).json)
      .toEqual({ InterfaceName: { SrcName: 'pwtmpe6', DstPrefix: 'eth' }, Gateway: '10.73.0.1', GatewayIPv6: '2001:db8:73::1' });
    // Deleting the network takes what its endpoints still had (here: a Join never followed by Leave).
    expect((await post(SOCKET, '/NetworkDriver.DeleteNetwork', '{"NetworkID": "f00d6"}')).json).toEqual({});
    expect(linkNamed('pwtmpe6')).toBeUndefined();
    expect(linkNamed('brpw3')).toBeUndefined();
    expect(state()).toEqual({ version: 1, networks: {}, endpoints: {} });

    plugin!.check(); // still running
    expect(plugin!.output()).not.toMatch(/internal error|^\s+at /m);
  });

  it('stops on SIGTERM: exit status 143, socket removed, the state file as it was', async () => {
    const before = readFileSync(STATE, 'utf8');
    await plugin!.stop('SIGTERM');
    expect(plugin!.exit).toEqual({ code: 143, signal: null });
    expect(socketUp(SOCKET)).toBe(false);
    expect(plugin!.output()).toMatch(/pipework: SIGTERM: stopping: no new requests, finishing the one in progress\n.*pipework docker-plugin: stopped$/m);
    expect(readFileSync(STATE, 'utf8')).toBe(before);
  });
});
