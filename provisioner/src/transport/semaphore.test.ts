import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Semaphore } from './semaphore';

test('never more than the limit at once, even with callers arriving as slots free up', async () => {
  const s = new Semaphore(2);
  let active = 0;
  let peak = 0;
  const work = async (ms: number) => {
    active += 1;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, ms));
    active -= 1;
  };
  const first = Array.from({ length: 5 }, (_, i) => s.run(() => work(5 + i)));
  await new Promise((r) => setTimeout(r, 6));
  const late = Array.from({ length: 3 }, () => s.run(() => work(1)));
  await Promise.all([...first, ...late]);
  assert.equal(peak, 2);
});

test('a failing task releases its slot', async () => {
  const s = new Semaphore(1);
  await assert.rejects(s.run(async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await s.run(async () => 'next'), 'next');
  assert.throws(() => new Semaphore(0), /got 0/);
});
