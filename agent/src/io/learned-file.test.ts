import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LearnedPassthrough } from '../proxy/learned';
import { learnedFileName, loadLearned, saveLearned } from './learned-file';

test('learned passthrough survives a restart: saved atomically to stateDir, loaded back, expired entries dropped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epag-learned-'));
  try {
    const now = new Date();
    const a = new LearnedPassthrough({ maxEntries: 10, ttlSeconds: 60 });
    a.add('sni:pinned.test', 'client alert: unknown ca', now);
    a.add('ip:198.18.200.9:443', 'client closed right after the handshake without sending data', now);
    const state = join(dir, 'state');
    saveLearned(state, a, now);
    assert.equal(statSync(join(state, learnedFileName)).mode & 0o777, 0o640);
    const b = new LearnedPassthrough({ maxEntries: 10, ttlSeconds: 60 });
    assert.deepEqual(loadLearned(state, b, now), { loaded: 2, skipped: 0 });
    assert.equal(b.has('sni:pinned.test', now), true);
    // Saving the same list again changes nothing (already-converged twin).
    const before = readFileSync(join(state, learnedFileName), 'utf8');
    saveLearned(state, b, now);
    assert.equal(readFileSync(join(state, learnedFileName), 'utf8'), before);
    const later = new Date(now.getTime() + 61_000);
    const c = new LearnedPassthrough({ maxEntries: 10, ttlSeconds: 60 });
    assert.deepEqual(loadLearned(state, c, later), { loaded: 0, skipped: 2 });
    assert.deepEqual(loadLearned(join(dir, 'missing'), c, now), { loaded: 0, skipped: 0 });
    writeFileSync(join(state, learnedFileName), '{not json');
    assert.throws(() => loadLearned(state, c, now), SyntaxError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
