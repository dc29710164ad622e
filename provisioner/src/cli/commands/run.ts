// The default command: run a playbook against an inventory as a staged rollout.
//   epoch-provision [--inventory NAME] [playbook] [--limit P] [--check] [--diff] [--forks N] [--tags T] [--skip-tags T]
//                   [--output json|plain] [--yes] [--accept-new-host-keys] [--known-hosts FILE]
//                   [--vault-password-file F] [--become-password-env VAR] [--max-total-fail-percentage N] [--log-dir D]
// Everything is loaded and validated before the first connection (config errors exit 2, no host touched).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import {
  type ConnectionSpec,
  connectionSpecsFor,
  evaluateWhen,
  filterTasksByTags,
  hostRunVars,
  type Inventory,
  loadInventory,
  loadPlaybook,
  type Play,
  readVaultPasswordFile,
  resolveTaskParams,
  selectHosts,
  splitTagList,
  type Task,
} from '../../config';
import { ConfigError, isConfigError } from '../../core/errors';
import type { HostRecap, RunEvent } from '../../core/run-events';
import '../../modules/agent';
import '../../modules/ca';
import '../../modules/command';
import '../../modules/firewall';
import '../../modules/trust-coverage';
import '../../modules/trust-store';
import '../../modules/verify';
import { getModule } from '../../modules/registry';
import { chooseOutputMode, createRenderer } from '../../output/create-renderer';
import { Redactor, secretValuesOf } from '../../output/redact';
import { RunLog } from '../../output/run-log';
import type { HostFacts } from '../../facts/host-facts';
import { newRunId } from '../../runner/run-id';
import { type HealthGateResult, type PlayHost, runPlay } from '../../runner/run-play';
import type { CommandLogger } from '../../transport/command-log';
import { JumpPool } from '../../transport/ssh-transport';
import type { Transport } from '../../transport/transport';
import { exitCodes } from '../exit-codes';
import { becomePasswordOf, openTransport } from '../open-transport';
import { readHidden } from '../read-hidden';

/** Tasks with this tag are the play's health gate: they run after each batch instead of in the task list. */
export const healthGateTag = 'health_gate';
export { knownHostsFileVar } from '../open-transport';
/** Play variable for the cumulative failure budget across batches (percent of the play's hosts, "must be exceeded"). */
export const totalFailBudgetVar = 'epoch_max_total_fail_percentage';

const usage = `usage: epoch-provision [--inventory NAME|PATH] [PLAYBOOK (default playbooks/site.yml)] [options]
  --limit PATTERN              only these hosts (web:&prod, all:!db1, globs, @file)
  -e, --extra-vars VARS        key=value (YAML-typed: true, 3, [1, 2]) or a JSON object; highest precedence, repeatable
  --check                      show what would change; change nothing
  --diff                       show the diff of every change (secret content redacted)
  --forks N                    hosts in parallel inside a batch (default 5)
  --tags T / --skip-tags T     run only / skip tasks with these tags (comma lists, repeatable)
  --output json|plain          JSON lines of events plus a final recap, or plain lines (default: a tree on a TTY)
  --yes                        apply without asking (required when stdin is not a terminal)
  --accept-new-host-keys       record unknown host keys on first contact (a changed key is always refused)
  --known-hosts FILE           known_hosts to check against (default ~/.ssh/known_hosts; UserKnownHostsFile in
                               ansible_ssh_common_args wins per host)
  --vault-password-file FILE   decrypt !vault values
  --become-password-env VAR    the sudo password is in this environment variable
  -K, --ask-become-pass        ask for the sudo password once, without echo (it is never stored or logged)
  --max-total-fail-percentage N  cumulative failure budget across batches (overrides the play var ${totalFailBudgetVar})
  --log-dir DIR                run logs (default ./.epoch/logs)
  --no-rollback                leave a failed host as it is (default: replay this run's journal on it at once)`;

interface RunFlags {
  inventory?: string;
  playbook: string;
  limit?: string;
  check: boolean;
  diff: boolean;
  forks: number;
  tags: string[];
  skipTags: string[];
  output?: string;
  yes: boolean;
  acceptNewHostKeys: boolean;
  knownHosts: string;
  vaultPasswordFile?: string;
  becomePasswordEnv?: string;
  askBecomePass: boolean;
  maxTotalFailPercentage?: number;
  logDir: string;
  rollbackFailedHosts: boolean;
  extraVars: Record<string, unknown>;
}

function parseFlags(argv: string[]): RunFlags {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      inventory: { type: 'string', short: 'i' },
      limit: { type: 'string', short: 'l' },
      check: { type: 'boolean', short: 'C' },
      diff: { type: 'boolean', short: 'D' },
      forks: { type: 'string', short: 'f' },
      tags: { type: 'string', short: 't', multiple: true },
      'skip-tags': { type: 'string', multiple: true },
      output: { type: 'string', short: 'o' },
      yes: { type: 'boolean', short: 'y' },
      'accept-new-host-keys': { type: 'boolean' },
      'known-hosts': { type: 'string' },
      'vault-password-file': { type: 'string' },
      'become-password-env': { type: 'string' },
      'ask-become-pass': { type: 'boolean', short: 'K' },
      'max-total-fail-percentage': { type: 'string' },
      'log-dir': { type: 'string' },
      'no-rollback': { type: 'boolean' },
      'extra-vars': { type: 'string', short: 'e', multiple: true },
    },
    strict: true,
    allowPositionals: true,
  });
  const problems: { location: string; message: string }[] = [];
  if (positionals.length > 1) problems.push({ location: 'command line', message: `one playbook expected, got ${positionals.length}: ${positionals.join(' ')}` });
  const forks = values.forks === undefined ? 5 : Number(values.forks);
  if (!Number.isInteger(forks) || forks < 1) problems.push({ location: '--forks', message: `must be a whole number >= 1, got ${JSON.stringify(values.forks)}` });
  if (values.output !== undefined && !['json', 'plain'].includes(values.output)) problems.push({ location: '--output', message: `must be json or plain, got ${JSON.stringify(values.output)}` });
  let maxTotal: number | undefined;
  if (values['max-total-fail-percentage'] !== undefined) {
    maxTotal = Number(values['max-total-fail-percentage']);
    if (!Number.isFinite(maxTotal) || maxTotal < 0 || maxTotal > 100) problems.push({ location: '--max-total-fail-percentage', message: `must be 0-100, got ${JSON.stringify(values['max-total-fail-percentage'])}` });
  }
  const extraVars: Record<string, unknown> = {};
  for (const text of values['extra-vars'] ?? []) {
    const parsed = parseExtraVars(text);
    if (typeof parsed === 'string') problems.push({ location: '--extra-vars', message: parsed });
    else Object.assign(extraVars, parsed);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const inventory = values.inventory ?? process.env.EPOCH_INVENTORY;
  return {
    ...(inventory !== undefined && { inventory }),
    playbook: positionals[0] ?? join('playbooks', 'site.yml'),
    ...(values.limit !== undefined && { limit: values.limit }),
    check: values.check ?? false,
    diff: values.diff ?? false,
    forks,
    tags: splitTagList(values.tags ?? []),
    skipTags: splitTagList(values['skip-tags'] ?? []),
    ...(values.output !== undefined && { output: values.output }),
    yes: values.yes ?? false,
    acceptNewHostKeys: values['accept-new-host-keys'] ?? false,
    knownHosts: values['known-hosts'] ?? join(homedir(), '.ssh', 'known_hosts'),
    ...(values['vault-password-file'] !== undefined && { vaultPasswordFile: values['vault-password-file'] }),
    ...(values['become-password-env'] !== undefined && { becomePasswordEnv: values['become-password-env'] }),
    askBecomePass: values['ask-become-pass'] ?? false,
    ...(maxTotal !== undefined && { maxTotalFailPercentage: maxTotal }),
    logDir: values['log-dir'] ?? join('.epoch', 'logs'),
    rollbackFailedHosts: !(values['no-rollback'] ?? false),
    extraVars,
  };
}

/** `-e key=value key2=[1,2]` (values typed as YAML scalars, like Ansible) or `-e '{"key": ...}'`; a string is an error. */
export function parseExtraVars(text: string): Record<string, unknown> | string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const value: unknown = JSON.parse(trimmed);
      if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch (err) {
      return `not valid JSON: ${err instanceof Error ? err.message : String(err)} in ${JSON.stringify(text)}`;
    }
    return `expected a JSON object, got ${JSON.stringify(text)}`;
  }
  const vars: Record<string, unknown> = {};
  for (const pair of trimmed.split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq);
    if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return `expected key=value with a variable name as key, got ${JSON.stringify(pair)}`;
    vars[key] = parseYaml(pair.slice(eq + 1));
  }
  return vars;
}

export async function runCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    return exitCodes.ok;
  }
  let flags: RunFlags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    console.error(`epoch-provision: ${err instanceof Error ? err.message : String(err)}\n${usage}`);
    return exitCodes.config;
  }
  try {
    return await run(flags);
  } catch (err) {
    if (isConfigError(err)) {
      console.error(`epoch-provision: configuration error(s); no host was touched:\n${err.message}`);
      return exitCodes.config;
    }
    throw err;
  }
}

interface Loaded {
  inventory: Inventory;
  plays: { play: Play; hosts: string[]; tasks: Task[]; gate: Task[] }[];
  specs: Map<string, ConnectionSpec>;
  vaultPassword?: string;
}

async function load(flags: RunFlags): Promise<Loaded> {
  if (!flags.inventory) throw new ConfigError([{ location: '--inventory', message: 'no inventory: pass --inventory NAME (inventories/NAME/) or a path, or set EPOCH_INVENTORY' }]);
  const vaultPassword = flags.vaultPasswordFile ? readVaultPasswordFile(flags.vaultPasswordFile) : undefined;
  const inventory = await loadInventory(flags.inventory, { ...(vaultPassword !== undefined && { vaultPassword }) });
  const tagFilter = { tags: flags.tags, skipTags: flags.skipTags };
  const warnings: string[] = [];
  const plays = await loadPlaybook(flags.playbook, {
    inventory,
    extraVars: flags.extraVars,
    ...(flags.limit !== undefined && { limit: flags.limit }),
    tags: tagFilter,
    ...(vaultPassword !== undefined && { vaultPassword }),
    onWarning: (w) => warnings.push(w),
  });
  for (const w of warnings) console.error(`warning: ${w}`);
  const selected = plays.map((play) => {
    const tasks = filterTasksByTags(play.tasks, tagFilter);
    return {
      play,
      hosts: selectHosts(inventory, play.hosts, flags.limit),
      tasks: tasks.filter((t) => !t.tags.includes(healthGateTag)),
      gate: play.tasks.filter((t) => t.tags.includes(healthGateTag)),
    };
  });
  const allHosts = [...new Set(selected.flatMap((p) => p.hosts))];
  const specs = connectionSpecsFor(inventory, allHosts, { extraVars: flags.extraVars, ...(flags.becomePasswordEnv !== undefined && { becomePasswordEnv: flags.becomePasswordEnv }) });
  for (const p of selected) {
    const value = p.play.vars[totalFailBudgetVar];
    if (value !== undefined && (typeof value !== 'number' || value < 0 || value > 100)) {
      throw new ConfigError([{ location: p.play.varLocations[totalFailBudgetVar] ?? p.play.location, message: `${totalFailBudgetVar} must be a number 0-100, got ${JSON.stringify(value)}` }]);
    }
  }
  return { inventory, plays: selected, specs, ...(vaultPassword !== undefined && { vaultPassword }) };
}


async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function run(flags: RunFlags): Promise<number> {
  const loaded = await load(flags);
  const runId = newRunId();
  const redactor = new Redactor();
  redactor.add(loaded.vaultPassword);
  const becomePasswords = new Map<string, string | undefined>();
  let asked: string | undefined;
  if (flags.askBecomePass) {
    if (!process.stdin.isTTY) throw new ConfigError([{ location: '--ask-become-pass', message: 'stdin is not a terminal, so there is no prompt: use --become-password-env VAR' }]);
    asked = await readHidden('BECOME password: ');
  }
  for (const [name, spec] of loaded.specs) {
    const password = spec.become ? (asked ?? becomePasswordOf(spec)) : undefined;
    becomePasswords.set(name, password);
    redactor.add(password);
    for (const s of secretValuesOf(loaded.inventory.hosts.get(name)?.vars ?? {})) redactor.add(s);
  }

  const hostCount = loaded.specs.size;
  if (!flags.check && !flags.yes) {
    if (!process.stdin.isTTY) throw new ConfigError([{ location: '--yes', message: 'refusing to change hosts without confirmation: stdin is not a terminal (pass --yes, or --check to preview)' }]);
    if (!(await confirm(`Apply ${flags.playbook} to ${hostCount} host(s)? Run with --check first to preview. [y/N] `))) {
      console.error('aborted; no host was touched');
      return exitCodes.ok;
    }
  }

  const mode = chooseOutputMode(flags.output, Boolean(process.stdout.isTTY), process.env);
  const renderer = createRenderer(mode, (text) => process.stdout.write(text));
  const log = new RunLog(flags.logDir, runId, redactor);
  const emit = (e: RunEvent) => {
    log.event(e);
    renderer.handle(e);
  };
  const onCommand: CommandLogger = (c) => log.command(c);

  const connections = new Map<string, Promise<Transport>>();
  const jumpPool = new JumpPool();
  const openFor = (host: PlayHost): Promise<Transport> =>
    openTransport(host.name, loaded.specs.get(host.name), host.vars, becomePasswords.get(host.name), {
      knownHostsFile: flags.knownHosts,
      acceptNewHostKeys: flags.acceptNewHostKeys,
      onCommand,
      jumpPool,
    });
  const connect = (host: PlayHost): Promise<Transport> => {
    let c = connections.get(host.name);
    if (!c) {
      c = openFor(host);
      connections.set(host.name, c);
    }
    return c;
  };

  const recaps = new Map<string, HostRecap>();
  const factsCache = new Map<string, HostFacts>();
  let halted: { reason: string } | null = null;
  // On Ctrl-C or SIGTERM: close every connection and exit 130; each host keeps its journal, so the run can be rolled back.
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\nepoch-provision: ${signal}: closing connections; run log ${log.path}; roll back with the journal generation ${runId}\n`);
    log.close();
    void Promise.all([...connections.values()].map((c) => c.then((t) => t.close()).catch(() => undefined))).finally(() => process.exit(exitCodes.interrupted));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  emit({ type: 'run-start', runId, check: flags.check, at: new Date().toISOString() });
  try {
    for (const { play, hosts, tasks, gate } of loaded.plays) {
      const varsOf = new Map(hosts.map((h) => [h, hostRunVars(loaded.inventory, h, play, flags.extraVars)]));
      const playHosts: PlayHost[] = hosts.map((h) => ({ name: h, vars: varsOf.get(h)?.vars ?? {} }));
      const prepare = (task: Task, vars: Readonly<Record<string, unknown>>) => {
        const locations = varsOf.get(String(vars.inventory_hostname))?.varLocations ?? {};
        if (!evaluateWhen(task.when, vars, task.location)) return { skip: `when: ${task.when} is false`, params: null };
        return { skip: null, params: resolveTaskParams(task, vars, locations) };
      };
      const budgetVar = play.vars[totalFailBudgetVar];
      const maxTotal = flags.maxTotalFailPercentage ?? (typeof budgetVar === 'number' ? budgetVar : undefined);
      const result = await runPlay({
        name: play.name,
        runId,
        hosts: playHosts,
        tasks,
        serial: play.serial,
        budget: { ...(play.maxFailPercentage !== undefined && { maxFailPercentage: play.maxFailPercentage }), ...(maxTotal !== undefined && { maxTotalFailPercentage: maxTotal }) },
        forks: flags.forks,
        check: flags.check,
        diff: flags.diff,
        gatherFacts: true,
        connect,
        connectFresh: openFor,
        getModule,
        prepare,
        ...(gate.length > 0 && { healthGate: (batch: string[]) => runHealthGate(batch, gate, playHosts, connect, prepare, runId) }),
        emit,
        factsCache,
        rollbackFailedHosts: flags.rollbackFailedHosts,
      });
      await renderer.settle();
      for (const [host, r] of result.recaps) {
        const total = recaps.get(host);
        if (!total) recaps.set(host, { ...r });
        else {
          for (const k of ['ok', 'changed', 'failed', 'skipped', 'unreachable'] as const) total[k] += r[k];
          total.notRun ||= r.notRun;
        }
      }
      if (result.halted) {
        halted = result.halted;
        break;
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await Promise.all([...connections.values()].map((c) => c.then((t) => t.close()).catch(() => undefined)));
  }

  const all = [...recaps.values()];
  const exitCode = halted ? exitCodes.rolloutHalted : all.some((r) => r.failed > 0) ? exitCodes.hostsFailed : all.some((r) => r.unreachable > 0) ? exitCodes.hostsUnreachable : exitCodes.ok;
  emit({ type: 'recap', runId, hosts: all, halted: halted !== null, ...(halted && { haltReason: halted.reason }), exitCode });
  log.close();
  if (mode !== 'json') process.stderr.write(`run log: ${log.path}\n`);
  return exitCode;
}


/** The verify step between batches: the play's health_gate-tagged tasks, run on each host that succeeded. */
async function runHealthGate(
  batch: string[],
  gate: Task[],
  hosts: PlayHost[],
  connect: (h: PlayHost) => Promise<Transport>,
  prepare: (task: Task, vars: Readonly<Record<string, unknown>>) => { skip: string | null; params: unknown },
  runId: string,
): Promise<HealthGateResult> {
  const failedHosts: string[] = [];
  const messages: string[] = [];
  await Promise.all(
    batch.map(async (name) => {
      const host = hosts.find((h) => h.name === name);
      if (!host) return;
      try {
        const transport = await connect(host);
        const vars = { ...host.vars, epoch_run_id: runId, epoch_generation: runId };
        for (const task of gate) {
          const module = getModule(task.module);
          if (!module) throw new Error(`unknown module ${JSON.stringify(task.module)}`);
          const { skip, params } = prepare(task, vars);
          if (skip !== null) continue;
          const changes = module.plan(params, await module.gather({ name, vars, transport }, params));
          if (changes.length > 0) throw new Error(`${task.name}: ${changes.map((c) => c.summary).join('; ')}`);
        }
      } catch (err) {
        failedHosts.push(name);
        messages.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  return { failedHosts, ...(messages.length > 0 && { message: messages.join('; ') }) };
}
