// `command`: the escape hatch. Runs one argv (never through a shell) unless `creates` already exists or
// `removes` is already absent, so it can be made idempotent the way Ansible's command module is.
import { z } from 'zod';
import type { Change } from '../../core/change';
import { RemoteCommandError } from '../../core/errors';
import type { HostContext } from '../module';
import { type RegisteredModule, registerModule } from '../registry';
import { ShellSplitError, shellSplit } from './shell-split';

const absolutePath = z.string().regex(/^\//, 'must be an absolute path');

const rawParams = z
  .object({
    argv: z.array(z.string()).min(1, 'argv needs at least the program').optional(),
    cmd: z.string().min(1, 'cmd must not be empty').optional(),
    creates: absolutePath.optional(),
    removes: absolutePath.optional(),
  })
  .strict();

export interface CommandParams {
  argv: string[];
  /** Skip when this path exists. */
  creates?: string;
  /** Skip when this path does not exist. */
  removes?: string;
}

export const commandParams = rawParams.transform((p, ctx): CommandParams => {
  if ((p.argv === undefined) === (p.cmd === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'give exactly one of argv (a list) or cmd (a string)' });
    return z.NEVER;
  }
  let argv = p.argv;
  if (p.cmd !== undefined) {
    try {
      argv = shellSplit(p.cmd, { rejectShellSyntax: true });
    } catch (e) {
      if (!(e instanceof ShellSplitError)) throw e;
      ctx.addIssue({ code: 'custom', message: e.message, path: ['cmd'] });
      return z.NEVER;
    }
    if (argv.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'cmd has no words', path: ['cmd'] });
      return z.NEVER;
    }
  }
  const out: CommandParams = { argv: argv as string[] };
  if (p.creates !== undefined) out.creates = p.creates;
  if (p.removes !== undefined) out.removes = p.removes;
  return out;
});

export interface CommandFacts {
  createsExists?: boolean;
  removesExists?: boolean;
}

async function pathExists(host: HostContext, path: string): Promise<boolean> {
  const result = await host.transport.exec(['test', '-e', path]);
  if (result.exitCode === 0) return true;
  if (result.exitCode === 1) return false;
  throw new RemoteCommandError(
    `could not check whether ${path} exists on ${host.name}: exit ${result.exitCode} (expected 0 or 1)`,
    result.command,
    result.exitCode,
    result.stdout,
    result.stderr,
    result.timedOut,
  );
}

export function planCommand(params: CommandParams, facts: CommandFacts): Change[] {
  if (params.creates !== undefined && facts.createsExists) return [];
  if (params.removes !== undefined && facts.removesExists === false) return [];
  const line = params.argv.join(' ');
  return [
    {
      id: `command:${line}`,
      summary: `run ${line}`,
      steps: [{ kind: 'run', argv: params.argv }],
      undo: null,
    },
  ];
}

export const commandModule: RegisteredModule = {
  name: 'command',
  params: commandParams,
  freeFormParam: 'cmd',
  converges: (params) => {
    const p = params as CommandParams;
    return p.creates !== undefined || p.removes !== undefined;
  },
  async gather(host: HostContext, params: CommandParams): Promise<CommandFacts> {
    const facts: CommandFacts = {};
    if (params.creates !== undefined) facts.createsExists = await pathExists(host, params.creates);
    if (params.removes !== undefined) facts.removesExists = await pathExists(host, params.removes);
    return facts;
  },
  plan: planCommand,
};

registerModule(commandModule);
