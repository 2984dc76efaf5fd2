import { RawNetlinkSocket, MessageInfo } from 'netlink/dist/raw';
import { SyscallError, native } from '../native';
import { cstring, parseAttrs } from './attributes';
import {
  NETLINK_ROUTE, NLMSG_DONE, NLMSG_ERROR, NLMSGERR_ATTR_MSG, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
} from './constants';
import { NetlinkError } from './error';
import { Reply, Request, encodeRequest, parseReplies } from './message';

/** What came back for one request: its replies, or the kernel's refusal. */
export interface Outcome {
  replies: Reply[];
  error?: NetlinkError;
}

interface Pending {
  req: Request;
  replies: Reply[];
  error?: NetlinkError;
  done: boolean;
}

const EPROTO = 71;

/**
 * An rtnetlink socket that lives in one network namespace (the one it was
 * opened in, whatever namespace the caller is in later). Requests are
 * numbered and matched to their replies; several go out in one sendmsg, and
 * their replies are read in the same call (native netlinkTransact). The
 * `netlink` package's event loop watch serves only subscriptions.
 */
export class RtnlSocket {
  private readonly raw: RawNetlinkSocket;
  private seq = 0;
  private closed = false;
  private onNotification?: (reply: Reply) => void;
  private onNotificationError?: (error: NetlinkError) => void;

  private constructor(raw: RawNetlinkSocket, private readonly fd: number) {
    this.raw = raw;
    raw.unref();
    raw.on('message', (msg, rinfo) => this.notify(msg, rinfo));
    // E.g. ENOBUFS: notifications were dropped (an 'error' event without a listener would end the process).
    raw.on('error', (err) => this.onNotificationError?.(new NetlinkError(err.errno ?? 5, `netlink ${err.syscall ?? 'socket'}`)));
  }

  /** A socket in the netns held by netnsFd (synchronously entered and left), or in ours. */
  static open(netnsFd?: number): RtnlSocket {
    const create = () => {
      const hint = native.lowestFreeFd();
      return { raw: new RawNetlinkSocket(NETLINK_ROUTE), hint };
    };
    const { raw, hint } = netnsFd === undefined ? create() : native.withNetns(netnsFd, create);
    try {
      return new RtnlSocket(raw, native.configureNetlinkSocket(hint, raw.address().port));
    } catch (e) {
      raw.close();
      throw e;
    }
  }

  /**
   * Sends all requests in one sendmsg and resolves with one outcome each, in
   * order. The kernel runs every message even after one fails, so callers
   * only batch requests that are safe to run that way.
   */
  async send(reqs: Request[]): Promise<Outcome[]> {
    if (this.closed) throw new Error('netlink socket is closed');
    if (reqs.length === 0) return [];
    const pending = new Map<number, Pending>();
    const buffers = reqs.map((req) => {
      const seq = (this.seq = (this.seq + 1) >>> 0 || 1);
      pending.set(seq, { req, replies: [], done: false });
      return encodeRequest(req, seq);
    });
    let datagrams: Buffer[] = [];
    let failure: NetlinkError | undefined;
    try {
      datagrams = native.netlinkTransact(this.fd, buffers);
    } catch (e) {
      const err = e as SyscallError;
      failure = new NetlinkError(err.errno ?? 5, `${err.syscall ?? 'sendmsg'} for ${reqs[0].op}`);
    }
    for (const d of datagrams) this.match(d, pending);
    // Outcomes on the next turn of the event loop: operations in flight together (a bulk run's items) then
    // take turns, request by request, so the kernel's deferred work for each new link (link watch, IPv6
    // autoconf) is batched rather than triggered and contended for once per container (~25% at 1000 ports).
    await new Promise<void>((resume) => setImmediate(resume));
    return [...pending.values()].map((p) => ({
      replies: p.replies,
      // Replies come inside the transaction: one missing now would never come.
      error: p.error ?? failure ?? (p.done ? undefined : new NetlinkError(EPROTO, `${p.req.op}: no reply from the kernel`)),
    }));
  }

  /** One request; its replies, or a NetlinkError. */
  async request(req: Request): Promise<Reply[]> {
    const [outcome] = await this.send([req]);
    if (outcome.error) throw outcome.error;
    return outcome.replies;
  }

  /** Sends all in one sendmsg, then throws the first refusal, if any. */
  async all(reqs: Request[]): Promise<Reply[][]> {
    const outcomes = await this.send(reqs);
    const failed = outcomes.find((o) => o.error);
    if (failed) throw failed.error;
    return outcomes.map((o) => o.replies);
  }

  /**
   * Joins a multicast group (RTNLGRP_*); its messages go to fn, and keep the
   * process alive until close(). onError hears when some were lost.
   */
  subscribe(group: number, fn: (reply: Reply) => void, onError: (error: NetlinkError) => void): void {
    this.onNotification = fn;
    this.onNotificationError = onError;
    this.raw.addMembership(group);
    this.raw.ref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.close();
  }

  /** Sorts one datagram's messages to their requests; a notification read along the way goes to the subscriber. */
  private match(msg: Buffer, pending: Map<number, Pending>): void {
    let replies: Reply[];
    try {
      replies = parseReplies(msg);
    } catch {
      return; // a datagram that is not netlink cannot be matched to a request
    }
    for (const reply of replies) {
      const p = pending.get(reply.seq);
      if (!p) {
        if (reply.seq === 0) this.onNotification?.(reply);
        continue;
      }
      if (reply.type === NLMSG_ERROR) {
        const errno = -reply.payload.readInt32LE(0);
        p.done = true;
        if (errno !== 0) p.error = new NetlinkError(errno, p.req.op, extackText(reply));
      } else if (reply.type === NLMSG_DONE && (p.req.flags & NLM_F_DUMP) === NLM_F_DUMP) {
        p.done = true;
      } else {
        p.replies.push(reply);
      }
    }
  }

  /** Subscriptions: what the kernel multicasts arrives through the event loop. */
  private notify(msg: Buffer, rinfo: MessageInfo): void {
    if (rinfo.port === 0) this.match(msg, new Map());
  }
}

/** The kernel's NLMSGERR_ATTR_MSG, after the echoed (or capped) request. */
function extackText(reply: Reply): string | undefined {
  if (!(reply.flags & NLM_F_ACK_TLVS)) return undefined;
  const origLen = reply.flags & NLM_F_CAPPED ? 16 : reply.payload.readUInt32LE(4);
  const start = 4 + ((origLen + 3) & ~3);
  try {
    return cstring(parseAttrs(reply.payload, start).get(NLMSGERR_ATTR_MSG)) || undefined;
  } catch {
    return undefined;
  }
}
