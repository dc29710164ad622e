// The error classes the runner branches on, and nothing more (see mitmproxy's note on hierarchies built up front).

export class ProvisionError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface ConfigProblem {
  /** `file:line:column` where known. */
  location: string;
  message: string;
}

/** Bad inventory, playbook, parameters or CLI flags. Exit 2; raised before any host is touched. */
export class ConfigError extends ProvisionError {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map((p) => (p.location ? `${p.location}: ${p.message}` : p.message)).join('\n'), 'config');
  }
}

/** The host could not be reached or authenticated: reported as unreachable, never as failed. */
export class UnreachableError extends ProvisionError {
  constructor(message: string, readonly host: string, options?: { cause?: unknown }) {
    super(message, 'unreachable', options);
  }
}

/** A remote command failed (non-zero exit where success was required, or a timeout). */
export class RemoteCommandError extends ProvisionError {
  constructor(
    message: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    readonly timedOut = false,
  ) {
    super(message, 'remote-command');
  }
}

/** After apply, planning again produced changes. */
export class DidNotConvergeError extends ProvisionError {
  constructor(message: string, readonly remaining: string[]) {
    super(message, 'did-not-converge');
  }
}

export const isConfigError = (e: unknown): e is ConfigError => e instanceof ConfigError;
export const isUnreachableError = (e: unknown): e is UnreachableError => e instanceof UnreachableError;
