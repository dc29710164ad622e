// One task on one host: gather → plan → (check: report only) → journal each undo, apply → gather + plan again.
// A non-empty second plan is a DidNotConvergeError. Modules never learn whether this is a check run.
import type { Change } from '../core/change';
import { DidNotConvergeError } from '../core/errors';
import type { ChangeReport } from '../core/run-events';
import type { HostContext } from '../modules/module';
import type { RegisteredModule } from '../modules/registry';
import { executeSteps } from './apply-steps';
import type { HostJournal } from './journal';

export interface TaskRunOptions {
  check: boolean;
  diff: boolean;
  /** --check: change ids that earlier tasks of this run predicted on this host, by module (see RegisteredModule.predict). */
  earlier?: ReadonlyMap<string, readonly string[]>;
}

export interface TaskOutcome {
  status: 'ok' | 'changed';
  changes: ChangeReport[];
  /** The module's report on the host's final state (see RegisteredModule.report). */
  notes: string[];
}

const redacted = '(secret content redacted)';

/** What a change looks like in output: its diff only with --diff, and never the content of a secret step. */
export function reportChange(change: Change, withDiff: boolean): ChangeReport {
  const report: ChangeReport = { id: change.id, summary: change.summary };
  if (withDiff && change.diff) {
    const secret = change.steps.some((s) => s.secret);
    report.diff = secret ? { subject: change.diff.subject, before: change.diff.before === '' ? '' : redacted, after: redacted } : change.diff;
  }
  return report;
}

export async function runTask(
  host: HostContext,
  module: RegisteredModule,
  params: unknown,
  taskName: string,
  journal: HostJournal,
  options: TaskRunOptions,
): Promise<TaskOutcome> {
  const facts = await module.gather(host, params);
  const notesOf = (f: unknown) => module.report?.(params, f) ?? [];
  const predicted = options.check && options.earlier && options.earlier.size > 0 && module.predict ? module.predict(params, facts, options.earlier) : null;
  const changes = predicted ?? module.plan(params, facts);
  const predictedNote = predicted ? [`predicted: this depends on changes earlier tasks of this run make (${[...(options.earlier?.keys() ?? [])].join(', ')})`] : [];
  if (changes.length === 0) return { status: 'ok', changes: [], notes: [...notesOf(facts), ...predictedNote] };
  const reports = changes.map((c) => reportChange(c, options.diff));
  if (options.check) return { status: 'changed', changes: reports, notes: [...notesOf(facts), ...predictedNote] };
  try {
    for (const change of changes) {
      await journal.record(taskName, module.name, change);
      await executeSteps(host.transport, change.steps);
    }
  } finally {
    // What earlier tasks read on this host may no longer hold (a pushed node binary, say): later gathers ask again.
    host.memo?.clear();
  }
  let notes: string[] = [];
  if (module.converges?.(params) !== false || module.report) {
    const after = await module.gather(host, params);
    notes = notesOf(after);
    const again = module.converges?.(params) === false ? [] : module.plan(params, after);
    if (again.length > 0) {
      throw new DidNotConvergeError(
        `did not converge: after applying, planning again still wants ${again.length} change(s): ${again.map((c) => c.summary).join('; ')}`,
        again.map((c) => c.id),
      );
    }
  }
  return { status: 'changed', changes: reports, notes };
}
