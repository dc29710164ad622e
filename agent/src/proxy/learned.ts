// Learned passthrough: destinations whose clients rejected our forged cert (pinned apps, private trust stores).
// Sans-io: the caller supplies the clock and persists `toJSON()`; io/learned-file.ts writes it to stateDir.
import type { LearnedPassthroughEntry } from '../../../contracts/health';

export interface LearnedOptions {
  maxEntries: number;
  ttlSeconds: number;
}

/** `sni:<name>` when the client sent SNI (the name is what pins), else `ip:<addr>:<port>`. */
export function destinationKey(sni: string | null, ip: string, port: number): string {
  return sni ? `sni:${sni}` : `ip:${ip}:${port}`;
}

/**
 * A quiet close (handshake, then hang-up without data) is also what `openssl s_client </dev/null` and port probes
 * do, so it must repeat before the destination is learned; a TLS alert is unambiguous and learns at once.
 */
export const QUIET_CLOSE_STRIKES = 2;

export class LearnedPassthrough {
  /** Insertion-ordered, so the first entry is the oldest (evicted first when full). */
  private readonly entries = new Map<string, LearnedPassthroughEntry>();
  private readonly strikes = new Map<string, number>();

  /** Counts a quiet close; true when the destination has now done it QUIET_CLOSE_STRIKES times in a row. */
  noteQuietClose(destination: string): boolean {
    const n = (this.strikes.get(destination) ?? 0) + 1;
    this.strikes.delete(destination);
    if (n >= QUIET_CLOSE_STRIKES) return true;
    this.strikes.set(destination, n);
    while (this.strikes.size > this.options.maxEntries * 4) this.strikes.delete(this.strikes.keys().next().value as string);
    return false;
  }

  /** A client used an intercepted connection normally: earlier quiet closes were not a rejection. */
  noteHealthy(destination: string): void {
    this.strikes.delete(destination);
  }

  constructor(private readonly options: LearnedOptions) {}

  has(destination: string, now: Date): boolean {
    const e = this.entries.get(destination);
    if (!e) return false;
    if (Date.parse(e.expiresAt) <= now.getTime()) {
      this.entries.delete(destination);
      return false;
    }
    return true;
  }

  /** Records a destination; returns false when it was already known (so callers count and persist only news). */
  add(destination: string, reason: string, now: Date): boolean {
    if (this.has(destination, now)) return false;
    this.entries.set(destination, {
      destination,
      reason,
      learnedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + this.options.ttlSeconds * 1000).toISOString(),
    });
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return true;
  }

  list(now: Date): LearnedPassthroughEntry[] {
    for (const [k, e] of this.entries) if (Date.parse(e.expiresAt) <= now.getTime()) this.entries.delete(k);
    return [...this.entries.values()];
  }

  get size(): number {
    return this.entries.size;
  }

  toJSON(now: Date): { version: 1; entries: LearnedPassthroughEntry[] } {
    return { version: 1, entries: this.list(now) };
  }

  /** Loads persisted entries, skipping malformed or expired ones (a hand-edited file must not stop the agent). */
  load(data: unknown, now: Date): { loaded: number; skipped: number } {
    const entries = (data as { entries?: unknown })?.entries;
    if (!Array.isArray(entries)) throw new Error('learned passthrough file: expected {"version":1,"entries":[...]}');
    let loaded = 0;
    let skipped = 0;
    for (const e of entries as Partial<LearnedPassthroughEntry>[]) {
      const ok =
        typeof e?.destination === 'string' &&
        /^(sni|ip):/.test(e.destination) &&
        typeof e.expiresAt === 'string' &&
        Date.parse(e.expiresAt) > now.getTime() &&
        typeof e.learnedAt === 'string';
      if (!ok) {
        skipped++;
        continue;
      }
      this.entries.set(e.destination!, {
        destination: e.destination!,
        reason: String(e.reason ?? 'unknown'),
        learnedAt: e.learnedAt!,
        expiresAt: e.expiresAt!,
      });
      loaded++;
    }
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return { loaded, skipped };
  }
}

export type Rejection = { kind: 'alert' | 'quiet-close'; reason: string };

/**
 * Did the client reject our certificate? A TLS alert during the handshake, or a close right after it before any
 * application data (pinned apps often complete the handshake and then hang up).
 */
export function clientRejectedCertificate(
  event: {
    handshakeCompleted: boolean;
    handshakeError: string | null;
    clientBytesAfterHandshake: number;
    msSinceHandshake: number;
  },
  quietCloseWindowMs = 2000,
): Rejection | null {
  if (!event.handshakeCompleted) {
    const m = /alert (bad certificate|unknown ca|certificate unknown|certificate revoked|certificate expired|unsupported certificate|handshake failure|decrypt error|access denied)/i.exec(event.handshakeError ?? '');
    return m ? { kind: 'alert', reason: `client alert: ${m[1]!.toLowerCase()}` } : null;
  }
  if (event.clientBytesAfterHandshake === 0 && event.msSinceHandshake <= quietCloseWindowMs) {
    return { kind: 'quiet-close', reason: 'client closed right after the handshake without sending data' };
  }
  return null;
}
