import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { configFromRunArgs, runCli } from './commands';

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { version: 'test', out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

test('ca init writes a 0600 key and a CA cert, prints its fingerprint, refuses to overwrite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epag-cli-'));
  try {
    const cert = join(dir, 'ca.pem');
    const key = join(dir, 'ca.key');
    const r = await cli(['ca', 'init', '--cert-out', cert, '--key-out', key, '--name', 'Host CA', '--days', '30']);
    assert.equal(r.code, 0, r.err);
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const x = new X509Certificate(readFileSync(cert));
    assert.equal(x.subject, 'CN=Host CA');
    assert.equal(r.out.trim(), x.fingerprint256.replace(/:/g, '').toLowerCase());
    const fp = await cli(['ca', 'fingerprint', cert]);
    assert.equal(fp.out, r.out);
    const again = await cli(['ca', 'init', '--cert-out', cert, '--key-out', key]);
    assert.equal(again.code, 1);
    assert.match(again.err, /already exists/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('check-config: exit 0 for a valid file, 2 with path-to-field errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'epag-cli-'));
  try {
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ ca: { certFile: '/x.pem', keyFile: '/x.key' } }));
    assert.deepEqual(await cli(['check-config', good]), { code: 0, out: `${good}: ok\n`, err: '' });
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ca: { certFile: '/x.pem' }, limits: { idleTimeoutMs: 5 } }));
    const r = await cli(['check-config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.err, /ca\.keyFile: /);
    assert.match(r.err, /limits\.idleTimeoutMs: .*\(got 5\)/);
    const missing = await cli(['check-config', join(dir, 'nope.json')]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run flags build a config without a file; unknown flags and commands are usage errors', async () => {
  const { config, user } = configFromRunArgs(['--listen', '8443', '--ca-cert', '/c.pem', '--ca-key', '/c.key', '--health', '127.0.0.1:9555', '--user', 'epoch-agent', '--no-connect-log']);
  assert.deepEqual(config.listen, [{ host: '::', port: 8443 }]);
  assert.deepEqual(config.health, { host: '127.0.0.1', port: 9555 });
  assert.equal(config.log.connectLog, false);
  assert.equal(user, 'epoch-agent');
  assert.equal((await cli(['run', '--bogus'])).code, 2);
  assert.equal((await cli(['frobnicate'])).code, 2);
  assert.match((await cli(['--version'])).out, /^epoch-agent test node v/);
});
