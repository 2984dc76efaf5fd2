/**
 * `npm run demo`: inside throwaway namespaces (see scripts/in-netns.js),
 * makes a few container namespaces, plumbs them onto a new bridge with
 * addresses and a gateway, pings across, and tears it all down.
 */
import { spawnSync } from 'node:child_process';
import { closeSync } from 'node:fs';
import { Session, createNetns, renderPlan } from './session';
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

  console.log('\nConnectivity (ping -c1 from each container to the next and to the gateway):');
  let failures = 0;
  for (let i = 0; i < COUNT; i++) {
    for (const target of [`10.77.0.${10 + ((i + 1) % COUNT)}`, '10.77.0.1']) {
      const r = spawnSync('nsenter', [`--net=/proc/${process.pid}/fd/${guests[i]}`, 'ping', '-c', '1', '-W', '2', target], { stdio: 'ignore' });
      if (r.error) {
        console.log('  ping is not installed (apt-get install iputils-ping); skipping the connectivity check');
        i = COUNT;
        break;
      }
      if (r.status !== 0) failures++;
      console.log(`  10.77.0.${10 + i} -> ${target}: ${r.status === 0 ? 'ok' : 'FAILED'}`);
    }
  }

  const t1 = process.hrtime.bigint();
  for (const g of guests) await session.detach({ fd: g });
  console.log(`\nDetached all ${COUNT} in ${ms(t1)} ms; closing the namespaces leaves nothing behind.`);
  session.close();
  guests.forEach((fd) => closeSync(fd));
  if (failures) throw new Error(`${failures} pings failed`);
}

main().catch((e) => {
  console.error(`demo failed: ${e.message}`);
  process.exit(1);
});
