// What a Java keystore holds (aliases and certificate fingerprints), keyed by the keystore's content.
// Why: `keytool -list` starts a JVM, seconds of CPU per call; a converged run over a fleet would pay one per host.
// The listing depends only on the keystore's bytes and its password, so identical files share one listing: in a run,
// concurrent hosts with the same cacerts wait for one keytool call (single flight), and a small controller-side cache
// (aliases and SHA-256 fingerprints, nothing secret) lets later runs skip the JVM while the file is unchanged.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface KeystoreListing {
  aliases: string[];
  /** Upper-case, colon-separated SHA-256 fingerprints, as certFingerprint() prints them. */
  sha256: string[];
}

/** Parses `keytool -list -v` output. */
export function parseKeytoolList(stdout: string): KeystoreListing {
  const aliases = [...stdout.matchAll(/^Alias name: (.+)$/gm)].map((m) => m[1]!.trim());
  const sha256 = [...stdout.matchAll(/^\s*SHA256: ([0-9A-Fa-f:]+)\s*$/gm)].map((m) => m[1]!.toUpperCase());
  return { aliases, sha256 };
}

function isListing(v: unknown): v is KeystoreListing {
  const o = v as KeystoreListing;
  return typeof o === 'object' && o !== null && Array.isArray(o.aliases) && Array.isArray(o.sha256) && [...o.aliases, ...o.sha256].every((s) => typeof s === 'string');
}

export function defaultKeystoreCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg?.startsWith('/') ? xdg : join(homedir(), '.cache');
  return join(base, 'epoch-provision', 'keystore-listings');
}

export class KeystoreListingCache {
  private readonly inFlight = new Map<string, Promise<KeystoreListing>>();

  /** dir null: in-memory single flight only. */
  constructor(private readonly dir: string | null) {}

  /** The key covers the content and the password (a wrong password must still fail as keytool fails). */
  static key(contentSha256: string, storepass: string): string {
    return createHash('sha256').update(`${contentSha256.toLowerCase()}\0${storepass}`).digest('hex');
  }

  /** The listing for this content: from a call in flight, the cache, or `list()` (whose result is then cached). */
  get(contentSha256: string, storepass: string, list: () => Promise<KeystoreListing>): Promise<KeystoreListing> {
    const key = KeystoreListingCache.key(contentSha256, storepass);
    const pending = this.inFlight.get(key);
    // Another host's call failing (its connection, its timeout) is not this host's error: list again for ourselves.
    if (pending) return pending.catch(() => this.get(contentSha256, storepass, list));
    const cached = this.read(key);
    if (cached) return Promise.resolve(cached);
    const p = list().then(
      (listing) => {
        this.write(key, listing);
        this.inFlight.delete(key);
        return listing;
      },
      (err: unknown) => {
        this.inFlight.delete(key); // a failure is not remembered: the next caller runs keytool again
        throw err;
      },
    );
    this.inFlight.set(key, p);
    return p;
  }

  private read(key: string): KeystoreListing | null {
    if (!this.dir) return null;
    try {
      const v: unknown = JSON.parse(readFileSync(join(this.dir, `${key}.json`), 'utf8'));
      return isListing(v) ? v : null;
    } catch {
      return null; // absent or unreadable: list again
    }
  }

  private write(key: string, listing: KeystoreListing): void {
    if (!this.dir) return;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = join(this.dir, `.${key}.${process.pid}.tmp`);
      writeFileSync(tmp, `${JSON.stringify(listing)}\n`, { mode: 0o644 });
      renameSync(tmp, join(this.dir, `${key}.json`));
    } catch {
      // A cache that cannot be written only costs the next run a keytool call.
    }
  }
}

/** One per controller process: hosts gathered concurrently share its in-flight listings. */
export const keystoreListings = new KeystoreListingCache(process.env.EPOCH_PROVISION_NO_CACHE === '1' ? null : defaultKeystoreCacheDir());
