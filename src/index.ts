/**
 * pipework as a library: plumb network interfaces into containers over
 * rtnetlink, with no program forked for links, addresses, routes or rules.
 *
 * The public API, and only that: nothing inside src/ imports this file (see
 * docs/architecture.md).
 */
export { Session, attach, detach, createNetns, renderPlan } from './session';
export type { AttachOptions, AttachResult } from './exec/attach';
export type { AttachRequest } from './plan/attach';
export type { AttachPlan, Step } from './plan/steps';
export type { DetachPlan, DetachStep } from './plan/detach';
export type { GuestSpec, Guest } from './guest';
export type { DetachOutcome } from './exec/detach';
export type { BulkAttachItem, BulkDetachItem, BulkOptions, BulkResult } from './bulk';
// Types that the signatures above name, so the API reference (TypeDoc) documents them too.
export type { GuestArg } from './session';
export type { DhcpRequest } from './plan/dhcp';
export type { ExecOptions } from './exec/context';
export type { HostLink } from './plan/steps';
export type { OvsPort, DhcpClientRecord } from './plan/detach';
export type { MacvlanMode } from './netlink/kinds/macvlan';
export type { Cidr } from './addressing';
export type { Link } from './netlink/link';
export type { DockerContainer } from './guest/docker';
export { PipeworkError, RollbackError } from './errors';
export { DumpInterruptedError, NetlinkError } from './netlink/error';
export { AttachAborted } from './exec/context';
export { openGuest } from './guest';
export { renderStep, STEP_SIDE } from './plan/steps';
export { renderGcStep } from './plan/gc';
export type { GcStep } from './plan/gc';
