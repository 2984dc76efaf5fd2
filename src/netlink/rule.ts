import { type Attr, bytes, str, u32 } from './attributes';
import {
  FIB_RULE_INVERT, FRA_DST, FRA_FWMARK, FRA_FWMASK, FRA_IIFNAME, FRA_OIFNAME, FRA_PRIORITY, FRA_SRC, FRA_TABLE,
  FR_ACT_TO_TBL, NLM_F_CREATE, NLM_F_EXCL, RTM_DELRULE, RTM_NEWRULE, RT_TABLE_UNSPEC,
} from './constants';
import { type Request, rtmsg, request } from './message';

export interface RuleSpec {
  family: number;
  src?: Buffer;
  srcLen?: number;
  dst?: Buffer;
  dstLen?: number;
  table?: number;
  priority?: number;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  not?: boolean;
}

/** `ip rule add|del [not] [from P] [to P] [fwmark M[/MASK]] [iif IF] [oif IF] [table T] [pref N]` */
export function ruleRequest(cmd: 'add' | 'del', r: RuleSpec, label = 'rule'): Request {
  const add = cmd === 'add';
  const table = r.table ?? RT_TABLE_UNSPEC;
  const attrs: Attr[] = [];
  if (r.priority !== undefined) attrs.push(u32(FRA_PRIORITY, r.priority));
  if (r.src) attrs.push(bytes(FRA_SRC, r.src));
  if (r.dst) attrs.push(bytes(FRA_DST, r.dst));
  if (r.fwmark !== undefined) attrs.push(u32(FRA_FWMARK, r.fwmark));
  if (r.fwmask !== undefined) attrs.push(u32(FRA_FWMASK, r.fwmask));
  if (r.iif !== undefined) attrs.push(str(FRA_IIFNAME, r.iif));
  if (r.oif !== undefined) attrs.push(str(FRA_OIFNAME, r.oif));
  if (table >= 256) attrs.push(u32(FRA_TABLE, table));
  const header = rtmsg({
    family: r.family,
    dstLen: r.dst ? r.dstLen ?? r.dst.length * 8 : 0,
    srcLen: r.src ? r.srcLen ?? r.src.length * 8 : 0,
    table: table < 256 ? table : RT_TABLE_UNSPEC,
    protocol: 0,
    scope: 0,
    type: add ? FR_ACT_TO_TBL : 0,
    flags: r.not ? FIB_RULE_INVERT : 0,
  });
  return request(add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0, header, attrs,
    `${add ? 'RTM_NEWRULE' : 'RTM_DELRULE'} ${label}`);
}
