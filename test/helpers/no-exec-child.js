// Run under strace by no-exec.test.ts: attaches over a bridge and over a
// macvlan, adds a route and a rule, all with the library; prints the state.
'use strict';
const { Session, createNetns } = require('../../dist/index');
const { RtnlSocket } = require('../../dist/netlink/socket');
const { createVeth } = require('../../dist/netlink/kinds/veth');

(async () => {
  const [host, g1, g2] = [createNetns(), createNetns(), createNetns()];
  const raw = RtnlSocket.open(host);
  await raw.request(createVeth({ name: 'eth0', up: true }, { name: 'eth0p', up: false }));
  raw.close();
  const s = new Session({ hostNetns: host });
  const a = await s.attach({ fd: g1 }, { hostInterface: 'br1', addresses: ['10.66.0.2/24'], gateway: '10.66.0.1' });
  const b = await s.attach({ fd: g2 }, { hostInterface: 'eth0', addresses: ['10.9.0.2/24'] });
  await s.route({ fd: g1 }, ['add', '192.168.7.0/24', 'via', '10.66.0.1']);
  await s.rule({ fd: g1 }, ['add', 'from', '10.66.0.0/24', 'table', '100', 'pref', '100']);
  s.close();
  console.log(JSON.stringify({ bridge: a.containerInterface.name, macvlan: b.containerInterface.name }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
