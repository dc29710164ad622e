// The module registry: playbook tasks name a module, the loader validates its params with the module's zod
// schema (before any connection), and the runner looks the module up again to gather/plan/apply.
// Modules register themselves from their own folder (e.g. `import './command'` registers `command`).
import type { Change } from '../core/change';
import type { AnyModule } from './module';

export interface RegisteredModule extends AnyModule {
  /**
   * The parameter a bare string value stands for, Ansible's "free form": `command: ls -l` means
   * `command: {cmd: 'ls -l'}`. Modules without it take a mapping only.
   */
  readonly freeFormParam?: string;
  /**
   * False when this task's plan can never become empty by itself (a `command` with neither `creates` nor
   * `removes`): the runner then skips the plan-again convergence check for it. Absent means true.
   */
  converges?(params: unknown): boolean;
  /**
   * The runner runs this task over a NEW connection to the host, closed afterwards: a confirmation that proves the
   * controller can still reach the host after a change (commit-confirmed firewall rules) must not ride on the
   * connection that existed before the change. When its read-only gather and plan over the shared connection find
   * nothing to do (nothing armed), the task is ok without opening one.
   */
  readonly freshConnection?: boolean;
  /** Lines worth showing for this host even when nothing changed (a CA fingerprint, a trust-coverage report). */
  report?(params: unknown, facts: unknown): string[];
  /**
   * --check only: what this task would plan once the changes that earlier tasks of the same run predicted on this
   * host have been applied (keyed by module name). Called instead of `plan` when there are such changes; null means
   * "they make no difference to me, use plan". Modules that read what earlier tasks create (the pushed agent, the
   * agent user, the generated CA, the armed firewall change) implement it, so --check predicts exactly what apply
   * will change. The module is told which changes come first, never whether this is a check run.
   */
  predict?(params: unknown, facts: unknown, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null;
}

const modules = new Map<string, RegisteredModule>();

export function registerModule(module: RegisteredModule): void {
  const existing = modules.get(module.name);
  if (existing && existing !== module) {
    throw new Error(`module ${JSON.stringify(module.name)} is registered twice (expected one module per name)`);
  }
  modules.set(module.name, module);
}

export function getModule(name: string): RegisteredModule | undefined {
  return modules.get(name);
}

/** Registered modules, sorted by name. */
export function listModules(): RegisteredModule[] {
  return [...modules.values()].sort((a, b) => a.name.localeCompare(b.name));
}
