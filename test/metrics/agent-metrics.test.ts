// The real agent (in-process, real TLS interception with a forged cert, ALPN mirrored) with the observation
// pipeline attached through createObservationSink: real Prometheus scrapes the agent's own /metrics on its
// health listener and receives remote-write. The original destination is injected (no netfilter needed here;
// test/agent covers REDIRECT), everything else is real: node https and http2 clients trusting the agent CA, an
// upstream serving h2 and HTTP/1.1 with a cert from a test root. Loopback only.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import type { AgentConfig } from '../../contracts/agent-config';
import { createObservationSink, stopObservation } from '../../agent/src/export/attach';
import { Agent } from '../../agent/src/io/agent';
import { Logger } from '../../agent/src/log/logger';
import { PrometheusProcess, freePort, prometheusBin, sortKeys, until } from './prometheus-support';

const repo = resolve(new URL('.', import.meta.url).pathname, '../..');

function makePki(dir: string): { root: string; leafCert: string; leafKey: string; agentCaCert: string; agentCaKey: string } {
  const o = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const root = join(dir, 'root.pem');
  const rootKey = join(dir, 'root.key');
  o('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', rootKey, '-out', root, '-days', '2',
    '-subj', '/CN=epoch metrics test root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const leafKey = join(dir, 'leaf.key');
  const leafCert = join(dir, 'leaf.pem');
  const csr = join(dir, 'leaf.csr');
  const ext = join(dir, 'leaf.ext');
  writeFileSync(ext, 'subjectAltName=DNS:api.metrics.test,DNS:h2.metrics.test\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  o('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', leafKey, '-out', csr, '-subj', '/CN=api.metrics.test');
  o('x509', '-req', '-in', csr, '-CA', root, '-CAkey', rootKey, '-CAcreateserial', '-out', leafCert, '-days', '2', '-extfile', ext);
  const agentCaCert = join(dir, 'agent-ca.pem');
  const agentCaKey = join(dir, 'agent-ca.key');
  execFileSync(process.execPath, ['--import', 'tsx', join(repo, 'agent/src/main.ts'), 'ca', 'init', '--cert-out', agentCaCert, '--key-out', agentCaKey,
    '--name', 'epoch metrics test agent CA', '--days', '2'], { cwd: repo, stdio: 'pipe' });
  return { root, leafCert, leafKey, agentCaCert, agentCaKey };
}

function h1Get(port: number, agent: https.Agent, servername: string, path: string, method = 'GET'): Promise<number> {
  return new Promise((resolveP, reject) => {
    const req = https.request({ host: '127.0.0.1', port, servername, path, method, agent, headers: { host: servername } }, (res) => {
      res.resume();
      res.on('end', () => resolveP(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? 'payload' : undefined);
  });
}

function h2Get(session: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolveP, reject) => {
    const req = session.request({ ':path': path });
    let status = 0;
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.resume();
    req.on('close', () => resolveP(status));
    req.on('error', reject);
  });
}

test('real agent: its /metrics (scraped) and remote-write report exact counts for intercepted h1 and h2 traffic', {
  skip: prometheusBin ? false : 'prometheus binary not installed (apt-get install prometheus)',
  timeout: 180_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-agent-metrics-'));
  const cleanups: (() => unknown)[] = [];
  let prom: PrometheusProcess | null = null;
  try {
    const pki = makePki(dir);
    const upstream = http2.createSecureServer({ cert: readFileSync(pki.leafCert), key: readFileSync(pki.leafKey), allowHTTP1: true });
    upstream.on('request', (req, res) => {
      req.resume();
      req.on('end', () => {
        const path = req.url ?? '/';
        res.writeHead(path.startsWith('/missing') ? 404 : req.method === 'POST' ? 201 : 200, { 'content-type': 'text/plain' });
        if (path.startsWith('/chunked') && req.httpVersion === '1.1') res.write('first part, ');
        res.end('body');
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    cleanups.push(() => upstream.close());
    const upstreamPort = (upstream.address() as AddressInfo).port;

    const promPort = await freePort();
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
    const config: AgentConfig = {
      listen: [{ host: '127.0.0.1', port: 0 }],
      health: { host: '127.0.0.1', port: 0 },
      ca: { certFile: pki.agentCaCert, keyFile: pki.agentCaKey },
      upstream: { verify: true, caBundleFile: pki.root, onVerifyFailure: 'refuse', connectTimeoutMs: 3000 },
      limits: { maxConnections: 100, handshakeTimeoutMs: 5000, idleTimeoutMs: 30_000 },
      passthrough: { static: [], learned: { enabled: false, maxEntries: 10, ttlSeconds: 60 } },
      observe: { enabled: true, routeRules: [], maxRoutesPerServer: 3 },
      metrics: { remoteWrite: { url: `http://127.0.0.1:${promPort}/api/v1/write`, intervalSeconds: 1, maxSpoolBytes: 10_000_000 } },
      log: { level: 'error', connectLog: false },
      stateDir,
    };
    const log = new Logger('error', () => {});
    const agent = new Agent({ config, version: 'test', log, originalDestination: () => ({ address: '127.0.0.1', port: upstreamPort, family: 4 }) });
    agent.setSink(createObservationSink(config, agent, log));
    await agent.start();
    cleanups.push(() => agent.drain(1000));
    const agentPort = agent.bound[0]!.port;
    const healthPort = agent.healthAddress!.port;

    prom = new PrometheusProcess(dir, promPort);
    prom.writeConfig(`127.0.0.1:${healthPort}`);
    await prom.start();

    // HTTP/1.1 over one keep-alive connection, SNI api.metrics.test.
    const ca = readFileSync(pki.agentCaCert);
    const h1Agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    cleanups.push(() => h1Agent.destroy());
    for (let i = 0; i < 4; i++) assert.equal(await h1Get(agentPort, h1Agent, 'api.metrics.test', `/users/${i}?secret=${i}`), 200);
    assert.equal(await h1Get(agentPort, h1Agent, 'api.metrics.test', '/orders', 'POST'), 201);
    assert.equal(await h1Get(agentPort, h1Agent, 'api.metrics.test', '/missing/9'), 404);
    assert.equal(await h1Get(agentPort, h1Agent, 'api.metrics.test', '/chunked/x'), 200); // 4th route: {overflow}
    // h2, SNI h2.metrics.test: ALPN h2 is mirrored, so the h2 observer sees it.
    const session = http2.connect(`https://h2.metrics.test:${agentPort}`, { ca, servername: 'h2.metrics.test', host: '127.0.0.1', lookup: (_h, _o, cb) => cb(null, '127.0.0.1', 4) } as http2.SecureClientSessionOptions);
    cleanups.push(() => session.close());
    for (let i = 0; i < 3; i++) assert.equal(await h2Get(session, `/items/${i}`), 200);
    assert.equal(await h2Get(session, '/missing/x'), 404);

    const expected = sortKeys({
      'api.metrics.test GET /users/{id} 200 1.1': 4,
      'api.metrics.test POST /orders 201 1.1': 1,
      'api.metrics.test GET /missing/{id} 404 1.1': 1,
      'api.metrics.test GET {overflow} 200 1.1': 1,
      'h2.metrics.test GET /items/{id} 200 2': 3,
      'h2.metrics.test GET /missing/x 404 2': 1,
    });
    for (const job of ['epoch-scrape', 'epoch-agent']) {
      const got = await until(() => prom!.exchangeCounts(job), (c) => JSON.stringify(sortKeys(c)) === JSON.stringify(expected));
      assert.deepEqual(sortKeys(got), expected, job);
    }
    const intercepted = await prom.query('epoch_agent_connections_intercepted_total{job="epoch-scrape"}');
    assert.equal(Number(intercepted[0]!.value[1]), 2);
    const overflow = await prom.query('epoch_agent_observe_route_overflow_total{job="epoch-scrape"}');
    assert.equal(Number(overflow[0]!.value[1]), 1);
    const tls = await prom.query('sum by (tls_protocol_version) (epoch_agent_tls_handshake_duration_seconds_count{job="epoch-scrape"})');
    assert.deepEqual(tls.map((r) => [r.metric.tls_protocol_version, r.value[1]]), [['1.3', '2']]);
    assert.deepEqual(await prom.query('count({http_route=~".*secret.*"})'), []);
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // already closed
      }
    }
    await stopObservation();
    await prom?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
