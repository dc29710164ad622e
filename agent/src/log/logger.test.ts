import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectLog, LogThrottle, Logger } from './logger';

test('JSON lines, level filtering, child fields', () => {
  const lines: string[] = [];
  const log = new Logger('info', (l) => lines.push(l)).child({ component: 'x' });
  log.debug('hidden');
  log.warn('shown', { n: 1 });
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]!);
  assert.deepEqual([o.level, o.msg, o.component, o.n], ['warn', 'shown', 'x', 1]);
  const c: string[] = [];
  new ConnectLog(false, (l) => c.push(l)).record({ a: 1 });
  assert.equal(c.length, 0);
});

test('throttle: one line per key per interval, bounded keys', () => {
  const t = new LogThrottle(1000, 2);
  assert.equal(t.allow('a', 0), true);
  assert.equal(t.allow('a', 500), false);
  assert.equal(t.allow('a', 1500), true);
  t.allow('b', 1500);
  t.allow('c', 1500);
  assert.equal(t.allow('a', 1600), true); // 'a' was evicted as the oldest key
});
