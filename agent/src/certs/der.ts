// A minimal DER encoder and reader: just what X.509 leaf forging and CA generation need. Hand-written because
// the hot path signs a TBSCertificate per new upstream cert; node-forge/@peculiar are 10-400x slower (feasibility §1).

export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = contents.length === 1 ? contents[0]! : Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(Tag.sequence, ...items);
export const set = (...items: Buffer[]): Buffer => tlv(Tag.set, ...items);
export const octetString = (b: Buffer): Buffer => tlv(Tag.octetString, b);
export const bitString = (b: Buffer, unusedBits = 0): Buffer => tlv(Tag.bitString, Buffer.from([unusedBits]), b);
export const bool = (v: boolean): Buffer => tlv(Tag.boolean, Buffer.from([v ? 0xff : 0]));
export const nullValue = (): Buffer => Buffer.from([Tag.null, 0]);
export const utf8 = (s: string): Buffer => tlv(Tag.utf8String, Buffer.from(s, 'utf8'));
/** Constructed context-specific tag [n] (EXPLICIT wrapping). */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** Primitive context-specific tag [n] (IMPLICIT primitive, e.g. GeneralName dNSName [2]). */
export const implicitPrimitive = (n: number, raw: Buffer): Buffer => tlv(0x80 | n, raw);

/** An unsigned big-endian integer as DER INTEGER (leading zeros trimmed, 0x00 prepended if the top bit is set). */
export function unsignedInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let v = bytes.subarray(i);
  if (v.length === 0) v = Buffer.from([0]);
  if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(Tag.integer, v);
}

export const smallInteger = (n: number): Buffer => unsignedInteger(Buffer.from([(n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255]));

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  if (parts.length < 2 || parts.some((p) => !Number.isInteger(p) || p < 0)) throw new Error(`invalid OID ${dotted}`);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(Tag.oid, Buffer.from(out));
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050. Seconds precision, Z. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2026-11-25T02:38:27.123Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, ''); // 20261125023827
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(Tag.utcTime, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(Tag.generalizedTime, Buffer.from(`${digits}Z`, 'ascii'));
}

// ---- reading ----

export interface Node {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
}

export function read(buf: Buffer, offset = 0, limit = buf.length): Node {
  if (offset + 2 > limit) throw new Error(`DER: truncated header at ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error(`DER: high tag numbers unsupported at ${offset}`);
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw new Error(`DER: bad length at ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new Error(`DER: content overruns its parent at ${offset} (${len} bytes)`);
  return { tag, start: offset, contentStart: p, end: p + len };
}

export function children(buf: Buffer, parent: Node): Node[] {
  const out: Node[] = [];
  for (let p = parent.contentStart; p < parent.end; ) {
    const n = read(buf, p, parent.end);
    out.push(n);
    p = n.end;
  }
  return out;
}

export const raw = (buf: Buffer, n: Node): Buffer => buf.subarray(n.start, n.end);
export const content = (buf: Buffer, n: Node): Buffer => buf.subarray(n.contentStart, n.end);

export function oidToString(b: Buffer): string {
  if (b.length === 0) throw new Error('DER: empty OID');
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (const byte of b.subarray(1)) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}
