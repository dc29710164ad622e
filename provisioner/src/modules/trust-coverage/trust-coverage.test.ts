// Pure tests for the trust-coverage plan (opt-in fixes with undo) and its per-host report.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { normalisePem } from '../ca/params';
import { coverageReport, envDropInPath, renderEnvDropIn, type JavaKeystore, type TrustCoverageFacts, trustCoverageModule, trustCoverageParams } from './trust-coverage';

const caPem = normalisePem(readFileSync(resolve(import.meta.dirname, '../../../../test/fixtures/ca/ca-ec.crt'), 'utf8'));
const bundle = '/etc/ssl/certs/ca-certificates.crt';

const store = (over: Partial<JavaKeystore> = {}): JavaKeystore => ({
  path: '/usr/lib/jvm/java-17/lib/security/cacerts',
  realPath: '/usr/lib/jvm/java-17/lib/security/cacerts',
  managedBy: null,
  trusts: false,
  aliasPresent: false,
  ...over,
});

function facts(over: Partial<TrustCoverageFacts> = {}): TrustCoverageFacts {
  return {
    host: 'h1',
    desiredPem: caPem,
    desiredSource: 'cert_pem',
    bundleFile: bundle,
    systemTrusts: true,
    nodes: [{ path: '/usr/bin/node', version: 'v18.19.0', bundledTrusts: false, usesSystemStore: false }],
    certifi: [{ path: '/opt/app/lib/certifi/cacert.pem', pythonPath: null, systemBundle: false, trusts: false }],
    java: { keytool: '/usr/bin/keytool', keystores: [store()] },
    envDropIn: null,
    systemdRunning: true,
    ...over,
  };
}
const params = (extra: Record<string, unknown> = {}) => trustCoverageParams.parse({ cert_pem: caPem, ...extra });

test('no fixes requested → no changes, only a report', () => {
  assert.deepEqual(trustCoverageModule.plan(params(), facts()), []);
  const lines = coverageReport(params(), facts());
  assert.match(lines[0] ?? '', /^h1: trust coverage for CA sha256 /);
  assert.match(lines[1] ?? '', /node v18.19.0 .*WOULD REJECT.*fix_env/);
  assert.match(lines[2] ?? '', /python certifi .*WOULD REJECT.*REQUESTS_CA_BUNDLE/);
  assert.match(lines[3] ?? '', /java keystore .*WOULD REJECT.*fix_java/);
});

test('fix_env adds the systemd drop-in and re-execs systemd; undo removes it', () => {
  const [change] = trustCoverageModule.plan(params({ fix_env: true }), facts());
  assert.deepEqual(change?.steps, [
    { kind: 'put', path: envDropInPath, content: renderEnvDropIn(bundle), mode: 0o644, owner: 'root:root' },
    { kind: 'run', argv: ['systemctl', 'daemon-reexec'], timeoutMs: 60_000 },
  ]);
  assert.deepEqual(change?.undo?.[0], { kind: 'run', argv: ['rm', '-f', '--', envDropInPath] });
  assert.match(renderEnvDropIn(bundle), /DefaultEnvironment=NODE_EXTRA_CA_CERTS=\/etc\/ssl\/certs\/ca-certificates.crt REQUESTS_CA_BUNDLE=/);
});

test('fix_env already converged → no change, and the report counts node/python as covered', () => {
  const f = facts({ envDropIn: renderEnvDropIn(bundle), java: null });
  assert.deepEqual(trustCoverageModule.plan(params({ fix_env: true }), f), []);
  const lines = coverageReport(params(), f);
  assert.match(lines[1] ?? '', /trusts the CA via NODE_EXTRA_CA_CERTS/);
  assert.match(lines[2] ?? '', /trusts the CA via REQUESTS_CA_BUNDLE/);
});

test('fix_java imports the CA with keytool from stdin; undo deletes the alias', () => {
  const [change] = trustCoverageModule.plan(params({ fix_java: true }), facts());
  const step = change?.steps[0];
  assert.ok(step?.kind === 'run' && step.stdin === caPem);
  assert.deepEqual(step.argv.slice(0, 5), ['/usr/bin/keytool', '-importcert', '-noprompt', '-alias', 'epoch-provision-ca']);
  assert.deepEqual(change?.undo?.[0]?.kind === 'run' && change.undo[0].argv.slice(0, 5), ['/usr/bin/keytool', '-delete', '-noprompt', '-alias', 'epoch-provision-ca']);
});

test('fix_java already converged (cacerts trusts the CA) → no change', () => {
  assert.deepEqual(trustCoverageModule.plan(params({ fix_java: true }), facts({ java: { keytool: '/usr/bin/keytool', keystores: [store({ path: '/c', trusts: true, aliasPresent: true })] } })), []);
});

test('state absent removes both fixes, with undo that re-adds them', () => {
  const changes = trustCoverageModule.plan(params({ state: 'absent' }), facts({ envDropIn: renderEnvDropIn(bundle), java: { keytool: '/usr/bin/keytool', keystores: [store({ path: '/c', trusts: true, aliasPresent: true })] } }));
  assert.deepEqual(changes.map((c) => c.id), [`env:${envDropInPath}`, 'java:/c']);
  assert.deepEqual(trustCoverageModule.plan(params({ state: 'absent' }), facts()), []);
});

test('a node built to read the system store (Debian) trusts the CA once the system bundle does', () => {
  const debianNode = { path: '/usr/bin/node', version: 'v18.20.4', bundledTrusts: false, usesSystemStore: true };
  assert.match(coverageReport(params(), facts({ nodes: [debianNode] }))[1] ?? '', /trusts the CA \(it reads the system store\)/);
  assert.match(coverageReport(params(), facts({ nodes: [debianNode], systemTrusts: false }))[1] ?? '', /WOULD REJECT.*system store, which does not trust the CA yet/);
});

test('runtimes not installed are reported as not found', () => {
  const lines = coverageReport(params(), facts({ nodes: [], certifi: [], java: null }));
  assert.deepEqual(lines.slice(1), ['  node: not found', '  python certifi: not found', '  java keytool: not found']);
});

test('the node store probe observes bundled roots vs the OpenSSL store on this machine’s node', async () => {
  const { spawnSync } = await import('node:child_process');
  const { createCa } = await import('../../ca/create');
  const { nodeProbe } = await import('./trust-coverage');
  const probe = createCa({ commonName: 'probe', days: 1 });
  const input = JSON.stringify({ ours: caPem, cert: probe.certPem, key: probe.key.revealPkcs8Pem() });
  const run = (nodeOptions: string) =>
    JSON.parse(spawnSync(process.execPath, ['-e', nodeProbe], { input, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: nodeOptions } }).stdout) as { bundled: boolean; system: boolean };
  const usesOpenSslByDefault = process.config.variables && (process.config.variables as Record<string, unknown>).openssl_use_def_ca_store === true;
  assert.deepEqual(run(''), { version: process.version, bundled: false, system: usesOpenSslByDefault });
  assert.deepEqual(run('--use-openssl-ca'), { version: process.version, bundled: false, system: true });
});

test('distro-maintained stores: Debian certifi is the system bundle, Java cacerts follows the system store', () => {
  const debianCertifi = { path: bundle, pythonPath: null, systemBundle: true, trusts: true };
  const pipCertifi = { path: '/opt/app/site/certifi/cacert.pem', pythonPath: '/opt/app/site', systemBundle: false, trusts: false };
  const synced = store({ realPath: '/etc/ssl/certs/java/cacerts', managedBy: 'ca-certificates-java', trusts: true });
  const appStore = store({ path: '/opt/app/jre/cacerts', realPath: '/opt/app/jre/cacerts' });
  const f = facts({ certifi: [debianCertifi, pipCertifi], java: { keytool: '/usr/bin/keytool', keystores: [synced, appStore] } });
  const lines = coverageReport(params(), f);
  assert.match(lines[2] ?? '', /python certifi \(\/etc\/ssl\/certs\/ca-certificates.crt, the system bundle\): trusts the CA$/);
  assert.match(lines[3] ?? '', /PYTHONPATH=\/opt\/app\/site\): WOULD REJECT.*fix_env/);
  assert.match(lines[4] ?? '', /-> \/etc\/ssl\/certs\/java\/cacerts\): trusts the CA \(kept in sync with the system store by ca-certificates-java\)/);
  assert.match(lines[5] ?? '', /\/opt\/app\/jre\/cacerts\): WOULD REJECT.*fix_java/);
  // fix_java only touches the store that lacks the CA.
  assert.deepEqual(trustCoverageModule.plan(params({ fix_java: true }), f).map((c) => c.id), ['java:/opt/app/jre/cacerts']);
  const notYet = coverageReport(params(), facts({ systemTrusts: false, certifi: [{ ...debianCertifi, trusts: false }], java: { keytool: '/usr/bin/keytool', keystores: [{ ...synced, trusts: false }] } }));
  assert.match(notYet[2] ?? '', /system bundle, which does not trust the CA yet \(trust-store module\)/);
  assert.match(notYet[3] ?? '', /ca-certificates-java, which does not trust the CA yet/);
  // The system store trusts it but the hook did not deliver it (half-configured ca-certificates-java): say so.
  const outOfSync = coverageReport(params(), facts({ java: { keytool: '/usr/bin/keytool', keystores: [{ ...synced, trusts: false }] } }));
  assert.match(outOfSync[3] ?? '', /WOULD REJECT.*did not get the CA the system store trusts \(is ca-certificates-java configured\? dpkg --configure -a\)/);
});

test('fix_java refuses a keystore that update-ca-trust regenerates (the import would be lost)', () => {
  const extracted = store({ realPath: '/etc/pki/ca-trust/extracted/java/cacerts', managedBy: 'update-ca-trust' });
  assert.throws(() => trustCoverageModule.plan(params({ fix_java: true }), facts({ java: { keytool: '/usr/bin/keytool', keystores: [extracted] } })), /extracted from the system store by update-ca-trust.*trust-store module/);
});
