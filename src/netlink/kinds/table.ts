// The link kinds pipework makes or meets, one line each (see
// src/netlink/kinds/index.ts for the lookups, docs/architecture.md for how to
// add one).
export { bridge } from './bridge';
export { dummy } from './dummy';
export { ipoib } from './ipoib';
export { ipvlan } from './ipvlan';
export { macvlan } from './macvlan';
export { macvtap } from './macvtap';
export { veth } from './veth';
export { vlan } from './vlan';
