import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnreachableError } from '../core/errors';
import type { RunEvent } from '../core/run-events';
import { FakeTransport } from '../transport/fake-transport';
import { type PlayOptions, type PlayTask, runPlay } from './run-play';
import { testFileModule } from './test-modules';

type T = PlayTask & { params: Record<string, unknown>; when?: boolean };

function play(hostCount: number, overrides: Partial<PlayOptions<T>> = {}) {
  const transports = new Map<string, FakeTransport>();
  const events: RunEvent[] = [];
  const fresh: string[] = [];
  const hosts = Array.from({ length: hostCount }, (_, i) => ({ name: `h${i + 1}`, vars: {} }));
  const options: PlayOptions<T> = {
    name: 'site',
    runId: '20261125T030000Z-abc123',
    hosts,
    tasks: [{ name: 'conf', module: 'test_file', params: { path: '/etc/c', content: 'v2' } }],
    serial: [],
    budget: {},
    forks: 5,
    check: false,
    diff: false,
    gatherFacts: false,
    connect: async (h) => {
      const t = transports.get(h.name) ?? new FakeTransport(h.name);
      transports.set(h.name, t);
      return t;
    },
    connectFresh: async (h) => {
      fresh.push(h.name);
      return new FakeTransport(h.name);
    },
    getModule: (name) => (name === 'test_file' ? testFileModule : name === 'test_confirm' ? { ...testFileModule, name: 'test_confirm', freshConnection: true } : undefined),
    prepare: (task) => ({ skip: task.when === false ? 'when: false' : null, params: task.params }),
    emit: (e) => events.push(e),
    ...overrides,
  };
  return { options, transports, events, fresh };
}

test('one batch: every host changed, then the already-converged twin run is all ok', async () => {
  const p = play(3);
  const first = await runPlay(p.options);
  assert.deepEqual([...first.recaps.values()].map((r) => [r.ok, r.changed, r.failed]), [[1, 1, 0], [1, 1, 0], [1, 1, 0]]);
  const second = await runPlay(p.options);
  assert.deepEqual([...second.recaps.values()].map((r) => [r.ok, r.changed]), [[1, 0], [1, 0], [1, 0]]);
  assert.equal(second.halted, null);
});

test('serial [1, "50%"] over 5 hosts: batches 1, 2, 2', async () => {
  const p = play(5, { serial: [1, '50%'] });
  await runPlay(p.options);
  const starts = p.events.filter((e) => e.type === 'batch-start').map((e) => (e.type === 'batch-start' ? e.hosts : []));
  assert.deepEqual(starts, [['h1'], ['h2', 'h3'], ['h4', 'h5']]);
});

test('a failed canary halts the rollout: later batches are never connected to nor touched', async () => {
  const p = play(6, { serial: [1, '50%'], budget: { maxFailPercentage: 0 } });
  const connected: string[] = [];
  const inner = p.options.connect;
  p.options.connect = async (h) => {
    connected.push(h.name);
    const t = (await inner(h)) as FakeTransport;
    if (h.name === 'h1') t.on(['mv'], { exitCode: 1, stderr: 'disk full\n' });
    return t;
  };
  const result = await runPlay(p.options);
  assert.deepEqual(result.halted?.afterBatch, 0);
  assert.match(result.halted?.reason ?? '', /1 of 1 host\(s\) in the batch failed/);
  assert.deepEqual(connected, ['h1']);
  assert.deepEqual([...result.recaps.values()].filter((r) => r.notRun).map((r) => r.host), ['h2', 'h3', 'h4', 'h5', 'h6']);
  const halted = p.events.find((e) => e.type === 'rollout-halted');
  assert.deepEqual(halted?.type === 'rollout-halted' && halted.notRun, ['h2', 'h3', 'h4', 'h5', 'h6']);
});

test('an unreachable host is unreachable, not failed, and counts toward the budget', async () => {
  const p = play(4, { serial: [2], budget: { maxFailPercentage: 49 } });
  const inner = p.options.connect;
  p.options.connect = async (h) => {
    if (h.name === 'h2') throw new UnreachableError('h2: cannot connect: ECONNREFUSED', 'h2');
    return inner(h);
  };
  const result = await runPlay(p.options);
  const h2 = result.recaps.get('h2');
  assert.deepEqual([h2?.unreachable, h2?.failed], [1, 0]);
  assert.match(result.halted?.reason ?? '', /exceeding max_fail_percentage 49%/);
  assert.equal(result.recaps.get('h3')?.notRun, true);
});

test('the health gate runs between batches; a failing host halts under the cumulative budget', async () => {
  const gated: string[][] = [];
  const p = play(4, {
    serial: [1],
    budget: { maxTotalFailPercentage: 0 },
    healthGate: async (hosts) => {
      gated.push(hosts);
      return { failedHosts: hosts.includes('h2') ? ['h2'] : [], message: 'verify' };
    },
  });
  const result = await runPlay(p.options);
  assert.deepEqual(gated, [['h1'], ['h2']]);
  assert.equal(result.halted?.afterBatch, 1);
  assert.equal(result.recaps.get('h2')?.failed, 1);
  assert.deepEqual([result.recaps.get('h3')?.notRun, result.recaps.get('h4')?.notRun], [true, true]);
});

test('check mode skips the health gate and changes nothing', async () => {
  let gateCalls = 0;
  const p = play(2, { check: true, healthGate: async () => {
      gateCalls += 1;
      return { failedHosts: [] };
    },
  });
  const result = await runPlay(p.options);
  assert.equal(gateCalls, 0);
  assert.deepEqual([...result.recaps.values()].map((r) => r.changed), [1, 1]);
  assert.ok([...p.transports.values()].every((t) => t.files.size === 0));
});

test('a task whose `when` is false is skipped; an unknown module fails the host with its name', async () => {
  const p = play(1, {
    tasks: [
      { name: 'maybe', module: 'test_file', params: { path: '/x', content: '1' }, when: false },
      { name: 'bad', module: 'nope', params: {} },
    ],
  });
  const result = await runPlay(p.options);
  assert.deepEqual([result.recaps.get('h1')?.skipped, result.recaps.get('h1')?.failed], [1, 1]);
  const failed = p.events.find((e) => e.type === 'task-result' && e.status === 'failed');
  assert.match(failed?.type === 'task-result' ? (failed.message ?? '') : '', /unknown module "nope"/);
});

test('--forks bounds the hosts in flight', async () => {
  let inFlight = 0;
  let peak = 0;
  const p = play(8, { forks: 3 });
  const inner = p.options.connect;
  p.options.connect = async (h) => {
    inFlight += 1;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 10));
    return inner(h);
  };
  p.options.emit = (e) => {
    if (e.type === 'host-done') inFlight -= 1;
  };
  await runPlay(p.options);
  assert.equal(peak, 3);
});

test('a failed canary is rolled back from its journal before the rollout halts', async () => {
  const p = play(3, {
    serial: [1, '100%'],
    budget: { maxFailPercentage: 0 },
    tasks: [
      { name: 'conf', module: 'test_file', params: { path: '/etc/c', content: 'v2' } },
      { name: 'broken', module: 'test_file', params: { path: '/etc/d', content: 'x' } },
    ],
    rollbackFailedHosts: true,
  });
  const inner = p.options.connect;
  p.options.connect = async (h) => {
    const t = (await inner(h)) as FakeTransport;
    // The second task's temp file never reaches its place on the canary.
    t.on(['mv', '-f'], (argv) => (String(argv[3]) === '/etc/d' ? { exitCode: 1, stderr: 'disk full\n' } : t.builtin(argv)));
    return t;
  };
  const result = await runPlay(p.options);
  assert.equal(result.halted?.afterBatch, 0);
  const rollbacks = p.events.filter((e) => e.type === 'rollback-entry');
  // Newest first; the failed change's undo was journaled before its steps ran, so it is replayed too.
  assert.deepEqual(rollbacks.map((e) => e.type === 'rollback-entry' && [e.host, e.change, e.status]), [
    ['h1', 'file:/etc/d', 'rolled-back'],
    ['h1', 'file:/etc/c', 'rolled-back'],
  ]);
  assert.equal(p.transports.get('h1')?.files.has('/etc/c'), false);
  assert.equal(p.transports.has('h2'), false);
});

test('the already-converged twin: --no-rollback leaves the failed canary as it is', async () => {
  const p = play(1, {
    tasks: [
      { name: 'conf', module: 'test_file', params: { path: '/etc/c', content: 'v2' } },
      { name: 'broken', module: 'test_file', params: { path: '/etc/d', content: 'x' } },
    ],
    rollbackFailedHosts: false,
  });
  const inner = p.options.connect;
  p.options.connect = async (h) => {
    const t = (await inner(h)) as FakeTransport;
    t.on(['mv', '-f'], (argv) => (String(argv[3]) === '/etc/d' ? { exitCode: 1, stderr: 'disk full\n' } : t.builtin(argv)));
    return t;
  };
  await runPlay(p.options);
  assert.equal(p.events.some((e) => e.type === 'rollback-entry'), false);
  assert.equal(p.transports.get('h1')?.files.get('/etc/c')?.content, 'v2');
});

test('a freshConnection module runs over a new connection, not the shared one', async () => {
  const p = play(1, {
    tasks: [
      { name: 'conf', module: 'test_file', params: { path: '/etc/c', content: 'v2' } },
      { name: 'confirm', module: 'test_confirm', params: { path: '/etc/confirmed', content: 'yes' } },
    ],
  });
  await runPlay(p.options);
  assert.deepEqual(p.fresh, ['h1']);
  assert.equal(p.transports.get('h1')?.files.get('/etc/c')?.content, 'v2');
  assert.equal(p.transports.get('h1')?.files.has('/etc/confirmed'), false);
});

test('a converged freshConnection task opens no new connection: its read-only check runs on the shared one', async () => {
  const p = play(1, {
    tasks: [{ name: 'confirm', module: 'test_confirm', params: { path: '/etc/confirmed', content: 'yes' } }],
  });
  await runPlay(p.options);
  assert.deepEqual(p.fresh, ['h1'], 'work to do: a new connection');
  assert.equal(p.transports.get('h1')?.files.has('/etc/confirmed'), false, 'and applied over it, not the shared one');
  const again = play(1, {
    tasks: [
      { name: 'conf', module: 'test_file', params: { path: '/etc/confirmed', content: 'yes' } },
      { name: 'confirm', module: 'test_confirm', params: { path: '/etc/confirmed', content: 'yes' } },
    ],
  });
  await runPlay(again.options);
  assert.deepEqual(again.fresh, [], 'nothing to confirm: no new connection');
  assert.ok(again.events.some((e) => e.type === 'task-result' && e.task === 'confirm' && e.status === 'ok'));
});

test('each host gets its own run memo, shared by its tasks and new in every run', async () => {
  const seen: { host: string; memo: unknown; had: string[] }[] = [];
  const memoModule = {
    ...testFileModule,
    name: 'test_memo',
    async gather(host: Parameters<typeof testFileModule.gather>[0], p: unknown) {
      seen.push({ host: host.name, memo: host.memo, had: host.memo?.keys() ?? [] });
      host.memo?.set(`seen:${seen.length}`, true);
      return testFileModule.gather(host, p);
    },
  };
  const tasks = [
    { name: 'a', module: 'test_memo', params: { path: '/etc/c', content: 'v1' } },
    { name: 'b', module: 'test_memo', params: { path: '/etc/c', content: 'v1' } },
  ];
  const p = play(2, { tasks, serial: [1], getModule: (name) => (name === 'test_memo' ? memoModule : undefined) });
  await runPlay(p.options); // installs: each task changes its host
  seen.length = 0;
  await runPlay(p.options); // converged: nothing applied, so the second task sees what the first one memoised
  assert.deepEqual(seen.map((s) => [s.host, s.had]), [['h1', []], ['h1', ['seen:1']], ['h2', []], ['h2', ['seen:3']]]);
  assert.ok(seen[0]!.memo && seen[0]!.memo === seen[1]!.memo && seen[1]!.memo !== seen[2]!.memo);
  const previous = seen[0]!.memo;
  seen.length = 0;
  await runPlay(p.options);
  assert.notEqual(seen[0]!.memo, previous, 'a new run: a new memo');
  assert.deepEqual(seen[0]!.had, []);
});
