import { RawNetlinkSocket } from 'netlink/dist/raw';
import { native } from '../native';
import { NETLINK_ROUTE } from './constants';
import { EIO } from './errno';
import { NetlinkError } from './error';
import { type Reply, parseReplies } from './message';

/** A multicast group joined in our netns; close() leaves it. */
export interface Subscription {
  close(): void;
}

/**
 * Joins rtnetlink group (RTNLGRP_*) in our netns (or the one netnsFd holds:
 * the socket is made there, and stays there): each message the kernel
 * multicasts goes to onMessage, through the event loop (the `netlink`
 * package watches the socket), and keeps the process alive until close().
 * onLost hears when the kernel dropped some (ENOBUFS): the caller looks again.
 */
export function subscribe(group: number, onMessage: (reply: Reply) => void, onLost: (error: NetlinkError) => void, netnsFd?: number): Subscription {
  const raw = netnsFd === undefined
    ? new RawNetlinkSocket(NETLINK_ROUTE)
    : native.withNetns(netnsFd, () => new RawNetlinkSocket(NETLINK_ROUTE));
  // An 'error' event without a listener would end the process.
  raw.on('error', (err) => onLost(new NetlinkError(err.errno ?? EIO, `netlink ${err.syscall ?? 'socket'}`)));
  raw.on('message', (msg, rinfo) => {
    if (rinfo.port !== 0) return; // only the kernel multicasts
    let replies: Reply[];
    try {
      replies = parseReplies(msg);
    } catch {
      return; // not netlink: nothing to hear
    }
    for (const reply of replies) if (reply.seq === 0) onMessage(reply);
  });
  raw.addMembership(group);
  return { close: () => raw.close() };
}
