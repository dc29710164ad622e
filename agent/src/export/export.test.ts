import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chownSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AgentCounters } from '../observe/agent-counters';
import { Aggregator } from '../observe/aggregator';
import type { ConnectionInfo } from '../observe/observer';
import { AggregatingSink } from '../observe/sink';
import { ObservationPipeline, type PipelineConfig } from './pipeline';
import { renderMetrics } from './prometheus-text';
import { type TimeSeries, decodeWriteRequest, encodeWriteRequest, toTimeSeries } from './remote-write';
import { collectFamilies } from './samples';
import { Spool } from './spool';

const info: ConnectionInfo = { serverAddress: 'api.test', serverPort: 443, alpn: 'http/1.1', tlsProtocol: 'TLSv1.3', handshakeMs: 2 };

function traffic(a: Aggregator): void {
  const o = new AggregatingSink(a, new AgentCounters()).openConnection(info)!;
  o.onClientData(Buffer.from('GET /users/17?token=abc HTTP/1.1\r\n\r\nGET /users/18 HTTP/1.1\r\n\r\n'), 0);
  o.onServerData(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'), 30);
  o.onClose(31);
}

test('text exposition: semconv names and labels, histogram buckets cumulative, agent counters, escaping', () => {
  const a = new Aggregator({ maxRoutesPerServer: 10 });
  traffic(a);
  const counters = new AgentCounters();
  counters.inc('loop_refused', 2);
  counters.activeConnections = 4;
  counters.learnedPassthroughEntries = () => 3;
  const text = renderMetrics(a, counters);
  const labels = 'server_address="api.test",server_port="443",http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",network_protocol_version="1.1"';
  assert.match(text, /# TYPE http_client_request_duration_seconds histogram/);
  assert.ok(text.includes(`http_client_request_duration_seconds_bucket{${labels},le="0.025"} 0\n`));
  assert.ok(text.includes(`http_client_request_duration_seconds_bucket{${labels},le="0.05"} 1\n`));
  assert.ok(text.includes(`http_client_request_duration_seconds_bucket{${labels},le="+Inf"} 1\n`));
  assert.ok(text.includes(`http_client_request_duration_seconds_count{${labels}} 1\n`));
  assert.ok(text.includes(`http_client_response_body_size_bytes_sum{${labels}} 2\n`));
  assert.ok(text.includes('epoch_agent_http_client_requests_total{server_address="api.test",http_response_status_class="4xx"} 1\n'));
  assert.ok(text.includes('epoch_agent_loop_refused_total 2\n'));
  assert.ok(text.includes('epoch_agent_connections_active 4\n'));
  assert.ok(text.includes('# TYPE epoch_agent_passthrough_learned_entries gauge\nepoch_agent_passthrough_learned_entries 3\n'));
  assert.ok(!text.includes('token'), 'the raw query never appears');
  // Every sample line parses as `name{labels} value`.
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('#')) continue;
    assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? \S+$/, line);
  }
  const weird = new Aggregator({ maxRoutesPerServer: 10 });
  weird.recordError({ ...info, serverAddress: 'a"b\\c' }, 'incomplete');
  assert.ok(renderMetrics(weird, counters).includes('server_address="a\\"b\\\\c"'));
});

test('remote-write: WriteRequest round-trips through protobuf + snappy; labels sorted, __name__ included', () => {
  const a = new Aggregator({ maxRoutesPerServer: 10 });
  traffic(a);
  const series = toTimeSeries(collectFamilies(a, new AgentCounters()), 1_700_000_000_123, { job: 'epoch-agent', instance: 'h1' });
  const body = encodeWriteRequest(series);
  const back = decodeWriteRequest(body);
  assert.equal(back.length, series.length);
  assert.deepEqual(back[0], series[0]);
  for (const ts of back) {
    const names = ts.labels.map((l) => l.name);
    assert.deepEqual(names, [...names].sort());
    assert.ok(names.includes('__name__') && names.includes('job'));
    assert.equal(ts.samples[0]!.timestamp, 1_700_000_000_123);
  }
  const count = back.find((t: TimeSeries) => t.labels.some((l) => l.value === 'http_client_request_duration_seconds_count') && t.labels.some((l) => l.value === '404'));
  assert.ok(count);
  assert.equal(count.samples[0]!.value, 1);
});

test('spool: bounded in bytes, oldest dropped and counted, survives reopening, ignores torn writes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-spool-'));
  try {
    const s = new Spool(dir, 1000);
    await s.open();
    for (let i = 0; i < 5; i++) await s.add(Buffer.alloc(300, i), 10 + i);
    assert.equal(s.length, 3);
    assert.equal(s.bytes, 900);
    assert.equal(s.droppedBatches, 2);
    assert.equal(s.droppedSamples, 21);
    await s.add(Buffer.alloc(2000), 99); // larger than the bound: dropped at once
    assert.equal(s.droppedSamples, 120);
    const reopened = new Spool(dir, 1000);
    await reopened.open();
    assert.equal(reopened.length, 3);
    assert.equal((await reopened.read(reopened.oldest()!))[0], 2);
    await reopened.remove(reopened.oldest()!);
    assert.equal(reopened.pendingSamples, 13 + 14);
    await reopened.add(Buffer.alloc(10), 1);
    assert.deepEqual(readdirSync(dir).sort(), ['0000000000000004-13.rw', '0000000000000005-14.rw', '0000000000000006-1.rw']);
    assert.throws(() => new Spool(dir, 0), /maxSpoolBytes must be > 0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spool opened as root inside a state dir owned by the agent user belongs to that user', {
  skip: process.getuid?.() === 0 ? false : 'needs root (chown)',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-spool-owner-'));
  try {
    chownSync(dir, 65534, 65534);
    const s = new Spool(join(dir, 'remote-write-spool'), 1000);
    await s.open();
    const st = statSync(join(dir, 'remote-write-spool'));
    assert.equal(st.uid, 65534);
    assert.equal(st.mode & 0o777, 0o700);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function config(stateDir: string, url: string, maxSpoolBytes = 10_000_000): PipelineConfig {
  return {
    stateDir,
    observe: { enabled: true, routeRules: [], maxRoutesPerServer: 100 },
    metrics: { remoteWrite: { url, intervalSeconds: 3600, maxSpoolBytes, headers: { 'X-Scope-OrgID': 'tenant-1' } } },
  };
}

test('pipeline: a collector that fails then recovers gets every spooled batch in order, with the right headers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-pipeline-'));
  const received: { ts: TimeSeries[]; headers: http.IncomingHttpHeaders }[] = [];
  let failuresLeft = 3;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (failuresLeft-- > 0) {
        res.writeHead(503).end('down');
        return;
      }
      received.push({ ts: decodeWriteRequest(Buffer.concat(chunks)), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`;
  const counters = new AgentCounters();
  const p = new ObservationPipeline(config(dir, url), counters, { initialBackoffMs: 20, maxBackoffMs: 100, remoteWriteLabels: { job: 't' } });
  try {
    await p.start();
    const conn = p.sink.openConnection(info)!;
    for (let i = 0; i < 4; i++) {
      conn.onClientData(Buffer.from(`GET /item/${i} HTTP/1.1\r\n\r\n`), i);
      conn.onServerData(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), i + 1);
      await p.collect();
    }
    assert.ok(await p.drained(5000), 'spool drained');
    assert.equal(received.length, 4);
    const h = received[0]!.headers;
    assert.equal(h['content-encoding'], 'snappy');
    assert.equal(h['content-type'], 'application/x-protobuf');
    assert.equal(h['x-prometheus-remote-write-version'], '0.1.0');
    assert.equal(h['x-scope-orgid'], 'tenant-1');
    // Batches arrive oldest first: the request counter goes 1, 2, 3, 4.
    const counts = received.map(({ ts }) => ts.find((t) => t.labels.some((l) => l.value === 'epoch_agent_http_client_requests_total'))!.samples[0]!.value);
    assert.deepEqual(counts, [1, 2, 3, 4]);
    assert.match(p.renderMetrics(), /epoch_agent_remote_write_failures_total 3\n/);
    assert.match(p.renderMetrics(), /epoch_agent_remote_write_batches_sent_total 4\n/);
  } finally {
    await p.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pipeline: a 400 from the collector drops the batch (not retried forever); disabled observe gives no observers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-pipeline-'));
  const statuses = [400, 200];
  const p = new ObservationPipeline(config(dir, 'http://127.0.0.1:9/unused'), new AgentCounters(), {
    send: async () => ({ status: statuses.shift() ?? 200 }),
  });
  try {
    await p.start();
    await p.collect();
    await p.collect();
    assert.ok(await p.drained(2000));
    assert.match(p.renderMetrics(), /epoch_agent_remote_write_batches_sent_total 1\n/);
    assert.doesNotMatch(p.renderMetrics(), /epoch_agent_remote_write_samples_rejected_total 0\n/);
  } finally {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const off = new ObservationPipeline({ ...config(dir, ''), observe: { enabled: false, routeRules: [], maxRoutesPerServer: 1 }, metrics: {} }, new AgentCounters());
  assert.equal(off.sink.openConnection(info), null);
  await off.start();
  await off.stop();
});

test('pipeline: batches spooled while the collector is down survive an agent restart and are sent by the next run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-pipeline-'));
  const sent: number[] = [];
  try {
    const down = new ObservationPipeline(config(dir, 'http://127.0.0.1:9/unused'), new AgentCounters(), {
      initialBackoffMs: 60_000,
      send: async () => ({ status: 0, error: 'connection refused' }),
    });
    await down.start();
    for (let i = 0; i < 3; i++) await down.collect();
    await down.stop(); // adds a last snapshot; in backoff, so it does not try to send
    assert.equal(down.spool!.length, 4);
    const up = new ObservationPipeline(config(dir, 'http://127.0.0.1:9/unused'), new AgentCounters(), {
      send: async (_url, body) => {
        sent.push(decodeWriteRequest(body).length);
        return { status: 200 };
      },
    });
    await up.start();
    assert.ok(await up.drained(5000));
    assert.equal(sent.length, 4);
    await up.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
