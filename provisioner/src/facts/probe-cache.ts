// A controller-side cache for results of expensive read-only probes (a JVM or Node start on the host), keyed by what
// the result depends on. In a run, concurrent hosts asking for the same key wait for one call (single flight); a small
// file per key under $XDG_CACHE_HOME/epoch-provision/<kind> (default ~/.cache) lets later runs skip the probe while
// the key is unchanged. EPOCH_PROVISION_NO_CACHE=1 turns the files off (single flight stays). Only non-secret results
// are stored (aliases, fingerprints, versions, booleans); a failure is never remembered.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The cache folder for one kind of result, or null when EPOCH_PROVISION_NO_CACHE=1. */
export function controllerCacheDir(kind: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.EPOCH_PROVISION_NO_CACHE === '1') return null;
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg?.startsWith('/') ? xdg : join(homedir(), '.cache');
  return join(base, 'epoch-provision', kind);
}

export class ProbeCache<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  /** dir null: in-memory single flight only. `valid` checks what is read back from disk. */
  constructor(
    private readonly dir: string | null,
    private readonly valid: (v: unknown) => v is T,
  ) {}

  /** The result for `key` (hex): from a call in flight, the cache, or `compute()` (whose result is then cached). */
  get(key: string, compute: () => Promise<T>): Promise<T> {
    if (!/^[0-9a-f]{16,128}$/.test(key)) throw new Error(`probe cache: key must be hex, got ${JSON.stringify(key)}`);
    const pending = this.inFlight.get(key);
    // Another host's call failing (its connection, its timeout) is not this host's error: probe again for ourselves.
    if (pending) return pending.catch(() => this.get(key, compute));
    const cached = this.read(key);
    if (cached !== null) return Promise.resolve(cached);
    const p = compute().then(
      (value) => {
        this.write(key, value);
        this.inFlight.delete(key);
        return value;
      },
      (err: unknown) => {
        this.inFlight.delete(key); // a failure is not remembered: the next caller probes again
        throw err;
      },
    );
    this.inFlight.set(key, p);
    return p;
  }

  /** The result stored for `key`, or null (nothing stored, or the files are off). */
  peek(key: string): T | null {
    return this.read(key);
  }

  private read(key: string): T | null {
    if (!this.dir) return null;
    let text: string;
    try {
      text = readFileSync(join(this.dir, `${key}.json`), 'utf8');
    } catch {
      return null; // absent or unreadable: probe again
    }
    try {
      const v: unknown = JSON.parse(text);
      return this.valid(v) ? v : null;
    } catch {
      return null; // a torn or foreign file: probe again (and overwrite it)
    }
  }

  private write(key: string, value: T): void {
    if (!this.dir) return;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = join(this.dir, `.${key}.${process.pid}.tmp`);
      writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o644 });
      renameSync(tmp, join(this.dir, `${key}.json`));
    } catch {
      // A cache that cannot be written only costs the next run the probe.
    }
  }
}
