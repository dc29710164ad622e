// How the provisioner talks to one host. Implementations: ssh-transport.ts (ssh2), local-transport.ts (execa).
import type { Argv } from '../core/change';

export interface ExecOptions {
  stdin?: string | Buffer;
  /** Every remote call has a timeout; this overrides the transport's default. */
  timeoutMs?: number;
  /** Run through sudo (`sudo -n`, or with the become password over stdin). */
  become?: boolean;
  /** Redact stdin in the run log. */
  secret?: boolean;
}

/** A finished command. A non-zero exit is data, not an exception (execa's `reject: false`). */
export interface ExecResult {
  /** The quoted command line, safe to print. */
  command: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface Transport {
  readonly hostName: string;
  /** Runs argv with LC_ALL=C. Rejects only when the connection itself fails (UnreachableError). */
  exec(argv: Argv, options?: ExecOptions): Promise<ExecResult>;
  getFile(path: string): Promise<Buffer>;
  close(): Promise<void>;
}
