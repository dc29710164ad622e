// Passive HTTP/2 observer (ALPN h2): frame parser for both directions and one HPACK decoder per direction.
// DATA payloads are skipped by counting; only header blocks and SETTINGS are buffered, with a bound. Each
// stream becomes one exchange when the server ends it or, with a known body length, when its last body byte
// arrives: servers often send END_STREAM in a later empty DATA frame, and a client that stops at content-length
// (curl does) may close before that frame is relayed. Errors stop observing the connection, never the relay.
import type { ExchangeSink, ObserveErrorKind } from './exchange';
import { HpackDecoder } from './hpack';
import type { ConnectionObserver } from './observer';

export interface Http2Limits {
  /** Largest header block (HEADERS + CONTINUATION) buffered. */
  maxHeaderBlockBytes: number;
  /** Most streams tracked at once. */
  maxStreams: number;
  /** Dynamic table ceiling per direction, whatever the peer advertises. */
  maxHpackTableSize: number;
}

export const defaultHttp2Limits: Http2Limits = { maxHeaderBlockBytes: 256 * 1024, maxStreams: 1000, maxHpackTableSize: 64 * 1024 };

const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_PUSH_PROMISE = 0x5;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

class H2Error extends Error {
  constructor(readonly kind: ObserveErrorKind, message: string) {
    super(message);
  }
}

interface Stream {
  method: string;
  path: string;
  start: number;
  responseStart: number;
  status: number;
  requestBodyBytes: number;
  responseBodyBytes: number;
  /** Response body length the final response announces (0 for HEAD, 204, 304), -1 when unknown. */
  expectedResponseBytes: number;
}

enum Phase {
  Preface,
  FrameHeader,
  Payload, // buffered payload (HEADERS, CONTINUATION, PUSH_PROMISE, SETTINGS, RST_STREAM)
  DataPadLength,
  Skip, // DATA body or frames we ignore: counted, never copied
}

/** One direction's frame reader. */
class FrameReader {
  phase: Phase;
  private header = Buffer.alloc(9);
  private headerFill = 0;
  private prefaceFill = 0;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  private remaining = 0;
  private frameLength = 0;
  private payload: Buffer[] = [];
  private payloadLen = 0;
  private dataPad = 0;

  constructor(
    expectPreface: boolean,
    private readonly limits: Http2Limits,
    private readonly onFrame: (type: number, flags: number, streamId: number, payload: Buffer, now: number) => void,
    private readonly onData: (streamId: number, bytes: number, endStream: boolean, now: number) => void,
  ) {
    this.phase = expectPreface ? Phase.Preface : Phase.FrameHeader;
  }

  feed(chunk: Buffer, now: number): void {
    let p = 0;
    const len = chunk.length;
    while (p < len) {
      switch (this.phase) {
        case Phase.Preface: {
          while (p < len && this.prefaceFill < preface.length) {
            if (chunk[p++] !== preface[this.prefaceFill++]) throw new H2Error('h2_protocol', 'bad connection preface');
          }
          if (this.prefaceFill === preface.length) this.phase = Phase.FrameHeader;
          break;
        }
        case Phase.FrameHeader: {
          let h: Buffer;
          let at: number;
          if (this.headerFill === 0 && len - p >= 9) {
            h = chunk; // the common case: the whole header is in this chunk, read it in place
            at = p;
            p += 9;
          } else {
            const n = Math.min(9 - this.headerFill, len - p);
            chunk.copy(this.header, this.headerFill, p, p + n);
            this.headerFill += n;
            p += n;
            if (this.headerFill < 9) break;
            this.headerFill = 0;
            h = this.header;
            at = 0;
          }
          const length = (h[at]! << 16) | (h[at + 1]! << 8) | h[at + 2]!;
          this.frameLength = length;
          this.type = h[at + 3]!;
          this.flags = h[at + 4]!;
          this.streamId = ((h[at + 5]! & 0x7f) << 24) | (h[at + 6]! << 16) | (h[at + 7]! << 8) | h[at + 8]!;
          this.remaining = length;
          this.payload = [];
          this.payloadLen = 0;
          if (this.type === FRAME_DATA) {
            this.dataPad = 0;
            this.phase = this.flags & FLAG_PADDED ? Phase.DataPadLength : Phase.Skip;
            if (this.phase === Phase.DataPadLength && length === 0) throw new H2Error('h2_protocol', 'padded DATA without a pad length');
          } else if (this.type === FRAME_HEADERS || this.type === FRAME_CONTINUATION || this.type === FRAME_PUSH_PROMISE ||
            this.type === FRAME_SETTINGS || this.type === FRAME_RST_STREAM) {
            if (length > this.limits.maxHeaderBlockBytes) throw new H2Error('header_too_large', `frame of ${length} bytes`);
            this.phase = Phase.Payload;
          } else {
            this.phase = Phase.Skip;
          }
          if (length === 0) this.frameDone(now);
          break;
        }
        case Phase.DataPadLength: {
          this.dataPad = chunk[p++]!;
          this.remaining--;
          if (this.dataPad > this.remaining) throw new H2Error('h2_protocol', 'DATA padding longer than the frame');
          this.phase = Phase.Skip;
          if (this.remaining === 0) this.frameDone(now);
          break;
        }
        case Phase.Skip: {
          const n = Math.min(this.remaining, len - p);
          this.remaining -= n;
          p += n;
          if (this.remaining === 0) this.frameDone(now);
          break;
        }
        case Phase.Payload: {
          const n = Math.min(this.remaining, len - p);
          this.payload.push(Buffer.from(chunk.subarray(p, p + n)));
          this.payloadLen += n;
          this.remaining -= n;
          p += n;
          if (this.remaining === 0) this.frameDone(now);
          break;
        }
      }
    }
  }

  private frameDone(now: number): void {
    const type = this.type;
    this.phase = Phase.FrameHeader;
    if (type === FRAME_DATA) {
      // The frame's length minus the pad-length byte and the padding (all already skipped).
      const length = this.frameLength;
      const body = this.flags & FLAG_PADDED ? length - 1 - this.dataPad : length;
      this.onData(this.streamId, body, (this.flags & FLAG_END_STREAM) !== 0, now);
      return;
    }
    if (type === FRAME_HEADERS || type === FRAME_CONTINUATION || type === FRAME_PUSH_PROMISE || type === FRAME_SETTINGS ||
      type === FRAME_RST_STREAM) {
      const payload = this.payload.length === 1 ? this.payload[0]! : Buffer.concat(this.payload, this.payloadLen);
      this.payload = [];
      this.onFrame(type, this.flags, this.streamId, payload, now);
    }
  }
}

interface HeaderBlockInProgress {
  type: number;
  streamId: number;
  endStream: boolean;
  parts: Buffer[];
  size: number;
}

export class Http2Observer implements ConnectionObserver {
  private readonly streams = new Map<number, Stream>();
  private readonly client: FrameReader;
  private readonly server: FrameReader;
  private readonly clientDecoder: HpackDecoder;
  private readonly serverDecoder: HpackDecoder;
  private clientBlock: HeaderBlockInProgress | null = null;
  private serverBlock: HeaderBlockInProgress | null = null;
  private stopped = false;

  constructor(
    private readonly sink: ExchangeSink,
    private readonly limits: Http2Limits = defaultHttp2Limits,
  ) {
    const hpackLimits = { hardMaxTableSize: limits.maxHpackTableSize, maxStringLength: limits.maxHeaderBlockBytes };
    this.clientDecoder = new HpackDecoder(hpackLimits);
    this.serverDecoder = new HpackDecoder(hpackLimits);
    this.client = new FrameReader(true, limits,
      (type, flags, id, payload, now) => this.frame('client', type, flags, id, payload, now),
      (id, bytes, end, now) => this.data('client', id, bytes, end, now));
    this.server = new FrameReader(false, limits,
      (type, flags, id, payload, now) => this.frame('server', type, flags, id, payload, now),
      (id, bytes, end, now) => this.data('server', id, bytes, end, now));
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  get trackedStreams(): number {
    return this.streams.size;
  }

  onClientData(chunk: Buffer, now: number): void {
    if (this.stopped) return;
    try {
      this.client.feed(chunk, now);
    } catch (err) {
      this.fail(err);
    }
  }

  onServerData(chunk: Buffer, now: number): void {
    if (this.stopped) return;
    try {
      this.server.feed(chunk, now);
    } catch (err) {
      this.fail(err);
    }
  }

  onClose(): void {
    if (this.stopped) return;
    this.stopped = true;
    try {
      for (let k = 0; k < this.streams.size; k++) this.sink.error('incomplete');
    } catch {
      // Sinks do not throw.
    }
    this.streams.clear();
  }

  private fail(err: unknown): void {
    this.stopped = true;
    this.streams.clear();
    try {
      this.sink.error(err instanceof H2Error ? err.kind : 'hpack');
    } catch {
      // Never let observation errors reach the relay.
    }
  }

  private frame(side: 'client' | 'server', type: number, flags: number, streamId: number, payload: Buffer, now: number): void {
    const inProgress = side === 'client' ? this.clientBlock : this.serverBlock;
    if (inProgress && type !== FRAME_CONTINUATION) throw new H2Error('h2_protocol', 'header block interrupted');
    switch (type) {
      case FRAME_SETTINGS: {
        if (flags & FLAG_ACK) return;
        if (payload.length % 6 !== 0) throw new H2Error('h2_protocol', 'SETTINGS length not a multiple of 6');
        for (let o = 0; o < payload.length; o += 6) {
          if (payload.readUInt16BE(o) === 0x1) {
            // The sender's decoder size bounds what the other side's encoder may use.
            const size = payload.readUInt32BE(o + 2);
            (side === 'client' ? this.serverDecoder : this.clientDecoder).setAllowedTableSize(size);
          }
        }
        return;
      }
      case FRAME_RST_STREAM: {
        if (this.streams.delete(streamId)) this.sink.error('stream_reset');
        return;
      }
      case FRAME_HEADERS:
      case FRAME_PUSH_PROMISE: {
        let start = 0;
        let end = payload.length;
        if (flags & FLAG_PADDED) {
          if (payload.length < 1) throw new H2Error('h2_protocol', 'padded frame without a pad length');
          end -= payload[0]!;
          start = 1;
        }
        if (type === FRAME_HEADERS && flags & FLAG_PRIORITY) start += 5;
        if (type === FRAME_PUSH_PROMISE) start += 4;
        if (start > end) throw new H2Error('h2_protocol', 'frame padding longer than the frame');
        const block: HeaderBlockInProgress = {
          type,
          streamId,
          endStream: type === FRAME_HEADERS && (flags & FLAG_END_STREAM) !== 0,
          parts: [payload.subarray(start, end)],
          size: end - start,
        };
        if (flags & FLAG_END_HEADERS) this.headerBlock(side, block, now);
        else if (side === 'client') this.clientBlock = block;
        else this.serverBlock = block;
        return;
      }
      case FRAME_CONTINUATION: {
        if (!inProgress || inProgress.streamId !== streamId) throw new H2Error('h2_protocol', 'unexpected CONTINUATION');
        inProgress.parts.push(payload);
        inProgress.size += payload.length;
        if (inProgress.size > this.limits.maxHeaderBlockBytes) throw new H2Error('header_too_large', 'header block too large');
        if (flags & FLAG_END_HEADERS) {
          if (side === 'client') this.clientBlock = null;
          else this.serverBlock = null;
          this.headerBlock(side, inProgress, now);
        }
        return;
      }
    }
  }

  private headerBlock(side: 'client' | 'server', block: HeaderBlockInProgress, now: number): void {
    const bytes = block.parts.length === 1 ? block.parts[0]! : Buffer.concat(block.parts, block.size);
    let method = '';
    let path = '';
    let status = 0;
    let contentLength = -1;
    // Every block must be decoded, even ones we ignore, to keep the dynamic table in step with the peer's.
    (side === 'client' ? this.clientDecoder : this.serverDecoder).decode(bytes, (name, value) => {
      if (name.charCodeAt(0) !== 0x3a) {
        if (side === 'server' && name === 'content-length') contentLength = contentLengthValue(value, contentLength);
        return;
      }
      if (name === ':method') method = value;
      else if (name === ':path') path = value;
      else if (name === ':status') status = Number(value);
    });
    if (block.type === FRAME_PUSH_PROMISE) return;
    const id = block.streamId;
    if (side === 'client') {
      if (!this.streams.has(id) && method !== '') {
        if (this.streams.size >= this.limits.maxStreams) throw new H2Error('too_many_pending', 'too many open streams');
        this.streams.set(id, {
          method,
          path: method === 'CONNECT' && path === '' ? '/' : path,
          start: now,
          responseStart: Number.NaN,
          status: 0,
          requestBodyBytes: 0,
          responseBodyBytes: 0,
          expectedResponseBytes: -1,
        });
      }
      return;
    }
    const stream = this.streams.get(id);
    if (!stream) return; // a pushed stream or one we never saw open
    if (Number.isNaN(stream.responseStart)) stream.responseStart = now;
    if (status >= 200 && stream.status === 0) {
      stream.status = status;
      const bodyless = stream.method === 'HEAD' || status === 204 || status === 304;
      stream.expectedResponseBytes = bodyless ? 0 : Math.max(contentLength, -1);
    }
    if (block.endStream || stream.expectedResponseBytes === 0) this.finish(id, stream, now);
  }

  private data(side: 'client' | 'server', id: number, bytes: number, endStream: boolean, now: number): void {
    if ((side === 'client' ? this.clientBlock : this.serverBlock) !== null) throw new H2Error('h2_protocol', 'header block interrupted');
    const stream = this.streams.get(id);
    if (!stream) return;
    if (side === 'client') {
      stream.requestBodyBytes += bytes;
      return;
    }
    stream.responseBodyBytes += bytes;
    const complete = stream.expectedResponseBytes >= 0 && stream.responseBodyBytes >= stream.expectedResponseBytes;
    if (endStream || complete) this.finish(id, stream, now);
  }

  private finish(id: number, stream: Stream, now: number): void {
    this.streams.delete(id);
    this.sink.exchange({
      method: stream.method,
      target: stream.path,
      status: stream.status,
      protocolVersion: '2',
      requestStart: stream.start,
      responseStart: stream.responseStart,
      end: now,
      requestBodyBytes: stream.requestBodyBytes,
      responseBodyBytes: stream.responseBodyBytes,
    });
  }
}

const CONTENT_LENGTH_INVALID = -2;

/** The next content-length state: a byte count, or (sticky) invalid when malformed or repeated with another value. */
function contentLengthValue(value: string, previous: number): number {
  if (previous === CONTENT_LENGTH_INVALID || !/^\d{1,15}$/.test(value)) return CONTENT_LENGTH_INVALID;
  const n = Number(value);
  return previous >= 0 && previous !== n ? CONTENT_LENGTH_INVALID : n;
}
