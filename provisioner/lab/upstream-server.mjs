#!/usr/bin/env node
// The lab's upstream HTTPS service: the "real server" that interception tests talk to through the agent.
// Standalone plain JavaScript (Node >= 18, no dependencies) so it runs on the controller or inside a lab host.
//
// Usage:
//   node upstream-server.mjs --listen ADDR:PORT --cert FILE --key FILE [--listen ADDR:PORT --cert FILE --key FILE ...]
//   Each --listen takes the --cert/--key that follow it. IPv6 addresses go in brackets: --listen [::1]:8443.
//   PORT 0 picks a free port. Once every listener is up it prints one line per listener to stdout:
//     listening ADDR:PORT
//   and keeps running until SIGTERM/SIGINT.
//
// Every listener is one TLS socket serving HTTP/1.1 and h2 (ALPN h2, http/1.1). Routes:
//   GET  /               200, text/plain "epoch lab upstream\n"
//   ANY  /status/<code>  that status code, short text body (no body for 1xx/204/304)
//   GET  /bytes/<n>      n bytes (pattern "abcdefghij..."), with content-length
//   GET  /chunked/<n>    n bytes, without content-length (chunked on HTTP/1.1, DATA frames on h2), 16 KiB pieces
//   POST /echo           the request body back, same content-type (application/octet-stream by default)
//   GET  /ws             WebSocket (HTTP/1.1 upgrade only): echoes every text/binary message, answers ping, closes on close
//   anything else        404
// Every response carries `x-upstream-listener: ADDR:PORT` and `x-upstream-alpn: h2|http/1.1`, so a test can see
// which listener and protocol the request really reached.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';

const MAX_BYTES = 1 << 30; // keep /bytes and /chunked bounded

function parseArgs(argv) {
  const listeners = [];
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i += 1;
    if (flag === '--listen') {
      const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
      if (!m) throw new Error(`--listen ${JSON.stringify(value)}: expected ADDR:PORT`);
      listeners.push({ host: m[1] ?? m[2], port: Number(m[3]) });
    } else if (flag === '--cert' || flag === '--key') {
      const last = listeners.at(-1);
      if (!last) throw new Error(`${flag} must follow a --listen`);
      last[flag.slice(2)] = readFileSync(value);
    } else {
      throw new Error(`unknown argument ${JSON.stringify(flag)}`);
    }
  }
  if (listeners.length === 0) throw new Error('at least one --listen ADDR:PORT --cert FILE --key FILE is required');
  for (const l of listeners) {
    if (!l.cert || !l.key) throw new Error(`--listen ${l.host}:${l.port} needs --cert and --key`);
  }
  return listeners;
}

function pattern(n) {
  const unit = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789\n');
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += unit.length) unit.copy(out, i, 0, Math.min(unit.length, n - i));
  return out;
}

function sizeParam(text) {
  const n = Number(text);
  return Number.isInteger(n) && n >= 0 && n <= MAX_BYTES ? n : null;
}

function handle(label, req, res) {
  const alpn = req.httpVersion === '2.0' ? 'h2' : 'http/1.1';
  res.setHeader('x-upstream-listener', label);
  res.setHeader('x-upstream-alpn', alpn);
  const url = new URL(req.url ?? '/', 'https://upstream.invalid');
  const parts = url.pathname.split('/').filter(Boolean);
  const text = (code, body) => {
    res.writeHead(code, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (url.pathname === '/') return text(200, 'epoch lab upstream\n');
  if (parts[0] === 'status' && parts.length === 2) {
    const code = Number(parts[1]);
    if (!Number.isInteger(code) || code < 200 || code > 599) return text(400, `bad status ${parts[1]}\n`);
    if (code === 204 || code === 304) {
      res.writeHead(code);
      return res.end();
    }
    return text(code, `status ${code}\n`);
  }
  if ((parts[0] === 'bytes' || parts[0] === 'chunked') && parts.length === 2) {
    const n = sizeParam(parts[1]);
    if (n === null) return text(400, `bad size ${parts[1]}\n`);
    const withLength = parts[0] === 'bytes';
    res.writeHead(200, withLength ? { 'content-type': 'application/octet-stream', 'content-length': n } : { 'content-type': 'application/octet-stream' });
    // /bytes: pieces of a whole number of pattern units, so the body is exactly pattern(n) without holding it all.
    const piece = pattern(Math.min(n, withLength ? 37 * 443 : 16384));
    let left = n;
    const pump = () => {
      while (left > 0) {
        const chunk = left >= piece.length ? piece : piece.subarray(0, left);
        left -= chunk.length;
        if (!res.write(chunk)) return res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  if (url.pathname === '/echo') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, {
        'content-type': req.headers['content-type'] ?? 'application/octet-stream',
        'content-length': body.length,
      });
      res.end(body);
    });
    return;
  }
  if (url.pathname === '/ws') return text(426, 'use an HTTP/1.1 WebSocket upgrade\n');
  return text(404, 'not found\n');
}

// Minimal RFC 6455 server side: accept the upgrade, then echo data frames (unmasked from server), answer pings.
function upgradeWebSocket(req, socket, head) {
  const key = req.headers['sec-websocket-key'];
  if (new URL(req.url ?? '/', 'https://x').pathname !== '/ws' || typeof key !== 'string') {
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
  );
  let buf = head && head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
  const send = (opcode, payload) => {
    const len = payload.length;
    const header =
      len < 126
        ? Buffer.from([0x80 | opcode, len])
        : len < 65536
          ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff])
          : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(len)]);
    socket.write(Buffer.concat([header, payload]));
  };
  const parse = () => {
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0] & 0x0f;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        offset = 10;
      }
      const maskOffset = offset;
      if (masked) offset += 4;
      if (buf.length < offset + len) return;
      const payload = Buffer.from(buf.subarray(offset, offset + len));
      if (masked) for (let i = 0; i < len; i += 1) payload[i] ^= buf[maskOffset + (i % 4)];
      buf = buf.subarray(offset + len);
      if (opcode === 0x8) {
        send(0x8, payload.subarray(0, 2));
        socket.end();
        return;
      }
      if (opcode === 0x9) send(0xa, payload);
      else if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) send(opcode, payload);
    }
  };
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    parse();
  });
  socket.on('error', () => socket.destroy());
  parse();
}

function bigLength(len) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(len));
  return b;
}

async function main() {
  let listeners;
  try {
    listeners = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`upstream-server: ${err.message}`);
    process.exit(2);
  }
  const servers = [];
  for (const l of listeners) {
    const server = http2.createSecureServer({ cert: l.cert, key: l.key, allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'] });
    let label = `${l.host}:${l.port}`;
    server.on('request', (req, res) => {
      try {
        handle(label, req, res);
      } catch (err) {
        console.error(`upstream-server: ${label} ${req.url}: ${err.message}`);
        res.destroy();
      }
    });
    server.on('upgrade', upgradeWebSocket);
    server.on('sessionError', () => {});
    server.on('tlsClientError', () => {});
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(l.port, l.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    label = `${l.host.includes(':') ? `[${l.host}]` : l.host}:${addr.port}`;
    servers.push(server);
    process.stdout.write(`listening ${label}\n`);
  }
  const stop = () => {
    for (const s of servers) s.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`upstream-server: ${err.message}`);
  process.exit(1);
});
