import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generationsToUndo, rollbackCommand, summarize } from './rollback';

const g = (generation: string, pending: number) => ({ generation, changes: Math.max(pending, 1), pending });

test('without --to: only the newest generation that still has changes to undo', () => {
  assert.deepEqual(generationsToUndo([g('20261125T010000Z-aaaaaa', 2), g('20261125T020000Z-bbbbbb', 3), g('20261125T030000Z-cccccc', 0)], undefined), ['20261125T020000Z-bbbbbb']);
});

test('--to GEN: every newer generation, newest first; GEN itself stays', () => {
  const all = [g('20261125T030000Z-cccccc', 1), g('20261125T010000Z-aaaaaa', 2), g('20261125T020000Z-bbbbbb', 3)];
  assert.deepEqual(generationsToUndo(all, '20261125T010000Z-aaaaaa'), ['20261125T030000Z-cccccc', '20261125T020000Z-bbbbbb']);
});

test('the already-rolled-back twin: nothing pending means nothing to do', () => {
  assert.deepEqual(generationsToUndo([g('20261125T010000Z-aaaaaa', 0)], undefined), []);
  assert.deepEqual(generationsToUndo([g('20261125T010000Z-aaaaaa', 0)], '20261101T000000Z-000000'), []);
});

test('a journal summary counts changes whose undo was not replayed yet', () => {
  const lines = [
    { v: 1 as const, kind: 'change' as const, seq: 1, at: '', task: 't', module: 'm', change: 'a', summary: 'a', undo: [] },
    { v: 1 as const, kind: 'change' as const, seq: 2, at: '', task: 't', module: 'm', change: 'b', summary: 'b', undo: null },
    { v: 1 as const, kind: 'rolled-back' as const, seq: 1, at: '' },
  ];
  assert.deepEqual(summarize('20261125T010000Z-aaaaaa', lines), { generation: '20261125T010000Z-aaaaaa', changes: 2, pending: 1 });
});

test('bad flags are config errors before any host is touched', async () => {
  const original = console.error;
  const lines: string[] = [];
  console.error = (m: string) => lines.push(m);
  try {
    assert.equal(await rollbackCommand(['--to', '../etc', '--inventory', 'x', '--yes']), 2);
    assert.equal(await rollbackCommand(['--yes']), 2);
  } finally {
    console.error = original;
  }
  assert.match(lines.join('\n'), /--to: not a generation name: "\.\.\/etc"/);
});
