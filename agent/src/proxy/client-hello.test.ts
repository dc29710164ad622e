import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { MAX_RECORD_BYTES, parseClientHello } from './client-hello';

/** A real ClientHello, as Node's TLS client sends it (captured on a loopback socket). */
function captureHello(opts: { servername?: string; ALPNProtocols?: string[]; maxVersion?: 'TLSv1.2' | 'TLSv1.3' }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const server = createServer((s) => {
      s.on('data', (d) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
          s.destroy();
          server.close();
          resolve(all);
        }
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      const c = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
      c.on('error', () => {});
      setTimeout(() => reject(new Error('no hello captured')), 5000).unref();
    });
  });
}

/** Re-frames one hello into records of at most `size` bytes (legal TLS; some clients and middleboxes do it). */
function reframe(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const frag = body.subarray(i, i + size);
    const head = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    head.writeUInt16BE(frag.length, 3);
    out.push(head, frag);
  }
  return Buffer.concat(out);
}

test('parses SNI, the ALPN offer and the version from a real TLS 1.3 ClientHello', async () => {
  const hello = await captureHello({ servername: 'Www.Example.TEST', ALPNProtocols: ['h2', 'http/1.1'] });
  const r = parseClientHello(hello);
  assert.equal(r.kind, 'hello');
  if (r.kind !== 'hello') return;
  assert.equal(r.hello.sni, 'www.example.test');
  assert.deepEqual(r.hello.alpn, ['h2', 'http/1.1']);
  assert.equal(r.hello.maxVersion, 0x0304);
  assert.equal(r.hello.recordBytes, hello.length);
});

test('no SNI and no ALPN (IP-literal clients), TLS 1.2 only', async () => {
  const hello = await captureHello({ maxVersion: 'TLSv1.2' });
  const r = parseClientHello(hello);
  assert.equal(r.kind, 'hello');
  if (r.kind !== 'hello') return;
  assert.equal(r.hello.sni, null);
  assert.deepEqual(r.hello.alpn, []);
  assert.equal(r.hello.maxVersion, 0x0303);
});

test('a hello split across several records and delivered byte by byte is incomplete until its last byte', async () => {
  const hello = await captureHello({ servername: 'split.example.test', ALPNProtocols: ['http/1.1'] });
  const split = reframe(hello, 50);
  for (let n = 0; n < split.length; n++) assert.equal(parseClientHello(split.subarray(0, n)).kind, n === 0 ? 'incomplete' : 'incomplete', `prefix ${n}`);
  const r = parseClientHello(split);
  assert.equal(r.kind, 'hello');
  if (r.kind === 'hello') {
    assert.equal(r.hello.sni, 'split.example.test');
    assert.equal(r.hello.recordBytes, split.length);
  }
  // Application bytes after the hello (e.g. early data) are not part of it.
  const more = parseClientHello(Buffer.concat([split, Buffer.from([0x17, 3, 3, 0, 1, 0])]));
  assert.equal(more.kind, 'hello');
});

test('non-TLS first bytes are not-tls; malformed hellos are invalid with a reason', async () => {
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'not-tls');
  assert.equal(parseClientHello(Buffer.from([0x80, 0x2e, 0x01])).kind, 'not-tls'); // SSLv2-style hello
  const cases: [Buffer, RegExp][] = [
    [Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), /oversized record/],
    [Buffer.from([0x16, 0x02, 0x00, 0x00, 0x01, 0x01]), /not TLS/],
    [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00]), /empty handshake record/],
    [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]), /not ClientHello/],
    [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00]), /legacy_version/],
    [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]), /exceeds/],
  ];
  for (const [bytes, reason] of cases) {
    const r = parseClientHello(bytes);
    assert.equal(r.kind, 'invalid', bytes.toString('hex'));
    if (r.kind === 'invalid') assert.match(r.reason, reason);
  }
  // A record of another type before the hello completes.
  const hello = await captureHello({ servername: 'a.test' });
  const twoRecords = reframe(hello, 100);
  const broken = Buffer.from(twoRecords);
  broken[105] = 0x17;
  const r = parseClientHello(broken);
  assert.equal(r.kind, 'invalid');
  assert.ok(MAX_RECORD_BYTES === 16384);
});

test('an SNI that is not a DNS name is invalid (it ends up in logs and cert SANs)', async () => {
  const hello = await captureHello({ servername: 'abc.test' });
  const i = hello.indexOf(Buffer.from('abc.test'));
  const bad = Buffer.from(hello);
  bad.write('a"c', i, 'latin1');
  const r = parseClientHello(bad);
  assert.equal(r.kind, 'invalid');
  if (r.kind === 'invalid') assert.match(r.reason, /not a DNS name/);
});

test('bounded fuzz: mutated and truncated hellos never throw and always classify', async () => {
  const base = await captureHello({ servername: 'fuzz.example.test', ALPNProtocols: ['h2', 'http/1.1'] });
  const split = reframe(base, 64);
  let seed = 0x9e3779b9;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const kinds = new Map<string, number>();
  for (let i = 0; i < 5000; i++) {
    const src = i % 2 ? base : split;
    const b = Buffer.from(src.subarray(0, rand(4) === 0 ? rand(src.length + 1) : src.length));
    const flips = 1 + rand(4);
    for (let f = 0; f < flips && b.length > 0; f++) {
      const pos = rand(b.length);
      b[pos] = rand(3) === 0 ? 0xff : rand(256);
    }
    const r = parseClientHello(b);
    kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
    if (r.kind === 'hello') {
      assert.ok(r.hello.recordBytes <= b.length);
      assert.ok(r.hello.sni === null || /^[a-z0-9_*.-]+$/.test(r.hello.sni));
    }
  }
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.alloc(rand(600));
    for (let j = 0; j < b.length; j++) b[j] = rand(256);
    if (b.length > 0 && rand(2)) b[0] = 0x16;
    if (b.length > 1 && rand(2)) b[1] = 0x03;
    const r = parseClientHello(b);
    kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
  }
  assert.ok((kinds.get('invalid') ?? 0) > 1000, JSON.stringify([...kinds]));
  assert.ok((kinds.get('hello') ?? 0) > 10, JSON.stringify([...kinds]));
});
