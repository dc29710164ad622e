// A play over its hosts as a staged rollout: batches from `serial`, `forks` hosts at a time inside a batch, each
// host running its tasks in order; after each batch the health gate (the verify step) and the failure budgets
// decide whether to go on. On a breach the rollout halts and later batches are never touched.
import type { TaskStatus } from '../core/change';
import { isUnreachableError } from '../core/errors';
import type { EventSink, HostRecap } from '../core/run-events';
import { gatherHostFacts } from '../facts/gather-host-facts';
import type { HostFacts } from '../facts/host-facts';
import { HostMemo } from '../facts/host-memo';
import type { HostContext } from '../modules/module';
import type { RegisteredModule } from '../modules/registry';
import type { Transport } from '../transport/transport';
import { Semaphore } from '../transport/semaphore';
import { splitBatches } from './batching';
import { budgetBreach, type FailureBudget } from './failure-budget';
import { HostJournal, rollbackGeneration } from './journal';
import { runTask } from './run-task';

export interface PlayHost {
  name: string;
  vars: Readonly<Record<string, unknown>>;
}

export interface PlayTask {
  name: string;
  module: string;
}

/** Decided per host before a task runs: `when` and `{{ var }}` templating (config/ does the work). */
export type PrepareTask<T extends PlayTask> = (task: T, vars: Readonly<Record<string, unknown>>) => { skip: string | null; params: unknown };

export interface HealthGateResult {
  /** Hosts that failed verification; they count as failed for the budgets. */
  failedHosts: string[];
  message?: string;
}

export interface PlayOptions<T extends PlayTask> {
  name: string;
  runId: string;
  hosts: readonly PlayHost[];
  tasks: readonly T[];
  serial: readonly (number | string)[];
  budget: FailureBudget;
  forks: number;
  check: boolean;
  diff: boolean;
  /** Read host facts in one round trip before the first task (Ansible's gather_facts). */
  gatherFacts: boolean;
  connect(host: PlayHost): Promise<Transport>;
  /** A new connection, never shared (for modules marked freshConnection); the runner closes it. */
  connectFresh(host: PlayHost): Promise<Transport>;
  getModule(name: string): RegisteredModule | undefined;
  prepare: PrepareTask<T>;
  /** Runs after each batch on the hosts that succeeded (skipped in check mode). */
  healthGate?: (hosts: string[]) => Promise<HealthGateResult>;
  emit: EventSink;
  /** Facts cache shared by the plays of one run. */
  factsCache?: Map<string, HostFacts>;
  /**
   * Fail open: a host that fails a task or the health gate has this run's journal replayed at once, so a bad
   * canary is back to its previous state before the rollout halts. Never in check mode (nothing was applied).
   */
  rollbackFailedHosts?: boolean;
}

export interface PlayResult {
  recaps: Map<string, HostRecap>;
  halted: { afterBatch: number; reason: string } | null;
}

type HostOutcome = 'ok' | 'changed' | 'failed' | 'unreachable';

const emptyRecap = (host: string): HostRecap => ({ host, ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, notRun: false });

export async function runPlay<T extends PlayTask>(o: PlayOptions<T>): Promise<PlayResult> {
  const recaps = new Map(o.hosts.map((h) => [h.name, emptyRecap(h.name)]));
  const batches = splitBatches(o.hosts, o.serial);
  o.emit({ type: 'play-start', play: o.name, hosts: o.hosts.map((h) => h.name), batches: batches.map((b) => b.map((h) => h.name)) });
  const forks = new Semaphore(Math.max(1, o.forks));
  let cumulativeFailed = 0;

  for (const [index, batch] of batches.entries()) {
    o.emit({ type: 'batch-start', play: o.name, index, of: batches.length, hosts: batch.map((h) => h.name) });
    const outcomes = await Promise.all(batch.map((h) => forks.run(() => runHost(o, h, recaps.get(h.name) ?? emptyRecap(h.name)))));
    let failed = outcomes.filter((x) => x === 'failed').length;
    const unreachable = outcomes.filter((x) => x === 'unreachable').length;

    const healthy = batch.filter((_, i) => outcomes[i] === 'ok' || outcomes[i] === 'changed').map((h) => h.name);
    if (o.healthGate && !o.check && healthy.length > 0) {
      let gate: HealthGateResult;
      try {
        gate = await o.healthGate(healthy);
      } catch (err) {
        gate = { failedHosts: healthy, message: `health gate error: ${err instanceof Error ? err.message : String(err)}` };
      }
      const gateFailed = gate.failedHosts.filter((h) => healthy.includes(h));
      for (const h of gateFailed) {
        const r = recaps.get(h);
        if (r) r.failed += 1;
      }
      failed += gateFailed.length;
      await Promise.all(gateFailed.map((h) => rollBackHost(o, h)));
      o.emit({ type: 'health-gate', play: o.name, index, passed: gateFailed.length === 0, failedHosts: gateFailed, ...(gate.message && { message: gate.message }) });
    }
    o.emit({ type: 'batch-end', play: o.name, index, failed, unreachable, size: batch.length });
    cumulativeFailed += failed + unreachable;

    const reason = budgetBreach(o.budget, { batchSize: batch.length, batchFailed: failed + unreachable, totalHosts: o.hosts.length, cumulativeFailed });
    if (reason && index < batches.length - 1) {
      const notRun = batches.slice(index + 1).flat().map((h) => h.name);
      for (const h of notRun) {
        const r = recaps.get(h);
        if (r) r.notRun = true;
      }
      o.emit({ type: 'rollout-halted', play: o.name, afterBatch: index, reason, notRun });
      return { recaps, halted: { afterBatch: index, reason } };
    }
  }
  return { recaps, halted: null };
}

async function runHost<T extends PlayTask>(o: PlayOptions<T>, host: PlayHost, recap: HostRecap): Promise<HostOutcome> {
  o.emit({ type: 'host-start', host: host.name });
  const done = (status: HostOutcome) => {
    o.emit({ type: 'host-done', host: host.name, status });
    return status;
  };
  let transport: Transport;
  try {
    transport = await o.connect(host);
  } catch (err) {
    recap.unreachable += 1;
    o.emit({ type: 'host-unreachable', host: host.name, message: err instanceof Error ? err.message : String(err) });
    return done('unreachable');
  }

  const vars: Record<string, unknown> = { ...host.vars, epoch_run_id: o.runId, epoch_generation: o.runId };
  // This host's read-only answers shared by its tasks in this run; runTask clears it whenever it changes the host.
  const memo = new HostMemo();
  if (o.gatherFacts) {
    const started = performance.now();
    try {
      let facts = o.factsCache?.get(host.name);
      if (!facts) {
        facts = await gatherHostFacts(transport, undefined, memo);
        o.factsCache?.set(host.name, facts);
      }
      if (!facts.os.supported) throw new Error(facts.os.message);
      vars.epoch_facts = facts;
    } catch (err) {
      return done(failHost(o, host, recap, 'gather facts', err, started));
    }
  }
  const context: HostContext = { name: host.name, vars, transport, memo };
  const journal = new HostJournal(transport, o.runId);
  let changedAny = false;
  // In --check, what earlier tasks predicted on this host: later tasks may depend on it (RegisteredModule.predict).
  const earlier = new Map<string, string[]>();

  for (const task of o.tasks) {
    const started = performance.now();
    o.emit({ type: 'task-start', host: host.name, task: task.name });
    const module = o.getModule(task.module);
    try {
      if (!module) throw new Error(`unknown module ${JSON.stringify(task.module)}`);
      const { skip, params } = o.prepare(task, vars);
      if (skip !== null) {
        recap.skipped += 1;
        emitResult(o, host, task, 'skipped', started, [], skip);
        continue;
      }
      const options = { check: o.check, diff: o.diff, earlier };
      // A freshConnection task proves a NEW connection works before it changes anything (confirming a firewall
      // change). With nothing to change there is nothing to prove: its read-only gather and plan over the shared
      // connection say so, and the new connection (a full SSH handshake) is opened only when there is work.
      const converged = module.freshConnection && !o.check ? await runTask(context, module, params, task.name, journal, { ...options, check: true }) : null;
      const outcome =
        converged?.status === 'ok'
          ? converged
          : module.freshConnection
            ? await withFreshConnection(o, host, (fresh) => runTask({ ...context, transport: fresh }, module, params, task.name, journal.via(fresh), options))
            : await runTask(context, module, params, task.name, journal, options);
      if (o.check && outcome.changes.length > 0) earlier.set(module.name, [...(earlier.get(module.name) ?? []), ...outcome.changes.map((c) => c.id)]);
      recap.ok += 1;
      if (outcome.status === 'changed') {
        recap.changed += 1;
        changedAny = true;
        o.factsCache?.delete(host.name);
      }
      emitResult(o, host, task, outcome.status, started, outcome.changes, undefined, outcome.notes);
    } catch (err) {
      const outcome = failHost(o, host, recap, task.name, err, started);
      if (outcome === 'failed') await rollBackHost(o, host.name);
      return done(outcome);
    }
  }
  return done(changedAny ? 'changed' : 'ok');
}

async function withFreshConnection<T extends PlayTask, R>(o: PlayOptions<T>, host: PlayHost, fn: (t: Transport) => Promise<R>): Promise<R> {
  const fresh = await o.connectFresh(host);
  try {
    return await fn(fresh);
  } finally {
    await fresh.close();
  }
}

/** Replays this run's journal on a failed host (see PlayOptions.rollbackFailedHosts); its outcome is reported as events. */
async function rollBackHost<T extends PlayTask>(o: PlayOptions<T>, name: string): Promise<void> {
  if (!o.rollbackFailedHosts || o.check) return;
  const host = o.hosts.find((h) => h.name === name);
  if (!host) return;
  try {
    const transport = await o.connect(host);
    await rollbackGeneration(transport, o.runId, o.emit);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    o.emit({ type: 'rollback-entry', host: name, generation: o.runId, change: '(journal)', status: 'failed-to-roll-back', message });
  }
}

function failHost<T extends PlayTask>(o: PlayOptions<T>, host: PlayHost, recap: HostRecap, task: string, err: unknown, started: number): HostOutcome {
  const message = err instanceof Error ? err.message : String(err);
  if (isUnreachableError(err)) {
    recap.unreachable += 1;
    o.emit({ type: 'host-unreachable', host: host.name, message });
    return 'unreachable';
  }
  recap.failed += 1;
  o.emit({ type: 'task-result', host: host.name, task, status: 'failed', changes: [], message, durationMs: Math.round(performance.now() - started) });
  return 'failed';
}

function emitResult<T extends PlayTask>(o: PlayOptions<T>, host: PlayHost, task: T, status: TaskStatus, started: number, changes: import('../core/run-events').ChangeReport[], message?: string, notes: string[] = []) {
  o.emit({ type: 'task-result', host: host.name, task: task.name, status, changes, ...(notes.length > 0 && { notes }), ...(message !== undefined && { message }), durationMs: Math.round(performance.now() - started) });
}
