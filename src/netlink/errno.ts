// The Linux errnos this project tells apart in the kernel's answers, from
// <asm-generic/errno-base.h> and <asm-generic/errno.h>: one table, so a
// caller names the errno (`e.errno === ENODEV`) instead of its number.

export const EINTR = 4;
export const EIO = 5;
export const EEXIST = 17;
/** No such device: a link asked for by name or index that is not there. */
export const ENODEV = 19;
/** A bridge with all its ports taken ("Exchange full"). */
export const EXFULL = 54;
export const EPROTO = 71;
/** A link kind this kernel cannot make (its module missing): "Unknown device type". */
export const EOPNOTSUPP = 95;
/** A link with no state yet for that address family (IPv6 settings in a creating message). */
export const EAFNOSUPPORT = 97;
