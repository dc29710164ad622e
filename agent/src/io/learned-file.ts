// Persists the learned passthrough list in stateDir: temp file + rename, so a crash never leaves half a file.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LearnedPassthrough } from '../proxy/learned';

export const learnedFileName = 'learned-passthrough.json';

export function loadLearned(stateDir: string, store: LearnedPassthrough, now = new Date()): { loaded: number; skipped: number } {
  let text: string;
  try {
    text = readFileSync(join(stateDir, learnedFileName), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { loaded: 0, skipped: 0 };
    throw e;
  }
  return store.load(JSON.parse(text), now);
}

export function saveLearned(stateDir: string, store: LearnedPassthrough, now = new Date()): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  const path = join(stateDir, learnedFileName);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(store.toJSON(now), null, 2)}\n`, { mode: 0o640 });
  renameSync(tmp, path);
}
