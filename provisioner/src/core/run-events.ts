// What a run reports as it goes. The runner emits these; output/ renders them (listr2, plain lines, JSON lines)
// and never reaches into the runner. Types only.
import type { Diff, TaskStatus } from './change';

export interface ChangeReport {
  id: string;
  summary: string;
  /** Present only with --diff; secret steps' content is never included. */
  diff?: Diff;
}

export interface HostRecap {
  host: string;
  /** Tasks that ran and were ok or changed (Ansible counts changed tasks as ok too). */
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  /** In a batch after a halt: the rollout never touched this host. */
  notRun: boolean;
}

export type RunEvent =
  | { type: 'run-start'; runId: string; check: boolean; at: string }
  | { type: 'play-start'; play: string; hosts: string[]; batches: string[][] }
  | { type: 'batch-start'; play: string; index: number; of: number; hosts: string[] }
  | { type: 'host-start'; host: string }
  | { type: 'task-start'; host: string; task: string }
  | { type: 'task-result'; host: string; task: string; status: TaskStatus; changes: ChangeReport[]; notes?: string[]; message?: string; durationMs: number }
  | { type: 'host-unreachable'; host: string; message: string }
  | { type: 'host-done'; host: string; status: 'ok' | 'changed' | 'failed' | 'unreachable' }
  | { type: 'health-gate'; play: string; index: number; passed: boolean; failedHosts: string[]; message?: string }
  | { type: 'batch-end'; play: string; index: number; failed: number; unreachable: number; size: number }
  | { type: 'rollout-halted'; play: string; afterBatch: number; reason: string; notRun: string[] }
  | { type: 'rollback-entry'; host: string; generation: string; change: string; status: 'rolled-back' | 'failed-to-roll-back' | 'irreversible' | 'already-rolled-back'; message?: string }
  | { type: 'recap'; runId: string; hosts: HostRecap[]; halted: boolean; haltReason?: string; exitCode: number };

export type EventSink = (event: RunEvent) => void;
