// `epoch-provision ca check|init|fingerprint` through the real CLI entry point: exit 0 or 2, one line per problem.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join('test/fixtures/ca', name);

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'provisioner/src/cli/main.ts', ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderrLines: r.stderr.split('\n').filter(Boolean) };
}

function expectProblem(args: string[], file: string, pattern: RegExp, env: Record<string, string> = {}) {
  const r = cli(args, env);
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderrLines.join(' | ')}`);
  assert.equal(r.stderrLines.length, 1, `one line: ${JSON.stringify(r.stderrLines)}`);
  assert.ok(r.stderrLines[0]?.startsWith(`epoch-provision ca: ${file}: `), r.stderrLines[0]);
  assert.match(r.stderrLines[0] as string, pattern);
}

test('ca check: a good PEM CA exits 0 and prints its fingerprint', () => {
  const r = cli(['ca', 'check', '--cert', fx('ca-ec.crt'), '--key', fx('ca-ec.key')]);
  assert.equal(r.code, 0, r.stderrLines.join('\n'));
  assert.match(r.stdout, /^ok: test\/fixtures\/ca\/ca-ec.crt: CA ".*", expires 2046-.*, sha256 ([0-9A-F]{2}:){31}[0-9A-F]{2}\n$/);
});

test('ca check: encrypted key with --key-passphrase-env exits 0', () => {
  assert.equal(cli(['ca', 'check', '--cert', fx('ca-ec.crt'), '--key', fx('ca-ec.enc.key'), '--key-passphrase-env', 'EPOCH_KEY_PASS'], { EPOCH_KEY_PASS: 'fixture-passphrase' }).code, 0);
});

test('ca check: PKCS#12 with --password-env exits 0', () => {
  assert.equal(cli(['ca', 'check', '--p12', fx('ca-rsa.p12'), '--password-env', 'EPOCH_P12_PASS'], { EPOCH_P12_PASS: 'fixture-password' }).code, 0);
});

test('ca check: malformed PEM → exit 2', () => expectProblem(['ca', 'check', '--cert', fx('malformed.crt'), '--key', fx('ca-ec.key')], fx('malformed.crt'), /malformed PEM/));
test('ca check: cert without key → exit 2', () => expectProblem(['ca', 'check', '--cert', fx('ca-ec.crt')], fx('ca-ec.crt'), /certificate without a private key/));
test('ca check: wrong PKCS#12 password → exit 2', () =>
  expectProblem(['ca', 'check', '--p12', fx('ca-ec.p12'), '--password-env', 'EPOCH_P12_PASS'], fx('ca-ec.p12'), /wrong PKCS#12 password/, { EPOCH_P12_PASS: 'nope' }));
test('ca check: not a CA (CA:TRUE with no keyCertSign) → exit 2', () => expectProblem(['ca', 'check', '--cert', fx('no-certsign-ca.crt'), '--key', fx('no-certsign-ca.key')], fx('no-certsign-ca.crt'), /not a CA: keyUsage lacks keyCertSign/));
test('ca check: expired CA → exit 2', () => expectProblem(['ca', 'check', '--cert', fx('expired-ca.crt'), '--key', fx('expired-ca.key')], fx('expired-ca.crt'), /CA expired on 2021-01-01/));
test('ca check: key/cert mismatch → exit 2', () => expectProblem(['ca', 'check', '--cert', fx('ca-ec.crt'), '--key', fx('ca-next.key')], fx('ca-next.key'), /private key does not match/));
test('ca check: unreadable file → exit 2', () => expectProblem(['ca', 'check', '--cert', fx('missing.crt'), '--key', fx('ca-ec.key')], fx('missing.crt'), /cannot read: no such file/));
test('ca check: weak key → exit 2', () => expectProblem(['ca', 'check', '--cert', fx('weak-rsa1024-ca.crt'), '--key', fx('weak-rsa1024-ca.key')], fx('weak-rsa1024-ca.crt'), /weak key: RSA-1024/));

test('ca check: --min-valid-days beyond the CA lifetime → exit 2', () => {
  const r = cli(['ca', 'check', '--cert', fx('ca-ec.crt'), '--key', fx('ca-ec.key'), '--min-valid-days', '99999']);
  assert.equal(r.code, 2);
  assert.match(r.stderrLines[0] ?? '', /expires on .* at least 99999 required/);
});

test('ca init: EC P-256 fleet CA, key encrypted at rest 0600, then checks clean', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-ca-cli-'));
  try {
    const out = join(dir, 'fleet');
    const r = cli(['ca', 'init', '--name', 'cli test CA', '--days', '400', '--out', out, '--passphrase-env', 'EPOCH_CA_PASS'], { EPOCH_CA_PASS: 'a-long-passphrase' });
    assert.equal(r.code, 0, r.stderrLines.join('\n'));
    assert.match(r.stdout, /sha256 fingerprint: ([0-9A-F]{2}:){31}/);
    assert.equal(statSync(join(out, 'ca.key')).mode & 0o777, 0o600);
    assert.equal(statSync(out).mode & 0o777, 0o700);
    assert.match(readFileSync(join(out, 'ca.key'), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
    const check = cli(['ca', 'check', '--cert', join(out, 'ca.crt'), '--key', join(out, 'ca.key'), '--key-passphrase-env', 'EPOCH_CA_PASS'], { EPOCH_CA_PASS: 'a-long-passphrase' });
    assert.equal(check.code, 0, check.stderrLines.join('\n'));
    const fp = cli(['ca', 'fingerprint', join(out, 'ca.crt')]);
    assert.ok(r.stdout.includes(fp.stdout.trim()));
    assert.equal(cli(['ca', 'init', '--out', out, '--passphrase-env', 'EPOCH_CA_PASS'], { EPOCH_CA_PASS: 'a-long-passphrase' }).code, 2, 'refuses to overwrite');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ca init: missing passphrase env var → exit 2 and nothing written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-ca-cli-'));
  try {
    const r = cli(['ca', 'init', '--out', join(dir, 'x'), '--passphrase-env', 'EPOCH_UNSET_VAR_FOR_TEST']);
    assert.equal(r.code, 2);
    assert.match(r.stderrLines[0] ?? '', /environment variable EPOCH_UNSET_VAR_FOR_TEST is not set/);
    assert.throws(() => statSync(join(dir, 'x')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
