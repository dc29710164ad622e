import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentCounters } from './agent-counters';
import { Aggregator, newExchangeMemo, overflowLabel } from './aggregator';
import type { ExchangeRecord } from './exchange';
import type { ConnectionInfo } from './observer';
import { AggregatingSink } from './sink';

const info = (serverAddress: string): ConnectionInfo => ({ serverAddress, serverPort: 443, alpn: 'http/1.1', tlsProtocol: 'TLSv1.3', handshakeMs: 3 });
const rec = (target: string, status = 200, ms = 20): ExchangeRecord => ({
  method: 'GET', target, status, protocolVersion: '1.1', requestStart: 0, responseStart: ms / 2, end: ms, requestBodyBytes: 0, responseBodyBytes: 500,
});

test('exchanges aggregate by templated route, status and method; histograms count and sum', () => {
  const a = new Aggregator({ maxRoutesPerServer: 10 });
  a.recordExchange(info('api.test'), rec('/users/1?secret=x'));
  a.recordExchange(info('api.test'), rec('/users/2', 200, 300));
  a.recordExchange(info('api.test'), rec('/users/3', 503));
  const series = [...a.duration.series.values()];
  assert.equal(series.length, 2);
  const ok = series.find((s) => s.labels[3] === '200')!;
  assert.deepEqual(ok.labels, ['api.test', '443', 'GET', '200', '/users/{id}', '1.1']);
  assert.equal(ok.value.count, 2);
  assert.ok(Math.abs(ok.value.sum - 0.32) < 1e-9);
  const classes = Object.fromEntries([...a.requestsByClass.series.values()].map((s) => [s.labels[1], s.value]));
  assert.deepEqual(classes, { '2xx': 2, '5xx': 1 });
  // No label anywhere holds the raw query.
  for (const f of a.families()) for (const s of f.series.values()) assert.ok(!s.labels.some((l) => l.includes('secret')));
});

test('distinct routes per server are capped; the rest go to {overflow} and are counted', () => {
  const a = new Aggregator({ maxRoutesPerServer: 3 });
  for (const name of ['a', 'b', 'c', 'd', 'e', 'a']) a.recordExchange(info('s.test'), rec(`/${name}`));
  a.recordExchange(info('other.test'), rec('/d'));
  const routes = new Set([...a.duration.series.values()].filter((s) => s.labels[0] === 's.test').map((s) => s.labels[4]));
  assert.deepEqual([...routes].sort(), ['/a', '/b', '/c', overflowLabel].sort());
  assert.equal([...a.overflowed.series.values()][0]!.value, 2);
  assert.ok([...a.duration.series.values()].some((s) => s.labels[0] === 'other.test' && s.labels[4] === '/d'));
});

test('the number of servers is capped too', () => {
  const a = new Aggregator({ maxRoutesPerServer: 3, maxServers: 2 });
  for (const s of ['x', 'y', 'z', 'w']) a.recordExchange(info(s), rec('/'));
  assert.deepEqual([...new Set([...a.duration.series.values()].map((s) => s.labels[0]))].sort(), ['x', 'y', overflowLabel].sort());
});

test('the total number of exchange series is capped; the excess folds into {overflow} server and route', () => {
  const a = new Aggregator({ maxRoutesPerServer: 100, maxExchangeSeries: 4 });
  for (const s of ['a', 'b', 'c', 'd', 'e', 'f']) a.recordExchange(info(s), rec('/x'));
  a.recordExchange(info('g'), rec('/y', 500));
  const keys = [...a.duration.series.values()].map((s) => `${s.labels[0]} ${s.labels[4]} ${s.labels[3]}`).sort();
  assert.deepEqual(keys, ['a /x 200', 'b /x 200', 'c /x 200', 'd /x 200', `${overflowLabel} ${overflowLabel} 200`, `${overflowLabel} ${overflowLabel} 500`].sort());
  const overflowCount = [...a.duration.series.values()].find((s) => s.labels[0] === overflowLabel && s.labels[3] === '200')!.value.count;
  assert.equal(overflowCount, 2);
});

test('the per-connection memo (keep-alive repeats) gives exactly the series and counts of recording without it', () => {
  // Small caps so route, server and series overflows all happen; a seeded walk over repeated and new exchange shapes.
  const options = { maxRoutesPerServer: 3, maxServers: 3, maxExchangeSeries: 6 };
  const plain = new Aggregator(options);
  const memoised = new Aggregator(options);
  let seed = 7;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const connections = Array.from({ length: 5 }, (_, k) => ({ info: info(`s${k % 4}`), memo: newExchangeMemo() }));
  let last = rec('/a');
  for (let i = 0; i < 2000; i++) {
    const c = connections[next(connections.length)]!;
    // Mostly repeats of the previous shape (keep-alive), sometimes a new target, status or method.
    if (next(3) === 0) last = { ...rec(`/p${next(8)}`, [200, 404, 503][next(3)], next(50)), method: ['GET', 'POST', 'BREW'][next(3)]! };
    const r = { ...last, end: next(100) };
    plain.recordExchange(c.info, r);
    memoised.recordExchange(c.info, r, c.memo);
  }
  const dump = (a: Aggregator) => a.families().map((f) => [f.name, [...f.series.entries()].map(([k, s]) => [k, JSON.stringify(s.value)])]);
  assert.deepEqual(dump(memoised), dump(plain));
  assert.ok([...plain.overflowed.series.values()].reduce((n, s) => n + s.value, 0) > 0, 'the walk reached the overflow paths');
});

test('the sink counts fatal parse errors in AgentCounters and picks the framer by ALPN', () => {
  const a = new Aggregator({ maxRoutesPerServer: 10 });
  const counters = new AgentCounters();
  const sink = new AggregatingSink(a, counters);
  assert.equal(sink.openConnection({ ...info('x'), alpn: 'acme-tls/1' }), null);
  const h1 = sink.openConnection(info('x'))!;
  h1.onClientData(Buffer.from('GET /no-version\r\n\r\n'), 0);
  assert.equal(counters.get('observe_parse_errors'), 1);
  const h2 = sink.openConnection({ ...info('y'), alpn: 'h2' })!;
  h2.onClientData(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 0);
  assert.equal(counters.get('observe_parse_errors'), 2);
  // No ALPN: h2 prior knowledge is recognised from the preface, even split.
  const sniff = sink.openConnection({ ...info('z'), alpn: null })!;
  sniff.onClientData(Buffer.from('PRI * HTTP/2.0\r\n'), 0);
  sniff.onClientData(Buffer.from('\r\nSM\r\n\r\n'), 0);
  assert.equal(counters.get('observe_parse_errors'), 2);
  const errors = Object.fromEntries([...a.errors.series.values()].map((s) => [s.labels.join(' '), s.value]));
  assert.deepEqual(errors, { 'x malformed_request': 1, 'y h2_protocol': 1 });
  // One handshake observation per observed connection.
  assert.equal([...a.handshake.series.values()].reduce((n, s) => n + s.value.count, 0), 3);
});
