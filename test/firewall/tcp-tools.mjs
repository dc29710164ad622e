#!/usr/bin/env node
// Stand-ins for the firewall tests (no TLS needed to prove where a connection lands):
//   serve NAME PORT [HEALTH_PORT]   answers every TCP connection on [::]:PORT (dual stack) with "NAME\n"; with
//                                   HEALTH_PORT also serves GET /healthz {"ready":true} on 127.0.0.1 (the agent's health);
//                                   env HEALTH_DELAY_MS: answers 503 {"ready":false} for that long after the start
//   connect HOST PORT               prints the first line the server sends, or "error <code>"; exits within 3 s
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'serve') {
  createServer((s) => { s.on('error', () => {}); s.end(`${a}\n`); }).listen({ port: Number(b), host: '::' });
  if (c) {
    const readyAt = Date.now() + Number(process.env.HEALTH_DELAY_MS ?? 0);
    createHttpServer((req, res) => {
      const ready = req.url === '/healthz' && Date.now() >= readyAt;
      res.statusCode = ready ? 200 : 503;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ready, version: 'stand-in', pid: process.pid }));
    }).listen({ port: Number(c), host: '127.0.0.1' });
  }
} else if (mode === 'connect') {
  const timer = setTimeout(() => { console.log('error timeout'); process.exit(0); }, 3000);
  const s = connect({ host: a, port: Number(b) });
  let buf = '';
  s.on('data', (d) => { buf += d; if (buf.includes('\n')) { console.log(buf.split('\n')[0]); clearTimeout(timer); s.destroy(); } });
  s.on('error', (e) => { console.log(`error ${e.code}`); clearTimeout(timer); });
} else {
  console.error('usage: tcp-tools.mjs serve NAME PORT [HEALTH_PORT] | connect HOST PORT');
  process.exit(2);
}
