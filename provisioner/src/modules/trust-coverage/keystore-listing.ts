// What a Java keystore holds (aliases and certificate fingerprints), keyed by the keystore's content.
// Why: `keytool -list` starts a JVM, seconds of CPU per call; a converged run over a fleet would pay one per host.
// The listing depends only on the keystore's bytes and its password, so identical files share one listing: in a run,
// concurrent hosts with the same cacerts wait for one keytool call (single flight), and a small controller-side cache
// (aliases and SHA-256 fingerprints, nothing secret) lets later runs skip the JVM while the file is unchanged.
import { createHash } from 'node:crypto';
import { controllerCacheDir, ProbeCache } from '../../facts/probe-cache';

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

export function defaultKeystoreCacheDir(): string | null {
  return controllerCacheDir('keystore-listings');
}

export class KeystoreListingCache {
  private readonly cache: ProbeCache<KeystoreListing>;

  /** dir null: in-memory single flight only. */
  constructor(dir: string | null) {
    this.cache = new ProbeCache(dir, isListing);
  }

  /** The key covers the content and the password (a wrong password must still fail as keytool fails). */
  static key(contentSha256: string, storepass: string): string {
    return createHash('sha256').update(`${contentSha256.toLowerCase()}\0${storepass}`).digest('hex');
  }

  /** The listing for this content: from a call in flight, the cache, or `list()` (whose result is then cached). */
  get(contentSha256: string, storepass: string, list: () => Promise<KeystoreListing>): Promise<KeystoreListing> {
    return this.cache.get(KeystoreListingCache.key(contentSha256, storepass), list);
  }
}

/** One per controller process: hosts gathered concurrently share its in-flight listings. */
export const keystoreListings = new KeystoreListingCache(defaultKeystoreCacheDir());
