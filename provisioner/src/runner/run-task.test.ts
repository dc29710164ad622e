import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDidNotConverge } from './test-guards';
import { FakeTransport } from '../transport/fake-transport';
import { HostJournal, parseJournal, rollbackGeneration } from './journal';
import { runTask } from './run-task';
import { testDriftModule, testFileModule } from './test-modules';

const generation = '20261125T030000Z-abc123';
const journalFile = `/var/lib/epoch-provision/journal/${generation}.jsonl`;
const setup = () => {
  const t = new FakeTransport('web1');
  return { t, ctx: { name: 'web1', vars: {}, transport: t }, journal: new HostJournal(t, generation) };
};
const params = { path: '/etc/x.conf', content: 'new\n' };

test('apply: journals the undo BEFORE the steps run, then converges → changed', async () => {
  const { t, ctx, journal } = setup();
  t.files.set('/etc/x.conf', { content: 'old\n', mode: 0o644 });
  const out = await runTask(ctx, testFileModule, params, 'write x', journal, { check: false, diff: false });
  assert.equal(out.status, 'changed');
  assert.equal(t.files.get('/etc/x.conf')?.content, 'new\n');
  const journalIndex = t.calls.findIndex((c) => c.argv[0] === 'sh' && c.argv.includes(journalFile));
  const putIndex = t.calls.findIndex((c) => c.argv[0] === '<put>');
  assert.ok(journalIndex >= 0 && journalIndex < putIndex, 'journal append precedes the first step');
  const [entry] = parseJournal(t.files.get(journalFile)?.content ?? '', journalFile);
  assert.equal(entry?.kind === 'change' && entry.change, 'file:/etc/x.conf');
  assert.deepEqual(entry?.kind === 'change' && entry.undo, [{ kind: 'put', path: '/etc/x.conf', content: 'old\n', mode: 0o644 }]);
});

test('already converged twin: empty plan → ok, no step, no journal', async () => {
  const { t, ctx, journal } = setup();
  t.files.set('/etc/x.conf', { content: 'new\n', mode: 0o644 });
  const out = await runTask(ctx, testFileModule, params, 'write x', journal, { check: false, diff: true });
  assert.deepEqual(out, { status: 'ok', changes: [], notes: [] });
  assert.deepEqual(t.calls.map((c) => c.argv[0]), ['cat']);
});

test('--check --diff reports exactly the change and touches nothing', async () => {
  const { t, ctx, journal } = setup();
  t.files.set('/etc/x.conf', { content: 'old\n', mode: 0o644 });
  const out = await runTask(ctx, testFileModule, params, 'write x', journal, { check: true, diff: true });
  assert.deepEqual(out, { status: 'changed', changes: [{ id: 'file:/etc/x.conf', summary: 'update /etc/x.conf', diff: { subject: '/etc/x.conf', before: 'old\n', after: 'new\n' } }], notes: [] });
  assert.equal(t.files.get('/etc/x.conf')?.content, 'old\n');
  assert.deepEqual(t.calls.map((c) => c.argv[0]), ['cat'], 'only the read-only gather ran');
});

test('--diff never shows the content of a secret step', async () => {
  const { ctx, journal } = setup();
  const out = await runTask(ctx, testFileModule, { ...params, secret: true }, 'write key', journal, { check: true, diff: true });
  assert.deepEqual(out.changes[0]?.diff, { subject: '/etc/x.conf', before: '', after: '(secret content redacted)' });
  assert.ok(!JSON.stringify(out).includes('new\\n'));
});

test('a plan that is still non-empty after apply is DidNotConvergeError', async () => {
  const { ctx, journal } = setup();
  await assert.rejects(runTask(ctx, testDriftModule, {}, 'drift', journal, { check: false, diff: false }), (e) => isDidNotConverge(e) && /set the unsettable/.test(e.message));
});

test('a failing step stops the task; its undo is already journaled', async () => {
  const { t, ctx, journal } = setup();
  t.on(['mv'], { exitCode: 1, stderr: 'mv: read-only file system\n' });
  await assert.rejects(runTask(ctx, testFileModule, params, 'write x', journal, { check: false, diff: false }), /read-only file system/);
  assert.match(t.files.get(journalFile)?.content ?? '', /"change":"file:\/etc\/x.conf"/);
});

test('rollback replays undo in reverse, is idempotent, and reports a failed undo separately', async () => {
  const { t, ctx, journal } = setup();
  t.files.set('/etc/a', { content: 'a0', mode: 0o644 });
  await runTask(ctx, testFileModule, { path: '/etc/a', content: 'a1' }, 't1', journal, { check: false, diff: false });
  await runTask(ctx, testFileModule, { path: '/etc/b', content: 'b1' }, 't2', journal, { check: false, diff: false });
  const events: string[] = [];
  const first = await rollbackGeneration(t, generation, (e) => e.type === 'rollback-entry' && events.push(`${e.change}:${e.status}`));
  assert.deepEqual(events, ['file:/etc/b:rolled-back', 'file:/etc/a:rolled-back'], 'newest change first');
  assert.equal(first.rolledBack, 2);
  assert.equal(t.files.get('/etc/a')?.content, 'a0');
  assert.equal(t.files.has('/etc/b'), false);
  const second = await rollbackGeneration(t, generation);
  assert.deepEqual([second.rolledBack, second.alreadyRolledBack, second.failed], [0, 2, null]);

  const other = setup();
  await runTask(other.ctx, testFileModule, { path: '/etc/c', content: 'c1' }, 't3', other.journal, { check: false, diff: false });
  other.t.on(['rm'], { exitCode: 1, stderr: 'rm: permission denied\n' });
  const failed = await rollbackGeneration(other.t, generation);
  assert.equal(failed.failed?.change, 'file:/etc/c');
  assert.match(failed.failed?.message ?? '', /permission denied/);
  assert.deepEqual(await rollbackGeneration(new FakeTransport('fresh'), generation), { rolledBack: 0, alreadyRolledBack: 0, irreversible: [], failed: null });
});

test('a module report is shown on the final state, for a converged host and after a change', async () => {
  const { FakeTransport } = await import('../transport/fake-transport');
  const { HostJournal } = await import('./journal');
  const { runTask } = await import('./run-task');
  const { testFileModule } = await import('./test-modules');
  const reporting = { ...testFileModule, report: (_p: unknown, f: unknown) => [`content is ${JSON.stringify((f as { content: string | null }).content)}`] };
  const transport = new FakeTransport('h1');
  const host = { name: 'h1', vars: {}, transport };
  const params = { path: '/etc/c', content: 'v2' };
  const first = await runTask(host, reporting, params, 'conf', new HostJournal(transport, '20261125T000000Z-aaaaaa'), { check: false, diff: false });
  assert.deepEqual([first.status, first.notes], ['changed', ['content is "v2"']]);
  const again = await runTask(host, reporting, params, 'conf', new HostJournal(transport, '20261125T000000Z-aaaaaa'), { check: false, diff: false });
  assert.deepEqual([again.status, again.notes], ['ok', ['content is "v2"']]);
});

test('--check uses a module prediction only when earlier tasks of the run changed something; apply never does', async () => {
  const { FakeTransport } = await import('../transport/fake-transport');
  const { HostJournal } = await import('./journal');
  const { runTask } = await import('./run-task');
  const { testFileModule } = await import('./test-modules');
  const predicted = { id: 'predicted:x', summary: 'what the earlier change makes necessary', steps: [], undo: null };
  const predicting = { ...testFileModule, predict: (_p: unknown, _f: unknown, earlier: ReadonlyMap<string, readonly string[]>) => (earlier.has('agent_release') ? [predicted] : null) };
  const transport = new FakeTransport('h1');
  transport.files.set('/etc/c', { content: 'v2', mode: 0o644 });
  const host = { name: 'h1', vars: {}, transport };
  const params = { path: '/etc/c', content: 'v2' };
  const journal = new HostJournal(transport, '20261125T000000Z-aaaaaa');
  const earlier = new Map([['agent_release', ['release:0.1.0']]]);
  const check = await runTask(host, predicting, params, 'conf', journal, { check: true, diff: false, earlier });
  assert.deepEqual([check.status, check.changes.map((c) => c.id)], ['changed', ['predicted:x']]);
  assert.match(check.notes.join('\n'), /predicted: this depends on changes earlier tasks of this run make \(agent_release\)/);
  // The converged twin: no earlier changes, so plan decides (the file is already right).
  const none = await runTask(host, predicting, params, 'conf', journal, { check: true, diff: false, earlier: new Map() });
  assert.deepEqual([none.status, none.changes], ['ok', []]);
  // Apply plans from the real facts only.
  const apply = await runTask(host, predicting, params, 'conf', journal, { check: false, diff: false, earlier });
  assert.deepEqual([apply.status, apply.changes], ['ok', []]);
});

test('the run memo: cleared once a task changed the host (later gathers ask again); kept by a task that was ok', async () => {
  const { HostMemo } = await import('../facts/host-memo');
  const { t, journal } = setup();
  const memo = new HostMemo();
  const ctx = { name: 'web1', vars: {}, transport: t, memo };
  memo.set('identity:/usr/bin/node', ['real=/usr/bin/node']);
  t.files.set('/etc/x.conf', { content: 'new\n', mode: 0o644 });
  assert.equal((await runTask(ctx, testFileModule, params, 'write x', journal, { check: false, diff: false })).status, 'ok');
  assert.deepEqual(memo.keys(), ['identity:/usr/bin/node'], 'already converged: kept');
  assert.equal((await runTask(ctx, testFileModule, { ...params, content: 'newer\n' }, 'write x', journal, { check: true, diff: false })).status, 'changed');
  assert.deepEqual(memo.keys(), ['identity:/usr/bin/node'], '--check changes nothing: kept');
  assert.equal((await runTask(ctx, testFileModule, { ...params, content: 'newer\n' }, 'write x', journal, { check: false, diff: false })).status, 'changed');
  assert.deepEqual(memo.keys(), [], 'applied: cleared');
});
