// Playbooks in Ansible's shape, limited to what epoch-provision runs: a list of plays with name, hosts, serial,
// max_fail_percentage, vars, tags and tasks; a task is name + exactly one registered module + optional when/tags.
// Loading validates everything statically (shape, module params without templates, template syntax, when
// syntax). With an inventory it also preflights every selected host: it evaluates `when`, resolves the params
// and validates them, so every config error is reported before any connection.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type ZodType, z } from 'zod';
import { ConfigError } from '../core/errors';
import { getModule, listModules, type RegisteredModule } from '../modules/registry';
import { magicVars } from './connection';
import { loadInventory } from './inventory';
import { selectHosts } from './patterns';
import { Problems, show } from './problems';
import { filterTasksByTags, type TagFilter } from './tags';
import { checkTemplates, hasTemplate, type RefStep, Resolver, TemplateSyntaxError, type UndefinedVariableProblem } from './templating';
import type { Inventory, Play, Task } from './types';
import { decryptVault, VaultValue } from './vault';
import { evaluateWhen, parseCondition } from './when';
import { displayPath, type PathKey, parseYamlSource, type YamlSource } from './yaml-source';

// The modules a playbook can name must be registered before loading; `command` is always available.
import '../modules/command';

export interface LoadPlaybookOptions {
  /** When given, every play is preflighted against the hosts it selects. */
  inventory?: Inventory;
  /** -e variables: the highest precedence. */
  extraVars?: Record<string, unknown>;
  /** --limit: preflight only the hosts that will run. */
  limit?: string;
  /** --tags / --skip-tags: preflight only the tasks that will run. */
  tags?: TagFilter;
  /** Decrypts `!vault` values in play vars. */
  vaultPassword?: string;
  /** Receives warnings, e.g. a play whose hosts pattern matches nothing. */
  onWarning?: (message: string) => void;
  /**
   * Variables that only exist at run time (facts, run id). Preflight cannot check expressions that need them, so
   * an undefined one of these is left to run time instead of being reported. Default: runtimeVariables.
   */
  runtimeVars?: readonly string[];
}

/** What the runner adds to a host's variables after connecting (see runner/run-play.ts). */
export const runtimeVariables: readonly string[] = ['epoch_facts', 'epoch_run_id', 'epoch_generation'];

const playKeys = ['name', 'hosts', 'serial', 'max_fail_percentage', 'vars', 'tags', 'tasks'];
const taskKeys = ['name', 'when', 'tags'];
/** Ansible keywords we know and deliberately do not implement: named in the error instead of "unknown module". */
const unsupportedTaskKeys = new Set([
  'register', 'loop', 'with_items', 'with_dict', 'loop_control', 'notify', 'become', 'become_user', 'ignore_errors',
  'delegate_to', 'run_once', 'until', 'retries', 'delay', 'changed_when', 'failed_when', 'vars', 'environment',
  'check_mode', 'diff', 'no_log', 'block', 'rescue', 'always', 'include_tasks', 'import_tasks', 'include_role',
  'import_role', 'args', 'async', 'poll', 'throttle', 'any_errors_fatal', 'local_action', 'action',
]);

const percent = z.string().regex(/^\s*\d+(\.\d+)?\s*%\s*$/, 'a percentage looks like "25%"');
const serialItem = z.union([z.number().int().min(1), percent, z.string().regex(/^\d+$/).transform(Number)]);

const playSchema = z
  .object({
    name: z.string().optional(),
    // A list of patterns means their union, as in Ansible
    hosts: z.union([z.string(), z.array(z.string().min(1)).min(1).transform((l) => l.join(','))]).pipe(z.string().min(1, 'hosts must name a host pattern')),
    serial: z.union([serialItem, z.array(serialItem).min(1)]).optional(),
    max_fail_percentage: z.number().min(0).max(100).optional(),
    vars: z.record(z.string(), z.unknown()).nullable().optional(),
    tags: z.union([z.string(), z.number(), z.array(z.union([z.string(), z.number()]))]).nullable().optional(),
    tasks: z.array(z.unknown()).nullable().optional(),
  })
  .strict();

const tagsSchema = z.union([z.string(), z.number(), z.array(z.union([z.string(), z.number()]))]).nullable();
const whenSchema = z.union([z.string(), z.boolean(), z.array(z.string())]).nullable();

const isMapping = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof VaultValue);

function normaliseTags(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.flatMap((t) => String(t).split(',')).map((t) => t.trim()).filter(Boolean);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const step of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[step];
  }
  return v;
}

/** zod issues → problems at the offending values' locations, each with the value. */
export function reportZodIssues(
  issues: readonly z.core.$ZodIssue[],
  root: unknown,
  locate: (path: PathKey[]) => string,
  problems: Problems,
  prefix = '',
): void {
  for (const issue of issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const where = path.length ? `${path.join('.')}: ` : '';
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        problems.add(locate([...path, key]), `${prefix}${where}unknown parameter ${JSON.stringify(key)} (got ${show(valueAt(root, [...path, key]))})`);
      }
      continue;
    }
    const value = valueAt(root, path);
    // A module's own check can say its message already names what was wrong (e.g. `FILE: problem` for a CA file).
    const omitValue = issue.code === 'custom' && (issue.params as { omitValue?: unknown } | undefined)?.omitValue === true;
    const got = omitValue ? '' : ` (got ${value === undefined ? 'nothing' : show(value)})`;
    problems.add(locate(path), `${prefix}${where}${issue.message}${got}`);
  }
}

function collectLocations(value: unknown, path: PathKey[], locate: (p: PathKey[]) => string, out: Record<string, string>): void {
  out[path.join('.')] = locate(path);
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) collectLocations(v, [...path, i], locate, out);
  }
  else if (isMapping(value)) for (const [k, v] of Object.entries(value)) collectLocations(v, [...path, k], locate, out);
}

function containsTemplate(value: unknown): boolean {
  if (typeof value === 'string') return hasTemplate(value);
  if (Array.isArray(value)) return value.some(containsTemplate);
  if (isMapping(value)) return Object.values(value).some(containsTemplate);
  return false;
}

export async function loadPlaybook(path: string, options: LoadPlaybookOptions = {}): Promise<Play[]> {
  const problems = new Problems();
  let text: string;
  try {
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  } catch (e) {
    throw new ConfigError([{ location: displayPath(path), message: `cannot read playbook: ${(e as Error).message}` }]);
  }
  const src = parseYamlSource(path, text, problems);
  problems.throwIfAny();
  const plays = parsePlays(src, problems, options);
  problems.throwIfAny();
  if (options.inventory) preflight(plays, options.inventory, options, problems);
  problems.throwIfAny();
  return plays;
}

function parsePlays(src: YamlSource, problems: Problems, options: LoadPlaybookOptions): Play[] {
  const doc = src.value;
  if (!Array.isArray(doc)) {
    problems.add(src.locate([]), `a playbook must be a list of plays, got ${show(doc)}`);
    return [];
  }
  const plays: Play[] = [];
  doc.forEach((rawPlay, p) => {
    const at = (rel: PathKey[]): string => src.locate([p, ...rel]);
    if (!isMapping(rawPlay)) {
      problems.add(at([]), `play ${p + 1} must be a mapping, got ${show(rawPlay)}`);
      return;
    }
    if ('import_playbook' in rawPlay || 'roles' in rawPlay) {
      const key = 'roles' in rawPlay ? 'roles' : 'import_playbook';
      problems.add(src.locateKey([p, key]), `${key} is not supported (supported play keys: ${playKeys.join(', ')})`);
    }
    const parsed = playSchema.safeParse(rawPlay);
    if (!parsed.success) {
      const issues = parsed.error.issues.filter((i) => i.code !== 'unrecognized_keys');
      reportZodIssues(issues, rawPlay, (path) => (path.length ? src.locateKey([p, ...path]) : at([])), problems);
      for (const issue of parsed.error.issues) {
        if (issue.code === 'unrecognized_keys') {
          for (const key of issue.keys) problems.add(src.locateKey([p, key]), `play key ${JSON.stringify(key)} is not supported (supported: ${playKeys.join(', ')})`);
        }
      }
      return;
    }
    const play = parsed.data;
    const vars: Record<string, unknown> = {};
    const varLocations: Record<string, string> = {};
    for (const [k, v] of Object.entries(play.vars ?? {})) {
      vars[k] = revealPlayVault(v, k, options, problems);
      varLocations[k] = at(['vars', k]);
    }
    checkTemplates(vars, (rel) => at(['vars', ...rel]), problems);
    const serialList = play.serial === undefined ? [] : Array.isArray(play.serial) ? play.serial : [play.serial];
    const playTags = normaliseTags(play.tags);
    const tasks: Task[] = [];
    (play.tasks ?? []).forEach((rawTask, t) => {
      const task = parseTask(src, [p, 'tasks', t], rawTask, playTags, problems);
      if (task) tasks.push(task);
    });
    // Like Ansible, `hosts:` may use play vars and extra vars (never host vars): hosts: "{{ target | default('all') }}"
    let hosts = play.hosts;
    if (hasTemplate(hosts)) {
      try {
        const resolved = new Resolver({ ...vars, ...(options.extraVars ?? {}) }, varLocations).resolveString(hosts, at(['hosts']));
        if (typeof resolved !== 'string' || !resolved.trim()) {
          problems.add(at(['hosts']), `hosts ${show(hosts)} resolves to ${show(resolved)} (expected a host pattern)`);
        } else hosts = resolved;
      } catch (e) {
        problems.absorb(e);
      }
    }
    const out: Play = {
      name: play.name ?? hosts,
      hosts,
      serial: serialList.map((s) => (typeof s === 'string' ? s.replace(/\s+/g, '') : s)),
      vars,
      tasks,
      location: at([]),
      varLocations,
    };
    if (play.max_fail_percentage !== undefined) out.maxFailPercentage = play.max_fail_percentage;
    plays.push(out);
  });
  return plays;
}

function revealPlayVault(value: unknown, name: string, options: LoadPlaybookOptions, problems: Problems): unknown {
  if (!(value instanceof VaultValue)) return value;
  if (options.vaultPassword === undefined) {
    problems.add(value.location, `variable ${name} is vault-encrypted; pass --vault-password-file to decrypt it`);
    return value;
  }
  try {
    return decryptVault(value.envelope, options.vaultPassword);
  } catch (e) {
    problems.add(value.location, `cannot decrypt variable ${name}: ${(e as Error).message}`);
    return value;
  }
}

function parseTask(src: YamlSource, path: PathKey[], raw: unknown, playTags: string[], problems: Problems): Task | undefined {
  const at = (rel: PathKey[]): string => src.locate([...path, ...rel]);
  const keyAt = (key: string): string => src.locateKey([...path, key]);
  if (!isMapping(raw)) {
    problems.add(at([]), `a task must be a mapping (name, one module, when, tags), got ${show(raw)}`);
    return undefined;
  }
  let ok = true;
  const moduleKeys: string[] = [];
  for (const key of Object.keys(raw)) {
    if (taskKeys.includes(key)) continue;
    if (unsupportedTaskKeys.has(key)) {
      problems.add(keyAt(key), `task keyword ${JSON.stringify(key)} is not supported (a task is name, one module, when, tags)`);
      ok = false;
    } else moduleKeys.push(key);
  }
  const known = listModules().map((m) => m.name).join(', ');
  if (moduleKeys.length !== 1) {
    problems.add(
      at([]),
      moduleKeys.length === 0
        ? `task has no module (expected exactly one of: ${known})`
        : `task has ${moduleKeys.length} module keys ${moduleKeys.map((k) => JSON.stringify(k)).join(', ')} (expected exactly one of: ${known})`,
    );
    return undefined;
  }
  const moduleName = moduleKeys[0]!;
  const module = getModule(moduleName);
  if (!module) {
    problems.add(keyAt(moduleName), `unknown module ${JSON.stringify(moduleName)} (registered modules: ${known})`);
    return undefined;
  }
  if (raw.name !== undefined && typeof raw.name !== 'string') {
    problems.add(at(['name']), `task name must be a string, got ${show(raw.name)}`);
    ok = false;
  }
  const tagsParsed = tagsSchema.safeParse(raw.tags ?? null);
  if (!tagsParsed.success) {
    problems.add(at(['tags']), `tags must be a string or a list of strings, got ${show(raw.tags)}`);
    ok = false;
  }
  let when: string | undefined;
  const whenParsed = whenSchema.safeParse(raw.when ?? null);
  if (!whenParsed.success) {
    problems.add(at(['when']), `when must be a condition string, a list of them, or a boolean, got ${show(raw.when)}`);
    ok = false;
  } else if (whenParsed.data !== null) {
    const conditions = typeof whenParsed.data === 'boolean' ? [String(whenParsed.data)] : [whenParsed.data].flat();
    for (const [i, c] of conditions.entries()) {
      try {
        parseCondition(c);
      } catch (e) {
        if (!(e instanceof TemplateSyntaxError)) throw e;
        problems.add(at(Array.isArray(raw.when) ? ['when', i] : ['when']), e.message);
        ok = false;
      }
    }
    when = conditions.join(' and ');
  }

  let params: unknown = raw[moduleName];
  const paramsPath: PathKey[] = [...path, moduleName];
  if (params === null || params === undefined) params = {};
  else if (typeof params === 'string' && module.freeFormParam) params = { [module.freeFormParam]: params };
  if (!isMapping(params)) {
    problems.add(at([moduleName]), `params of module ${moduleName} must be a mapping, got ${show(params)}`);
    return undefined;
  }
  const locateParam = (rel: PathKey[]): string =>
    typeof raw[moduleName] === 'string' ? src.locate(paramsPath) : src.locate([...paramsPath, ...rel]);
  const before = problems.list.length;
  checkTemplates(params, locateParam, problems);
  if (problems.list.length === before && !containsTemplate(params)) {
    const parsed = (module.params as ZodType).safeParse(params);
    if (!parsed.success) reportZodIssues(parsed.error.issues, params, locateParam, problems, `${moduleName}: `);
  }
  if (problems.list.length !== before) ok = false;
  if (!ok) return undefined;

  const paramLocations: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) collectLocations(v, [k], locateParam, paramLocations);
  const task: Task = {
    name: (raw.name as string | undefined) ?? moduleName,
    module: moduleName,
    params,
    tags: [...new Set([...playTags, ...normaliseTags(tagsParsed.data)])],
    location: at([]),
    paramLocations,
  };
  if (when !== undefined) {
    task.when = when;
    task.whenLocation = at(['when']);
  }
  return task;
}

/**
 * A host's variables for a play, lowest precedence first: magic vars (inventory_hostname, group_names, groups),
 * inventory vars, play vars, then extra vars. Locations come along for error messages.
 */
export function hostRunVars(
  inv: Inventory,
  hostName: string,
  play?: Pick<Play, 'vars' | 'varLocations'>,
  extraVars: Record<string, unknown> = {},
): { vars: Record<string, unknown>; varLocations: Record<string, string> } {
  const host = inv.hosts.get(hostName);
  if (!host) throw new ConfigError([{ location: '', message: `no host ${JSON.stringify(hostName)} in the inventory` }]);
  const vars = { ...magicVars(host, inv), inventory_dir: dirOf(inv.source), ...host.vars, ...(play?.vars ?? {}), ...extraVars };
  const varLocations: Record<string, string> = { ...host.varLocations, ...(play?.varLocations ?? {}) };
  for (const k of Object.keys(extraVars)) varLocations[k] = '--extra-vars';
  return { vars, varLocations };
}

function dirOf(source: string): string {
  return existsSync(source) && statSync(source).isDirectory() ? source : dirname(source);
}

/**
 * Resolves a task's params for one host and validates them with the module's schema. Returns the schema's
 * output (e.g. `command`'s `cmd` string becomes `argv`). Throws ConfigError with the params' locations.
 */
export function resolveTaskParams(
  task: Task,
  hostVars: Readonly<Record<string, unknown>> | Resolver,
  varLocations: Readonly<Record<string, string>> = {},
): Record<string, unknown> {
  const resolver = hostVars instanceof Resolver ? hostVars : new Resolver(hostVars, varLocations);
  const locate = (path: RefStep[]): string => task.paramLocations[path.join('.')] ?? task.location;
  const resolved = resolver.resolveValue(task.params, locate) as Record<string, unknown>;
  const module: RegisteredModule | undefined = getModule(task.module);
  if (!module) throw new ConfigError([{ location: task.location, message: `unknown module ${JSON.stringify(task.module)}` }]);
  const parsed = (module.params as ZodType).safeParse(resolved);
  if (!parsed.success) {
    const problems = new Problems();
    reportZodIssues(parsed.error.issues, resolved, locate, problems, `${task.module}: `);
    problems.throwIfAny();
  }
  return parsed.data as Record<string, unknown>;
}

const undefinedRootOf = (p: unknown): string | undefined => (p as Partial<UndefinedVariableProblem>).undefinedRoot;

/** True when `e` is a ConfigError made only of undefined run-time variables (left to run time). */
function isDeferredOnly(e: unknown, deferred: ReadonlySet<string>): boolean {
  return e instanceof ConfigError && e.problems.length > 0 && e.problems.every((p) => deferred.has(undefinedRootOf(p) ?? ''));
}

/** `e` without its undefined-variable problems (anything that is not a ConfigError is returned as is). */
function withoutUndefinedVariables(e: unknown): unknown {
  if (!(e instanceof ConfigError)) return e;
  const rest = e.problems.filter((p) => undefinedRootOf(p) === undefined);
  return new ConfigError(rest);
}

/**
 * Evaluates `when` and resolves params for every selected host; groups identical errors across hosts. Params of a
 * task whose `when` needs run-time variables are validated too (so a bad CA file never reaches a host).
 */
function preflight(plays: Play[], inv: Inventory, options: LoadPlaybookOptions, problems: Problems): void {
  const grouped = new Map<string, { location: string; message: string; hosts: string[] }>();
  const deferred = new Set(options.runtimeVars ?? runtimeVariables);
  const note = (e: unknown, host: string): void => {
    const scratch = new Problems();
    scratch.absorb(e);
    for (const p of scratch.list) {
      const root = (p as Partial<UndefinedVariableProblem>).undefinedRoot;
      if (root !== undefined && deferred.has(root)) continue;
      const key = `${p.location}\0${p.message}`;
      const entry = grouped.get(key) ?? { location: p.location, message: p.message, hosts: [] };
      entry.hosts.push(host);
      grouped.set(key, entry);
    }
  };
  for (const play of plays) {
    let hosts: string[];
    try {
      hosts = selectHosts(inv, play.hosts, options.limit);
    } catch (e) {
      problems.absorb(e);
      continue;
    }
    if (hosts.length === 0) options.onWarning?.(`${play.location}: play ${JSON.stringify(play.name)}: hosts ${JSON.stringify(play.hosts)} match no host`);
    const tasks = filterTasksByTags(play.tasks, options.tags ?? {});
    for (const host of hosts) {
      const { vars, varLocations } = hostRunVars(inv, host, play, options.extraVars);
      const resolver = new Resolver(vars, varLocations);
      for (const task of tasks) {
        let whenDeferred = false;
        try {
          if (!evaluateWhen(task.when, resolver, task.whenLocation ?? task.location)) continue;
        } catch (e) {
          // A `when` on run-time variables (facts) is decided on the host. The params are still validated now: a
          // bad CA file, for one, must stop the run before any SSH connection, whatever the condition turns out to be.
          if (!isDeferredOnly(e, deferred)) {
            note(e, host);
            continue;
          }
          whenDeferred = true;
        }
        try {
          resolveTaskParams(task, resolver);
        } catch (e) {
          // Behind a deferred `when`, a variable this host lacks may be exactly what the condition guards against.
          note(whenDeferred ? withoutUndefinedVariables(e) : e, host);
        }
      }
    }
  }
  for (const { location, message, hosts } of grouped.values()) {
    const shown = hosts.length > 3 ? `${hosts.slice(0, 3).join(', ')} and ${hosts.length - 3} more` : hosts.join(', ');
    problems.add(location, `${message} (host${hosts.length > 1 ? 's' : ''} ${shown})`);
  }
}

export interface LoadRunOptions extends Omit<LoadPlaybookOptions, 'inventory'> {
  /** Where `inventories/NAME/` is looked up (default: the working directory). */
  cwd?: string;
}

/**
 * Loads the inventory and the playbook together and reports the problems of both in one ConfigError (a broken
 * inventory still gets its playbook checked statically), then preflights the plays against the inventory.
 * The playbook folder's group_vars/ and host_vars/ are read as Ansible does.
 */
export async function loadRun(
  inventorySpec: string,
  playbookPath: string,
  options: LoadRunOptions = {},
): Promise<{ inventory: Inventory; plays: Play[] }> {
  const problems = new Problems();
  let inventory: Inventory | undefined;
  try {
    inventory = await loadInventory(inventorySpec, {
      playbookDir: dirname(resolve(playbookPath)),
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      ...(options.vaultPassword !== undefined && { vaultPassword: options.vaultPassword }),
    });
  } catch (e) {
    problems.absorb(e);
  }
  let plays: Play[] = [];
  try {
    plays = await loadPlaybook(playbookPath, { ...options, ...(inventory && { inventory }) });
  } catch (e) {
    problems.absorb(e);
  }
  problems.throwIfAny();
  return { inventory: inventory!, plays };
}
