// Real Prometheus (Debian's package, run as a child process on loopback with a temp config and storage dir)
// scrapes the pipeline's /metrics and receives its remote-write. Known HTTP/1.1 and h2 traffic (real node
// clients and servers, the plaintext bytes tapped into the observers as the relay does) must show up with
// exact counts, status codes and routes. Then Prometheus is killed during traffic and restarted on the same
// storage: every spooled batch arrives, none missing.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ObservationPipeline } from '../../agent/src/export/pipeline';
import { metricsContentType } from '../../agent/src/export/prometheus-text';
import { AgentCounters } from '../../agent/src/observe/agent-counters';
import type { ObservationSink } from '../../agent/src/observe/observer';
import { type Counts, PrometheusProcess, freePort, prometheusBin, sleep, sortKeys, until } from './prometheus-support';

/** A loopback TCP tap that relays bytes unchanged and hands them to the sink, as the agent's relay does. */
async function tap(upstreamPort: number, sink: ObservationSink, serverAddress: string, alpn: string): Promise<net.Server> {
  const server = net.createServer((down) => {
    const up = net.connect(upstreamPort, '127.0.0.1');
    const obs = sink.openConnection({ serverAddress, serverPort: 443, alpn, tlsProtocol: 'TLSv1.3', handshakeMs: 1.5 });
    down.on('data', (c: Buffer) => {
      obs?.onClientData(c, performance.now());
      up.write(c);
    });
    up.on('data', (c: Buffer) => {
      obs?.onServerData(c, performance.now());
      down.write(c);
    });
    let closed = false;
    const close = () => {
      if (!closed) obs?.onClose(performance.now());
      closed = true;
      up.destroy();
      down.destroy();
    };
    down.on('close', close);
    up.on('close', close);
    down.on('error', () => {});
    up.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function h1Request(port: number, agent: http.Agent, method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function h2Request(session: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path });
    let status = 0;
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.resume();
    req.on('close', () => resolve(status));
    req.on('error', reject);
  });
}

test('real Prometheus: scrape and remote-write show exact counts; a killed collector loses nothing within the spool', {
  skip: prometheusBin ? false : 'prometheus binary not installed (apt-get install prometheus)',
  timeout: 180_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-metrics-'));
  const promPort = await freePort();
  const prom = new PrometheusProcess(dir, promPort);
  const counters = new AgentCounters();
  const pipeline = new ObservationPipeline({
    stateDir: join(dir, 'agent-state'),
    observe: { enabled: true, routeRules: [{ match: '^/orders/[^/]+/lines', replace: '/orders/{order}/lines' }], maxRoutesPerServer: 50 },
    metrics: { remoteWrite: { url: `http://127.0.0.1:${promPort}/api/v1/write`, intervalSeconds: 1, maxSpoolBytes: 50_000_000 } },
  }, counters, { initialBackoffMs: 200, maxBackoffMs: 1000, remoteWriteLabels: { job: 'epoch-rw', instance: 'test-host' } });
  const closers: (() => unknown)[] = [];
  try {
    // The /metrics endpoint, as the agent's health server exposes it.
    const metricsServer = http.createServer((req, res) => {
      if (req.url !== '/metrics') return res.writeHead(404).end();
      res.writeHead(200, { 'Content-Type': metricsContentType }).end(pipeline.renderMetrics());
    });
    metricsServer.listen(0, '127.0.0.1');
    await once(metricsServer, 'listening');
    closers.push(() => metricsServer.close());
    const metricsPort = (metricsServer.address() as net.AddressInfo).port;
    prom.writeConfig(`127.0.0.1:${metricsPort}`);

    // Upstreams: HTTP/1.1 and h2 (cleartext on loopback: the observers see the same plaintext after TLS).
    const h1Upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const url = req.url ?? '/';
        const status = url.startsWith('/missing') ? 404 : req.method === 'POST' ? 201 : 200;
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        if (url.startsWith('/chunked')) {
          res.write('chunked part one, ');
          res.end('part two');
        } else {
          res.end('hello');
        }
      });
    });
    h1Upstream.listen(0, '127.0.0.1');
    await once(h1Upstream, 'listening');
    closers.push(() => h1Upstream.close());
    const h2Upstream = http2.createServer();
    h2Upstream.on('stream', (stream, headers) => {
      const fail = String(headers[':path']).startsWith('/h2/fail');
      stream.respond({ ':status': fail ? 503 : 200 });
      stream.end('h2 body');
    });
    h2Upstream.listen(0, '127.0.0.1');
    await once(h2Upstream, 'listening');
    closers.push(() => h2Upstream.close());
    const h1Tap = await tap((h1Upstream.address() as net.AddressInfo).port, pipeline.sink, 'api.example.test', 'http/1.1');
    const h2Tap = await tap((h2Upstream.address() as net.AddressInfo).port, pipeline.sink, 'h2.example.test', 'h2');
    closers.push(() => h1Tap.close(), () => h2Tap.close());
    const h1Port = (h1Tap.address() as net.AddressInfo).port;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    closers.push(() => agent.destroy());
    const session = http2.connect(`http://127.0.0.1:${(h2Tap.address() as net.AddressInfo).port}`);
    closers.push(() => session.close());

    await prom.start();
    await pipeline.start();

    // Phase 1: known traffic.
    for (let i = 0; i < 5; i++) assert.equal(await h1Request(h1Port, agent, 'GET', `/users/${1000 + i}?session=secret${i}`), 200);
    for (let i = 0; i < 3; i++) assert.equal(await h1Request(h1Port, agent, 'POST', '/orders', `{"n":${i}}`), 201);
    for (let i = 0; i < 2; i++) assert.equal(await h1Request(h1Port, agent, 'GET', `/missing/3f2504e0-4f89-11d3-9a0c-0305e82c330${i}`), 404);
    assert.equal(await h1Request(h1Port, agent, 'GET', '/orders/ABC-77/lines'), 200);
    for (let i = 0; i < 2; i++) assert.equal(await h1Request(h1Port, agent, 'GET', '/chunked/stream'), 200);
    for (let i = 0; i < 4; i++) assert.equal(await h2Request(session, `/h2/items/${i}?q=x`), 200);
    assert.equal(await h2Request(session, '/h2/fail'), 503);

    const expected1: Counts = {
      'api.example.test GET /users/{id} 200 1.1': 5,
      'api.example.test POST /orders 201 1.1': 3,
      'api.example.test GET /missing/{id} 404 1.1': 2,
      'api.example.test GET /orders/{order}/lines 200 1.1': 1,
      'api.example.test GET /chunked/stream 200 1.1': 2,
      'h2.example.test GET /h2/items/{id} 200 2': 4,
      'h2.example.test GET /h2/fail 503 2': 1,
    };
    for (const job of ['epoch-scrape', 'epoch-rw']) {
      const got = await until(() => prom.exchangeCounts(job), (c) => JSON.stringify(sortKeys(c)) === JSON.stringify(sortKeys(expected1)));
      assert.deepEqual(sortKeys(got), sortKeys(expected1), job);
    }
    const classes = await prom.query('sum by (http_response_status_class) (epoch_agent_http_client_requests_total{job="epoch-scrape"})');
    assert.deepEqual(Object.fromEntries(classes.map((r) => [r.metric.http_response_status_class, Number(r.value[1])])), { '2xx': 15, '4xx': 2, '5xx': 1 });
    // No raw query string reached Prometheus.
    assert.deepEqual(await prom.query('count({http_route=~".*(\\\\?|secret|session).*"})'), []);

    // Phase 2: kill Prometheus while traffic flows (10 requests spread over ~4 s, the kill after the first ones);
    // the pipeline keeps snapshotting into the spool while it is down.
    const traffic = (async () => {
      for (let i = 0; i < 6; i++) {
        assert.equal(await h1Request(h1Port, agent, 'GET', `/users/${2000 + i}`), 200);
        if (i < 4) assert.equal(await h2Request(session, `/h2/items/${10 + i}`), 200);
        await sleep(700);
      }
    })();
    await sleep(1000);
    await prom.kill();
    await traffic;
    await sleep(1500); // snapshots after the last request pile up too
    assert.ok(pipeline.spool!.length >= 2, `spool holds batches while the collector is down (${pipeline.spool!.length})`);
    await prom.start();
    assert.ok(await pipeline.drained(30_000), 'the spool drains after the restart');
    await pipeline.collect();
    assert.ok(await pipeline.drained(10_000));

    const expected2 = { ...expected1, 'api.example.test GET /users/{id} 200 1.1': 11, 'h2.example.test GET /h2/items/{id} 200 2': 8 };
    for (const job of ['epoch-rw', 'epoch-scrape']) {
      const got2 = await until(() => prom.exchangeCounts(job), (c) => JSON.stringify(sortKeys(c)) === JSON.stringify(sortKeys(expected2)));
      assert.deepEqual(sortKeys(got2), sortKeys(expected2), job);
    }
    // None missing: Prometheus holds exactly one sample per batch the pipeline sent, including every spooled one.
    // Stopped first: the interval timer would otherwise send a batch between reading `sent` and the query.
    await pipeline.stop();
    assert.equal(pipeline.spool!.length, 0, 'the last snapshot was flushed on stop');
    const text = pipeline.renderMetrics();
    const sent = Number(/epoch_agent_remote_write_batches_sent_total (\d+)/.exec(text)![1]);
    assert.match(text, /epoch_agent_remote_write_samples_dropped_total 0\n/);
    assert.match(text, /epoch_agent_remote_write_samples_rejected_total 0\n/);
    assert.doesNotMatch(text, /epoch_agent_remote_write_failures_total 0\n/);
    const storedCount = () => prom.query('count_over_time(epoch_agent_connections_active{job="epoch-rw"}[1h])');
    const stored = await until(storedCount, (r) => Number(r[0]?.value[1]) === sent, 10_000);
    assert.equal(Number(stored[0]!.value[1]), sent);
    console.log(`batches sent ${sent}, stored ${stored[0]!.value[1]}`);
  } finally {
    await pipeline.stop().catch(() => {});
    await prom.kill();
    for (const c of closers.reverse()) {
      try {
        c();
      } catch {
        // already closed
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
