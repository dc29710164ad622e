// The module contract (pyinfra's shape): gather facts read-only, plan as a pure function, then the runner applies.
// An empty plan means ok, so --check and --diff come for free; no module ever sees a check-mode flag.
import type { ZodType } from 'zod';
import type { Change } from '../core/change';
import type { HostMemo } from '../facts/host-memo';
import type { Transport } from '../transport/transport';

/** What a module may use while gathering: the host's connection and merged variables. */
export interface HostContext {
  readonly name: string;
  readonly vars: Readonly<Record<string, unknown>>;
  readonly transport: Transport;
  /**
   * Read-only answers earlier tasks of this run took on this host (the node binary's identity, the runtime probe);
   * the runner clears it whenever it applies a change on the host. Absent outside a play run: take everything.
   */
  readonly memo?: HostMemo;
}

export interface ProvisionModule<P, F> {
  /** The name used in playbook tasks, e.g. `firewall`. */
  readonly name: string;
  /** Validated before the first SSH connection. */
  readonly params: ZodType<P>;
  /** Read-only probes. Must not change the host. */
  gather(host: HostContext, params: P): Promise<F>;
  /** Pure: same params and facts, same changes. `[]` means converged. */
  plan(params: P, facts: F): Change[];
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds modules of every parameter and fact type
export type AnyModule = ProvisionModule<any, any>;
