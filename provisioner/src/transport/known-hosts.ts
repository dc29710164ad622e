// known_hosts parsing and lookup (OpenSSH format): plain and hashed (`|1|salt|hash`) host fields, `[host]:port`,
// wildcard patterns with `!` negation, and the @revoked marker. Pure functions; file I/O is the caller's.
import { createHash, createHmac } from 'node:crypto';

export interface KnownHostEntry {
  /** 1-based line in the file, for error messages. */
  line: number;
  marker: 'revoked' | 'cert-authority' | null;
  /** Comma-separated host patterns, or one hashed host. */
  hosts: { kind: 'hashed'; salt: Buffer; hash: Buffer } | { kind: 'patterns'; patterns: string[] };
  keyType: string;
  /** The key blob, base64 as written in the file. */
  keyBase64: string;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const fields = trimmed.split(/\s+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
      marker = fields[0] === '@revoked' ? 'revoked' : 'cert-authority';
      fields.shift();
    }
    const [hostField, keyType, keyBase64] = fields;
    // Lines we cannot read are skipped, as OpenSSH does; they can never match a key.
    if (!hostField || !keyType || !keyBase64) return;
    let hosts: KnownHostEntry['hosts'];
    if (hostField.startsWith('|1|')) {
      const [, , salt, hash] = hostField.split('|');
      if (!salt || !hash) return;
      hosts = { kind: 'hashed', salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
    } else {
      hosts = { kind: 'patterns', patterns: hostField.split(',') };
    }
    entries.push({ line: index + 1, marker, hosts, keyType, keyBase64 });
  });
  return entries;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  return new RegExp(`^${body}$`, 'i');
}

/** Whether an entry's host field names `name` (already in `[host]:port` form where needed). */
export function entryMatchesHost(entry: KnownHostEntry, name: string): boolean {
  if (entry.hosts.kind === 'hashed') {
    const digest = createHmac('sha1', entry.hosts.salt).update(name).digest();
    return digest.equals(entry.hosts.hash);
  }
  let matched = false;
  for (const pattern of entry.hosts.patterns) {
    const negated = pattern.startsWith('!');
    const glob = negated ? pattern.slice(1) : pattern;
    if (globToRegExp(glob).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** OpenSSH's `SHA256:` fingerprint of a key blob (base64 without padding). */
export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (its first length-prefixed string). */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) throw new Error(`host key blob too short: ${blob.length} bytes (expected an SSH wire-format key)`);
  const len = blob.readUInt32BE(0);
  if (len > blob.length - 4) throw new Error(`host key blob names a ${len}-byte type but has ${blob.length - 4} bytes`);
  return blob.subarray(4, 4 + len).toString('latin1');
}

export type HostKeyVerdict =
  | { kind: 'trusted'; line: number }
  | { kind: 'unknown' }
  | { kind: 'revoked'; line: number }
  /** Known keys of the presented type (or, when none of that type, of other types) that differ from the presented one. */
  | { kind: 'changed'; known: { keyType: string; fingerprint: string; line: number }[] };

/** Decides whether the presented key is trusted, unknown (first contact), revoked or changed. */
export function checkHostKey(entries: readonly KnownHostEntry[], name: string, presented: Buffer): HostKeyVerdict {
  const presentedBase64 = presented.toString('base64');
  const forHost = entries.filter((e) => e.marker !== 'cert-authority' && entryMatchesHost(e, name));
  const revoked = entries.find((e) => e.marker === 'revoked' && e.keyBase64 === presentedBase64);
  if (revoked) return { kind: 'revoked', line: revoked.line };
  const plain = forHost.filter((e) => e.marker === null);
  const same = plain.find((e) => e.keyBase64 === presentedBase64);
  if (same) return { kind: 'trusted', line: same.line };
  if (plain.length === 0) return { kind: 'unknown' };
  const presentedType = keyTypeOfBlob(presented);
  const sameType = plain.filter((e) => e.keyType === presentedType);
  // A host we know by other key types offering a new type is treated as changed: stricter than OpenSSH,
  // but the transport prefers the known types during negotiation, so this only fires when they were removed.
  const suspects = sameType.length > 0 ? sameType : plain;
  return {
    kind: 'changed',
    known: suspects.map((e) => ({ keyType: e.keyType, fingerprint: fingerprintOfBlob(Buffer.from(e.keyBase64, 'base64')), line: e.line })),
  };
}

/** Key types already known for a host, to prefer during negotiation (as OpenSSH orders HostKeyAlgorithms). */
export function knownKeyTypes(entries: readonly KnownHostEntry[], name: string): string[] {
  return [...new Set(entries.filter((e) => e.marker === null && entryMatchesHost(e, name)).map((e) => e.keyType))];
}

/** A known_hosts line for a newly accepted key (plain host field, like `ssh -o HashKnownHosts=no`). */
export function formatKnownHostsLine(name: string, presented: Buffer): string {
  return `${name} ${keyTypeOfBlob(presented)} ${presented.toString('base64')}`;
}
