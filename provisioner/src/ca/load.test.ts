// Every import error case has its own test; each error is one line that names the file and the problem.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../core/errors';
import { createCa } from './create';
import { writeFleetCa } from './key-storage';
import { loadP12Ca, loadPemCa } from './load';
import { certFingerprint, SecretKey } from './material';
import { assertUsableCa, caProblems } from './validate';

const fx = (name: string) => resolve(import.meta.dirname, '../../../test/fixtures/ca', name);

/** Loads and validates like `ca check`, returning the one-line messages (empty when usable). */
function problemsOf(load: () => ReturnType<typeof loadPemCa>, options = {}): string[] {
  try {
    assertUsableCa(load(), options);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.message.split('\n');
  }
}

function assertOneLine(lines: string[], file: string, pattern: RegExp) {
  assert.equal(lines.length, 1, `expected exactly one problem, got ${JSON.stringify(lines)}`);
  assert.ok(lines[0]?.startsWith(`${file}: `), `the message names ${file}: ${lines[0]}`);
  assert.match(lines[0] as string, pattern);
}

test('a valid EC CA with its key loads and validates', () => {
  const m = loadPemCa(fx('ca-ec.crt'), fx('ca-ec.key'));
  assert.deepEqual(caProblems(m), []);
  assert.equal(certFingerprint(m.certPem), new X509Certificate(readFileSync(fx('ca-ec.crt'))).fingerprint256);
});

test('a valid RSA-2048 CA validates', () => {
  assert.deepEqual(problemsOf(() => loadPemCa(fx('ca-rsa.crt'), fx('ca-rsa.key'))), []);
});

test('an encrypted PKCS#8 key loads with its passphrase', () => {
  assert.deepEqual(problemsOf(() => loadPemCa(fx('ca-ec.crt'), fx('ca-ec.enc.key'), 'fixture-passphrase')), []);
});

test('cert and key in one PEM file load without --key', () => {
  assert.deepEqual(problemsOf(() => loadPemCa(fx('ca-ec.combined.pem'), undefined)), []);
});

test('PKCS#12 (OpenSSL 3 defaults) loads with the right password, EC and RSA', () => {
  assert.deepEqual(problemsOf(() => loadP12Ca(fx('ca-ec.p12'), 'fixture-password')), []);
  assert.deepEqual(problemsOf(() => loadP12Ca(fx('ca-rsa.p12'), 'fixture-password')), []);
});

test('error: malformed PEM (armour around garbage)', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('malformed.crt'), fx('ca-ec.key'))), fx('malformed.crt'), /malformed PEM: the CERTIFICATE block does not decode/);
});

test('error: malformed PEM (truncated, no END line)', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('truncated.crt'), fx('ca-ec.key'))), fx('truncated.crt'), /malformed PEM: .* no matching END line/);
});

test('error: a key file given as the certificate', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.key'), fx('ca-ec.key'))), fx('ca-ec.key'), /expected a "-----BEGIN CERTIFICATE-----" block, found PRIVATE KEY/);
});

test('error: certificate without a key', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.crt'), undefined)), fx('ca-ec.crt'), /certificate without a private key/);
});

test('error: the key file holds no private key', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.crt'), fx('ca-next.crt'))), fx('ca-next.crt'), /no private key in file/);
});

test('error: wrong PKCS#12 password', () => {
  assertOneLine(problemsOf(() => loadP12Ca(fx('ca-ec.p12'), 'not-the-password')), fx('ca-ec.p12'), /wrong PKCS#12 password/);
});

test('error: a PEM file given as PKCS#12', () => {
  assertOneLine(problemsOf(() => loadP12Ca(fx('ca-ec.crt'), 'x')), fx('ca-ec.crt'), /not a readable PKCS#12 file/);
});

test('error: not a CA (leaf certificate, CA:FALSE)', () => {
  const lines = problemsOf(() => loadPemCa(fx('leaf.crt'), fx('leaf.key')));
  assert.ok(lines.every((l) => l.startsWith(`${fx('leaf.crt')}: not a CA`)), JSON.stringify(lines));
  assert.match(lines[0] as string, /basicConstraints CA:TRUE is missing/);
});

test('error: CA:TRUE but keyUsage lacks keyCertSign', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('no-certsign-ca.crt'), fx('no-certsign-ca.key'))), fx('no-certsign-ca.crt'), /not a CA: keyUsage lacks keyCertSign/);
});

test('error: expired CA', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('expired-ca.crt'), fx('expired-ca.key'))), fx('expired-ca.crt'), /CA expired on 2021-01-01T01:00:00.000Z/);
});

test('error: CA expiring within the window (default 30 days)', () => {
  const m = createCa({ commonName: 'soon', days: 10 });
  const lines = caProblems(m).map((p) => `${p.location}: ${p.message}`);
  assert.equal(lines.length, 1);
  assert.match(lines[0] as string, /expires on .*, in \d+ day\(s\); at least 30 required/);
});

test('the expiry window is configurable: a 10-day CA passes with minValidDays 5', () => {
  assert.deepEqual(caProblems(createCa({ commonName: 'soon', days: 10 }), { minValidDays: 5 }), []);
});

test('error: key does not match the certificate', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.crt'), fx('ca-next.key'))), fx('ca-next.key'), /private key does not match the certificate in .*ca-ec\.crt/);
});

test('error: unreadable file (missing)', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('no-such.crt'), fx('ca-ec.key'))), fx('no-such.crt'), /cannot read: no such file/);
});

test('error: unreadable file (a directory)', () => {
  const dir = fx('');
  assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.crt'), dir)), dir, /cannot read: is a directory/);
});

test('error: unreadable file (permission denied)', { skip: process.getuid?.() === 0 ? 'root reads any file regardless of mode' : false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-ca-'));
  try {
    const { keyFile } = writeFleetCa(dir, loadPemCa(fx('ca-ec.crt'), fx('ca-ec.key')), 'long-enough-passphrase');
    chmodSync(keyFile, 0);
    assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.crt'), keyFile)), keyFile, /cannot read: permission denied/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('error: weak key (RSA-1024 CA)', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('weak-rsa1024-ca.crt'), fx('weak-rsa1024-ca.key'))), fx('weak-rsa1024-ca.crt'), /weak key: RSA-1024, expected RSA of at least 2048 bits/);
});

test('error: encrypted key without a passphrase', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.crt'), fx('ca-ec.enc.key'))), fx('ca-ec.enc.key'), /encrypted and no passphrase was given/);
});

test('error: encrypted key with the wrong passphrase', () => {
  assertOneLine(problemsOf(() => loadPemCa(fx('ca-ec.crt'), fx('ca-ec.enc.key'), 'wrong')), fx('ca-ec.enc.key'), /wrong passphrase/);
});

test('createCa: EC P-256 by default, RSA on request; every generated CA validates', () => {
  const ec = createCa({ commonName: 'gen', days: 365 });
  assert.equal(ec.key.keyObject.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.deepEqual(caProblems(ec), []);
  const rsa = createCa({ commonName: 'gen', days: 365, keyType: 'rsa-2048' });
  assert.equal(rsa.key.keyObject.asymmetricKeyDetails?.modulusLength, 2048);
  assert.deepEqual(caProblems(rsa), []);
});

test('fleet CA files: key encrypted at rest with mode 0600, cert 0644, no overwrite without force', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-ca-'));
  try {
    const m = createCa({ commonName: 'fleet', days: 365 });
    const { certFile, keyFile } = writeFleetCa(dir, m, 'long-enough-passphrase');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(certFile).mode & 0o777, 0o644);
    const keyText = readFileSync(keyFile, 'utf8');
    assert.match(keyText, /^-{5}BEGIN ENCRYPTED PRIVATE KEY-{5}\n/);
    const reloaded = loadPemCa(certFile, keyFile, 'long-enough-passphrase');
    assert.deepEqual(caProblems(reloaded), []);
    assert.throws(() => createPrivateKey({ key: keyText, format: 'pem', passphrase: 'wrong-passphrase' }));
    assert.throws(() => writeFleetCa(dir, m, 'long-enough-passphrase'), /already exists; pass --force/);
    assert.throws(() => writeFleetCa(join(dir, 'x'), m, 'short'), /passphrase too short/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the private key never shows in JSON, String() or inspect', async () => {
  const m = loadPemCa(fx('ca-ec.crt'), fx('ca-ec.key'));
  const { inspect } = await import('node:util');
  for (const text of [JSON.stringify(m), String(m.key), inspect(m, { depth: 5 })]) {
    assert.doesNotMatch(text, /PRIVATE KEY/);
    assert.match(text, /redacted/);
  }
  assert.ok(m.key instanceof SecretKey);
});
