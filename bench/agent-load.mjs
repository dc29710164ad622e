#!/usr/bin/env node
// Load generator for bench/agent-bench.ts (plain JS so it runs under any node inside the bench namespace).
// Prints one JSON line with the result. Modes:
//   keepalive HOST SNI SECONDS CONNS [PATH] small keep-alive GETs (PATH, default /status/200) over CONNS connections
//   newconns  HOST SNI SECONDS CONCURRENCY  one TLS connection per request (no client session reuse)
//   bulk      HOST SNI BYTES                one large download (/chunked/BYTES)
//   bulkcl    HOST SNI BYTES                one large download with content-length (/bytes/BYTES)
//   bulkfor   HOST SNI SECONDS [chunked|bytes]  one download stopped after SECONDS (a rate over a fixed time)
//   first     SNI IP[,IP...]                one fresh connection per IP, then a second round; latencies in ms
//   hold      HOST SNI COUNT                open COUNT keep-alive connections (one request each) and hold them
// Trust: the CA files in BENCH_CA (colon-separated).
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';

const ca = (process.env.BENCH_CA ?? '').split(':').filter(Boolean).map((f) => readFileSync(f));
const [mode, ...args] = process.argv.slice(2);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : null;
};
const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000);

function request(agent, host, sni, path) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host, servername: sni, path, agent, headers: { host: sni }, ca }, (res) => {
      let n = 0;
      res.on('data', (d) => (n += d.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function oneConnection(host, sni) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = tls.connect({ host, port: 443, servername: sni, ca, ALPNProtocols: ['http/1.1'] }, () => {
      s.write(`GET /status/200 HTTP/1.1\r\nhost: ${sni}\r\nconnection: close\r\n\r\n`);
    });
    s.on('data', () => {});
    s.on('end', () => resolve(performance.now() - t0));
    s.on('error', reject);
  });
}

async function keepalive(host, sni, seconds, conns, path = '/status/200') {
  const agent = new https.Agent({ keepAlive: true, maxSockets: conns });
  const lat = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          await request(agent, host, sni, path);
          lat.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  agent.destroy();
  return { requests: lat.length, perSecond: round(lat.length / seconds), p50ms: round(pct(lat, 50)), p99ms: round(pct(lat, 99)), errors };
}

async function newconns(host, sni, seconds, concurrency) {
  const lat = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        try {
          lat.push(await oneConnection(host, sni));
        } catch {
          errors++;
        }
      }
    }),
  );
  return { connections: lat.length, perSecond: round(lat.length / seconds), p50ms: round(pct(lat, 50)), errors };
}

async function bulk(host, sni, bytes, kind = 'chunked') {
  const agent = new https.Agent({ keepAlive: false });
  const t0 = performance.now();
  const n = await request(agent, host, sni, `/${kind}/${bytes}`);
  const s = (performance.now() - t0) / 1000;
  return { bytes: n, seconds: round(s), MBps: round(n / s / 1e6) };
}

/** Downloads for `seconds` (from a body far larger than that) and stops: a bulk rate over a fixed time. */
function bulkFor(host, sni, seconds, kind) {
  const agent = new https.Agent({ keepAlive: false });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let n = 0;
    // 1 GiB is the lab server's largest body; whichever comes first, the end or the time, ends the measurement.
    const req = https.get({ host, servername: sni, path: `/${kind}/1073741824`, agent, headers: { host: sni }, ca }, (res) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const s = (performance.now() - t0) / 1000;
        req.destroy();
        resolve({ bytes: n, seconds: round(s), MBps: round(n / s / 1e6) });
      };
      const timer = setTimeout(finish, seconds * 1000);
      res.on('data', (d) => (n += d.length));
      res.on('end', finish);
      res.on('error', () => {});
    });
    req.on('error', (e) => (n === 0 ? reject(e) : undefined));
  });
}

async function first(sni, ips) {
  const round1 = [];
  const round2 = [];
  for (const ip of ips) round1.push(await oneConnection(ip, sni));
  for (const ip of ips) round2.push(await oneConnection(ip, sni));
  return { firstMs: round1.map(round), secondMs: round2.map(round), firstP50: round(pct(round1, 50)), secondP50: round(pct(round2, 50)) };
}

async function hold(host, sni, count) {
  const sockets = [];
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, () =>
        new Promise((resolve, reject) => {
          const s = tls.connect({ host, port: 443, servername: sni, ca, ALPNProtocols: ['http/1.1'] }, () => {
            s.write(`GET /status/200 HTTP/1.1\r\nhost: ${sni}\r\n\r\n`);
          });
          s.once('data', () => resolve());
          s.on('error', reject);
          sockets.push(s);
        }),
      ),
    );
  }
  console.log(JSON.stringify({ held: sockets.length }));
  await new Promise((r) => process.once('SIGTERM', r));
  for (const s of sockets) s.destroy();
  return null;
}

const run = {
  keepalive: () => keepalive(args[0], args[1], Number(args[2]), Number(args[3]), args[4]),
  newconns: () => newconns(args[0], args[1], Number(args[2]), Number(args[3])),
  bulk: () => bulk(args[0], args[1], Number(args[2])),
  bulkcl: () => bulk(args[0], args[1], Number(args[2]), 'bytes'),
  bulkfor: () => bulkFor(args[0], args[1], Number(args[2]), args[3] ?? 'chunked'),
  first: () => first(args[0], args[1].split(',')),
  hold: () => hold(args[0], args[1], Number(args[2])),
}[mode];
if (!run) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
const result = await run();
if (result) console.log(JSON.stringify(result));
process.exit(0);
