// The lab's upstream HTTPS service (provisioner/lab/upstream-server.mjs) on loopback: every route over HTTP/1.1 and
// h2 on one TLS listener, and the WebSocket echo. Needs no root.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

const repo = join(import.meta.dirname, '../..');
const skip = spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed';

describe('upstream-server.mjs', { skip }, () => {
  let dir: string;
  let server: ChildProcess;
  let port: number;
  let ca: Buffer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'epoch-upstream-'));
    const cert = join(dir, 'c.pem');
    const key = join(dir, 'k.pem');
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=upstream.test', '-addext', 'subjectAltName=DNS:upstream.test,IP:127.0.0.1', '-keyout', key, '-out', cert,
    ]);
    assert.equal(r.status, 0, String(r.stderr));
    ca = readFileSync(cert);
    server = spawn(process.execPath, [join(repo, 'provisioner/lab/upstream-server.mjs'), '--listen', '127.0.0.1:0', '--cert', cert, '--key', key], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    port = await new Promise<number>((resolve, reject) => {
      server.once('exit', (code) => reject(new Error(`upstream-server exited ${code}`)));
      server.stdout?.on('data', (d: Buffer) => {
        const m = /listening 127\.0\.0\.1:(\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
    });
  });
  after(() => {
    if (server?.pid && server.exitCode === null) server.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  function h1(path: string, body?: Buffer): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path, method: body ? 'POST' : 'GET', ca, servername: 'upstream.test' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  function h2(path: string, body?: Buffer): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'upstream.test' });
      session.on('error', reject);
      const req = session.request({ ':path': path, ':method': body ? 'POST' : 'GET' });
      const chunks: Buffer[] = [];
      let headers: Record<string, unknown> = {};
      req.on('response', (h) => {
        headers = h;
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        session.close();
        resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  for (const [label, get] of [['HTTP/1.1', h1], ['h2', h2]] as const) {
    test(`${label}: /, /status, /bytes, /chunked, /echo and 404`, async () => {
      const root = await get('/');
      assert.equal(root.status, 200);
      assert.equal(root.body.toString(), 'epoch lab upstream\n');
      assert.equal(root.headers['x-upstream-alpn'], label === 'h2' ? 'h2' : 'http/1.1');
      assert.equal((await get('/status/503')).status, 503);
      const bytes = await get('/bytes/100000');
      assert.equal(bytes.body.length, 100000);
      assert.equal(bytes.headers['content-length'], '100000');
      const chunked = await get('/chunked/70000');
      assert.equal(chunked.body.length, 70000);
      assert.equal(chunked.headers['content-length'], undefined);
      if (label === 'HTTP/1.1') assert.equal(chunked.headers['transfer-encoding'], 'chunked');
      const payload = randomBytes(50000);
      assert.deepEqual((await get('/echo', payload)).body, payload);
      assert.equal((await get('/nope')).status, 404);
    });
  }

  test('/ws upgrades and echoes text frames, answers ping and close', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'upstream.test', ALPNProtocols: ['http/1.1'] });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', () => resolve()).once('error', reject));
    socket.write('GET /ws HTTP/1.1\r\nHost: upstream.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const frame = (opcode: number, data: Buffer) => {
      const mask = randomBytes(4);
      const masked = Buffer.from(data.map((b, i) => b ^ (mask[i % 4] as number)));
      return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | data.length]), mask, masked]);
    };
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
    });
    socket.write(frame(0x1, Buffer.from('hello lab')));
    socket.write(frame(0x9, Buffer.from('p')));
    socket.write(frame(0x8, Buffer.from([0x03, 0xe8])));
    await new Promise<void>((resolve) => socket.once('end', () => resolve()));
    const text = received.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(text, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
    const frames = received.subarray(received.indexOf('\r\n\r\n') + 4);
    assert.deepEqual([...frames.subarray(0, 11)], [0x81, 9, ...Buffer.from('hello lab')]);
    assert.deepEqual([...frames.subarray(11, 14)], [0x8a, 1, 0x70]);
    assert.deepEqual([...frames.subarray(14)], [0x88, 2, 0x03, 0xe8]);
    socket.destroy();
  });
});
