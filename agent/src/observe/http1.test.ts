import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import type { ExchangeRecord, ExchangeSink, ObserveErrorKind } from './exchange';
import { Http1Observer } from './http1';

class Collect implements ExchangeSink {
  records: ExchangeRecord[] = [];
  errors: ObserveErrorKind[] = [];
  exchange(r: ExchangeRecord): void {
    this.records.push(r);
  }
  error(k: ObserveErrorKind): void {
    this.errors.push(k);
  }
  get summary(): string[] {
    return this.records.map((r) => `${r.method} ${r.target} ${r.status} req=${r.requestBodyBytes} resp=${r.responseBodyBytes}`);
  }
}

function run(client: string | Buffer, server: string | Buffer, close = true): Collect {
  const sink = new Collect();
  const obs = new Http1Observer(sink);
  obs.onClientData(Buffer.from(client), 1);
  obs.onServerData(Buffer.from(server), 2);
  if (close) obs.onClose(3);
  return sink;
}

test('keep-alive pipelining: three requests in one chunk, three responses in one chunk', () => {
  const s = run(
    'GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b?q=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloDELETE /c/9 HTTP/1.1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno',
  );
  assert.deepEqual(s.summary, ['GET /a 200 req=0 resp=3', 'POST /b?q=1 201 req=5 resp=0', 'DELETE /c/9 404 req=0 resp=2']);
  assert.deepEqual(s.errors, []);
});

test('timings: TTFB from the first response byte, duration to the last', () => {
  const sink = new Collect();
  const obs = new Http1Observer(sink);
  obs.onClientData(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 10);
  obs.onServerData(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab'), 25);
  obs.onServerData(Buffer.from('cd'), 40);
  assert.equal(sink.records.length, 1);
  const r = sink.records[0]!;
  assert.equal(r.requestStart, 10);
  assert.equal(r.responseStart, 25);
  assert.equal(r.end, 40);
});

test('a head ended by a bare-LF empty line ends there, even when CRLF CRLF follows in the body (whole chunk and byte by byte)', () => {
  // Whole chunks take the one-search path for heads; byte by byte takes the line scan: both must agree.
  const client = 'POST /a HTTP/1.1\nContent-Length: 4\n\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n';
  const server = 'HTTP/1.1 200 OK\nContent-Length: 4\n\r\n\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n';
  const expected = ['POST /a 200 req=4 resp=4', 'GET /b 204 req=0 resp=0'];
  assert.deepEqual(run(client, server).summary, expected);
  const sink = new Collect();
  const obs = new Http1Observer(sink);
  for (const b of Buffer.from(client)) obs.onClientData(Buffer.from([b]), 1);
  for (const b of Buffer.from(server)) obs.onServerData(Buffer.from([b]), 2);
  assert.deepEqual(sink.summary, expected);
  assert.deepEqual(sink.errors, []);
});

const chunkedResponse = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n' +
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

test('chunked response split at every byte boundary (and byte by byte) gives the same result', () => {
  const client = Buffer.from('GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n');
  const server = Buffer.from(chunkedResponse);
  const expected = ['GET /x 200 req=0 resp=31', 'GET /y 200 req=0 resp=2'];
  for (let i = 0; i <= server.length; i++) {
    const sink = new Collect();
    const obs = new Http1Observer(sink);
    obs.onClientData(client, 0);
    obs.onServerData(server.subarray(0, i), 1);
    obs.onServerData(server.subarray(i), 2);
    assert.deepEqual(sink.summary, expected, `split at ${i}`);
    assert.deepEqual(sink.errors, []);
  }
  const sink = new Collect();
  const obs = new Http1Observer(sink);
  for (let i = 0; i < client.length; i++) obs.onClientData(client.subarray(i, i + 1), 0);
  for (let i = 0; i < server.length; i++) obs.onServerData(server.subarray(i, i + 1), 1);
  assert.deepEqual(sink.summary, expected);
});

test('chunked request body split at every byte boundary', () => {
  const client = Buffer.from('POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n');
  for (let i = 0; i <= client.length; i++) {
    const sink = new Collect();
    const obs = new Http1Observer(sink);
    obs.onClientData(client.subarray(0, i), 0);
    obs.onClientData(client.subarray(i), 0);
    obs.onServerData(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'), 1);
    assert.deepEqual(sink.summary, ['POST /up 204 req=7 resp=0'], `split at ${i}`);
  }
});

test('1xx interim responses are skipped; the final response completes the exchange', () => {
  const s = run('POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk');
  assert.deepEqual(s.summary, ['POST /p 200 req=2 resp=1']);
});

test('HEAD, 204 and 304 responses have no body whatever their Content-Length says', () => {
  const s = run('HEAD /h HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend');
  assert.deepEqual(s.summary, ['HEAD /h 200 req=0 resp=0', 'GET /n 204 req=0 resp=0', 'GET /m 304 req=0 resp=0', 'GET /after 200 req=0 resp=3']);
  assert.deepEqual(s.errors, []);
});

test('Upgrade: the 101 exchange is recorded, bytes after it are not parsed and are not errors', () => {
  const sink = new Collect();
  const obs = new Http1Observer(sink);
  obs.onClientData(Buffer.from('GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), 0);
  obs.onServerData(Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'), Buffer.from([0x81, 0x02, 0x68, 0x69])]), 1);
  obs.onClientData(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0x68, 0x69, 0xff, 0x00, 0x0a, 0x0d]), 2);
  obs.onServerData(Buffer.from('HTTP/1.1 garbage that is not a response\r\n\r\n'), 3);
  obs.onClose(4);
  assert.deepEqual(sink.summary, ['GET /ws 101 req=0 resp=0']);
  assert.deepEqual(sink.errors, []);
  assert.ok(obs.isStopped);
});

test('CONNECT 200 becomes a tunnel and is not parsed further', () => {
  const s = run('CONNECT example.test:443 HTTP/1.1\r\n\r\n\x16\x03\x01garbage', 'HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03more');
  assert.deepEqual(s.summary, ['CONNECT example.test:443 200 req=0 resp=0']);
  assert.deepEqual(s.errors, []);
});

test('close-delimited response ends at close; HTTP/1.0', () => {
  const s = run('GET /old HTTP/1.0\r\n\r\n', 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
  assert.deepEqual(s.summary, ['GET /old 200 req=0 resp=13']);
  assert.equal(s.records[0]!.protocolVersion, '1.0');
});

test('requests without a response at close are counted as incomplete', () => {
  const s = run('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort');
  assert.deepEqual(s.summary, []);
  assert.deepEqual(s.errors, ['incomplete', 'incomplete']);
});

test('bad input: each stops observation, is counted once, and never throws', () => {
  const cases: [string, string | Buffer, string | Buffer, ObserveErrorKind][] = [
    ['request line with no version', 'GET /index.html\r\n\r\n', 'HTTP/1.1 200 OK\r\n\r\n', 'malformed_request'],
    ['garbage request', '\x16\x03\x01\x00\xa5\x01\x00\r\n\r\n', '', 'malformed_request'],
    ['header without colon', 'GET / HTTP/1.1\r\nNoColonHere\r\n\r\n', '', 'malformed_request'],
    ['whitespace before a header colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n', '', 'malformed_request'],
    ['bad Content-Length', 'POST / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n', '', 'malformed_request'],
    ['conflicting Content-Length', 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', '', 'malformed_request'],
    ['HTTP/2 version in a request line', 'GET / HTTP/2.0\r\n\r\n', '', 'malformed_request'],
    ['bad status line', 'GET / HTTP/1.1\r\n\r\n', 'HTTP/1.1 2000 OK\r\n\r\n', 'malformed_response'],
    ['bad chunk size', 'GET / HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'malformed_response'],
    ['response without a request', '', 'HTTP/1.1 200 OK\r\n\r\n', 'unexpected_response'],
    ['1 MB request header block', `GET / HTTP/1.1\r\nX-Big: ${'a'.repeat(1024 * 1024)}\r\n\r\n`, '', 'header_too_large'],
    ['1 MB response header block', 'GET / HTTP/1.1\r\n\r\n', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(1024 * 1024)}\r\n\r\n`, 'header_too_large'],
  ];
  for (const [name, client, server, kind] of cases) {
    const s = run(client, server);
    assert.deepEqual(s.errors, [kind], name);
    assert.deepEqual(s.summary, [], name);
  }
});

test('1 MB header block fed in 16 KB chunks: memory bounded (stops at the limit), one error', () => {
  const sink = new Collect();
  const obs = new Http1Observer(sink);
  obs.onClientData(Buffer.from('GET / HTTP/1.1\r\n'), 0);
  const line = Buffer.from(`X-Filler: ${'b'.repeat(16 * 1024 - 12)}\r\n`);
  for (let i = 0; i < 64; i++) obs.onClientData(line, 0);
  obs.onClientData(Buffer.from('\r\n'), 0);
  assert.deepEqual(sink.errors, ['header_too_large']);
  assert.ok(obs.isStopped);
});

// --- llhttp (Node's own parser) as the oracle on randomized pipelined streams ---

const require = createRequire(import.meta.url);
interface LlhttpParser {
  initialize(kind: number, resource: object): void;
  execute(b: Buffer): number | Error;
  finish(): number | Error | undefined;
  [k: number]: unknown;
}
const common = require('node:_http_common') as {
  HTTPParser: { new (): LlhttpParser; REQUEST: number; RESPONSE: number; kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number };
  methods: string[];
};
const { HTTPParser, methods } = common;

function oracle(client: Buffer, server: Buffer): string[] {
  const requests: { method: string; url: string; body: number }[] = [];
  const req = new HTTPParser();
  req.initialize(HTTPParser.REQUEST, {});
  req[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, _h: unknown, method: number, url: string) => {
    requests.push({ method: methods[method]!, url, body: 0 });
    return 0;
  };
  req[HTTPParser.kOnBody] = (b: Buffer) => {
    requests[requests.length - 1]!.body += b.length;
  };
  req[HTTPParser.kOnMessageComplete] = () => {};
  assert.equal(req.execute(client), client.length);

  const responses: { status: number; body: number }[] = [];
  let final = 0;
  let current: { status: number; body: number } | null = null;
  const res = new HTTPParser();
  res.initialize(HTTPParser.RESPONSE, {});
  res[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, _h: unknown, _m: unknown, _u: unknown, status: number) => {
    current = { status, body: 0 };
    if (status < 200) return 0;
    return requests[final]?.method === 'HEAD' ? 1 : 0;
  };
  res[HTTPParser.kOnBody] = (b: Buffer) => {
    current!.body += b.length;
  };
  res[HTTPParser.kOnMessageComplete] = () => {
    if (current!.status >= 200) {
      responses.push(current!);
      final++;
    }
  };
  assert.equal(res.execute(server), server.length);
  res.finish();
  return responses.map((r, i) => `${requests[i]!.method} ${requests[i]!.url} ${r.status} req=${requests[i]!.body} resp=${r.body}`);
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function body(rand: () => number, headers: string[], allowChunked: boolean): string {
  const n = Math.floor(rand() * 300);
  const content = 'x'.repeat(n);
  const mode = rand();
  if (allowChunked && mode < 0.4) {
    headers.push('Transfer-Encoding: chunked');
    let out = '';
    let left = n;
    while (left > 0) {
      const c = Math.min(left, 1 + Math.floor(rand() * 100));
      out += `${c.toString(16)}${rand() < 0.2 ? ';name=value' : ''}\r\n${'y'.repeat(c)}\r\n`;
      left -= c;
    }
    return `${out}0\r\n${rand() < 0.3 ? 'Trailer-Field: v\r\n' : ''}\r\n`;
  }
  if (mode < 0.8) {
    headers.push(`Content-Length: ${n}`);
    return content;
  }
  headers.push('Content-Length: 0');
  return '';
}

function generate(seed: number): { client: Buffer; server: Buffer } {
  const rand = rng(seed);
  const count = 1 + Math.floor(rand() * 8);
  let client = '';
  let server = '';
  for (let i = 0; i < count; i++) {
    const method = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH'][Math.floor(rand() * 6)]!;
    const path = `/api/v${Math.floor(rand() * 3)}/items/${Math.floor(rand() * 1e6)}?page=${i}`;
    const reqHeaders = ['Host: example.test', `X-Seq: ${i}`];
    const reqBody = method === 'POST' || method === 'PUT' || method === 'PATCH' ? body(rand, reqHeaders, true) : '';
    client += `${method} ${path} HTTP/1.1\r\n${reqHeaders.join('\r\n')}\r\n\r\n${reqBody}`;
    if (rand() < 0.15) server += 'HTTP/1.1 100 Continue\r\n\r\n';
    const status = [200, 200, 201, 204, 304, 404, 500, 503][Math.floor(rand() * 8)]!;
    const resHeaders = ['Server: test'];
    let resBody = body(rand, resHeaders, true);
    if (method === 'HEAD' || status === 204 || status === 304) resBody = '';
    if (status === 204) resHeaders.splice(1);
    server += `HTTP/1.1 ${status} Reason Phrase\r\n${resHeaders.join('\r\n')}\r\n\r\n${resBody}`;
  }
  return { client: Buffer.from(client, 'latin1'), server: Buffer.from(server, 'latin1') };
}

function feedRandomly(obs: Http1Observer, data: Buffer, side: 'client' | 'server', rand: () => number): void {
  let p = 0;
  while (p < data.length) {
    const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 8 : 200));
    const piece = data.subarray(p, p + n);
    if (side === 'client') obs.onClientData(piece, 0);
    else obs.onServerData(piece, 0);
    p += n;
  }
}

test('llhttp oracle: 300 randomized pipelined streams in random slices agree on every exchange', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const { client, server } = generate(seed);
    const expected = oracle(client, server);
    const sink = new Collect();
    const obs = new Http1Observer(sink);
    const rand = rng(seed * 7919);
    feedRandomly(obs, client, 'client', rand);
    feedRandomly(obs, server, 'server', rand);
    obs.onClose(1);
    assert.deepEqual(sink.errors, [], `seed ${seed}`);
    assert.deepEqual(sink.summary, expected, `seed ${seed}`);
  }
});

test('the observer never modifies the bytes it is given', () => {
  const { client, server } = generate(42);
  const c = Buffer.from(client);
  const s = Buffer.from(server);
  run(c, s);
  assert.ok(c.equals(client) && s.equals(server));
});

test('fuzz: mutated and random streams never throw, report at most one fatal error, and stop observing after it', () => {
  const fatal = new Set<ObserveErrorKind>(['malformed_request', 'malformed_response', 'header_too_large', 'unexpected_response', 'too_many_pending']);
  for (let seed = 1; seed <= 400; seed++) {
    const rand = rng(seed * 104729);
    const { client, server } = generate(seed);
    const c = Buffer.from(client);
    const s = Buffer.from(server);
    const flips = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < flips; i++) {
      const target = rand() < 0.5 ? c : s;
      target[Math.floor(rand() * target.length)] = Math.floor(rand() * 256);
    }
    if (seed % 10 === 0) rand() < 0.5 ? c.fill(0xff, 0, Math.min(40, c.length)) : s.fill(0x00, 0, Math.min(40, s.length));
    const sink = new Collect();
    const obs = new Http1Observer(sink);
    assert.doesNotThrow(() => {
      feedRandomly(obs, c, 'client', rand);
      feedRandomly(obs, s, 'server', rand);
      obs.onClose(1);
    });
    assert.ok(sink.errors.filter((e) => fatal.has(e)).length <= 1, `seed ${seed}: ${sink.errors}`);
  }
});
