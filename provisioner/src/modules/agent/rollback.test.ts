import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planRollbackFrom } from './rollback';

test('rollback swaps current and previous, then restarts; nothing is pruned', () => {
  const plan = planRollbackFrom({ current: '0.2.0', previous: '0.1.0', releases: ['0.2.0', '0.1.0', '0.0.9', '0.0.8'], targetSums: {} });
  assert.equal(plan.from, '0.2.0');
  assert.equal(plan.to, '0.1.0');
  assert.deepEqual(plan.changes.map((c) => c.id), ['link:/opt/epoch-agent/current', 'restart:epoch-agent.service']);
  assert.equal(plan.changes[0]!.diff!.after, 'current -> 0.1.0\nprevious -> 0.2.0\n');
  const restart = plan.changes[1]!.steps[0]!;
  assert.ok(restart.kind === 'run' && restart.argv.slice(-3).join(' ') === 'epoch-agent.service /etc/systemd/system/epoch-agent.service /opt/epoch-agent/libexec/epoch-agent-supervise.sh');
});

test('rollback without a previous release is a clear error', () => {
  assert.throws(() => planRollbackFrom({ current: '0.2.0', previous: null, releases: ['0.2.0'], targetSums: {} }), {
    message: 'cannot roll back the agent: no previous release (current is 0.2.0, releases: 0.2.0)',
  });
  assert.throws(() => planRollbackFrom({ current: '0.2.0', previous: '0.1.0', releases: ['0.2.0'], targetSums: {} }), /previous points at 0\.1\.0, which is no longer on the host/);
});
