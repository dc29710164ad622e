// The transport for `ansible_connection: local`: runs argv directly with execa (no shell), LC_ALL=C and a timeout.
import { readFile } from 'node:fs/promises';
import type { Argv } from '../core/change';
import { RemoteCommandError } from '../core/errors';
import type { CommandLogger } from './command-log';
import { quoteArgv } from './shell-quote';
import type { ExecOptions, ExecResult, Transport } from './transport';

export interface LocalTransportOptions {
  hostName: string;
  commandTimeoutMs?: number;
  /** sudo to this user unless we already are it (ansible_become on a local connection). */
  become?: { user: string; password?: string };
  onCommand?: CommandLogger;
}

export class LocalTransport implements Transport {
  readonly hostName: string;

  constructor(private readonly options: LocalTransportOptions) {
    this.hostName = options.hostName;
  }

  private becomeApplies(requested: boolean | undefined): boolean {
    const become = this.options.become;
    if (!become || requested === false) return false;
    const me = process.getuid?.() === 0 ? 'root' : (process.env.USER ?? '');
    return become.user !== me;
  }

  async exec(argv: Argv, options: ExecOptions = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new Error('LocalTransport.exec: empty argv');
    const become = this.becomeApplies(options.become);
    const password = become ? this.options.become?.password : undefined;
    const full = become ? [...(password !== undefined ? ['sudo', '-k', '-S', '-p', ''] : ['sudo', '-n']), '-u', this.options.become?.user ?? 'root', '--', ...argv] : [...argv];
    let input = options.stdin;
    if (password !== undefined) input = Buffer.concat([Buffer.from(`${password}\n`), Buffer.from(input ?? '')]);
    // Loaded on first use: most runs have no local host, and execa is one of the controller's slowest imports.
    const { execa } = await import('execa');
    const r = await execa(full[0] ?? '', full.slice(1), {
      reject: false,
      env: { LC_ALL: 'C' },
      timeout: options.timeoutMs ?? this.options.commandTimeoutMs ?? 120_000,
      ...(input !== undefined ? { input } : { stdin: 'ignore' as const }),
      stripFinalNewline: false,
    });
    const command = quoteArgv(full);
    const result: ExecResult = {
      command,
      exitCode: typeof r.exitCode === 'number' ? r.exitCode : null,
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? '') || (r.exitCode === undefined && !r.timedOut ? String(r.message ?? '') : ''),
      durationMs: Math.round(r.durationMs),
      timedOut: r.timedOut,
    };
    this.options.onCommand?.({ host: this.hostName, command, exitCode: result.exitCode, durationMs: result.durationMs, timedOut: result.timedOut, stdin: options.secret || password !== undefined ? 'secret' : options.stdin !== undefined ? 'sent' : 'none' });
    return result;
  }

  async getFile(path: string): Promise<Buffer> {
    if (!this.becomeApplies(undefined)) return readFile(path);
    const r = await this.exec(['cat', path], { become: true });
    if (r.exitCode !== 0) throw new RemoteCommandError(`cannot read ${path}: ${r.stderr.trim()}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
    return Buffer.from(r.stdout);
  }

  async close(): Promise<void> {}
}
