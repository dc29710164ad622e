// Observation overhead on a TLS relay: the same relay (TLS terminate → TLS to upstream → pipe both ways, as the
// agent does) with observation off and on, measured in the same run, alternating. Workloads: 1 MB Content-Length
// bodies, 1 MB chunked bodies (16 KB chunks), and small keep-alive requests. Reported: relay CPU-seconds (the
// reliable figure on a shared 2-core box) and client throughput (noisy). Loopback only.
//   node --import tsx bench/observe-bench.ts [--reps 3] [--json out.json] [--only cl|chunked|small] [--framer-only]
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { AgentCounters } from '../agent/src/observe/agent-counters';
import { Aggregator } from '../agent/src/observe/aggregator';
import { AggregatingSink } from '../agent/src/observe/sink';

const role = process.env.OBSERVE_BENCH_ROLE;
const MB = 1024 * 1024;

function tlsOptions(dir: string): { key: Buffer; cert: Buffer } {
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
}

async function runUpstream(dir: string): Promise<void> {
  const big = Buffer.alloc(MB, 0x61);
  const chunk = big.subarray(0, 16 * 1024);
  const server = https.createServer({ ...tlsOptions(dir) }, (req, res) => {
    req.resume();
    if (req.url === '/cl') {
      res.writeHead(200, { 'Content-Length': String(big.length) });
      res.end(big);
    } else if (req.url === '/chunked') {
      res.writeHead(200, { 'Transfer-Encoding': 'chunked' });
      for (let i = 0; i < MB / chunk.length; i++) res.write(chunk);
      res.end();
    } else {
      res.writeHead(200, { 'Content-Length': '100' });
      res.end(big.subarray(0, 100));
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.send!({ port: (server.address() as net.AddressInfo).port });
}

async function runRelay(dir: string, upstreamPort: number): Promise<void> {
  const secureContext = tls.createSecureContext(tlsOptions(dir));
  let observe: boolean | 'noop' = false;
  const noop = { onClientData() {}, onServerData() {}, onClose() {} };
  const aggregator = new Aggregator({ maxRoutesPerServer: 100 });
  const sink = new AggregatingSink(aggregator, new AgentCounters());
  const server = net.createServer((raw) => {
    const client = new tls.TLSSocket(raw, { isServer: true, secureContext });
    const up = tls.connect({ host: '127.0.0.1', port: upstreamPort, rejectUnauthorized: false });
    if (observe) {
      const obs = observe === 'noop' ? noop : sink.openConnection({ serverAddress: 'bench.test', serverPort: 443, alpn: 'http/1.1', tlsProtocol: 'TLSv1.3', handshakeMs: 1 });
      if (obs) {
        client.on('data', (c: Buffer) => obs.onClientData(c, performance.now()));
        up.on('data', (c: Buffer) => obs.onServerData(c, performance.now()));
        client.on('close', () => obs.onClose(performance.now()));
      }
    }
    client.pipe(up);
    up.pipe(client);
    const close = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', close);
    up.on('error', close);
    client.on('close', close);
    up.on('close', close);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.on('message', (m: { observe?: boolean | 'noop'; cpu?: boolean; exchanges?: boolean; exit?: boolean }) => {
    if (m.exit) {
      process.exit(0); // lets --cpu-prof write its profile
    } else if (m.observe !== undefined) {
      observe = m.observe;
      process.send!({ ok: true });
    } else if (m.cpu) {
      const u = process.cpuUsage();
      process.send!({ cpuMs: (u.user + u.system) / 1000 });
    } else if (m.exchanges) {
      let n = 0;
      for (const s of aggregator.duration.series.values()) n += s.value.count;
      process.send!({ exchanges: n });
    }
  });
  process.send!({ port: (server.address() as net.AddressInfo).port });
}

function ask<T>(child: ChildProcess, msg: object): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send(msg);
  });
}

async function workload(port: number, path: string, requests: number, connections: number): Promise<number> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: connections, rejectUnauthorized: false });
  let bytes = 0;
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.on('data', (c: Buffer) => {
          bytes += c.length;
        });
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject);
    });
  await Promise.all(Array.from({ length: connections }, async () => {
    while (next++ < requests) await one();
  }));
  agent.destroy();
  return bytes;
}

/** CPU cost of the observers alone (no sockets), on in-memory streams fed in 16 KB slices: deterministic. */
function framerCost(): { name: string; value: string }[] {
  const sink = new AggregatingSink(new Aggregator({ maxRoutesPerServer: 100 }), new AgentCounters());
  const info = { serverAddress: 'bench.test', serverPort: 443, alpn: 'http/1.1', tlsProtocol: 'TLSv1.3', handshakeMs: 1 };
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const body = Buffer.alloc(MB, 0x61);
  const chunkedParts: Buffer[] = [];
  for (let i = 0; i < MB / 16384; i++) chunkedParts.push(Buffer.from('4000\r\n'), body.subarray(0, 16384), Buffer.from('\r\n'));
  chunkedParts.push(Buffer.from('0\r\n\r\n'));
  const streams = {
    cl: Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n'), body]),
    chunked: Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n'), ...chunkedParts]),
  };
  const request = Buffer.from('GET /api/v1/items/12345?page=2 HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n');
  const out: { name: string; value: string }[] = [];
  for (const [name, response] of Object.entries(streams)) {
    const messages = 200;
    const t0 = cpu();
    const obs = sink.openConnection(info)!;
    for (let m = 0; m < messages; m++) {
      obs.onClientData(request, 0);
      for (let p = 0; p < response.length; p += 16384) obs.onServerData(response.subarray(p, p + 16384), 1);
    }
    obs.onClose(2);
    const ms = cpu() - t0;
    out.push({ name: `framer, 1 MB ${name} responses in 16 KB slices`, value: `${((ms / (messages * response.length)) * 1024 ** 3).toFixed(0)} CPU-ms/GB` });
  }
  // HTTP/2: HEADERS (HPACK, static-table and literal fields) then 1 MB of 16 KB DATA frames per stream.
  const frame = (type: number, flags: number, id: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(id, 5);
    return Buffer.concat([h, payload]);
  };
  const streams2 = 200;
  const clientH2: Buffer[] = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))];
  const serverStream: Buffer[] = [];
  for (let i = 0; i < MB / 16384; i++) serverStream.push(frame(0, i === MB / 16384 - 1 ? 1 : 0, 1, body.subarray(0, 16384)));
  const serverData = Buffer.concat(serverStream);
  const h2 = sink.openConnection({ ...info, alpn: 'h2' })!;
  h2.onServerData(frame(4, 0, 0, Buffer.alloc(0)), 0);
  h2.onClientData(Buffer.concat(clientH2), 0);
  const t2 = cpu();
  for (let k = 0; k < streams2; k++) {
    const id = 1 + 2 * k;
    const reqBlock = Buffer.from([0x82, 0x87, 0x04, 0x0d, ...Buffer.from('/api/items/42'), 0x41, 0x0a, ...Buffer.from('bench.test')]);
    h2.onClientData(frame(1, 0x5, id, reqBlock), 0);
    h2.onServerData(frame(1, 0x4, id, Buffer.from([0x88])), 1);
    // Same DATA frames, renumbered to this stream.
    for (let p = 0; p < serverData.length; p += 16384 + 9) serverData.writeUInt32BE(id, p + 5);
    for (let p = 0; p < serverData.length; p += 16384) h2.onServerData(serverData.subarray(p, p + 16384), 2);
  }
  const h2ms = cpu() - t2;
  out.push({ name: 'h2 framer, 1 MB responses as 16 KB DATA frames, fed in 16 KB slices', value: `${((h2ms / (streams2 * serverData.length)) * 1024 ** 3).toFixed(0)} CPU-ms/GB` });

  const small = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\nDate: Wed, 25 Nov 2026 02:00:00 GMT\r\nServer: nginx\r\n\r\n' + 'x'.repeat(100));
  const n = 200_000;
  const obs = sink.openConnection(info)!;
  const t0 = cpu();
  for (let i = 0; i < n; i++) {
    obs.onClientData(request, i);
    obs.onServerData(small, i + 0.5);
  }
  const ms = cpu() - t0;
  out.push({ name: 'framer + aggregation, small keep-alive exchange', value: `${((ms * 1000) / n).toFixed(2)} CPU-µs per exchange` });
  return out;
}

async function main(): Promise<void> {
  const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 3;
  const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
  if (process.argv.includes('--framer-only')) {
    for (const f of framerCost()) console.log(`- ${f.name}: ${f.value}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'epoch-observe-bench-'));
  const children: ChildProcess[] = [];
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost',
      '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const start = (r: string, extra: Record<string, string> = {}) => {
      const child = fork(new URL(import.meta.url).pathname, [], {
        env: { ...process.env, OBSERVE_BENCH_ROLE: r, OBSERVE_BENCH_DIR: dir, ...extra },
        execArgv: ['--import', 'tsx', ...(r === 'relay' && process.env.OBSERVE_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.OBSERVE_BENCH_PROFILE}`] : [])],
      });
      children.push(child);
      return child;
    };
    const upstream = start('upstream');
    const { port: upstreamPort } = (await once(upstream, 'message'))[0] as { port: number };
    const relay = start('relay', { OBSERVE_BENCH_UPSTREAM: String(upstreamPort) });
    const { port } = (await once(relay, 'message'))[0] as { port: number };

    const workloads = [
      { name: '1 MB Content-Length bodies', path: '/cl', requests: 400, connections: 4 },
      { name: '1 MB chunked bodies (16 KB chunks)', path: '/chunked', requests: 400, connections: 4 },
      { name: 'small keep-alive requests', path: '/small', requests: 8000, connections: 16 },
    ];
    const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]! : '';
    if (only) workloads.splice(0, workloads.length, ...workloads.filter((w) => w.path === `/${only}`));
    // `--noop` adds a third mode: the relay calls an observer that does nothing (the cost of the hook itself).
    const modes = process.argv.includes('--noop') ? ['off', 'noop', 'on'] : ['off', 'on'];
    await workload(port, '/small', 500, 4); // warm-up
    const results: { workload: string; mode: string; cpuMs: number[]; throughput: number[]; unit: string }[] = [];
    for (const w of workloads) {
      for (const mode of modes) results.push({ workload: w.name, mode, cpuMs: [], throughput: [], unit: w.path === '/small' ? 'req/s' : 'MB/s' });
      for (let rep = 0; rep < reps; rep++) {
        for (const mode of rep % 2 === 0 ? modes : [...modes].reverse()) {
          await ask(relay, { observe: mode === 'on' ? true : mode === 'noop' ? 'noop' : false });
          const cpu0 = (await ask<{ cpuMs: number }>(relay, { cpu: true })).cpuMs;
          const t0 = performance.now();
          const bytes = await workload(port, w.path, w.requests, w.connections);
          const seconds = (performance.now() - t0) / 1000;
          const cpu1 = (await ask<{ cpuMs: number }>(relay, { cpu: true })).cpuMs;
          const r = results.find((x) => x.workload === w.name && x.mode === mode)!;
          r.cpuMs.push(cpu1 - cpu0);
          r.throughput.push(w.path === '/small' ? w.requests / seconds : bytes / MB / seconds);
        }
      }
    }
    const { exchanges } = await ask<{ exchanges: number }>(relay, { exchanges: true });
    const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    console.log(`node ${process.version}, ${reps} alternating repetitions, medians; relay CPU = user+system of the relay process`);
    console.log('| workload | observation | relay CPU-s | throughput | CPU vs off | throughput vs off |');
    console.log('|---|---|---:|---:|---:|---:|');
    for (const w of workloads) {
      const off = results.find((x) => x.workload === w.name && x.mode === 'off')!;
      for (const r of results.filter((x) => x.workload === w.name)) {
        const cpu = r === off ? '' : `${((median(r.cpuMs) / median(off.cpuMs) - 1) * 100).toFixed(1)}%`;
        const tput = r === off ? '' : `${((median(r.throughput) / median(off.throughput) - 1) * 100).toFixed(1)}%`;
        console.log(`| ${w.name} | ${r.mode} | ${(median(r.cpuMs) / 1000).toFixed(2)} | ${median(r.throughput).toFixed(0)} ${r.unit} | ${cpu} | ${tput} |`);
      }
    }
    console.log(`exchanges observed with observation on: ${exchanges}`);
    const framer = framerCost();
    console.log('\nObservers alone (no sockets, deterministic):');
    for (const f of framer) console.log(`- ${f.name}: ${f.value}`);
    if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ node: process.version, reps, results, exchanges, framer }, null, 2)}\n`);
  } finally {
    for (const c of children) {
      if (c.connected) c.send({ exit: true });
      await Promise.race([once(c, 'exit'), new Promise((r) => setTimeout(r, 2000))]);
      c.kill();
      if (c.exitCode === null && c.signalCode === null) await once(c, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

// A child whose parent went away (killed, or its stdout pipe closed) exits instead of lingering.
if (role) process.on('disconnect', () => process.exit(0));
if (role === 'upstream') void runUpstream(process.env.OBSERVE_BENCH_DIR!);
else if (role === 'relay') void runRelay(process.env.OBSERVE_BENCH_DIR!, Number(process.env.OBSERVE_BENCH_UPSTREAM));
else await main();
