// HPACK (RFC 7541) decoder for passive HTTP/2 observation: static + dynamic table, Huffman strings and
// dynamic-table size updates. Every size is bounded, so a hostile peer cannot make it grow memory: the table
// never exceeds `hardMaxTableSize`, whatever SETTINGS_HEADER_TABLE_SIZE or size update the peer sends.
import { huffmanCodes, huffmanLengths } from './hpack-huffman-table';

export class HpackError extends Error {}

const staticTable: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

// Huffman decoding trie: node n has children at trie[2n] (bit 0) and trie[2n+1] (bit 1). A child value
// >= 0 is the next node, < 0 is a leaf holding -(symbol + 1).
const trie = (() => {
  const children: number[] = [0, 0];
  let nodes = 1;
  for (let sym = 0; sym < 257; sym++) {
    const code = huffmanCodes[sym]!;
    const len = huffmanLengths[sym]!;
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const bit = (code >>> i) & 1;
      const slot = 2 * node + bit;
      if (i === 0) {
        children[slot] = -(sym + 1);
      } else {
        if (children[slot] === 0) {
          children[slot] = nodes++;
          children.push(0, 0);
        }
        node = children[slot]!;
      }
    }
  }
  return Int32Array.from(children);
})();

export function huffmanDecode(buf: Buffer, start: number, end: number): string {
  let node = 0;
  let out = '';
  let bitsSinceSymbol = 0;
  let allOnes = true;
  for (let p = start; p < end; p++) {
    const byte = buf[p]!;
    for (let i = 7; i >= 0; i--) {
      const bit = (byte >> i) & 1;
      const next = trie[2 * node + bit]!;
      bitsSinceSymbol++;
      if (bit === 0) allOnes = false;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === 256) throw new HpackError('Huffman string contains EOS');
        out += String.fromCharCode(sym);
        node = 0;
        bitsSinceSymbol = 0;
        allOnes = true;
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code');
      } else {
        node = next;
      }
    }
  }
  // Padding must be shorter than 8 bits and a prefix of EOS (all ones).
  if (bitsSinceSymbol > 7 || !allOnes) throw new HpackError('invalid Huffman padding');
  return out;
}

export interface HpackLimits {
  /** Absolute ceiling for the dynamic table, whatever the peer advertises. */
  hardMaxTableSize: number;
  /** Longest single name or value accepted. */
  maxStringLength: number;
}

const defaultLimits: HpackLimits = { hardMaxTableSize: 64 * 1024, maxStringLength: 64 * 1024 };

export class HpackDecoder {
  private readonly entries: [string, string][] = []; // newest first
  private tableSize = 0;
  private maxTableSize = 4096;
  /** The largest size the encoder may choose (SETTINGS_HEADER_TABLE_SIZE of the decoding side). */
  private allowedTableSize = 4096;
  private readonly limits: HpackLimits;

  constructor(limits: Partial<HpackLimits> = {}) {
    this.limits = { ...defaultLimits, ...limits };
  }

  /** The decoding endpoint advertised SETTINGS_HEADER_TABLE_SIZE = n. */
  setAllowedTableSize(n: number): void {
    // Keep the largest value ever advertised (the encoder may lag behind a decrease), capped at our bound:
    // an encoder that really uses more than the bound makes decode() fail instead of growing memory.
    this.allowedTableSize = Math.min(this.limits.hardMaxTableSize, Math.max(this.allowedTableSize, n));
  }

  get dynamicTableSize(): number {
    return this.tableSize;
  }

  get dynamicTableEntries(): number {
    return this.entries.length;
  }

  /** Decodes one complete header block, calling onHeader for each field in order. Throws HpackError. */
  decode(block: Buffer, onHeader: (name: string, value: string) => void): void {
    let pos = 0;
    let sawField = false;
    const end = block.length;
    const readInt = (prefixBits: number): number => {
      if (pos >= end) throw new HpackError('truncated integer');
      const mask = (1 << prefixBits) - 1;
      let value = block[pos++]! & mask;
      if (value < mask) return value;
      let shift = 0;
      for (;;) {
        if (pos >= end) throw new HpackError('truncated integer');
        const b = block[pos++]!;
        value += (b & 0x7f) * 2 ** shift;
        shift += 7;
        if ((b & 0x80) === 0) break;
        if (shift > 28) throw new HpackError('integer too large');
      }
      if (value > 0x7fffffff) throw new HpackError('integer too large');
      return value;
    };
    const readString = (): string => {
      if (pos >= end) throw new HpackError('truncated string');
      const huffman = (block[pos]! & 0x80) !== 0;
      const len = readInt(7);
      if (len > this.limits.maxStringLength) throw new HpackError(`string of ${len} bytes exceeds ${this.limits.maxStringLength}`);
      if (pos + len > end) throw new HpackError('truncated string');
      const s = huffman ? huffmanDecode(block, pos, pos + len) : block.toString('latin1', pos, pos + len);
      pos += len;
      return s;
    };
    const lookup = (index: number): readonly [string, string] => {
      if (index === 0) throw new HpackError('index 0');
      if (index <= staticTable.length) return staticTable[index - 1]!;
      const entry = this.entries[index - staticTable.length - 1];
      if (!entry) throw new HpackError(`index ${index} beyond the dynamic table (${this.entries.length} entries)`);
      return entry;
    };

    while (pos < end) {
      const b = block[pos]!;
      if (b & 0x80) {
        const [name, value] = lookup(readInt(7));
        onHeader(name, value);
        sawField = true;
      } else if (b & 0x40) {
        const index = readInt(6);
        const name = index === 0 ? readString() : lookup(index)[0];
        const value = readString();
        this.add(name, value);
        onHeader(name, value);
        sawField = true;
      } else if (b & 0x20) {
        if (sawField) throw new HpackError('dynamic table size update after a header field');
        const size = readInt(5);
        if (size > this.allowedTableSize) {
          throw new HpackError(`table size update to ${size} exceeds the allowed ${this.allowedTableSize}`);
        }
        this.maxTableSize = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001): same layout, 4-bit prefix.
        const index = readInt(4);
        const name = index === 0 ? readString() : lookup(index)[0];
        const value = readString();
        onHeader(name, value);
        sawField = true;
      }
    }
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.evict(size);
    if (size > this.maxTableSize) return; // an entry larger than the table empties it (RFC 7541 §4.4)
    this.entries.unshift([name, value]);
    this.tableSize += size;
  }

  private evict(room: number): void {
    while (this.entries.length > 0 && this.tableSize + room > this.maxTableSize) {
      const [n, v] = this.entries.pop()!;
      this.tableSize -= n.length + v.length + 32;
    }
  }
}
