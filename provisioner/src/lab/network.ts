// Lab addressing and plumbing. Lab slot s owns 198.18.(16s).0/20 (s = 0..31 stays inside 198.18.0.0/15):
//   198.18.(16s).1       the controller, on bridge eplab<s> in the root namespace (an address only, no netfilter)
//   198.18.(16s).2/.3/.4 the upstream service (valid cert / untrusted CA / wrong host), netns eplab<s>-up
//   198.18.(16s+1).1 ... the hosts, 250 per /24, netns eplab<s>-<host>
// No namespace gets a default route: nothing in a lab can reach beyond the bridge.
import { existsSync } from 'node:fs';
import { run, runOk } from './proc';

export const maxSlot = 31;
export const prefixLength = 20;

const octets = (slot: number) => `198.${18 + Math.floor((16 * slot) / 256)}.${(16 * slot) % 256}`;

export function slotAddresses(slot: number) {
  if (!Number.isInteger(slot) || slot < 0 || slot > maxSlot) throw new Error(`lab slot ${slot}: expected 0..${maxSlot}`);
  const base = octets(slot);
  return {
    subnet: `${base}.0/${prefixLength}`,
    bridge: `eplab${slot}`,
    controller: `${base}.1`,
    upstreamNetns: `eplab${slot}-up`,
    upstreamVeth: `eplab${slot}-up`,
    upstream: { valid: `${base}.2`, untrusted: `${base}.3`, wrongHost: `${base}.4` },
  };
}

/** Address of host number i (1-based) in a slot. */
export function hostAddress(slot: number, i: number): string {
  if (!Number.isInteger(i) || i < 1 || i > 15 * 250) throw new Error(`host number ${i}: expected 1..${15 * 250}`);
  const third = 16 * slot + 1 + Math.floor((i - 1) / 250);
  return `198.${18 + Math.floor(third / 256)}.${third % 256}.${((i - 1) % 250) + 1}`;
}

export const netnsPath = (ns: string) => `/run/netns/${ns}`;
export const netnsExists = (ns: string) => existsSync(netnsPath(ns));

export async function linkExists(name: string): Promise<boolean> {
  return (await run(['ip', 'link', 'show', 'dev', name])).exitCode === 0;
}

/** The lab bridge with the controller's address: an interface and an address in the root namespace, nothing else. */
export async function ensureBridge(slot: number): Promise<void> {
  const a = slotAddresses(slot);
  if (!(await linkExists(a.bridge))) {
    await runOk(['ip', 'link', 'add', a.bridge, 'type', 'bridge']);
  }
  // No IPv6 on the bridge: the lab is IPv4-only and this keeps router solicitations off it.
  await run(['sysctl', '-q', '-w', `net.ipv6.conf.${a.bridge}.disable_ipv6=1`]);
  const addrs = await runOk(['ip', '-4', '-o', 'addr', 'show', 'dev', a.bridge]);
  if (!addrs.includes(` ${a.controller}/${prefixLength} `)) {
    await runOk(['ip', 'addr', 'add', `${a.controller}/${prefixLength}`, 'dev', a.bridge]);
  }
  await runOk(['ip', 'link', 'set', a.bridge, 'up']);
}

/**
 * A namespace with lo up and one veth leg (eth0 inside) on the bridge carrying the given addresses.
 * Re-creates it from scratch if it exists, and flushes the controller's stale neighbour entries for the addresses.
 */
export async function createAttachedNetns(ns: string, rootVeth: string, bridge: string, addresses: string[]): Promise<void> {
  if (rootVeth.length > 15) throw new Error(`veth name ${rootVeth} is longer than 15 characters`);
  await deleteNetns(ns);
  if (await linkExists(rootVeth)) await runOk(['ip', 'link', 'del', rootVeth]);
  await runOk(['ip', 'netns', 'add', ns]);
  await runOk(['ip', 'link', 'add', rootVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await runOk(['ip', 'link', 'set', rootVeth, 'master', bridge, 'up']);
  await runOk(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  for (const a of addresses) await runOk(['ip', '-n', ns, 'addr', 'add', `${a}/${prefixLength}`, 'dev', 'eth0']);
  await runOk(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
  for (const a of addresses) await run(['ip', 'neigh', 'flush', 'to', a, 'dev', bridge]);
}

export async function deleteNetns(ns: string): Promise<void> {
  if (netnsExists(ns)) await runOk(['ip', 'netns', 'del', ns]);
}

/** Deletes a link if present. A veth can vanish on its own while we look (its peer's namespace was deleted). */
export async function deleteLink(name: string): Promise<void> {
  const r = await run(['ip', 'link', 'del', name]);
  if (r.exitCode !== 0 && (await linkExists(name))) throw new Error(`ip link del ${name} failed: ${r.stderr.trim()}`);
}
