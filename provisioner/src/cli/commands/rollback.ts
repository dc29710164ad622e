// `epoch-provision rollback`: disaster-recovery rollback from the host journals. Every run records, on each host and
// before each change, how to undo it (/var/lib/epoch-provision/journal/<generation>.jsonl). Rollback replays
// those undos newest first, so it works on half-provisioned hosts and never needs the controller's memory of a run.
//   (no --to)       undo the newest generation that still has changes to undo
//   --to GEN        undo every generation newer than GEN: the host returns to the state GEN left it in
//   --list          show each host's generations and what is left to undo; change nothing
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type ConnectionSpec, connectionSpecsFor, type Inventory, loadInventory, selectHosts } from '../../config';
import { ConfigError, isConfigError, isUnreachableError } from '../../core/errors';
import type { HostRecap, RunEvent } from '../../core/run-events';
import { journalDir } from '../../facts/epoch-state';
import { chooseOutputMode, createRenderer } from '../../output/create-renderer';
import { type JournalLine, readJournal, rollbackGeneration } from '../../runner/journal';
import { generationPattern, newRunId } from '../../runner/run-id';
import { Semaphore } from '../../transport/semaphore';
import { JumpPool } from '../../transport/ssh-transport';
import type { Transport } from '../../transport/transport';
import { exitCodes } from '../exit-codes';
import { becomePasswordOf, openTransport } from '../open-transport';

const usage = `usage: epoch-provision rollback --inventory NAME|PATH [--to GENERATION | --list] [--limit PATTERN] [--yes]
         [--forks N] [--output json|plain] [--known-hosts FILE] [--accept-new-host-keys] [--become-password-env VAR]
  Replays the host journals' undo entries, newest first. Without --to: the newest generation with changes left.`;

export interface GenerationSummary {
  generation: string;
  changes: number;
  /** Changes whose undo has not been replayed yet (irreversible ones included). */
  pending: number;
}

/** Pure: which generations to undo, newest first. */
export function generationsToUndo(summaries: readonly GenerationSummary[], to: string | undefined): string[] {
  const sorted = [...summaries].sort((a, b) => a.generation.localeCompare(b.generation));
  if (to !== undefined) return sorted.filter((g) => g.generation > to && g.pending > 0).map((g) => g.generation).reverse();
  const newest = sorted.filter((g) => g.pending > 0).at(-1);
  return newest ? [newest.generation] : [];
}

export function summarize(generation: string, lines: readonly JournalLine[]): GenerationSummary {
  const changes = lines.filter((l) => l.kind === 'change');
  const done = new Set(lines.filter((l) => l.kind === 'rolled-back').map((l) => l.seq));
  return { generation, changes: changes.length, pending: changes.filter((c) => !done.has(c.seq)).length };
}

async function listGenerations(transport: Transport): Promise<GenerationSummary[]> {
  const r = await transport.exec(['sh', '-c', 'ls -1 "$1" 2>/dev/null; true', 'sh', journalDir], { timeoutMs: 30_000 });
  const names = r.stdout.split('\n').map((s) => s.trim()).filter((s) => s.endsWith('.jsonl')).map((s) => s.slice(0, -'.jsonl'.length));
  const out: GenerationSummary[] = [];
  for (const generation of names.filter((n) => generationPattern.test(n))) {
    out.push(summarize(generation, (await readJournal(transport, generation)) ?? []));
  }
  return out;
}

export async function rollbackCommand(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  try {
    ({ values } = parse(argv));
  } catch (err) {
    console.error(`epoch-provision rollback: ${err instanceof Error ? err.message : String(err)}\n${usage}`);
    return exitCodes.config;
  }
  if (values.help) {
    console.log(usage);
    return exitCodes.ok;
  }
  let inventory: Inventory;
  let hosts: string[];
  let specs: Map<string, ConnectionSpec>;
  try {
    const problems: { location: string; message: string }[] = [];
    const inventorySpec = values.inventory ?? process.env.EPOCH_INVENTORY;
    if (!inventorySpec) problems.push({ location: '--inventory', message: 'no inventory: pass --inventory NAME or a path, or set EPOCH_INVENTORY' });
    if (values.to !== undefined && !generationPattern.test(values.to)) problems.push({ location: '--to', message: `not a generation name: ${JSON.stringify(values.to)} (see --list)` });
    if (values.to !== undefined && values.list) problems.push({ location: '--to', message: '--to and --list do not go together' });
    const forks = Number(values.forks ?? 5);
    if (!Number.isInteger(forks) || forks < 1) problems.push({ location: '--forks', message: `must be a whole number >= 1, got ${JSON.stringify(values.forks)}` });
    if (values.output !== undefined && !['json', 'plain'].includes(values.output)) problems.push({ location: '--output', message: `must be json or plain, got ${JSON.stringify(values.output)}` });
    if (!values.list && !values.yes && !process.stdin.isTTY) problems.push({ location: '--yes', message: 'refusing to roll back without confirmation: stdin is not a terminal (pass --yes, or --list to look first)' });
    if (problems.length > 0) throw new ConfigError(problems);
    inventory = await loadInventory(inventorySpec!);
    hosts = selectHosts(inventory, 'all', values.limit);
    specs = connectionSpecsFor(inventory, hosts, { ...(values['become-password-env'] !== undefined && { becomePasswordEnv: values['become-password-env'] }) });
    if (hosts.length === 0) throw new ConfigError([{ location: '--limit', message: `no host matched ${JSON.stringify(values.limit ?? 'all')}` }]);
  } catch (err) {
    if (isConfigError(err)) {
      console.error(`epoch-provision rollback: configuration error(s); no host was touched:\n${err.message}`);
      return exitCodes.config;
    }
    throw err;
  }

  const mode = chooseOutputMode(values.output, false, process.env);
  const renderer = createRenderer(mode, (text) => process.stdout.write(text));
  const emit = (e: RunEvent) => renderer.handle(e);
  const say = (text: string) => {
    if (mode !== 'json') console.log(text);
  };
  const runId = newRunId();
  emit({ type: 'run-start', runId, check: Boolean(values.list), at: new Date().toISOString() });
  const jumpPool = new JumpPool();
  const forks = new Semaphore(Number(values.forks ?? 5));
  const recaps: HostRecap[] = [];
  await Promise.all(
    hosts.map((name) =>
      forks.run(async () => {
        const recap: HostRecap = { host: name, ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, notRun: false };
        recaps.push(recap);
        let transport: Transport | undefined;
        try {
          const spec = specs.get(name);
          transport = await openTransport(name, spec, inventory.hosts.get(name)?.vars ?? {}, spec?.become ? becomePasswordOf(spec) : undefined, {
            knownHostsFile: values['known-hosts'] ?? join(homedir(), '.ssh', 'known_hosts'),
            acceptNewHostKeys: values['accept-new-host-keys'] ?? false,
            jumpPool,
          });
          const generations = await listGenerations(transport);
          if (values.list) {
            for (const g of generations) say(`${name}: ${g.generation}  ${g.changes} change(s), ${g.pending} left to undo`);
            if (generations.length === 0) say(`${name}: no journal (nothing was ever applied, or it was uninstalled)`);
            recap.ok += 1;
            return;
          }
          const todo = generationsToUndo(generations, values.to);
          if (todo.length === 0) {
            say(`${name}: ok, nothing to roll back${values.to ? ` after ${values.to}` : ''}`);
            recap.ok += 1;
            return;
          }
          for (const generation of todo) {
            const result = await rollbackGeneration(transport, generation, emit);
            if (result.failed) throw new Error(`generation ${generation}: ${result.failed.change}: ${result.failed.message}`);
            say(`${name}: rolled back ${generation}: ${result.rolledBack} change(s) undone${result.irreversible.length ? `, ${result.irreversible.length} not undoable: ${result.irreversible.join(', ')}` : ''}`);
          }
          recap.ok += 1;
          recap.changed += 1;
        } catch (err) {
          if (isUnreachableError(err)) recap.unreachable += 1;
          else recap.failed += 1;
          const message = err instanceof Error ? err.message : String(err);
          if (mode === 'json') emit({ type: 'host-unreachable', host: name, message });
          else console.error(`${name}: ${isUnreachableError(err) ? 'unreachable' : 'failed to roll back'}: ${message}`);
        } finally {
          await transport?.close();
        }
      }),
    ),
  );
  const exitCode = recaps.some((r) => r.failed > 0) ? exitCodes.hostsFailed : recaps.some((r) => r.unreachable > 0) ? exitCodes.hostsUnreachable : exitCodes.ok;
  emit({ type: 'recap', runId, hosts: recaps.sort((a, b) => a.host.localeCompare(b.host)), halted: false, exitCode });
  await renderer.settle();
  return exitCode;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      inventory: { type: 'string', short: 'i' },
      limit: { type: 'string', short: 'l' },
      to: { type: 'string' },
      list: { type: 'boolean' },
      yes: { type: 'boolean', short: 'y' },
      forks: { type: 'string', short: 'f' },
      output: { type: 'string', short: 'o' },
      'known-hosts': { type: 'string' },
      'accept-new-host-keys': { type: 'boolean' },
      'become-password-env': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
}
