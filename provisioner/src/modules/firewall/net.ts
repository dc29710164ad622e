// Address arithmetic for the firewall module: parse and normalise IPv4/IPv6 literals and CIDRs, and turn a list of
// CIDRs into merged intervals so that `{10.0.0.0/9, 10.128.0.0/9}` and `10.0.0.0/8` compare equal (nft may print
// either form back).

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Network address (host bits cleared) as a 32- or 128-bit integer. */
  network: bigint;
  prefix: number;
}

const bits = (family: Family) => (family === 4 ? 32 : 128);

function parseIpv4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseIpv6(text: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length < 2) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === '') return [];
    const out: number[] = [];
    const pieces = half.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece);
        if (v4 === null) return null;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(Number.parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** Parses `a.b.c.d`, an IPv6 literal, or either with `/len`. Host bits are rejected unless `allowHostBits`. */
export function parseCidr(text: string, allowHostBits = false): Cidr {
  const [addr = '', len, ...rest] = text.trim().split('/');
  if (rest.length > 0) throw new Error(`invalid CIDR ${JSON.stringify(text)}: more than one '/'`);
  const v4 = parseIpv4(addr);
  const family: Family | null = v4 !== null ? 4 : parseIpv6(addr) !== null ? 6 : null;
  if (family === null) throw new Error(`invalid address ${JSON.stringify(text)}: expected an IPv4 or IPv6 literal, optionally with /prefix`);
  const value = v4 ?? parseIpv6(addr)!;
  const max = bits(family);
  let prefix = max;
  if (len !== undefined) {
    if (!/^[0-9]{1,3}$/.test(len) || Number(len) > max) {
      throw new Error(`invalid CIDR ${JSON.stringify(text)}: prefix length must be 0..${max}`);
    }
    prefix = Number(len);
  }
  const network = value & mask(family, prefix);
  if (network !== value && !allowHostBits) {
    throw new Error(`invalid CIDR ${JSON.stringify(text)}: host bits are set (did you mean ${formatCidr({ family, network, prefix })}?)`);
  }
  return { family, network, prefix };
}

function mask(family: Family, prefix: number): bigint {
  const max = bits(family);
  const all = (1n << BigInt(max)) - 1n;
  return prefix === 0 ? 0n : (all >> BigInt(max - prefix)) << BigInt(max - prefix);
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, leftmost on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** `198.18.202.1` for a host route, `10.0.0.0/8` otherwise (nft's and our canonical spelling). */
export function formatCidr(c: Cidr): string {
  const addr = formatAddress(c.family, c.network);
  return c.prefix === bits(c.family) ? addr : `${addr}/${c.prefix}`;
}

/** Always with the prefix: iptables-save prints `-d 198.18.202.1/32`. */
export function formatCidrWithPrefix(c: Cidr): string {
  return `${formatAddress(c.family, c.network)}/${c.prefix}`;
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix && (inner.network & mask(outer.family, outer.prefix)) === outer.network;
}

/** Drops duplicates and CIDRs inside another (nft refuses overlapping elements in one anonymous set). Sorted. */
export function minimalCidrs(list: readonly Cidr[]): Cidr[] {
  const sorted = [...list].sort((a, b) => a.family - b.family || (a.network < b.network ? -1 : a.network > b.network ? 1 : a.prefix - b.prefix));
  const out: Cidr[] = [];
  for (const c of sorted) if (!out.some((o) => cidrContains(o, c))) out.push(c);
  return out;
}

export interface Interval { family: Family; first: bigint; last: bigint }

export function cidrInterval(c: Cidr): Interval {
  const size = 1n << BigInt(bits(c.family) - c.prefix);
  return { family: c.family, first: c.network, last: c.network + size - 1n };
}

/** Sorted, merged (overlapping or adjacent) intervals: a canonical form of an address set. */
export function mergeIntervals(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => a.family - b.family || (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && last.family === iv.family && iv.first <= last.last + 1n) {
      if (iv.last > last.last) last.last = iv.last;
    } else {
      out.push({ ...iv });
    }
  }
  return out;
}

export function intervalKey(list: readonly Interval[]): string {
  return mergeIntervals(list)
    .map((iv) => `${formatAddress(iv.family, iv.first)}-${formatAddress(iv.family, iv.last)}`)
    .join(',');
}

export function parseAddressValue(text: string): Interval {
  return cidrInterval(parseCidr(text, true));
}
