// Passive HTTP/1.x framer for both directions of one connection. It reads only start lines and the framing
// headers, and skips bodies by counting (no body byte is ever copied). Header blocks are copied only when they
// straddle chunks, and are bounded. Responses are framed with a FIFO of the requests seen so far, so HEAD,
// 1xx, 204, 304, CONNECT and 101 are handled. Any parse error stops observing this connection (the relay
// is not affected) and is reported once.
import type { ExchangeSink, ObserveErrorKind } from './exchange';
import type { ConnectionObserver } from './observer';

export interface Http1Limits {
  /** Largest request or response head (start line + headers). */
  maxHeadBytes: number;
  /** Most requests awaiting a response (pipelining depth). */
  maxPending: number;
}

export const defaultHttp1Limits: Http1Limits = { maxHeadBytes: 64 * 1024, maxPending: 256 };

const CR = 0x0d;
const LF = 0x0a;
const headEnd = Buffer.from('\r\n\r\n', 'latin1');

enum State {
  Head,
  BodyLength,
  ChunkSize,
  ChunkExt,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  UntilClose,
  Stopped,
}

interface Pending {
  method: string;
  target: string;
  version: string;
  start: number;
  responseStart: number;
  requestBodyBytes: number;
}

class ParseError extends Error {
  constructor(readonly kind: ObserveErrorKind, message: string) {
    super(message);
  }
}

const requestLineRe = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ \x00-\x1f\x7f]+) HTTP\/1\.([01])$/;
const statusLineRe = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\x00-\x08\x0a-\x1f\x7f]*)?$/;

interface Framing {
  chunked: boolean;
  contentLength: number; // -1: none
  teNotChunked: boolean;
}

/** One direction's message framer. `onHead` interprets the head and says how the body is framed. */
class MessageFramer {
  state = State.Head;
  private headParts: Buffer[] = [];
  private headLen = 0;
  private lineLen = 0;
  private lineFirstIsCR = false;
  private started = false;
  private remaining = 0;
  private sizeDigits = 0;
  private lineBytes = 0;
  trailerLineLen = 0;

  constructor(
    private readonly limits: Http1Limits,
    private readonly kind: 'request' | 'response',
    private readonly handler: {
      messageStart(now: number): void;
      head(head: string, now: number): State;
      body(bytes: number): void;
      messageEnd(now: number): void;
    },
  ) {}

  feed(chunk: Buffer, now: number): void {
    let p = 0;
    const len = chunk.length;
    while (p < len) {
      switch (this.state) {
        case State.Stopped:
          return;
        case State.Head:
          p = this.scanHead(chunk, p, now);
          break;
        case State.BodyLength: {
          const n = Math.min(this.remaining, len - p);
          this.remaining -= n;
          p += n;
          this.handler.body(n);
          if (this.remaining === 0) this.end(now);
          break;
        }
        case State.UntilClose:
          this.handler.body(len - p);
          return;
        case State.ChunkSize: {
          const b = chunk[p++]!;
          const digit = hexValue(b);
          if (digit >= 0) {
            if (++this.sizeDigits > 15) throw new ParseError(this.malformed(), 'chunk size too long');
            this.remaining = this.remaining * 16 + digit;
          } else if (this.sizeDigits === 0) {
            throw new ParseError(this.malformed(), 'chunk size missing');
          } else if (b === LF) {
            this.afterChunkSize();
          } else if (b === CR || b === 0x3b /* ; */ || b === 0x20 || b === 0x09) {
            this.state = State.ChunkExt;
            this.lineBytes = 0;
          } else {
            throw new ParseError(this.malformed(), `bad chunk size byte 0x${b.toString(16)}`);
          }
          break;
        }
        case State.ChunkExt: {
          const lf = chunk.indexOf(LF, p);
          const stop = lf === -1 ? len : lf;
          this.lineBytes += stop - p;
          if (this.lineBytes > this.limits.maxHeadBytes) throw new ParseError('header_too_large', 'chunk extension too long');
          p = stop;
          if (lf !== -1) {
            p++;
            this.afterChunkSize();
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, len - p);
          this.remaining -= n;
          p += n;
          this.handler.body(n);
          if (this.remaining === 0) {
            this.state = State.ChunkDataEnd;
            this.sizeDigits = 0;
          }
          break;
        }
        case State.ChunkDataEnd: {
          const b = chunk[p++]!;
          if (b === CR && this.sizeDigits === 0) {
            this.sizeDigits = 1;
          } else if (b === LF) {
            this.state = State.ChunkSize;
            this.sizeDigits = 0;
            this.remaining = 0;
          } else {
            throw new ParseError(this.malformed(), 'missing CRLF after chunk data');
          }
          break;
        }
        case State.Trailer: {
          // Trailer fields end with an empty line; skip them without keeping them.
          const b = chunk[p++]!;
          if (b === LF) {
            if (this.trailerLineLen === 0) {
              this.end(now);
            }
            this.trailerLineLen = 0;
          } else if (b !== CR) {
            this.trailerLineLen++;
            if (++this.lineBytes > this.limits.maxHeadBytes) throw new ParseError('header_too_large', 'trailer too long');
          }
          break;
        }
      }
    }
  }

  private malformed(): ObserveErrorKind {
    return this.kind === 'request' ? 'malformed_request' : 'malformed_response';
  }

  private afterChunkSize(): void {
    if (this.remaining === 0) {
      this.state = State.Trailer;
      this.trailerLineLen = 0;
      this.lineBytes = 0;
    } else {
      this.state = State.ChunkData;
    }
  }

  private end(now: number): void {
    this.state = State.Head;
    this.started = false;
    this.handler.messageEnd(now);
  }

  startBody(state: State, remaining: number): void {
    this.state = state;
    this.remaining = remaining;
    this.sizeDigits = 0;
  }

  /**
   * The common case: the whole head is in this chunk and ends with CRLF CRLF. One native search and one string
   * instead of a search per line. A bare-LF empty line before it ends the head earlier, as in the line scan below.
   * Returns the position after the head, or -1 to fall back to the line scan (head not complete in this chunk).
   */
  private wholeHead(chunk: Buffer, p: number, now: number): number {
    const crlfcrlf = chunk.indexOf(headEnd, p);
    if (crlfcrlf === -1 || crlfcrlf + 4 - p > this.limits.maxHeadBytes) return -1;
    let text = chunk.toString('latin1', p, crlfcrlf + 4);
    const bareLf = text.indexOf('\n\n');
    const lfCrLf = text.indexOf('\n\r\n'); // always found: the CRLF CRLF itself
    const end = bareLf !== -1 && bareLf + 2 < lfCrLf + 3 ? bareLf + 2 : lfCrLf + 3;
    if (end < text.length) text = text.slice(0, end);
    const next = this.handler.head(text, now);
    if (next === State.Head) {
      this.end(now);
    } else {
      this.state = next;
    }
    return p + end;
  }

  /** Scans for the end of the head (an empty line), from p. Returns the position after what it consumed. */
  private scanHead(chunk: Buffer, p: number, now: number): number {
    const len = chunk.length;
    if (!this.started) {
      // Tolerate empty lines before a message (RFC 9112 §2.2).
      while (p < len && (chunk[p] === CR || chunk[p] === LF)) p++;
      if (p === len) return p;
      this.started = true;
      this.lineLen = 0;
      this.handler.messageStart(now);
    }
    if (this.headParts.length === 0 && this.lineLen === 0) {
      const fast = this.wholeHead(chunk, p, now);
      if (fast !== -1) return fast;
    }
    const headStart = p;
    let i = p;
    for (;;) {
      const lf = chunk.indexOf(LF, i);
      if (lf === -1) {
        const rest = len - i;
        if (rest > 0) {
          if (this.lineLen === 0) this.lineFirstIsCR = chunk[i] === CR;
          this.lineLen += rest;
        }
        this.headLen += len - headStart;
        if (this.headLen > this.limits.maxHeadBytes) {
          throw new ParseError('header_too_large', `${this.kind} head exceeds ${this.limits.maxHeadBytes} bytes`);
        }
        this.headParts.push(Buffer.from(chunk.subarray(headStart, len)));
        return len;
      }
      const seg = lf - i;
      const total = this.lineLen + seg;
      const empty = total === 0 || (total === 1 && (this.lineLen === 1 ? this.lineFirstIsCR : chunk[i] === CR));
      this.lineLen = 0;
      i = lf + 1;
      if (empty) {
        const headBytes = this.headLen + (i - headStart);
        if (headBytes > this.limits.maxHeadBytes) {
          throw new ParseError('header_too_large', `${this.kind} head exceeds ${this.limits.maxHeadBytes} bytes`);
        }
        let text: string;
        if (this.headParts.length === 0) {
          text = chunk.toString('latin1', headStart, i);
        } else {
          this.headParts.push(chunk.subarray(headStart, i));
          text = Buffer.concat(this.headParts).toString('latin1');
        }
        this.headParts = [];
        this.headLen = 0;
        const next = this.handler.head(text, now);
        if (next === State.Head) {
          this.end(now);
        } else {
          this.state = next;
        }
        return i;
      }
    }
  }
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/** Splits a head into its start line and the framing headers (no per-call closures: this is the hot path). */
function parseHead(text: string, kind: ObserveErrorKind): { startLine: string; framing: Framing } {
  const framing: Framing = { chunked: false, contentLength: -1, teNotChunked: false };
  let eol = text.indexOf('\n');
  const startLine = text.slice(0, eol > 0 && text.charCodeAt(eol - 1) === 13 ? eol - 1 : eol);
  // The head ends with an empty line; stop at it.
  for (let pos = eol + 1; pos < text.length; pos = eol + 1) {
    eol = text.indexOf('\n', pos);
    if (eol === -1) eol = text.length;
    const end = eol > pos && text.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
    if (end === pos) break;
    const colon = text.indexOf(':', pos);
    if (colon <= pos || colon >= end) throw new ParseError(kind, 'header line without a name');
    const first = text.charCodeAt(pos);
    if (first === 0x20 || first === 0x09) throw new ParseError(kind, 'obsolete line folding');
    // Whitespace before the colon is a request-smuggling vector (RFC 9112 §5.1); full token checks are left out.
    const beforeColon = text.charCodeAt(colon - 1);
    if (beforeColon === 0x20 || beforeColon === 0x09) throw new ParseError(kind, 'whitespace before a header colon');
    const nameLen = colon - pos;
    if (nameLen === 14 && (first | 0x20) === 0x63 && text.slice(pos, colon).toLowerCase() === 'content-length') {
      const value = text.slice(colon + 1, end).trim();
      if (!/^\d{1,15}$/.test(value)) throw new ParseError(kind, 'invalid Content-Length');
      const n = Number(value);
      if (framing.contentLength !== -1 && framing.contentLength !== n) throw new ParseError(kind, 'conflicting Content-Length');
      framing.contentLength = n;
    } else if (nameLen === 17 && (first | 0x20) === 0x74 && text.slice(pos, colon).toLowerCase() === 'transfer-encoding') {
      const value = text.slice(colon + 1, end);
      const last = value.slice(value.lastIndexOf(',') + 1).trim().toLowerCase();
      framing.chunked = last === 'chunked';
      framing.teNotChunked = !framing.chunked;
    }
  }
  return { startLine, framing };
}

/** Observes one HTTP/1.x connection; reports exchanges and errors to the sink. */
export class Http1Observer implements ConnectionObserver {
  private readonly pending: Pending[] = [];
  private readonly request: MessageFramer;
  private readonly response: MessageFramer;
  private stopped = false;
  private current: Pending | null = null; // the request being read
  private responseStatus = 0;
  private responseBodyBytes = 0;

  constructor(
    private readonly sink: ExchangeSink,
    private readonly limits: Http1Limits = defaultHttp1Limits,
  ) {
    this.request = new MessageFramer(limits, 'request', {
      messageStart: (now) => {
        if (this.pending.length >= this.limits.maxPending) throw new ParseError('too_many_pending', 'too many pipelined requests');
        this.current = { method: '', target: '', version: '1.1', start: now, responseStart: Number.NaN, requestBodyBytes: 0 };
      },
      head: (text) => this.requestHead(text),
      body: (n) => {
        if (this.current) this.current.requestBodyBytes += n;
      },
      messageEnd: () => {
        this.current = null;
      },
    });
    this.response = new MessageFramer(limits, 'response', {
      messageStart: (now) => {
        const front = this.pending[0];
        if (!front) throw new ParseError('unexpected_response', 'response without a request');
        if (Number.isNaN(front.responseStart)) front.responseStart = now;
        this.responseBodyBytes = 0;
      },
      head: (text, now) => this.responseHead(text, now),
      body: (n) => {
        this.responseBodyBytes += n;
      },
      messageEnd: (now) => this.complete(now),
    });
  }

  onClientData(chunk: Buffer, now: number): void {
    if (this.stopped) return;
    try {
      this.request.feed(chunk, now);
    } catch (err) {
      this.fail(err, 'malformed_request');
    }
  }

  onServerData(chunk: Buffer, now: number): void {
    if (this.stopped) return;
    try {
      this.response.feed(chunk, now);
    } catch (err) {
      this.fail(err, 'malformed_response');
    }
  }

  onClose(now: number): void {
    if (this.stopped) return;
    this.stopped = true;
    try {
      if (this.response.state === State.UntilClose) {
        this.response.state = State.Head;
        this.complete(now);
      }
      // Requests without a (complete) response.
      for (let k = 0; k < this.pending.length; k++) this.sink.error('incomplete');
      this.pending.length = 0;
    } catch {
      // Sinks do not throw; nothing to do if one did.
    }
  }

  /** True once the connection is no longer parsed (error, upgrade, tunnel or close). */
  get isStopped(): boolean {
    return this.stopped;
  }

  private fail(err: unknown, fallback: ObserveErrorKind): void {
    this.stop();
    this.pending.length = 0;
    try {
      this.sink.error(err instanceof ParseError ? err.kind : fallback);
    } catch {
      // Never let observation errors reach the relay.
    }
  }

  private stop(): void {
    this.stopped = true;
    this.request.state = State.Stopped;
    this.response.state = State.Stopped;
  }

  private requestHead(text: string): State {
    const { startLine, framing } = parseHead(text, 'malformed_request');
    const m = requestLineRe.exec(startLine);
    if (!m) throw new ParseError('malformed_request', 'invalid request line');
    const cur = this.current!;
    cur.method = m[1]!;
    cur.target = m[2]!;
    cur.version = m[3] === '0' ? '1.0' : '1.1';
    this.pending.push(cur);
    if (framing.teNotChunked) throw new ParseError('malformed_request', 'request Transfer-Encoding without chunked');
    if (framing.chunked) {
      this.request.startBody(State.ChunkSize, 0);
      return State.ChunkSize;
    }
    if (framing.contentLength > 0) {
      this.request.startBody(State.BodyLength, framing.contentLength);
      return State.BodyLength;
    }
    return State.Head;
  }

  private responseHead(text: string, now: number): State {
    const { startLine, framing } = parseHead(text, 'malformed_response');
    const m = statusLineRe.exec(startLine);
    if (!m) throw new ParseError('malformed_response', 'invalid status line');
    const status = Number(m[2]);
    const front = this.pending[0]!;
    if (status === 101 || (front.method === 'CONNECT' && status >= 200 && status < 300)) {
      // What follows is another protocol (or a tunnel): record the exchange and stop parsing.
      this.responseStatus = status;
      this.complete(now);
      this.stop();
      return State.Stopped;
    }
    if (status < 200) return State.Head; // interim response; the final one follows
    this.responseStatus = status;
    if (front.method === 'HEAD' || status === 204 || status === 304) return State.Head;
    if (framing.chunked) {
      this.response.startBody(State.ChunkSize, 0);
      return State.ChunkSize;
    }
    if (framing.teNotChunked) return State.UntilClose;
    if (framing.contentLength >= 0) {
      if (framing.contentLength === 0) return State.Head;
      this.response.startBody(State.BodyLength, framing.contentLength);
      return State.BodyLength;
    }
    return State.UntilClose;
  }

  /** The final response ended: emit the exchange. Interim (1xx) heads also end here and are skipped. */
  private complete(now: number): void {
    const status = this.responseStatus;
    if (status === 0) return; // an interim response ended
    this.responseStatus = 0;
    const req = this.pending.shift()!;
    this.sink.exchange({
      method: req.method,
      target: req.target,
      status,
      protocolVersion: req.version,
      requestStart: req.start,
      responseStart: req.responseStart,
      end: now,
      requestBodyBytes: req.requestBodyBytes,
      responseBodyBytes: this.responseBodyBytes,
    });
  }
}
