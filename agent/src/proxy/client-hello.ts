// Sans-io ClientHello reader: given every byte the client has sent so far, says whether a complete ClientHello is
// in (possibly split across several TLS records and TCP segments), the stream is not TLS, or it is malformed.
// We only read it (for SNI and the ALPN offer); the raw bytes are later replayed to the real TLS server socket.

/** RFC 8446 5.1: a plaintext record fragment is at most 2^14 bytes. */
export const MAX_RECORD_BYTES = 16_384;
/** A bound on the whole hello (post-quantum key shares make ~1.2-2 KB; 64 KiB leaves room, keeps memory bounded). */
export const MAX_CLIENT_HELLO_BYTES = 65_536;

export interface ClientHello {
  /** Lowercased host_name from server_name, or null. */
  sni: string | null;
  /** The client's ALPN offer, in order (latin1 strings, one byte per char). */
  alpn: string[];
  /** Highest version offered: supported_versions when present, else legacy_version (0x0303 = TLS 1.2). */
  maxVersion: number;
  /** Bytes of the stream the hello records take. */
  recordBytes: number;
}

export type HelloParse =
  | { kind: 'incomplete' }
  | { kind: 'not-tls' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'hello'; hello: ClientHello };

const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
const hostnameRe = /^[a-z0-9_*]([a-z0-9_*-]{0,62})(\.[a-z0-9_*]([a-z0-9_*-]{0,62}))*$/;

class Malformed extends Error {}

/** A bounds-checked cursor over one buffer; every overrun is a Malformed error naming the field. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    private pos = 0,
    private readonly end = buf.length,
  ) {}
  get remaining(): number {
    return this.end - this.pos;
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  /** A sub-reader over a length-prefixed vector (prefix of 1 or 2 bytes). */
  vector(prefix: 1 | 2, what: string): Reader {
    const n = prefix === 1 ? this.u8(what) : this.u16(what);
    this.need(n, what);
    const sub = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return sub;
  }
  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new Malformed(`${what}: needs ${n} bytes, ${this.end - this.pos} left`);
  }
}

export function parseClientHello(stream: Buffer): HelloParse {
  if (stream.length === 0) return { kind: 'incomplete' };
  if (stream[0] !== HANDSHAKE) return { kind: 'not-tls' };
  const fragments: Buffer[] = [];
  let handshakeBytes = 0;
  let messageLength = -1;
  let pos = 0;
  while (true) {
    if (pos + 5 > stream.length) break;
    const type = stream[pos]!;
    const major = stream[pos + 1]!;
    const length = stream.readUInt16BE(pos + 3);
    if (type !== HANDSHAKE) return { kind: 'invalid', reason: `record type ${type} before the ClientHello was complete` };
    if (major !== 3) return { kind: 'invalid', reason: `record version ${major}.${stream[pos + 2]} is not TLS` };
    if (length === 0) return { kind: 'invalid', reason: 'empty handshake record' };
    if (length > MAX_RECORD_BYTES) return { kind: 'invalid', reason: `oversized record: ${length} > ${MAX_RECORD_BYTES} bytes` };
    if (pos + 5 + length > stream.length) break;
    fragments.push(stream.subarray(pos + 5, pos + 5 + length));
    handshakeBytes += length;
    pos += 5 + length;
    if (messageLength < 0 && handshakeBytes >= 4) {
      const head = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
      if (head[0] !== CLIENT_HELLO) return { kind: 'invalid', reason: `handshake type ${head[0]} is not ClientHello` };
      messageLength = head.readUIntBE(1, 3);
      if (messageLength + 4 > MAX_CLIENT_HELLO_BYTES) {
        return { kind: 'invalid', reason: `ClientHello of ${messageLength} bytes exceeds ${MAX_CLIENT_HELLO_BYTES}` };
      }
    }
    if (messageLength >= 0 && handshakeBytes >= messageLength + 4) {
      // Bytes after the hello in the same record would be a second handshake message: not allowed before ServerHello.
      if (handshakeBytes !== messageLength + 4) return { kind: 'invalid', reason: 'trailing bytes after the ClientHello' };
      const message = Buffer.concat(fragments);
      try {
        return { kind: 'hello', hello: { ...parseBody(message.subarray(4)), recordBytes: pos } };
      } catch (e) {
        if (e instanceof Malformed) return { kind: 'invalid', reason: e.message };
        throw e;
      }
    }
  }
  if (stream.length > MAX_CLIENT_HELLO_BYTES + 5 * Math.ceil(MAX_CLIENT_HELLO_BYTES / MAX_RECORD_BYTES)) {
    return { kind: 'invalid', reason: `no complete ClientHello within ${stream.length} bytes` };
  }
  return { kind: 'incomplete' };
}

function parseBody(body: Buffer): Omit<ClientHello, 'recordBytes'> {
  const r = new Reader(body);
  const legacyVersion = r.u16('legacy_version');
  r.bytes(32, 'random');
  const session = r.vector(1, 'legacy_session_id');
  if (session.remaining > 32) throw new Malformed(`legacy_session_id of ${session.remaining} bytes > 32`);
  const suites = r.vector(2, 'cipher_suites');
  if (suites.remaining < 2 || suites.remaining % 2) throw new Malformed(`cipher_suites length ${suites.remaining} is not a positive even number`);
  const compression = r.vector(1, 'legacy_compression_methods');
  if (compression.remaining < 1) throw new Malformed('legacy_compression_methods is empty');
  let sni: string | null = null;
  const alpn: string[] = [];
  let maxVersion = legacyVersion;
  if (r.remaining === 0) return { sni, alpn, maxVersion };
  const exts = r.vector(2, 'extensions');
  if (r.remaining !== 0) throw new Malformed(`${r.remaining} bytes after the extensions`);
  const seen = new Set<number>();
  while (exts.remaining > 0) {
    const type = exts.u16('extension type');
    const data = exts.vector(2, `extension ${type}`);
    if (seen.has(type)) throw new Malformed(`duplicate extension ${type}`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) sni = parseServerName(data);
    else if (type === EXT_ALPN) alpn.push(...parseAlpn(data));
    else if (type === EXT_SUPPORTED_VERSIONS) {
      const list = data.vector(1, 'supported_versions');
      if (list.remaining < 2 || list.remaining % 2) throw new Malformed('supported_versions list is malformed');
      while (list.remaining > 0) {
        const v = list.u16('supported_version');
        // Ignore GREASE (0x?a?a) values.
        if ((v & 0x0f0f) !== 0x0a0a && v > maxVersion) maxVersion = v;
      }
    }
  }
  return { sni, alpn, maxVersion };
}

function parseServerName(data: Reader): string | null {
  if (data.remaining === 0) return null; // an empty server_name is legal in a ServerHello only, but harmless here
  const list = data.vector(2, 'server_name_list');
  let host: string | null = null;
  while (list.remaining > 0) {
    const nameType = list.u8('server_name type');
    const name = list.vector(2, 'server_name');
    const bytes = name.bytes(name.remaining, 'host_name');
    if (nameType !== 0) continue;
    if (host !== null) throw new Malformed('more than one host_name');
    const text = bytes.toString('latin1').toLowerCase().replace(/\.$/, '');
    if (text.length === 0 || text.length > 253 || !hostnameRe.test(text)) {
      throw new Malformed(`host_name ${JSON.stringify(text.slice(0, 80))} is not a DNS name`);
    }
    host = text;
  }
  return host;
}

function parseAlpn(data: Reader): string[] {
  const list = data.vector(2, 'protocol_name_list');
  const out: string[] = [];
  while (list.remaining > 0) {
    const proto = list.vector(1, 'protocol_name');
    if (proto.remaining === 0) throw new Malformed('empty ALPN protocol name');
    out.push(proto.bytes(proto.remaining, 'protocol_name').toString('latin1'));
  }
  if (out.length === 0) throw new Malformed('empty ALPN list');
  return out;
}
