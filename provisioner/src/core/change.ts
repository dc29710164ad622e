// The module contract's vocabulary: what a plan is made of and what a run reports.

/** A command as an argv array; it becomes a string in exactly one place (transport/shell-quote.ts). */
export type Argv = readonly string[];

/** One thing to do on a host. Steps never branch on check mode: a plan is data. */
export type Step =
  | {
      kind: 'run';
      argv: Argv;
      /** Bytes for the command's stdin (never logged when `secret`). */
      stdin?: string;
      timeoutMs?: number;
      /** The step carries secret material: its stdin is redacted in logs and journals. */
      secret?: boolean;
    }
  | {
      /** Atomic file write: temp file in the same folder, optional validation, then rename. */
      kind: 'put';
      path: string;
      content: string;
      mode: number;
      owner?: string;
      /** argv run against the temp file before it is moved into place; `{}` stands for the temp path. */
      validate?: Argv;
      secret?: boolean;
    };

export interface Diff {
  /** What is being compared: a file path, `nft table ip epoch_provision`, ... */
  subject: string;
  before: string;
  after: string;
}

export interface Change {
  /** Stable id within a module's plan, e.g. `file:/etc/epoch-agent/agent.json`. */
  id: string;
  /** One line for humans: what will change and why. */
  summary: string;
  diff?: Diff;
  steps: Step[];
  /** Steps that undo this change, recorded in the host journal before `steps` run. Null: cannot be undone. */
  undo: Step[] | null;
}

export type TaskStatus = 'ok' | 'changed' | 'failed' | 'skipped';
export type HostStatus = TaskStatus | 'unreachable';
