// What a Java keystore holds (aliases and certificate fingerprints), keyed by the keystore's content.
// Why: `keytool -list` starts a JVM, seconds of CPU per call; a converged run over a fleet would pay one per host.
// JKS/JCEKS files (every distro's cacerts) are read on the controller instead (parseJks); keytool lists the rest.
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

const jksMagic = 0xfeedfeed;

/** Whether these bytes are a JKS keystore (PKCS12 and JCEKS stores are listed by keytool). */
export function isJksFormat(bytes: Buffer): boolean {
  return bytes.length >= 4 && bytes.readUInt32BE(0) === jksMagic;
}

/**
 * Lists a JKS keystore (Sun's format: what Debian's ca-certificates-java and Red Hat's update-ca-trust write as
 * cacerts) the way `keytool -list -v` does, without starting a JVM: every entry's alias, and the SHA-256 of every
 * certificate (a trusted certificate entry's, or each certificate of a key entry's chain). The keyed SHA-1 at the end is
 * checked with the store password first, as keytool does, so a wrong password or a damaged file fails the same way.
 * Key material is skipped, never decoded.
 */
export function parseJks(bytes: Buffer, storepass: string, what: string): KeystoreListing {
  const fail = (why: string): never => {
    throw new Error(`${what}: not a readable JKS keystore: ${why}`);
  };
  if (bytes.length < 32) fail(`${bytes.length} bytes`);
  const body = bytes.subarray(0, bytes.length - 20);
  // Java's keyed digest: the password as UTF-16BE, the words "Mighty Aphrodite", then the keystore itself.
  const password = Buffer.from(storepass, 'utf16le').swap16();
  const digest = createHash('sha1').update(password).update('Mighty Aphrodite', 'utf8').update(body).digest();
  if (!digest.equals(bytes.subarray(bytes.length - 20))) {
    throw new Error(`${what}: keystore was tampered with, or password was incorrect (its integrity digest does not match java_storepass)`);
  }
  let at = 0;
  const need = (n: number) => {
    if (at + n > body.length) fail(`entry data ends at byte ${at} of ${body.length} (${n} more expected)`);
  };
  const u32 = () => {
    need(4);
    const v = body.readUInt32BE(at);
    at += 4;
    return v;
  };
  const bytesOf = (n: number) => {
    need(n);
    const b = body.subarray(at, at + n);
    at += n;
    return b;
  };
  // Java's writeUTF: a 16-bit length, then modified UTF-8 (aliases are ASCII in practice).
  const utf = () => {
    need(2);
    const n = body.readUInt16BE(at);
    at += 2;
    return bytesOf(n).toString('utf8');
  };
  const magic = u32();
  if (magic !== jksMagic) fail(`magic 0x${magic.toString(16)}, expected 0xfeedfeed`);
  const version = u32();
  if (version !== 1 && version !== 2) fail(`version ${version}, expected 1 or 2`);
  const cert = () => {
    if (version === 2) utf(); // certificate type, "X.509"
    return createHash('sha256').update(bytesOf(u32())).digest('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
  };
  const listing: KeystoreListing = { aliases: [], sha256: [] };
  const count = u32();
  for (let i = 0; i < count; i++) {
    const tag = u32();
    listing.aliases.push(utf());
    bytesOf(8); // creation date
    if (tag === 1) {
      bytesOf(u32()); // the protected private key
      const chain = u32();
      for (let c = 0; c < chain; c++) listing.sha256.push(cert());
    } else if (tag === 2) {
      listing.sha256.push(cert());
    } else {
      fail(`entry ${i + 1} has tag ${tag}, expected 1 (key) or 2 (trusted certificate)`);
    }
  }
  if (at !== body.length) fail(`${body.length - at} bytes after the last of ${count} entries`);
  return listing;
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
