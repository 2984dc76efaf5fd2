import { closeSync } from 'node:fs';
import { type SyscallError, native } from '../native';
import { cstring, get32, getS32, parseAttrs } from './attributes';
import {
  NLMSG_DONE, NLMSG_ERROR, NLMSGERR_ATTR_MSG, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
} from './constants';
import { EIO, EPROTO } from './errno';
import { DumpInterruptedError, NetlinkError } from './error';
import { type Reply, type Request, encodeInto, parseReplies, requestLength } from './message';

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
  /** A reply of this dump carried NLM_F_DUMP_INTR. */
  interrupted: boolean;
}

/**
 * Sends bytes (one or more messages) in one sendmsg and resolves with every
 * reply the kernel queued in answer, laid end to end: native netlinkTransact
 * on one socket.
 */
export type Transport = (bytes: Uint8Array) => Promise<Uint8Array>;

/**
 * How many times a dump is asked for while the kernel flags it interrupted
 * (NLM_F_DUMP_INTR); then it fails with DumpInterruptedError. As the CNI
 * plugins' netlinksafe: a changing table settles long before this, one that
 * never does is a state no caller can act on.
 */
export const DUMP_ATTEMPTS = 10;

/**
 * The requests, sent in one sendmsg (numbered by nextSeq), and one outcome
 * each, in order. A dump whose replies came flagged interrupted is asked
 * again (alone: nothing else is run twice), up to DUMP_ATTEMPTS in all.
 * Plain promise chains, no async frames: in a bulk run thousands of these
 * wait at once, and each suspended frame is heap held until the kernel answers.
 */
export function transact(transport: Transport, reqs: Request[], nextSeq: () => number): Promise<Outcome[]> {
  try {
    return transactOnce(transport, reqs, nextSeq).then((outcomes) => askInterruptedAgain(transport, reqs, nextSeq, outcomes, 1));
  } catch (e) {
    return Promise.reject(e); // a request that cannot be encoded
  }
}

/** The outcomes, with the interrupted dumps among them asked again (attempt: how many times they were asked so far). */
function askInterruptedAgain(transport: Transport, reqs: Request[], nextSeq: () => number,
  outcomes: (Outcome & { interrupted: boolean })[], attempt: number): Outcome[] | Promise<Outcome[]> {
  // The outcomes keep transactOnce's `interrupted` (false by the end): no copy per request on the hot path.
  let again: number[] | undefined;
  for (let i = 0; i < outcomes.length; i++) if (outcomes[i].interrupted) (again ??= []).push(i);
  if (!again) return outcomes;
  const redo = again;
  if (attempt === DUMP_ATTEMPTS) {
    for (const i of redo) outcomes[i] = { replies: [], error: new DumpInterruptedError(reqs[i].op, attempt), interrupted: false };
    return outcomes;
  }
  return transactOnce(transport, redo.map((i) => reqs[i]), nextSeq).then((redone) => {
    redo.forEach((i, k) => (outcomes[i] = redone[k]));
    return askInterruptedAgain(transport, reqs, nextSeq, outcomes, attempt + 1);
  });
}

function transactOnce(transport: Transport, reqs: Request[], nextSeq: () => number): Promise<(Outcome & { interrupted: boolean })[]> {
  const pending = new Map<number, Pending>();
  let length = 0;
  for (const req of reqs) length += requestLength(req);
  const bytes = new Uint8Array(length);
  let end = 0;
  for (const req of reqs) {
    const seq = nextSeq();
    pending.set(seq, { req, replies: [], done: false, interrupted: false });
    end = encodeInto(bytes, end, req, seq);
  }
  const failed = (e: unknown) => outcomesOf(pending, new NetlinkError((e as SyscallError).errno ?? EIO, `${(e as SyscallError).syscall ?? 'sendmsg'} for ${reqs[0].op}`));
  let answer: Promise<Uint8Array>;
  try {
    answer = transport(bytes);
  } catch (e) {
    return Promise.resolve(failed(e));
  }
  return answer.then((msg) => {
    match(msg, pending);
    return outcomesOf(pending);
  }, failed);
}

/** One outcome per request, in order; failure: the transaction itself failed. */
function outcomesOf(pending: Map<number, Pending>, failure?: NetlinkError): (Outcome & { interrupted: boolean })[] {
  return [...pending.values()].map((p) => {
    // Replies come inside the transaction: one missing now would never come.
    const error = p.error ?? failure ?? (p.done ? undefined : new NetlinkError(EPROTO, `${p.req.op}: no reply from the kernel`));
    return { replies: p.replies, error, interrupted: !error && p.interrupted };
  });
}

/** Sorts the kernel's answer to its requests. */
function match(msg: Uint8Array, pending: Map<number, Pending>): void {
  let replies: Reply[];
  try {
    replies = parseReplies(msg);
  } catch {
    return; // what is not netlink cannot be matched to a request
  }
  for (const reply of replies) {
    const p = pending.get(reply.seq);
    if (!p) continue;
    if (reply.flags & NLM_F_DUMP_INTR && (p.req.flags & NLM_F_DUMP) === NLM_F_DUMP) p.interrupted = true;
    if (reply.type === NLMSG_ERROR) {
      const errno = -getS32(reply.payload, 0);
      p.done = true;
      if (errno !== 0) p.error = new NetlinkError(errno, p.req.op, extackText(reply));
    } else if (reply.type === NLMSG_DONE && (p.req.flags & NLM_F_DUMP) === NLM_F_DUMP) {
      p.done = true;
    } else {
      p.replies.push(reply);
    }
  }
}

/**
 * An rtnetlink socket that lives in one network namespace (the one it was
 * opened in, whatever namespace the caller is in later). Requests are
 * numbered and matched to their replies; several go out in one sendmsg, and
 * their replies are read right after it, on the addon's netlink thread
 * (native netlinkTransact), which runs all transactions in the order asked.
 * Notifications: ./subscription.
 */
export class RtnlSocket {
  private seq = 0;
  private closed = false;
  /** Transactions asked for and not ended: the fd stays open until the last one ends. */
  private inFlight = 0;
  private onIdle?: () => void;
  private readonly nextSeq = (): number => (this.seq = (this.seq + 1) >>> 0 || 1);

  private constructor(private readonly fd: number) {}

  /** A socket in the netns held by netnsFd, or in ours. */
  static open(netnsFd?: number): RtnlSocket {
    return new RtnlSocket(native.openNetlinkSocket(netnsFd));
  }

  /**
   * Sends all requests in one sendmsg and resolves with one outcome each, in
   * order. The kernel runs every message even after one fails, so callers
   * only batch requests that are safe to run that way. alone: on a thread of
   * its own, not queued behind (nor holding up) other transactions. A dump
   * comes whole: see transact.
   */
  send(reqs: Request[], opts: { alone?: boolean } = {}): Promise<Outcome[]> {
    if (this.closed) return Promise.reject(new Error('netlink socket is closed'));
    if (reqs.length === 0) return Promise.resolve([]);
    const running = transact((bytes) => native.netlinkTransact(this.fd, bytes, opts.alone), reqs, this.nextSeq);
    this.inFlight++;
    return running.then((outcomes) => {
      this.ended();
      return outcomes;
    }, (e: unknown) => {
      this.ended();
      throw e;
    });
  }

  /** One request; its replies, or a NetlinkError. */
  request(req: Request, opts: { alone?: boolean } = {}): Promise<Reply[]> {
    return this.send([req], opts).then(([outcome]) => {
      if (outcome.error) throw outcome.error;
      return outcome.replies;
    });
  }

  /** Sends all in one sendmsg, then throws the first refusal, if any. */
  async all(reqs: Request[]): Promise<Reply[][]> {
    const outcomes = await this.send(reqs);
    const failed = outcomes.find((o) => o.error)?.error;
    if (failed) throw failed;
    return outcomes.map((o) => o.replies);
  }

  /**
   * Whether link `name` of this netns has carrier (ETHTOOL_GLINK), asked on
   * the netlink thread after the transactions asked before. The kernel first
   * applies the link's pending carrier change, which it otherwise leaves to
   * a worker (linkwatch): a bridge port whose peer just came up forwards
   * (without STP) once this answers.
   */
  async linkCarrier(name: string): Promise<boolean> {
    if (this.closed) throw new Error('netlink socket is closed');
    const answer = native.linkCarrier(this.fd, name);
    this.inFlight++;
    try {
      return await answer;
    } catch (e) {
      throw new NetlinkError((e as SyscallError).errno ?? EIO, `ETHTOOL_GLINK ${name}`);
    } finally {
      this.ended();
    }
  }

  /** A transaction ended: the fd closes after the last one, if close() came meanwhile. */
  private ended(): void {
    if (--this.inFlight === 0) this.onIdle?.();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Not under a transaction still queued or running: its fd could be reused meanwhile.
    if (this.inFlight) this.onIdle = () => closeSync(this.fd);
    else closeSync(this.fd);
  }
}

/** The kernel's NLMSGERR_ATTR_MSG, after the echoed (or capped) request. */
function extackText(reply: Reply): string | undefined {
  if (!(reply.flags & NLM_F_ACK_TLVS)) return undefined;
  const origLen = reply.flags & NLM_F_CAPPED ? 16 : get32(reply.payload, 4);
  const start = 4 + ((origLen + 3) & ~3);
  try {
    return cstring(parseAttrs(reply.payload, start).get(NLMSGERR_ATTR_MSG)) || undefined;
  } catch {
    return undefined;
  }
}
