// Kill Prometheus during traffic through the real running agent, restart it, nothing missing. Real parts: our own
// network namespaces (epag-mr-*, 198.18.206.0/24) with a real nft REDIRECT and owner-match exclusion (AgentLab from
// test/agent/support.ts), the agent as uid 65534 with interception and remote-write on, the lab upstream server (h1 +
// h2), curl and node clients over TLS, and Debian's Prometheus started by the test inside the proxy namespace with
// --web.enable-remote-write-receiver. Prometheus is SIGKILLed by PID while requests flow, restarted on the same
// storage, and then: PromQL returns exactly the expected request counts by server, route, status and protocol; every
// batch the agent spooled during the outage is in Prometheus with the same timestamp and values; and Prometheus holds
// exactly as many samples as batches the agent sent, with nothing dropped, rejected or left in the spool.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeWriteRequest } from '../../agent/src/export/remote-write';
import { AgentLab, metricValue, skipReason } from '../agent/support';
import { type Counts, PrometheusProcess, prometheusBin, sleep, sortKeys, until } from './prometheus-support';

const PROM_PORT = 19090;
const API = 'api.epag.test';
const H2 = 'h2.epag.test';
const NODE = 'node.epag.test';
const skip = skipReason(['ip', 'nft', 'curl', 'openssl']) ?? (prometheusBin ? undefined : 'prometheus binary not installed (apt-get install prometheus)');

/** A node https client in the proxy namespace: `count` POST /echo on one keep-alive connection, `gapMs` apart. */
function nodeClientScript(ip: string, count: number, gapMs: number): string {
  return `const https = require('https');
const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
const one = (i) => new Promise((res, rej) => {
  const req = https.request({ host: '${ip}', servername: '${NODE}', path: '/echo', method: 'POST', agent, headers: { host: '${NODE}' } }, (r) => {
    let n = 0; r.on('data', (d) => (n += d.length)); r.on('end', () => res(r.statusCode + ' ' + r.httpVersion + ' ' + n));
  });
  req.on('error', rej);
  req.end('payload ' + i);
});
(async () => {
  console.log('started');
  for (let i = 0; i < ${count}; i++) { console.log(await one(i)); await new Promise((r) => setTimeout(r, ${gapMs})); }
  agent.destroy();
})().catch((e) => { console.log('error ' + e.message); process.exitCode = 1; });`;
}

const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));

describe('real agent + real Prometheus: killed during traffic and restarted, every spooled sample arrives', { skip, timeout: 240_000 }, () => {
  const lab = new AgentLab({
    prefix: 'epag-mr',
    subnet: 206,
    hosts: [API, H2, NODE],
    config: {
      observe: { enabled: true, routeRules: [], maxRoutesPerServer: 50 },
      metrics: { remoteWrite: { url: `http://127.0.0.1:${PROM_PORT}/api/v1/write`, intervalSeconds: 1, maxSpoolBytes: 50_000_000 } },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'epag-mr-prom-'));
  let prom: PrometheusProcess;
  const expected: Counts = {};
  const add = (key: string, n: number) => {
    expected[key] = (expected[key] ?? 0) + n;
  };
  const same = (c: Counts) => JSON.stringify(sortKeys(c)) === JSON.stringify(sortKeys(expected));
  const curl = (host: string, flag: string, path: string) =>
    lab.curl(host, lab.upstreamIp, [flag, '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `https://${host}${path}`]);

  before(async () => {
    await lab.start();
    prom = new PrometheusProcess(dir, PROM_PORT, lab.px);
    prom.writeConfig(`127.0.0.1:${lab.healthPort}`);
    await prom.start();
  });

  after(async () => {
    await prom?.kill();
    await lab.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('known curl (h1, h2) and node traffic: remote-write and scrape show exact counts by route and status', async () => {
    const plan: [host: string, flag: string, path: string, status: string, key: string][] = [
      [API, '--http1.1', '/status/200', '200 1.1', `${API} GET /status/{id} 200 1.1`],
      [API, '--http1.1', '/status/200', '200 1.1', `${API} GET /status/{id} 200 1.1`],
      [API, '--http1.1', '/status/200', '200 1.1', `${API} GET /status/{id} 200 1.1`],
      [API, '--http1.1', '/status/503', '503 1.1', `${API} GET /status/{id} 503 1.1`],
      [API, '--http1.1', '/chunked/20000', '200 1.1', `${API} GET /chunked/{id} 200 1.1`],
      [API, '--http1.1', '/chunked/20000', '200 1.1', `${API} GET /chunked/{id} 200 1.1`],
      [API, '--http1.1', '/nope/x?secret=1', '404 1.1', `${API} GET /nope/x 404 1.1`],
      [H2, '--http2', '/bytes/1000', '200 2', `${H2} GET /bytes/{id} 200 2`],
      [H2, '--http2', '/bytes/1000', '200 2', `${H2} GET /bytes/{id} 200 2`],
      [H2, '--http2', '/status/404', '404 2', `${H2} GET /status/{id} 404 2`],
    ];
    for (const [host, flag, path, status, key] of plan) {
      const r = curl(host, flag, path);
      assert.equal(`${r.code} ${r.stdout}`, `0 ${status}`, `${host}${path}: ${r.stderr}`);
      add(key, 1);
    }
    const node = lab.ns.exec(lab.px, [process.execPath, '-e', nodeClientScript(lab.upstreamIp, 3, 0)], { env: { NODE_EXTRA_CA_CERTS: lab.pki.agentCaCert } });
    assert.deepEqual(node.stdout.trim().split('\n'), ['started', '200 1.1 9', '200 1.1 9', '200 1.1 9'], node.stderr);
    add(`${NODE} POST /echo 200 1.1`, 3);

    for (const job of ['epoch-agent', 'epoch-scrape']) {
      const got = await until(() => prom.exchangeCounts(job), same);
      assert.deepEqual(sortKeys(got), sortKeys(expected), `${job}; agent log: ${lab.agentOutput().slice(-1500)}`);
    }
    assert.deepEqual(await prom.query('count({http_route=~".*secret.*"})'), []);
  });

  it('Prometheus SIGKILLed by PID during traffic and restarted: exact counts, every spooled batch stored, none missing', async () => {
    const killedPid = prom.pid;
    assert.ok(killedPid);
    // Two clients run concurrently in the proxy namespace while Prometheus is killed: a curl loop (a new TLS
    // connection per request, h1 and h2) and a node client holding one keep-alive connection across the outage.
    const ROUNDS = 12;
    const loop = await lab.ns.spawn(lab.px, ['sh', '-c', `echo started; for i in $(seq 1 ${ROUNDS}); do
  curl -sS --max-time 10 --cacert ${lab.pki.agentCaCert} --resolve ${API}:443:${lab.upstreamIp} --http1.1 -o /dev/null -w '%{http_code} %{http_version}\\n' https://${API}/status/200
  curl -sS --max-time 10 --cacert ${lab.pki.agentCaCert} --resolve ${H2}:443:${lab.upstreamIp} --http2 -o /dev/null -w '%{http_code} %{http_version}\\n' https://${H2}/chunked/5000
  sleep 0.3
done; echo done`], /started/);
    const NODE_N = 10;
    const nodeClient = await lab.ns.spawn(lab.px, [process.execPath, '-e', nodeClientScript(lab.upstreamIp, NODE_N, 400)], /started/, { NODE_EXTRA_CA_CERTS: lab.pki.agentCaCert });
    const loopDone = exited(loop.proc);
    const nodeDone = exited(nodeClient.proc);
    // Kill once some of the traffic has gone through.
    for (let i = 0; i < 100 && (loop.output().match(/^200 /gm)?.length ?? 0) < 4; i++) await sleep(100);
    const countBeforeKill = loop.output().match(/^200 /gm)?.length ?? 0;
    await prom.kill();
    assert.throws(() => process.kill(killedPid!, 0), 'the Prometheus PID is gone');
    await Promise.all([loopDone, nodeDone]);
    assert.deepEqual(loop.output().trim().split('\n'), ['started', ...Array.from({ length: ROUNDS }, () => ['200 1.1', '200 2']).flat(), 'done']);
    assert.deepEqual(nodeClient.output().trim().split('\n'), ['started', ...Array.from({ length: NODE_N }, () => '200 1.1 9')]);
    assert.ok(countBeforeKill < 2 * ROUNDS, `the kill happened during the traffic (${countBeforeKill} of ${2 * ROUNDS} requests done)`);
    add(`${API} GET /status/{id} 200 1.1`, ROUNDS);
    add(`${H2} GET /chunked/{id} 200 2`, ROUNDS);
    add(`${NODE} POST /echo 200 1.1`, NODE_N);
    await sleep(2500); // the agent keeps snapshotting into its spool while the collector is down

    // What the agent holds in its spool right now (ready-to-POST batches, written before any send attempt).
    const spoolDir = join(lab.stateDir, 'remote-write-spool');
    const files = readdirSync(spoolDir).filter((f) => f.endsWith('.rw')).sort();
    assert.ok(files.length >= 3, `the spool holds batches while Prometheus is down: ${files.join(' ')}`);
    const spooled = files.map((f) => decodeWriteRequest(readFileSync(join(spoolDir, f))));
    const key = (labels: { name: string; value: string }[]) => labels.filter((l) => l.name !== '__name__').map((l) => `${l.name}=${l.value}`).sort().join(',');
    const want: { series: string; ts: number; value: number }[] = [];
    for (const batch of spooled) {
      for (const ts of batch) {
        if (ts.labels.find((l) => l.name === '__name__')?.value !== 'epoch_agent_http_client_requests_total') continue;
        want.push({ series: key(ts.labels), ts: ts.samples[0]!.timestamp, value: ts.samples[0]!.value });
      }
    }
    const apiValues = want.filter((w) => w.series.includes(`server_address=${API}`) && w.series.includes('http_response_status_class=2xx')).map((w) => w.value);
    assert.ok(Math.max(...apiValues) > Math.min(...apiValues), `spooled batches carry traffic counted during the outage: ${apiValues.join(',')}`);
    const m0 = lab.metrics();
    assert.ok(metricValue(m0, 'epoch_agent_remote_write_spool_bytes')! > 0);
    assert.ok(metricValue(m0, 'epoch_agent_remote_write_failures_total')! > 0);

    await prom.start();
    assert.notEqual(prom.pid, killedPid);
    for (const job of ['epoch-agent', 'epoch-scrape']) {
      const got = await until(() => prom.exchangeCounts(job), same, 60_000);
      assert.deepEqual(sortKeys(got), sortKeys(expected), job);
    }
    const classes = await prom.query(`sum by (server_address, http_response_status_class) (epoch_agent_http_client_requests_total{job="epoch-agent"})`);
    assert.deepEqual(sortKeys(Object.fromEntries(classes.map((r) => [`${r.metric.server_address} ${r.metric.http_response_status_class}`, Number(r.value[1])]))),
      sortKeys({ [`${API} 2xx`]: 17, [`${API} 4xx`]: 1, [`${API} 5xx`]: 1, [`${H2} 2xx`]: 14, [`${H2} 4xx`]: 1, [`${NODE} 2xx`]: 13 }));

    // Every batch that was in the spool is in Prometheus: same series, same timestamp, same value.
    const stored = new Map<string, number>();
    for (const s of await prom.queryRaw('epoch_agent_http_client_requests_total{job="epoch-agent"}[30m]')) {
      const labels = Object.entries(s.metric).filter(([n]) => n !== '__name__').map(([n, v]) => ({ name: n, value: v }));
      for (const [t, v] of s.values) stored.set(`${key(labels)}@${Math.round(t * 1000)}`, Number(v));
    }
    const missing = want.filter((w) => stored.get(`${w.series}@${w.ts}`) !== w.value);
    assert.deepEqual(missing, [], `${want.length} spooled samples from ${files.length} batches, all stored`);

    // None missing overall: Prometheus holds one sample per batch the agent sent (read when both are stable), and the
    // agent dropped, rejected and still holds nothing.
    let sent = -1;
    let count = -2;
    for (let i = 0; i < 50; i++) {
      const before = metricValue(lab.metrics(), 'epoch_agent_remote_write_batches_sent_total')!;
      const c = Number((await prom.query('count_over_time(epoch_agent_connections_active{job="epoch-agent"}[1h])'))[0]?.value[1]);
      const m = lab.metrics();
      // Stable: no batch acknowledged meanwhile and none waiting (a batch stored but not yet acknowledged retries).
      if (metricValue(m, 'epoch_agent_remote_write_batches_sent_total') === before && metricValue(m, 'epoch_agent_remote_write_spool_bytes') === 0) {
        sent = before;
        count = c;
        if (sent === count) break;
      }
      await sleep(200);
    }
    assert.equal(count, sent, 'samples stored = batches sent');
    const m1 = lab.metrics();
    assert.equal(metricValue(m1, 'epoch_agent_remote_write_samples_dropped_total'), 0);
    assert.equal(metricValue(m1, 'epoch_agent_remote_write_samples_rejected_total'), 0);
    assert.ok(sent >= files.length);
    console.log(`spooled during the outage: ${files.length} batches (${want.length} request-count samples); batches sent ${sent}, stored ${count}`);
  });
});
