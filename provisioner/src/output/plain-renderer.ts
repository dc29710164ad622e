// Plain lines for CI and pipes: one line per meaningful event, no cursor movement, no colour.
import type { RunEvent } from '../core/run-events';
import { formatRecap } from './recap-table';

export function plainLine(e: RunEvent): string | null {
  switch (e.type) {
    case 'run-start':
      return `epoch-provision run ${e.runId}${e.check ? ' (check mode: nothing will change)' : ''}`;
    case 'play-start':
      return `PLAY [${e.play}] ${e.hosts.length} host(s) in ${e.batches.length} batch(es): ${e.batches.map((b) => b.length).join(', ')}`;
    case 'batch-start':
      return `BATCH ${e.index + 1}/${e.of}: ${e.hosts.join(', ')}`;
    case 'task-result': {
      const head = `${e.status}: [${e.host}] ${e.task}${e.message ? `: ${e.message}` : ''}`;
      const changes = e.changes.flatMap((c) => [`  ~ ${c.summary}`, ...(c.diff ? formatDiff(c.diff.subject, c.diff.before, c.diff.after) : [])]);
      const notes = (e.notes ?? []).map((n) => `  · ${n}`);
      return [head, ...changes, ...notes].join('\n');
    }
    case 'host-unreachable':
      return `unreachable: [${e.host}] ${e.message}`;
    case 'health-gate':
      return `HEALTH GATE after batch ${e.index + 1}: ${e.passed ? 'passed' : `failed on ${e.failedHosts.join(', ')}`}${e.message ? ` (${e.message})` : ''}`;
    case 'rollout-halted':
      return `ROLLOUT HALTED after batch ${e.afterBatch + 1}: ${e.reason}\n  not run: ${e.notRun.join(', ')}`;
    case 'rollback-entry':
      return `${e.status}: [${e.host}] ${e.change} (generation ${e.generation})${e.message ? `: ${e.message}` : ''}`;
    case 'recap':
      return `\n${formatRecap(e.hosts)}${e.halted ? `rollout halted: ${e.haltReason}\n` : ''}`;
    default:
      return null;
  }
}

/** A minimal unified-style diff: whole lines removed then added (enough to review a config change). */
export function formatDiff(subject: string, before: string, after: string): string[] {
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n');
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n');
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  return [`    --- ${subject} (before)`, `    +++ ${subject} (after)`, ...a.slice(start, endA).map((l) => `    -${l}`), ...b.slice(start, endB).map((l) => `    +${l}`)];
}
