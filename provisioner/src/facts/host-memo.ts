// Read-only answers that several tasks of one run ask one host for (the node binary's identity, the Node runtime
// probe), taken once. The runner makes one memo per host per run, and clears it whenever it applies a change on that
// host (a task may replace the very binary it describes: push_node), so a later task asks the host again. Never kept
// across runs: a new run, or a changed host, takes everything again; the controller caches keyed by identity
// (probe-cache.ts) are what carries answers from one run to the next.
export class HostMemo {
  private readonly values = new Map<string, unknown>();

  /** The value for `key`, as a copy (a caller may change what it got); undefined when not taken yet. */
  get<T>(key: string): T | undefined {
    const v = this.values.get(key);
    return v === undefined ? undefined : (structuredClone(v) as T);
  }

  set<T>(key: string, value: T): void {
    this.values.set(key, structuredClone(value));
  }

  /** The keys taken so far that start with `prefix`. */
  keys(prefix = ''): string[] {
    return [...this.values.keys()].filter((k) => k.startsWith(prefix));
  }

  /** Forget everything: the runner calls this after it changed the host. */
  clear(): void {
    this.values.clear();
  }
}

/** The identity lines (binary-identity.ts) of the file at `realPath`, while nothing changed on the host. */
export const identityMemoKey = (realPath: string) => `identity:${realPath}`;
