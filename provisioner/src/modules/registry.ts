// The module registry: playbook tasks name a module, the loader validates its params with the module's zod
// schema (before any connection), and the runner looks the module up again to gather/plan/apply.
// Modules register themselves from their own folder (e.g. `import './command'` registers `command`).
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
   * connection that existed before the change.
   */
  readonly freshConnection?: boolean;
  /** Lines worth showing for this host even when nothing changed (a CA fingerprint, a trust-coverage report). */
  report?(params: unknown, facts: unknown): string[];
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
