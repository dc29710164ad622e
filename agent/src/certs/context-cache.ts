// SecureContexts for forged leaves, cached by upstream cert fingerprint (+ any name we had to add): building a
// context costs ~0.65 ms and dominates the forge path; signing costs ~0.04 ms (feasibility §1).
import { createHash } from 'node:crypto';
import { type SecureContext, createSecureContext } from 'node:tls';
import type { CertificateAuthority } from './ca';
import { Forger, missingName } from './forge';
import { Lru } from './lru';

export interface ContextLookup {
  context: SecureContext;
  cacheHit: boolean;
}

export class ForgedContextCache {
  private readonly cache: Lru<string, SecureContext>;
  readonly forger: Forger;

  constructor(
    readonly ca: CertificateAuthority,
    capacity = 4096,
  ) {
    this.forger = new Forger(ca);
    this.cache = new Lru(capacity);
  }

  get size(): number {
    return this.cache.size;
  }

  lookup(upstreamDer: Buffer, sni: string | null, destinationIp: string): ContextLookup {
    const fp = createHash('sha256').update(upstreamDer).digest('hex');
    const missing = missingName(upstreamDer, sni, destinationIp);
    const key = missing ? `${fp}|${sni ?? destinationIp}` : fp;
    const cached = this.cache.get(key);
    if (cached) return { context: cached, cacheHit: true };
    const leaf = this.forger.forge({ upstream: upstreamDer, sni, destinationIp });
    const context = createSecureContext({
      key: this.forger.leafKeyPem,
      cert: leaf.certPem + this.ca.certPem,
      minVersion: 'TLSv1.2',
    });
    this.cache.set(key, context);
    return { context, cacheHit: false };
  }
}
