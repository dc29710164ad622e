import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchSizes, serialValueToCount, splitBatches } from './batching';
import { budgetBreach } from './failure-budget';

test('no serial: one batch of every host', () => {
  assert.deepEqual(batchSizes([], 7), [7]);
  assert.deepEqual(batchSizes([0], 7), [7]);
  assert.deepEqual(batchSizes([], 0), []);
});

test('an int: fixed-size batches, the last one smaller', () => {
  assert.deepEqual(batchSizes([3], 10), [3, 3, 3, 1]);
  assert.deepEqual(batchSizes([20], 5), [5]);
});

test('percentages floor against ALL hosts, never below 1', () => {
  assert.equal(serialValueToCount('10%', 25), 2);
  assert.equal(serialValueToCount('10%', 9), 1, '0.9 floors to 0, raised to the minimum 1');
  assert.equal(serialValueToCount('33%', 10), 3);
  assert.equal(serialValueToCount('100%', 10), 10);
  assert.deepEqual(batchSizes(['30%'], 10), [3, 3, 3, 1]);
  assert.deepEqual(batchSizes(['1%'], 5), [1, 1, 1, 1, 1]);
});

test('a list: [1, "10%", "50%", "100%"] over 20 hosts; the last value repeats', () => {
  assert.deepEqual(batchSizes([1, '10%', '50%', '100%'], 20), [1, 2, 10, 7]);
  assert.deepEqual(batchSizes([1, 2], 8), [1, 2, 2, 2, 1]);
  assert.deepEqual(batchSizes([1, '25%'], 4), [1, 1, 1, 1]);
  assert.deepEqual(splitBatches(['a', 'b', 'c', 'd', 'e'], [1, '40%']), [['a'], ['b', 'c'], ['d', 'e']]);
});

test('bad serial values are rejected with the value', () => {
  assert.throws(() => serialValueToCount('ten', 5), /"ten"/);
  assert.throws(() => serialValueToCount(-1, 5), /got -1/);
});

test('max_fail_percentage must be EXCEEDED: with 4 hosts, 2 failures need 49, not 50', () => {
  const tally = { batchSize: 4, batchFailed: 2, totalHosts: 4, cumulativeFailed: 2 };
  assert.equal(budgetBreach({ maxFailPercentage: 50 }, tally), null);
  assert.match(budgetBreach({ maxFailPercentage: 49 }, tally) ?? '', /2 of 4 host\(s\) in the batch failed \(50%\), exceeding max_fail_percentage 49%/);
  assert.equal(budgetBreach({ maxFailPercentage: 0 }, { ...tally, batchFailed: 0, cumulativeFailed: 0 }), null, '0% with no failure goes on');
  assert.notEqual(budgetBreach({ maxFailPercentage: 0 }, { ...tally, batchFailed: 1 }), null);
});

test('without max_fail_percentage only a fully failed batch halts (Ansible default)', () => {
  assert.equal(budgetBreach({}, { batchSize: 3, batchFailed: 2, totalHosts: 9, cumulativeFailed: 2 }), null);
  assert.match(budgetBreach({}, { batchSize: 1, batchFailed: 1, totalHosts: 9, cumulativeFailed: 1 }) ?? '', /every host in the batch failed/);
});

test('the cumulative budget catches failures that stay under the per-batch limit (gl-infra/delivery#951)', () => {
  const budget = { maxFailPercentage: 20, maxTotalFailPercentage: 10 };
  // 100 hosts in batches of 10, one failure per batch: each batch is at 10% (<= 20%).
  const after = (batches: number) => budgetBreach(budget, { batchSize: 10, batchFailed: 1, totalHosts: 100, cumulativeFailed: batches });
  for (let b = 1; b <= 10; b++) assert.equal(after(b), null, `batch ${b}: 10% of the fleet is not exceeded`);
  assert.match(after(11) ?? '', /11 of 100 host\(s\) failed so far \(11%\), exceeding the cumulative budget/);
});

test('cumulative budget of 0: the first failure anywhere halts; none never does', () => {
  assert.notEqual(budgetBreach({ maxTotalFailPercentage: 0 }, { batchSize: 10, batchFailed: 1, totalHosts: 50, cumulativeFailed: 1 }), null);
  assert.equal(budgetBreach({ maxTotalFailPercentage: 0 }, { batchSize: 10, batchFailed: 0, totalHosts: 50, cumulativeFailed: 0 }), null);
});
