// Drive the real CLI (`node bin/epoch-provision.mjs ... --inventory X --yes --output json`) as a child process and
// read its JSON events, for end-to-end lab tests (test/e2e/*).
//   cli(lab, args, inventory?, { cwd? })  runs from the repository root by default (playbooks/ and dist/agent
//                                         resolve from the working directory, as for a user); returns CliRun
//   cliKilledWhen(lab, args, predicate, inventory?)
//                                         the same, SIGKILLed as soon as an event matches the predicate (an operator's
//                                         kill -9, a lost CI runner); resolves with what it printed until then
//   explain(run)                          failed tasks, unreachable hosts, halt reason and stderr, for messages
//   ofType(run, type)                     the events of one type
import { spawn, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { HostRecap, RunEvent } from '../../provisioner/src/core/run-events';
import type { Lab } from './lab';

export const repo = resolve(import.meta.dirname, '../..');

export interface CliRun {
  status: number | null;
  stderr: string;
  events: RunEvent[];
  recap: Extract<RunEvent, { type: 'recap' }> | undefined;
  byHost: Record<string, HostRecap>;
  /** host -> task -> sorted change ids, from task-result events. */
  changes: Map<string, Map<string, string[]>>;
}

export interface CliOptions {
  /** Working directory of the CLI (default: the repository root). */
  cwd?: string;
}

function collect(status: number | null, stdout: string, stderr: string): CliRun {
  const events = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as RunEvent);
  const last = [...events].reverse().find((e) => e.type === 'recap');
  const recap = last?.type === 'recap' ? last : undefined;
  const changes = new Map<string, Map<string, string[]>>();
  for (const e of events) {
    if (e.type !== 'task-result') continue;
    if (!changes.has(e.host)) changes.set(e.host, new Map());
    changes.get(e.host)?.set(e.task, e.changes.map((c) => c.id).sort());
  }
  return { status, stderr, events, recap, byHost: Object.fromEntries((recap?.hosts ?? []).map((h) => [h.host, h])), changes };
}

// From the repository root, as a user runs it: playbooks/ and the agent release in dist/agent resolve from there, and
// run logs go to the git-ignored .epoch/logs. The inventory is the lab's inventory folder (hosts.yml plus .ssh/), the
// form users pass; `inventory` overrides it.
export function cli(lab: Lab, args: readonly string[], inventory = lab.inventoryDir, options: CliOptions = {}): CliRun {
  const r = spawnSync(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), ...args, '--inventory', inventory, '--yes', '--output', 'json'], {
    cwd: options.cwd ?? repo,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return collect(r.status, r.stdout, r.stderr);
}

/**
 * Runs the CLI like `cli` and SIGKILLs it (by its PID) the moment one of its events matches `killWhen`. `killed` says
 * whether that happened; a run that ended first (or after 300 s, killed too) resolves with killed: false.
 */
export function cliKilledWhen(lab: Lab, args: readonly string[], killWhen: (e: RunEvent) => boolean, inventory = lab.inventoryDir): Promise<CliRun & { killed: boolean }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), ...args, '--inventory', inventory, '--yes', '--output', 'json'], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let pending = '';
    let killed = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (killed || !line.startsWith('{')) continue;
        if (killWhen(JSON.parse(line) as RunEvent)) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ ...collect(code, stdout, stderr), killed });
    });
  });
}

/** What went wrong, for assertion messages: failed tasks with their messages, the halt reason, stderr. */
export function explain(r: CliRun): string {
  const failed = r.events.flatMap((e) =>
    e.type === 'task-result' && e.status === 'failed' ? [`${e.host} / ${e.task}: ${e.message ?? ''}`] : e.type === 'host-unreachable' ? [`${e.host} unreachable: ${e.message}`] : [],
  );
  return [`exit ${r.status}`, ...failed, r.recap?.haltReason ? `halted: ${r.recap.haltReason}` : '', r.stderr.trim().slice(-2000)].filter(Boolean).join('\n');
}

export const ofType = <T extends RunEvent['type']>(r: CliRun, type: T) => r.events.filter((e): e is Extract<RunEvent, { type: T }> => e.type === type);
