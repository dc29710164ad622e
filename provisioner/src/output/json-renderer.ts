// --output json: one JSON object per line per event; the last line is the recap (pipelines read it).
import type { RunEvent } from '../core/run-events';

export function jsonLine(e: RunEvent): string {
  return JSON.stringify(e);
}
