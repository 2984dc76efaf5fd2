import { RTM_NEWLINK, RTNLGRP_LINK } from '../netlink/constants';
import { type Link, parseLink } from '../netlink/link';
import { RtnlSocket } from '../netlink/socket';
import { type Subscription, subscribe } from '../netlink/subscription';
import { lookupLinks } from './observe';

const ready = (l: Link | undefined) => !!l && l.up && l.lowerUp;

/**
 * `pipework --wait`: resolves true once the interface exists, is up and has
 * carrier, listening to link notifications rather than polling; false when
 * timeoutMs passes first.
 */
export async function waitForInterface(name: string, timeoutMs?: number): Promise<boolean> {
  const sock = RtnlSocket.open();
  let sub: Subscription | undefined;
  try {
    return await new Promise<boolean>((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => resolve(false), timeoutMs);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      const look = () => lookupLinks(sock, [name]).then(([l]) => ready(l) && done(true), reject);
      // Subscribe first, then look: a change in between is not missed. Lost notifications: look again.
      sub = subscribe(RTNLGRP_LINK, (reply) => {
        if (reply.type === RTM_NEWLINK) {
          const l = parseLink(reply);
          if (l.name === name && ready(l)) done(true);
        }
      }, look);
      void look();
    });
  } finally {
    sub?.close();
    sock.close();
  }
}
