/**
 * `npm run demo`: inside throwaway namespaces (see scripts/in-netns.js),
 * makes a few container namespaces, plumbs them onto a new bridge with
 * addresses and a gateway, pings across with UDP, and tears it all down.
 * It needs nothing but Node: no ping, no ip, no Docker.
 */
import dgram from 'node:dgram';
import { closeSync } from 'node:fs';
import { Session, createNetns, renderPlan } from './session';
import { native } from './native';
import { RtnlSocket } from './netlink/socket';
import { addAddress } from './netlink/address';
import { getLinkByName, parseLink } from './netlink/link';
import { AF_INET } from './netlink/constants';
import { parseIp } from './addressing';

const COUNT = Number(process.env.DEMO_CONTAINERS ?? 4);
const ms = (t0: bigint) => (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(2);

async function main(): Promise<void> {
  if (!process.env.PIPEWORK_IN_NETNS) throw new Error('run me through `npm run demo` (it puts me in throwaway namespaces)');
  const guests = Array.from({ length: COUNT }, () => createNetns());
  const session = new Session();
  const request = (i: number) => ({ hostInterface: 'br0', addresses: [`10.77.0.${10 + i}/24`], gateway: '10.77.0.1' });

  console.log(`Plan for container 1 (what \`pipework br0 <c1> 10.77.0.10/24@10.77.0.1\` does), as ip commands:`);
  console.log(renderPlan(await session.plan({ fd: guests[0] }, request(0))).replace(/^/gm, '  '));

  const t0 = process.hrtime.bigint();
  const results = [];
  for (let i = 0; i < COUNT; i++) results.push(await session.attach({ fd: guests[i] }, request(i)));
  const attachMs = ms(t0);
  console.log(`\nAttached ${COUNT} containers in ${attachMs} ms (${(Number(attachMs) / COUNT).toFixed(2)} ms each, bridge creation included):`);
  for (const r of results) console.log(`  ${r.hostInterface} <-> ${r.containerInterface.name} ${r.addresses.join(' ')} mac ${r.containerInterface.mac} via ${r.gateway}`);

  // The gateway address on the bridge, so containers can reach the "host" too.
  const host = RtnlSocket.open();
  const br = parseLink((await host.request(getLinkByName('br0')))[0]);
  await host.request(addAddress({ index: br.index, family: AF_INET, address: parseIp('10.77.0.1').bytes, prefixLen: 24 }));
  host.close();

  // One UDP echo socket per container, each made while the addon has the
  // thread inside that container's netns (a socket stays in the netns it was
  // made in; binding the container's address would fail anywhere else), and
  // one on the gateway address in ours.
  const sockets = guests.map((fd, i) => native.withNetns(fd, () => echoSocket(`10.77.0.${10 + i}`)));
  const gateway = echoSocket('10.77.0.1');
  console.log('\nConnectivity (a UDP datagram from each container to the next and to the gateway, echoed back):');
  let failures = 0;
  for (let i = 0; i < COUNT; i++) {
    for (const target of [`10.77.0.${10 + ((i + 1) % COUNT)}`, '10.77.0.1']) {
      const rtt = await udpPing(sockets[i], target);
      if (rtt === undefined) failures++;
      console.log(`  10.77.0.${10 + i} -> ${target}: ${rtt === undefined ? 'FAILED' : `ok (${rtt.toFixed(2)} ms)`}`);
    }
  }
  for (const s of [...sockets, gateway]) s.close();

  const t1 = process.hrtime.bigint();
  for (const g of guests) await session.detach({ fd: g });
  console.log(`\nDetached all ${COUNT} in ${ms(t1)} ms; closing the namespaces leaves nothing behind.`);
  session.close();
  guests.forEach((fd) => closeSync(fd));
  if (failures) throw new Error(`${failures} pings failed`);
}

const ECHO_PORT = 7;

/**
 * A UDP socket bound to address:7 that echoes what it gets. Bound before it
 * returns (the lookup answers at once): inside withNetns, its socket is made
 * in the netns entered.
 */
function echoSocket(address: string): dgram.Socket {
  const s = dgram.createSocket({ type: 'udp4', lookup: (host, _opts, cb) => cb(null, host, 4) });
  s.on('message', (msg, from) => { if (msg.toString() === 'ping') s.send('pong', from.port, from.address); });
  s.bind(ECHO_PORT, address);
  return s;
}

/**
 * Sends "ping" from socket to target:7, again every 250 ms (a datagram can be
 * lost while the neighbour is resolved); the time to the first "pong" in ms,
 * or undefined after 2 s without one.
 */
function udpPing(socket: dgram.Socket, target: string): Promise<number | undefined> {
  return new Promise((done) => {
    const t0 = process.hrtime.bigint();
    const onMessage = (msg: Buffer, from: dgram.RemoteInfo) => {
      if (msg.toString() === 'pong' && from.address === target) finish(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    const send = () => socket.send('ping', ECHO_PORT, target);
    const again = setInterval(send, 250);
    const timer = setTimeout(() => finish(undefined), 2000);
    const finish = (rtt: number | undefined) => {
      clearInterval(again);
      clearTimeout(timer);
      socket.off('message', onMessage);
      done(rtt);
    };
    socket.on('message', onMessage);
    send();
  });
}

main().catch((e) => {
  console.error(`demo failed: ${e.message}`);
  process.exit(1);
});
