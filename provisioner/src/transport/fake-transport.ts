// A scripted, in-memory transport for pure unit tests of planning and runner logic (never for lab behaviour).
// It keeps a tiny file system and understands the handful of commands apply-steps and the journal use;
// anything else must be scripted with `on()`, otherwise it fails loudly with exit 127.
import type { Argv } from '../core/change';
import { UnreachableError } from '../core/errors';
import { quoteArgv } from './shell-quote';
import type { ExecOptions, ExecResult, Transport } from './transport';

type Reply = Partial<Pick<ExecResult, 'exitCode' | 'stdout' | 'stderr' | 'timedOut'>>;
type Handler = (argv: Argv, options: ExecOptions, fake: FakeTransport) => Reply;

export class FakeTransport implements Transport {
  readonly files = new Map<string, { content: string; mode: number }>();
  readonly calls: { argv: Argv; stdin?: string }[] = [];
  private readonly handlers: { prefix: Argv; handler: Handler }[] = [];
  /** Makes every call fail as if the connection dropped. */
  lost = false;

  constructor(readonly hostName = 'fake') {}

  /** Replies to commands starting with `prefix` (the latest registration wins). */
  on(prefix: Argv, handler: Handler | Reply): this {
    this.handlers.unshift({ prefix, handler: typeof handler === 'function' ? handler : () => handler });
    return this;
  }

  async exec(argv: Argv, options: ExecOptions = {}): Promise<ExecResult> {
    if (this.lost) throw new UnreachableError(`${this.hostName}: SSH connection lost (fake)`, this.hostName);
    this.calls.push({ argv, ...(options.stdin !== undefined && { stdin: options.stdin.toString() }) });
    const scripted = this.handlers.find((h) => h.prefix.every((p, i) => argv[i] === p));
    const reply = scripted ? scripted.handler(argv, options, this) : this.builtin(argv, options);
    return { command: quoteArgv(argv), exitCode: 0, stdout: '', stderr: '', durationMs: 0, timedOut: false, ...reply };
  }

  /** The built-in behaviour for cat, mkdir, chmod, mv, rm and the journal append; scripted handlers may fall back to it. */
  builtin(argv: Argv, options: ExecOptions = {}): Reply {
    const [cmd, ...args] = argv;
    const last = args[args.length - 1] ?? '';
    switch (cmd) {
      case 'cat': {
        const f = this.files.get(last);
        return f ? { stdout: f.content } : { exitCode: 1, stderr: `cat: ${last}: No such file or directory\n` };
      }
      case 'mkdir':
      case 'chown':
      case 'true':
        return {};
      case 'chmod': {
        const f = this.files.get(last);
        if (f) f.mode = Number.parseInt(args[0] ?? '0', 8);
        return f ? {} : { exitCode: 1, stderr: `chmod: ${last}: No such file or directory\n` };
      }
      case 'mv': {
        const [from, to] = args.filter((a) => !a.startsWith('-'));
        const f = from ? this.files.get(from) : undefined;
        if (!f || !to) return { exitCode: 1, stderr: `mv: cannot stat '${from}'\n` };
        this.files.delete(from ?? '');
        this.files.set(to, f);
        return {};
      }
      case 'rm':
        this.files.delete(last);
        return {};
      case 'sh':
        // apply-steps' one-round-trip put: sh -c SCRIPT epoch-put DIR TEMP DEST MODE OWNER [VALIDATE...]. Each of
        // its steps goes through the scripted handlers, so a test can fail the chmod, the validation or the rename.
        if (args[0] === '-c' && args[2] === 'epoch-put') return this.put(args.slice(3), options);
        // The journal's append: sh -c '... cat >> "$2"' sh DIR PATH
        if (args[0] === '-c' && args[1]?.includes('cat >> "$2"')) {
          const path = args[4] ?? '';
          const prev = this.files.get(path)?.content ?? '';
          this.files.set(path, { content: prev + (options.stdin?.toString() ?? ''), mode: 0o600 });
          return {};
        }
        return { exitCode: 127, stderr: `fake transport: no script for sh ${args.join(' ')}\n` };
      default:
        return { exitCode: 127, stderr: `fake transport: no script for ${quoteArgv(argv)}\n` };
    }
  }

  private put([dir = '', temp = '', dest = '', mode = '644', owner = '', ...validate]: string[], options: ExecOptions): Reply {
    this.calls.push({ argv: ['<put>', dest] });
    this.files.set(temp, { content: options.stdin?.toString() ?? '', mode: 0o600 });
    const steps: [string, Argv][] = [
      ['mkdir', ['mkdir', '-p', dir]],
      ['chown', owner ? ['chown', owner, temp] : []],
      ['chmod', ['chmod', mode, temp]],
      ['validate', validate],
      ['mv', ['mv', '-f', temp, dest]],
    ];
    for (const [name, argv] of steps) {
      if (argv.length === 0) continue;
      this.calls.push({ argv });
      const scripted = this.handlers.find((h) => h.prefix.every((p, i) => argv[i] === p));
      const reply = scripted ? scripted.handler(argv, {}, this) : this.builtin(argv);
      if ((reply.exitCode ?? 0) !== 0) {
        this.files.delete(temp);
        return { exitCode: reply.exitCode ?? 1, stderr: `${reply.stderr ?? ''}@@epoch-put ${name} ${reply.exitCode ?? 1}\n` };
      }
    }
    return {};
  }

  async getFile(path: string): Promise<Buffer> {
    const f = this.files.get(path);
    if (!f) throw new Error(`fake transport: ${path} does not exist`);
    return Buffer.from(f.content);
  }

  async close(): Promise<void> {}
}
