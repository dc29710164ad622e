// Local process plumbing for the lab: argv-only commands with timeouts, detached daemons tracked by PID plus
// start time (so a recycled PID is never signalled), and bounded parallelism for a 2-core machine.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  stdin?: string | Buffer;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const baseEnv = (): NodeJS.ProcessEnv => ({ ...process.env, LC_ALL: 'C' });

// Commands run in their own process group (see run()); if this process exits first, they go with it.
const liveGroups = new Set<number>();
process.on('exit', () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Runs argv[0] with argv[1..] (no shell), capturing output. Never throws for a non-zero exit. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('run: empty argv');
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? baseEnv(),
      cwd: opts.cwd,
      // Own process group, so a timeout also kills what the command forked (nsenter's child inside a host).
      detached: true,
    });
    const pgid = child.pid;
    if (pgid) liveGroups.add(pgid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {});
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ exitCode: 127, signal: null, stdout: '', stderr: `${cmd}: ${e.message}`, timedOut: false });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pgid) liveGroups.delete(pgid);
      resolve({
        exitCode: code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

export class CommandFailed extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    const why = result.timedOut ? 'timed out' : `exited ${result.exitCode ?? result.signal}`;
    const detail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-5).join('\n');
    super(`\`${argv.join(' ')}\` ${why}, expected exit 0${detail ? `: ${detail}` : ''}`);
    this.name = 'CommandFailed';
  }
}

/** Runs argv and throws CommandFailed unless it exits 0; returns stdout. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.exitCode !== 0) throw new CommandFailed(argv, r);
  return r.stdout;
}

export interface TrackedProcess {
  pid: number;
  /** Field 22 of /proc/PID/stat: tells this process apart from a later one that reuses the PID. */
  startTime: string;
}

/** Starts argv detached (own session, survives the caller), output appended to logFile. */
export function spawnDetached(argv: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): TrackedProcess {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('spawnDetached: empty argv');
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: env ?? baseEnv() });
    child.on('error', () => {});
    child.unref();
    if (!child.pid) throw new Error(`could not start ${cmd}`);
    const startTime = procStartTime(child.pid);
    if (!startTime) throw new Error(`${cmd} (pid ${child.pid}) exited at once; see ${logFile}`);
    return { pid: child.pid, startTime };
  } finally {
    closeSync(fd);
  }
}

function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

export function procStartTime(pid: number): string | null {
  return statFields(pid)?.[19] ?? null;
}

/** True while the process exists, is the one we started, and is not a zombie (PID 1 here reaps late). */
export function isAlive(p: TrackedProcess): boolean {
  const f = statFields(p.pid);
  return !!f && f[19] === p.startTime && f[0] !== 'Z' && f[0] !== 'X';
}

export function signal(p: TrackedProcess, sig: NodeJS.Signals | number): void {
  if (!isAlive(p)) return;
  try {
    process.kill(p.pid, sig);
  } catch {
    // it exited between the check and the kill
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until none of the processes is alive; returns those still alive after timeoutMs. */
export async function waitGone(procs: TrackedProcess[], timeoutMs: number): Promise<TrackedProcess[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = procs.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(100);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/** Direct children of pid (all threads), from /proc/PID/task/TID/children. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) {
        if (c) out.push(Number(c));
      }
    } catch {
      // thread gone
    }
  }
  return out;
}

/** The descendant of pid that is PID 1 of its own PID namespace (a container's init), if any. */
export function findNamespaceInit(pid: number, depth = 3): number | null {
  for (const child of childrenOf(pid)) {
    try {
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
      if (nspid && nspid.length > 1 && nspid.at(-1) === '1') return child;
    } catch {
      continue;
    }
    if (depth > 1) {
      const found = findNamespaceInit(child, depth - 1);
      if (found) return found;
    }
  }
  return null;
}

export function tracked(pid: number): TrackedProcess | null {
  const startTime = procStartTime(pid);
  return startTime ? { pid, startTime } : null;
}

/** Runs fn over items with at most `limit` in flight; rejects with the first error after all settle. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  const errors: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) throw errors[0];
  return results;
}
