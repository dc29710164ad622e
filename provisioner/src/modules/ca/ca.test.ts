// Pure planning tests for the ca module: per-host, fleet/import and the rotation guard.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { certFingerprint } from '../../ca/material';
import { type CaFacts, caModule, caParams, productDir, removableDirs } from './ca';
import { normalisePem } from './params';

const fx = (name: string) => resolve(import.meta.dirname, '../../../../test/fixtures/ca', name);
const caPem = normalisePem(readFileSync(fx('ca-ec.crt'), 'utf8'));
const nextPem = normalisePem(readFileSync(fx('ca-next.crt'), 'utf8'));

function facts(over: Partial<CaFacts> = {}): CaFacts {
  return { host: 'h1', certPem: null, certStat: null, keyStat: null, keySha256: null, backupPresent: false, agentArgv: ['/usr/bin/node', '/opt/epoch-agent/current/epoch-agent.cjs'], bundleTrustsNew: null, now: Date.now(), dirs: { '/etc/epoch-agent/ca': ['ca.crt', 'ca.key'], '/etc/epoch-agent': ['ca'], '/etc': [] }, ...over };
}

test('per-host: generates the CA on the host with epoch-agent ca init; key stays there', () => {
  const changes = caModule.plan(caParams.parse({}), facts());
  assert.equal(changes.length, 1);
  const steps = changes[0]?.steps ?? [];
  assert.deepEqual(steps[1], {
    kind: 'run',
    argv: ['/usr/bin/node', '/opt/epoch-agent/current/epoch-agent.cjs', 'ca', 'init', '--cert-out', '/etc/epoch-agent/ca/ca.crt', '--key-out', '/etc/epoch-agent/ca/ca.key', '--name', 'epoch-provision CA h1', '--days', '1825'],
    timeoutMs: 60_000,
  });
  assert.ok(steps.every((s) => s.kind === 'run'), 'no key material travels in a per-host plan');
  assert.deepEqual(changes[0]?.undo, [{ kind: 'run', argv: ['rm', '-f', '--', '/etc/epoch-agent/ca/ca.crt', '/etc/epoch-agent/ca/ca.key'] }]);
});

test('per-host: folders that did not exist are created, and the undo removes exactly those (deepest first)', () => {
  const [change] = caModule.plan(caParams.parse({}), facts({ dirs: { '/etc/epoch-agent/ca': null, '/etc/epoch-agent': null, '/etc': [] } }));
  assert.deepEqual(change?.undo, [
    { kind: 'run', argv: ['rm', '-f', '--', '/etc/epoch-agent/ca/ca.crt', '/etc/epoch-agent/ca/ca.key'] },
    { kind: 'run', argv: ['sh', '-c', 'for d; do [ -d "$d" ] && rmdir --ignore-fail-on-non-empty -- "$d"; done; exit 0', 'epoch-rmdir', '/etc/epoch-agent/ca', '/etc/epoch-agent'] },
  ]);
});

test('per-host: the folders already existed (the agent made /etc/epoch-agent) → the undo leaves them', () => {
  const [change] = caModule.plan(caParams.parse({}), facts({ dirs: { '/etc/epoch-agent/ca': null, '/etc/epoch-agent': ['agent.json'], '/etc': [] } }));
  assert.deepEqual(change?.undo?.[1], { kind: 'run', argv: ['sh', '-c', 'for d; do [ -d "$d" ] && rmdir --ignore-fail-on-non-empty -- "$d"; done; exit 0', 'epoch-rmdir', '/etc/epoch-agent/ca'] });
  assert.equal(change?.undo?.length, 2);
});

test('per-host: already converged (valid CA, key 0600 owned by the agent) → no change', () => {
  assert.deepEqual(caModule.plan(caParams.parse({}), facts({ certPem: caPem, certStat: { mode: '644', owner: 'root' }, keyStat: { mode: '600', owner: 'epoch-agent' }, keySha256: 'x' })), []);
});

test('per-host: key with loose mode → fixes mode/owner, undo restores them', () => {
  const [change] = caModule.plan(caParams.parse({}), facts({ certPem: caPem, keyStat: { mode: '644', owner: 'root' } }));
  assert.match(change?.summary ?? '', /mode 644 owner root, expected 600 owner epoch-agent/);
  assert.deepEqual(change?.undo?.map((s) => (s.kind === 'run' ? s.argv.join(' ') : '')), ['chown root /etc/epoch-agent/ca/ca.key', 'chmod 644 /etc/epoch-agent/ca/ca.key']);
});

test('per-host: an expired host CA is an error that points at rotation', () => {
  const expired = readFileSync(fx('expired-ca.crt'), 'utf8');
  assert.throws(() => caModule.plan(caParams.parse({}), facts({ certPem: expired, keyStat: { mode: '600', owner: 'epoch-agent' } })), /expired on 2021-01-01.*rotate it/);
});

test('per-host: agent not installed → clear error', () => {
  assert.throws(() => caModule.plan(caParams.parse({}), facts({ agentArgv: null })), /needs the agent .* installed first/);
});

test('per-host: rejects controller CA files', () => {
  assert.equal(caParams.safeParse({ cert_file: fx('ca-ec.crt') }).success, false);
});

const importParams = (extra: Record<string, unknown> = {}) => caParams.parse({ mode: 'import', cert_file: fx('ca-ec.crt'), key_file: fx('ca-ec.key'), ...extra });

test('import: pushes cert 0644 and key 0600 owned by the agent user, key step secret', () => {
  const changes = caModule.plan(importParams(), facts());
  assert.deepEqual(changes.map((c) => c.id), ['ca:key:/etc/epoch-agent/ca/ca.key', 'ca:cert:/etc/epoch-agent/ca/ca.crt']);
  const keyPut = changes[0]?.steps.find((s) => s.kind === 'put');
  assert.ok(keyPut?.kind === 'put' && keyPut.mode === 0o600 && keyPut.owner === 'epoch-agent:epoch-agent' && keyPut.secret === true);
  assert.doesNotMatch(JSON.stringify(changes[0]?.diff), /PRIVATE KEY/);
  assert.match(changes[1]?.summary ?? '', new RegExp(`sha256 ${certFingerprint(caPem)}`));
});

test('import: already converged (same cert, same key hash, right perms) → no change', () => {
  const p = importParams();
  const keyHash = createHash('sha256').update(p.material?.key.revealPkcs8Pem() ?? '').digest('hex');
  assert.deepEqual(caModule.plan(p, facts({ certPem: caPem, keySha256: keyHash, keyStat: { mode: '600', owner: 'epoch-agent' } })), []);
});

test('import: a bad CA fails params validation, one line per problem naming the file', () => {
  const r = caParams.safeParse({ mode: 'import', cert_file: fx('leaf.crt'), key_file: fx('leaf.key') });
  assert.equal(r.success, false);
  assert.match(r.error?.issues[0]?.message ?? '', /leaf\.crt: not a CA: basicConstraints CA:TRUE is missing/);
});

test('import: PKCS#12 with the password from the environment', () => {
  process.env.EPOCH_TEST_P12_PASSWORD = 'fixture-password';
  const p = caParams.parse({ mode: 'import', p12_file: fx('ca-ec.p12'), p12_password_env: 'EPOCH_TEST_P12_PASSWORD' });
  assert.equal(normalisePem(p.material?.certPem ?? ''), caPem);
  process.env.EPOCH_TEST_P12_PASSWORD = 'wrong';
  const bad = caParams.safeParse({ mode: 'import', p12_file: fx('ca-ec.p12'), p12_password_env: 'EPOCH_TEST_P12_PASSWORD' });
  assert.match(bad.error?.issues[0]?.message ?? '', /ca-ec\.p12: wrong PKCS#12 password/);
  delete process.env.EPOCH_TEST_P12_PASSWORD;
});

test('import: replacing a key keeps the old one beside for undo', () => {
  const [keyChange] = caModule.plan(importParams(), facts({ certPem: nextPem, keyStat: { mode: '600', owner: 'epoch-agent' }, keySha256: 'old' }));
  assert.deepEqual(keyChange?.steps[0], { kind: 'run', argv: ['cp', '-p', '--', '/etc/epoch-agent/ca/ca.key', '/etc/epoch-agent/ca/ca.key.epoch-prev'] });
  assert.deepEqual(keyChange?.undo, [{ kind: 'run', argv: ['mv', '-f', '--', '/etc/epoch-agent/ca/ca.key.epoch-prev', '/etc/epoch-agent/ca/ca.key'] }]);
});

const rotateParams = () => caParams.parse({ mode: 'import', cert_file: fx('ca-next.crt'), key_file: fx('ca-next.key'), rotate_from: certFingerprint(caPem) });

test('rotation: switching signing is refused while the host does not trust the new CA', () => {
  assert.throws(() => caModule.plan(rotateParams(), facts({ certPem: caPem, keyStat: { mode: '600', owner: 'epoch-agent' }, keySha256: 'old', bundleTrustsNew: false })), /refusing to switch signing .* does not trust it yet/);
});

test('rotation: once trusted, signing switches to the new CA', () => {
  const changes = caModule.plan(rotateParams(), facts({ certPem: caPem, keyStat: { mode: '600', owner: 'epoch-agent' }, keySha256: 'old', bundleTrustsNew: true }));
  assert.equal(changes.length, 2);
  assert.match(changes[1]?.summary ?? '', /replace the signing CA certificate .* \(was /);
});

test('rotation: refuses when the host signs with a CA other than rotate_from', () => {
  const unrelated = readFileSync(fx('ca-rsa.crt'), 'utf8');
  assert.throws(() => caModule.plan(rotateParams(), facts({ certPem: unrelated, keySha256: 'x', bundleTrustsNew: true })), /rotate_from is .* but the host signs with/);
});

test('absent: removes the signing CA files (and the kept previous key); no undo for a deleted key', () => {
  const [change] = caModule.plan(caParams.parse({ state: 'absent' }), facts({ certPem: caPem, certStat: { mode: '644', owner: 'root' }, keyStat: { mode: '600', owner: 'epoch-agent' }, backupPresent: true }));
  assert.deepEqual(change?.steps, [
    { kind: 'run', argv: ['rm', '-f', '--', '/etc/epoch-agent/ca/ca.crt', '/etc/epoch-agent/ca/ca.key', '/etc/epoch-agent/ca/ca.key.epoch-prev'] },
    // Our folders, emptied by the removal, go too; /etc is not ours by name and is never touched.
    { kind: 'run', argv: ['sh', '-c', 'for d; do [ -d "$d" ] && rmdir --ignore-fail-on-non-empty -- "$d"; done; exit 0', 'epoch-rmdir', '/etc/epoch-agent/ca', '/etc/epoch-agent'] },
  ]);
  assert.equal(change?.undo, null);
});

test('absent: already absent → no change', () => {
  assert.deepEqual(caModule.plan(caParams.parse({ state: 'absent' }), facts({ dirs: { '/etc/epoch-agent/ca': null, '/etc/epoch-agent': null, '/etc': [] } })), []);
});

test('absent: files gone but an empty folder of ours is left (a half-provisioned host) → removes the folder', () => {
  const [change, ...rest] = caModule.plan(caParams.parse({ state: 'absent' }), facts({ dirs: { '/etc/epoch-agent/ca': [], '/etc/epoch-agent': ['ca'], '/etc': [] } }));
  assert.equal(rest.length, 0);
  assert.deepEqual(change?.steps.map((s) => (s.kind === 'run' ? s.argv.slice(3) : [])), [['epoch-rmdir', '/etc/epoch-agent/ca', '/etc/epoch-agent']]);
});

test('absent: a folder of ours that still holds someone else\'s file stays (and is not planned again and again)', () => {
  const dirs = { '/etc/epoch-agent/ca': [], '/etc/epoch-agent': ['ca', 'agent.json'], '/etc': [] };
  assert.deepEqual(removableDirs(dirs, []), ['/etc/epoch-agent/ca']);
  assert.deepEqual(removableDirs({ '/etc/epoch-agent': ['agent.json'], '/etc': [] }, []), []);
  assert.equal(productDir('/etc/ssl/private'), false);
});

test('module names match the playbooks (ca, trust_store, trust_coverage)', async () => {
  const { trustStoreModule } = await import('../trust-store/trust-store');
  const { trustCoverageModule } = await import('../trust-coverage/trust-coverage');
  assert.deepEqual([caModule.name, trustStoreModule.name, trustCoverageModule.name], ['ca', 'trust_store', 'trust_coverage']);
});

test('rotation: rotate_from also takes the agent\'s 64-hex-digit fingerprint', () => {
  const p = caParams.parse({ mode: 'import', cert_file: fx('ca-next.crt'), key_file: fx('ca-next.key'), rotate_from: certFingerprint(caPem).replace(/:/g, '').toLowerCase() });
  assert.equal(caModule.plan(p, facts({ certPem: caPem, keyStat: { mode: '600', owner: 'epoch-agent' }, keySha256: 'old', bundleTrustsNew: true })).length, 2);
  assert.equal(caParams.safeParse({ mode: 'import', cert_file: fx('ca-next.crt'), key_file: fx('ca-next.key'), rotate_from: 'abc' }).success, false);
});
