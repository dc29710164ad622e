import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HelloParse } from './client-hello';
import { MAX_LOOP_RELAYS, decide, isOwnListener } from './decide';
import { LearnedPassthrough, QUIET_CLOSE_STRIKES, clientRejectedCertificate, destinationKey } from './learned';
import { StaticPassthrough, parsePassthroughRule, unmapIp } from './passthrough';

test('static passthrough matches SNI globs, IPs and CIDRs (v4, v6, v4-mapped)', () => {
  const p = new StaticPassthrough(['*.bank.example', 'exact.example', '198.18.0.9', '198.18.100.0/24', 'fd00::/8']);
  assert.equal(p.match('a.bank.example', '1.2.3.4')?.rule, '*.bank.example');
  assert.equal(p.match('a.b.bank.example', '1.2.3.4')?.rule, '*.bank.example');
  assert.equal(p.match('bank.example', '1.2.3.4'), null);
  assert.equal(p.match('exact.example', '1.2.3.4')?.rule, 'exact.example');
  assert.equal(p.match('xexact.example', '1.2.3.4'), null);
  assert.equal(p.match(null, '198.18.0.9')?.rule, '198.18.0.9');
  assert.equal(p.match(null, '::ffff:198.18.100.77')?.rule, '198.18.100.0/24');
  assert.equal(p.match(null, 'fd00::1')?.rule, 'fd00::/8');
  assert.equal(p.match('other.example', '198.18.101.1'), null);
});

test('passthrough rules are validated', () => {
  assert.deepEqual(parsePassthroughRule('10.0.0.0/8'), { kind: 'cidr', family: 'ipv4' });
  assert.throws(() => parsePassthroughRule('10.0.0.0/33'), /CIDR/);
  assert.throws(() => parsePassthroughRule('bad name!'), /SNI glob/);
  assert.equal(unmapIp('::ffff:1.2.3.4'), '1.2.3.4');
});

test('learned passthrough: add is idempotent, entries expire, the store is bounded, load skips junk', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const later = (s: number) => new Date(t0.getTime() + s * 1000);
  const l = new LearnedPassthrough({ maxEntries: 2, ttlSeconds: 60 });
  assert.equal(l.add('sni:a.test', 'alert', t0), true);
  assert.equal(l.add('sni:a.test', 'alert', later(1)), false);
  assert.equal(l.has('sni:a.test', later(59)), true);
  assert.equal(l.has('sni:a.test', later(61)), false);
  l.add('sni:b.test', 'x', t0);
  l.add('sni:c.test', 'x', t0);
  l.add('ip:1.2.3.4:443', 'x', t0);
  assert.deepEqual(l.list(t0).map((e) => e.destination), ['sni:c.test', 'ip:1.2.3.4:443']);
  const copy = new LearnedPassthrough({ maxEntries: 10, ttlSeconds: 60 });
  const r = copy.load({ version: 1, entries: [...l.toJSON(t0).entries, { destination: 'junk' }, { destination: 'sni:old.test', learnedAt: 'x', expiresAt: '2000-01-01T00:00:00Z' }] }, t0);
  assert.deepEqual(r, { loaded: 2, skipped: 2 });
  assert.throws(() => copy.load({ nope: 1 }, t0), /expected/);
});

test('already-learned twin: learning a known destination changes nothing', () => {
  const t0 = new Date();
  const l = new LearnedPassthrough({ maxEntries: 5, ttlSeconds: 60 });
  l.add('sni:a.test', 'alert', t0);
  const before = JSON.stringify(l.toJSON(t0));
  assert.equal(l.add('sni:a.test', 'other reason', t0), false);
  assert.equal(JSON.stringify(l.toJSON(t0)), before);
});

test('client rejection: alerts learn at once; quiet closes only after repeated strikes, reset by healthy use', () => {
  assert.equal(clientRejectedCertificate({ handshakeCompleted: false, handshakeError: 'error:0A000418:SSL routines::tlsv1 alert unknown ca', clientBytesAfterHandshake: 0, msSinceHandshake: 0 })?.kind, 'alert');
  assert.equal(clientRejectedCertificate({ handshakeCompleted: false, handshakeError: 'ECONNRESET', clientBytesAfterHandshake: 0, msSinceHandshake: 0 }), null);
  assert.equal(clientRejectedCertificate({ handshakeCompleted: true, handshakeError: null, clientBytesAfterHandshake: 0, msSinceHandshake: 30 })?.kind, 'quiet-close');
  assert.equal(clientRejectedCertificate({ handshakeCompleted: true, handshakeError: null, clientBytesAfterHandshake: 10, msSinceHandshake: 30 }), null);
  assert.equal(clientRejectedCertificate({ handshakeCompleted: true, handshakeError: null, clientBytesAfterHandshake: 0, msSinceHandshake: 60_000 }), null);
  const l = new LearnedPassthrough({ maxEntries: 5, ttlSeconds: 60 });
  assert.equal(QUIET_CLOSE_STRIKES, 2);
  assert.equal(l.noteQuietClose('sni:q.test'), false);
  l.noteHealthy('sni:q.test');
  assert.equal(l.noteQuietClose('sni:q.test'), false);
  assert.equal(l.noteQuietClose('sni:q.test'), true);
  assert.equal(destinationKey(null, '198.18.0.1', 443), 'ip:198.18.0.1:443');
});

test('decide: loop, invalid, not-tls, static, learned, intercept', () => {
  const staticPassthrough = new StaticPassthrough(['static.test']);
  const learned = new LearnedPassthrough({ maxEntries: 5, ttlSeconds: 60 });
  const now = new Date();
  learned.add('sni:pinned.test', 'alert', now);
  const hello = (sni: string | null): HelloParse => ({ kind: 'hello', hello: { sni, alpn: ['h2'], maxVersion: 0x304, recordBytes: 100 } });
  const base = { destination: { address: '198.18.0.1', port: 443 }, peerLoopRelays: null, staticPassthrough, learned, now };
  // Our own upstream connection back at our listener (a stale conntrack NAT entry): relayed, without waiting for a
  // hello, up to MAX_LOOP_RELAYS deep; one more is a redirect loop.
  for (let hops = 0; hops < MAX_LOOP_RELAYS; hops++) {
    const relayed = decide({ ...base, parse: { kind: 'incomplete' }, peerLoopRelays: hops });
    assert.equal(relayed.action === 'passthrough' && relayed.counter, 'loop_relayed');
  }
  const looped = decide({ ...base, parse: hello('a.test'), peerLoopRelays: MAX_LOOP_RELAYS });
  assert.equal(looped.action === 'refuse' && looped.counter, 'loop_refused');
  assert.equal(decide({ ...base, parse: { kind: 'incomplete' } }).action, 'wait');
  const inv = decide({ ...base, parse: { kind: 'invalid', reason: 'x' } });
  assert.equal(inv.action === 'refuse' && inv.counter, 'client_hello_invalid');
  const nt = decide({ ...base, parse: { kind: 'not-tls' } });
  assert.equal(nt.action === 'passthrough' && nt.counter, 'passthrough_not_tls');
  const st = decide({ ...base, parse: hello('static.test') });
  assert.equal(st.action === 'passthrough' && st.counter, 'passthrough_static');
  const le = decide({ ...base, parse: hello('pinned.test') });
  assert.equal(le.action === 'passthrough' && le.counter, 'passthrough_learned');
  const ok = decide({ ...base, parse: hello('a.test') });
  assert.equal(ok.action === 'intercept' && ok.destinationKey, 'sni:a.test');
  assert.equal(decide({ ...base, learned: null, parse: hello('pinned.test') }).action, 'intercept');
  const old = decide({ ...base, parse: { kind: 'hello', hello: { sni: 'a.test', alpn: [], maxVersion: 0x0301, recordBytes: 80 } } });
  assert.equal(old.action === 'passthrough' && old.counter, 'passthrough_old_tls');
});

test('isOwnListener: exact address, wildcard listeners with local addresses, other ports', () => {
  const listeners = [{ address: '::', port: 8443 }, { address: '198.18.0.5', port: 9000 }];
  const local = new Set(['198.18.0.7']);
  assert.equal(isOwnListener({ address: '::ffff:127.0.0.1', port: 8443 }, listeners, local), true);
  assert.equal(isOwnListener({ address: '198.18.0.7', port: 8443 }, listeners, local), true);
  assert.equal(isOwnListener({ address: '198.18.0.8', port: 8443 }, listeners, local), false);
  assert.equal(isOwnListener({ address: '198.18.0.5', port: 9000 }, listeners, local), true);
  assert.equal(isOwnListener({ address: '198.18.0.7', port: 443 }, listeners, local), false);
});
