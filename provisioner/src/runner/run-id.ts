// A run id doubles as the journal generation on every host it touches: sortable by time, unique per run.
import { randomBytes } from 'node:crypto';

export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export const generationPattern = /^[0-9A-Za-z][0-9A-Za-z-]{0,63}$/;
