// Imports nothing: the CNI plugin's VERSION and config checks load it, and
// they stay lean (test/e2e/cni.test.ts counts the modules).

/** IFNAMSIZ - 1: the longest interface name Linux accepts. */
export const MAX_IFNAME = 15;

/**
 * What the kernel would refuse in an interface name, or undefined if
 * nothing: the one rule, which checkIfname and the CNI plugin each put in
 * their own words.
 */
export function ifnameFault(name: string): 'empty' | 'too long' | 'dot' | 'character' | undefined {
  const len = Buffer.byteLength(name);
  if (len === 0) return 'empty';
  if (len > MAX_IFNAME) return 'too long';
  if (name === '.' || name === '..') return 'dot';
  if (/[/:\s]/.test(name)) return 'character';
  return undefined;
}
