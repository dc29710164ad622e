// The local run log: one JSON line per command and event, secrets redacted, file mode 0600.
// Lives in ./.epoch/logs/<run-id>.jsonl (gitignored) or wherever the caller points it.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../core/run-events';
import type { Redactor } from './redact';

export interface LoggedCommand {
  host: string;
  command: string;
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  stdin: 'none' | 'sent' | 'secret';
}

export class RunLog {
  readonly path: string;
  private fd: number | null;

  constructor(
    dir: string,
    runId: string,
    private readonly redactor: Redactor,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `${runId}.jsonl`);
    this.fd = openSync(this.path, 'a', 0o600);
  }

  private write(record: Record<string, unknown>): void {
    if (this.fd === null) return;
    writeSync(this.fd, `${this.redactor.redact(JSON.stringify({ at: new Date().toISOString(), ...record }))}\n`);
  }

  command(c: LoggedCommand): void {
    this.write({ kind: 'command', ...c });
  }

  event(e: RunEvent): void {
    this.write({ kind: 'event', ...e });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
