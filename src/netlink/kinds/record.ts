import type { AttrMap } from '../attributes';

/** What pipework knows of one link kind; each file of this folder exports the record of its kind. */
export interface KindRecord {
  /** IFLA_INFO_KIND, as `ip link add ... type KIND` names it. */
  kind: string;
  /** The kernel module that provides it: named when the kernel refuses to create one (EOPNOTSUPP). */
  module: string;
  /**
   * A container end of this kind exists only for the container: detach
   * deletes it. Otherwise (a NIC moved in with --direct-phys, a bridge) it is
   * given back to the host.
   */
  deletedOnDetach: boolean;
  /**
   * It is one of the links that share their lower device's (IFLA_LINK)
   * frames by address, through a port on it, as macvlans do: gc and converge
   * count such links, in every netns, as users of a VLAN link pipework made
   * for macvlans. (A VLAN splits its lower device's frames by tag; a veth's
   * IFLA_LINK is its peer.)
   */
  sharesLower: boolean;
  /**
   * Its IFLA_INFO_DATA read back (attributes by type), named as `ip -d link
   * show` names them; absent for a kind whose data pipework does not read.
   */
  decode?: (data: AttrMap) => object;
}
