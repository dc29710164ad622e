// The host journal: before a change's steps run, its undo is appended to
// /var/lib/epoch-provision/journal/<generation>.jsonl (root-only). Rollback replays a generation's undo entries
// in reverse, marks each one done so a second rollback is a no-op, and reports failures as "failed to roll back".
import type { Change, Step } from '../core/change';
import type { EventSink } from '../core/run-events';
import { journalDir } from '../facts/epoch-state';
import type { Transport } from '../transport/transport';
import { executeSteps } from './apply-steps';
import { generationPattern } from './run-id';

export type JournalLine =
  | { v: 1; kind: 'change'; seq: number; at: string; task: string; module: string; change: string; summary: string; undo: Step[] | null }
  | { v: 1; kind: 'rolled-back'; seq: number; at: string };

export class JournalError extends Error {}

export function journalPath(generation: string): string {
  if (!generationPattern.test(generation)) throw new JournalError(`bad journal generation ${JSON.stringify(generation)} (expected ${generationPattern})`);
  return `${journalDir}/${generation}.jsonl`;
}

async function appendLine(transport: Transport, generation: string, line: JournalLine): Promise<void> {
  const path = journalPath(generation);
  const r = await transport.exec(['sh', '-c', 'umask 077 && mkdir -p "$1" && cat >> "$2"', 'sh', journalDir, path], {
    stdin: `${JSON.stringify(line)}\n`,
    // Undo steps may carry secret material (a key being restored); the journal itself is root-only.
    secret: true,
  });
  if (r.exitCode !== 0) throw new JournalError(`cannot append to the host journal ${path}: \`${r.command}\` exited ${r.exitCode}: ${r.stderr.trim()}`);
}

export class HostJournal {
  constructor(
    private readonly transport: Transport,
    readonly generation: string,
    /** Shared by every connection that writes this host's journal in one run, so entry numbers stay unique. */
    private readonly counter = { seq: 0 },
  ) {}

  /** The same journal, written over another connection to the same host. */
  via(transport: Transport): HostJournal {
    return new HostJournal(transport, this.generation, this.counter);
  }

  /** Records the undo of a change. Must complete before the change's steps run. */
  async record(task: string, module: string, change: Change): Promise<void> {
    this.counter.seq += 1;
    await appendLine(this.transport, this.generation, {
      v: 1,
      kind: 'change',
      seq: this.counter.seq,
      at: new Date().toISOString(),
      task,
      module,
      change: change.id,
      summary: change.summary,
      undo: change.undo,
    });
  }
}

export function parseJournal(text: string, path: string): JournalLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as JournalLine;
      } catch (err) {
        throw new JournalError(`${path}:${i + 1}: not a JSON line (${(err as Error).message})`);
      }
    });
}

export async function readJournal(transport: Transport, generation: string): Promise<JournalLine[] | null> {
  const path = journalPath(generation);
  const r = await transport.exec(['cat', path]);
  if (r.exitCode !== 0) {
    if (/No such file/i.test(r.stderr)) return null;
    throw new JournalError(`cannot read ${path}: ${r.stderr.trim()}`);
  }
  return parseJournal(r.stdout, path);
}

export interface RollbackResult {
  rolledBack: number;
  alreadyRolledBack: number;
  irreversible: string[];
  /** Set when an undo failed: rollback stops there so later (earlier-made) changes are not undone out of order. */
  failed: { change: string; message: string } | null;
}

/** Replays a generation's undo entries newest first. Idempotent: entries already rolled back are skipped. */
export async function rollbackGeneration(transport: Transport, generation: string, emit: EventSink = () => {}): Promise<RollbackResult> {
  const result: RollbackResult = { rolledBack: 0, alreadyRolledBack: 0, irreversible: [], failed: null };
  const lines = await readJournal(transport, generation);
  if (!lines) return result;
  const done = new Set(lines.filter((l) => l.kind === 'rolled-back').map((l) => l.seq));
  const changes = lines.filter((l): l is Extract<JournalLine, { kind: 'change' }> => l.kind === 'change').reverse();
  const host = transport.hostName;
  for (const entry of changes) {
    if (done.has(entry.seq)) {
      result.alreadyRolledBack += 1;
      emit({ type: 'rollback-entry', host, generation, change: entry.change, status: 'already-rolled-back' });
      continue;
    }
    if (entry.undo === null) {
      result.irreversible.push(entry.change);
      emit({ type: 'rollback-entry', host, generation, change: entry.change, status: 'irreversible', message: `${entry.summary}: recorded as not undoable` });
      continue;
    }
    try {
      await executeSteps(transport, entry.undo);
      await appendLine(transport, generation, { v: 1, kind: 'rolled-back', seq: entry.seq, at: new Date().toISOString() });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      result.failed = { change: entry.change, message };
      emit({ type: 'rollback-entry', host, generation, change: entry.change, status: 'failed-to-roll-back', message });
      return result;
    }
    result.rolledBack += 1;
    emit({ type: 'rollback-entry', host, generation, change: entry.change, status: 'rolled-back' });
  }
  return result;
}
