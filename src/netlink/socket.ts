import { RawNetlinkSocket, MessageInfo } from 'netlink/dist/raw';
import { native } from '../native';
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

/**
 * Requests outstanding per socket at most; more wait their turn. With at most
 * this many replies queued the receive buffer cannot overflow (an overflow
 * loses replies, and the `netlink` package aborts the process on ENOBUFS).
 */
const MAX_IN_FLIGHT = 256;

interface Pending {
  req: Request;
  replies: Reply[];
  settle: (o: Outcome) => void;
}

/**
 * An rtnetlink socket that lives in one network namespace (the one it was
 * opened in, whatever namespace the caller is in later). Requests are
 * numbered and matched to their replies; several go out in one sendmsg.
 */
export class RtnlSocket {
  private readonly raw: RawNetlinkSocket;
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private closed = false;
  private onNotification?: (reply: Reply) => void;
  private readonly waiting: (() => void)[] = [];

  private constructor(raw: RawNetlinkSocket) {
    this.raw = raw;
    raw.unref();
    raw.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    raw.on('truncatedMessage', () => this.failAll(new NetlinkError(90 /* EMSGSIZE */, 'receiving a netlink reply')));
    raw.on('error', (err) => this.failAll(new NetlinkError(err.errno ?? 5, `netlink ${err.syscall ?? 'socket'}`)));
  }

  /** A socket in the netns held by netnsFd (synchronously entered and left), or in ours. */
  static open(netnsFd?: number): RtnlSocket {
    const create = () => {
      const hint = native.lowestFreeFd();
      return { raw: new RawNetlinkSocket(NETLINK_ROUTE), hint };
    };
    const { raw, hint } = netnsFd === undefined ? create() : native.withNetns(netnsFd, create);
    try {
      native.configureNetlinkSocket(hint, raw.address().port);
    } catch (e) {
      raw.close();
      throw e;
    }
    return new RtnlSocket(raw);
  }

  /**
   * Sends all requests in one sendmsg and resolves with one outcome each, in
   * order. The kernel runs every message even after one fails, so callers
   * only batch requests that are safe to run that way.
   */
  async send(reqs: Request[]): Promise<Outcome[]> {
    if (this.closed) throw new Error('netlink socket is closed');
    if (reqs.length === 0) return [];
    while (this.pending.size > 0 && this.pending.size + reqs.length > MAX_IN_FLIGHT) {
      await new Promise<void>((resume) => this.waiting.push(resume));
    }
    if (this.closed) throw new Error('netlink socket is closed');
    const buffers: Buffer[] = [];
    const results = reqs.map((req) => {
      const seq = (this.seq = (this.seq + 1) >>> 0 || 1);
      buffers.push(encodeRequest(req, seq));
      return new Promise<Outcome>((settle) => this.pending.set(seq, { req, replies: [], settle }));
    });
    if (this.pending.size === reqs.length) this.raw.ref();
    this.raw.send(buffers, undefined, (err) => {
      if (err) this.failAll(new NetlinkError(err.errno ?? 5, `sendmsg for ${reqs[0].op}`));
    });
    return Promise.all(results);
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

  /** Joins a multicast group (RTNLGRP_*); its messages go to fn, and keep the process alive until close(). */
  subscribe(group: number, fn: (reply: Reply) => void): void {
    this.onNotification = fn;
    this.raw.addMembership(group);
    this.raw.ref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new NetlinkError(9 /* EBADF */, 'netlink socket closed'));
    this.raw.close();
  }

  private receive(msg: Buffer, rinfo: MessageInfo): void {
    if (rinfo.port !== 0) return; // only the kernel answers our requests
    let replies: Reply[];
    try {
      replies = parseReplies(msg);
    } catch {
      return; // a datagram that is not netlink cannot be matched to a request
    }
    for (const reply of replies) {
      const p = this.pending.get(reply.seq);
      if (!p) {
        if (reply.seq === 0) this.onNotification?.(reply);
        continue;
      }
      if (reply.type === NLMSG_ERROR) {
        const errno = -reply.payload.readInt32LE(0);
        this.finish(reply.seq, p, errno === 0 ? undefined : new NetlinkError(errno, p.req.op, extackText(reply)));
      } else if (reply.type === NLMSG_DONE && (p.req.flags & NLM_F_DUMP) === NLM_F_DUMP) {
        this.finish(reply.seq, p, undefined);
      } else {
        p.replies.push(reply);
      }
    }
  }

  private finish(seq: number, p: Pending, error: NetlinkError | undefined): void {
    this.pending.delete(seq);
    if (this.pending.size === 0 && !this.closed && !this.onNotification) this.raw.unref();
    p.settle({ replies: p.replies, error });
    this.waiting.shift()?.();
  }

  private failAll(error: NetlinkError): void {
    for (const [seq, p] of this.pending) this.finish(seq, p, error);
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
