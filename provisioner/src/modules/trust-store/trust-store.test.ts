// Pure planning tests: distro → layout, and the trust-store plan per family, each "adds" case with its
// "already converged" twin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { normalisePem } from '../ca/params';
import { anchorPath, parseOsRelease, type TrustFamily, trustFamilyOf, trustLayout, UnsupportedDistroError } from './distro';
import type { Step } from '../../core/change';
import { defaultAnchorName, removeRefreshStep, savedExtractedDir, type TrustStoreFacts, trustStoreModule, trustStoreParams } from './trust-store';
import { tryReloadStep } from '../try-restart';

const caPem = normalisePem(readFileSync(resolve(import.meta.dirname, '../../../../test/fixtures/ca/ca-ec.crt'), 'utf8'));
const otherPem = normalisePem(readFileSync(resolve(import.meta.dirname, '../../../../test/fixtures/ca/ca-next.crt'), 'utf8'));

const osReleases: Record<string, { text: string; family: TrustFamily }> = {
  debian: { text: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n', family: 'debian' },
  ubuntu: { text: 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n', family: 'debian' },
  alpine: { text: 'NAME="Alpine Linux"\nID=alpine\n', family: 'debian' },
  rocky: { text: 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n', family: 'rhel' },
  alma: { text: 'ID="almalinux"\nID_LIKE="rhel centos fedora"\n', family: 'rhel' },
  fedora: { text: 'ID=fedora\n', family: 'rhel' },
  amazon: { text: 'NAME="Amazon Linux"\nID="amzn"\nID_LIKE="fedora"\n', family: 'rhel' },
  centos: { text: 'ID="centos"\nID_LIKE="rhel fedora"\n', family: 'rhel' },
  sles: { text: 'ID="sles"\nID_LIKE="suse"\n', family: 'suse' },
  leap: { text: 'ID="opensuse-leap"\nID_LIKE="suse opensuse"\n', family: 'suse' },
  arch: { text: 'NAME="Arch Linux"\nID=arch\n', family: 'arch' },
  mint: { text: 'ID=linuxmint\nID_LIKE="ubuntu debian"\n', family: 'debian' },
  'unknown with ID_LIKE': { text: 'ID=mydistro\nID_LIKE="rhel fedora"\n', family: 'rhel' },
};

for (const [name, { text, family }] of Object.entries(osReleases)) {
  test(`os-release ${name} → ${family} family`, () => assert.equal(trustFamilyOf(parseOsRelease(text)), family));
}

test('unknown distro: a clear error naming ID, ID_LIKE and the supported families', () => {
  assert.throws(
    () => trustFamilyOf(parseOsRelease('PRETTY_NAME="Gentoo Linux"\nID=gentoo\n')),
    (err: unknown) => err instanceof UnsupportedDistroError && /ID=gentoo ID_LIKE=\(none\) \(Gentoo Linux\).*supported: Debian/.test(err.message),
  );
});

test('layouts follow the per-family table', () => {
  assert.equal(anchorPath(trustLayout('debian'), 'x'), '/usr/local/share/ca-certificates/x.crt');
  assert.deepEqual(trustLayout('debian').refreshArgv, ['update-ca-certificates']);
  assert.deepEqual(trustLayout('debian').removeRefreshArgv, ['update-ca-certificates', '--fresh']);
  assert.equal(anchorPath(trustLayout('rhel'), 'x'), '/etc/pki/ca-trust/source/anchors/x.pem');
  assert.deepEqual(trustLayout('rhel').refreshArgv, ['update-ca-trust', 'extract']);
  assert.equal(anchorPath(trustLayout('suse'), 'x'), '/etc/pki/trust/anchors/x.pem');
  assert.deepEqual(trustLayout('suse').refreshArgv, ['update-ca-certificates']);
  assert.equal(anchorPath(trustLayout('arch'), 'x'), '/etc/ca-certificates/trust-source/anchors/x.crt');
  assert.deepEqual(trustLayout('arch').refreshArgv, ['trust', 'extract-compat']);
});

const params = (extra: Record<string, unknown> = {}) => trustStoreParams.parse({ cert_pem: caPem, ...extra });

function facts(family: TrustFamily, over: Partial<TrustStoreFacts> = {}): TrustStoreFacts {
  return {
    host: 'h1',
    os: parseOsRelease(`ID=${family}\n`),
    layout: trustLayout(family),
    unsupportedReason: null,
    desiredPem: caPem,
    desiredSource: 'cert_pem',
    currentAnchor: null,
    bundleTrustsDesired: false,
    refreshCommandPresent: true,
    ...over,
  };
}

for (const family of ['debian', 'rhel', 'suse', 'arch'] as const) {
  const layout = trustLayout(family);
  const path = anchorPath(layout, 'epoch-provision-ca');

  // Families whose refresh output is saved at install and given back at removal (rhel: the time-stamped JKS).
  const saves = layout.extractedPaths.length > 0;
  const label = (s: Step) => (s.kind === 'run' ? (s.argv[0] === 'sh' ? s.argv[3] : s.argv.join(' ')) : `put ${s.path}`);

  test(`${family}: adds the anchor with a validated put and the family's refresh`, () => {
    const changes = trustStoreModule.plan(params(), facts(family));
    assert.equal(changes.length, 1);
    const [change] = changes;
    assert.match(change?.summary ?? '', new RegExp(`install CA anchor ${path} .*sha256 [0-9A-F:]{95}`));
    assert.deepEqual(change?.steps.slice(saves ? 1 : 0), [
      { kind: 'put', path, content: caPem, mode: 0o644, owner: 'root:root', validate: ['openssl', 'x509', '-noout', '-in', '{}'] },
      { kind: 'run', argv: layout.refreshArgv, timeoutMs: 120_000 },
    ]);
    assert.deepEqual(change?.steps.map(label).slice(0, 1), saves ? ['epoch-trust-save'] : [`put ${path}`]);
    assert.deepEqual(change?.undo?.slice(0, 2), [{ kind: 'run', argv: ['rm', '-f', '--', path] }, removeRefreshStep(layout, defaultAnchorName)]);
    assert.deepEqual(change?.undo?.slice(2).map(label), saves ? ['epoch-trust-restore'] : []);
  });

  test(`${family}: already converged (same anchor, bundle trusts it) → no change`, () => {
    assert.deepEqual(trustStoreModule.plan(params(), facts(family, { currentAnchor: caPem.trimEnd(), bundleTrustsDesired: true })), []);
  });

  test(`${family}: removes the anchor and refreshes; undo puts it back`, () => {
    const changes = trustStoreModule.plan(params({ state: 'absent' }), facts(family, { currentAnchor: caPem, bundleTrustsDesired: true }));
    assert.equal(changes.length, 1);
    assert.deepEqual(changes[0]?.steps.map(label), [`rm -f -- ${path}`, family === 'debian' ? 'epoch-trust-remove' : layout.removeRefreshArgv.join(' '), ...(saves ? ['epoch-trust-restore'] : [])]);
    assert.deepEqual(changes[0]?.steps[1], removeRefreshStep(layout, defaultAnchorName));
    assert.equal(changes[0]?.undo?.[0]?.kind, 'put');
  });

  test(`${family}: already absent → no change`, () => {
    assert.deepEqual(trustStoreModule.plan(params({ state: 'absent' }), facts(family)), []);
  });
}

test('rhel saves the whole extracted tree and the ca-bundle.crt links; debian saves /etc/ssl/certs', () => {
  assert.deepEqual(trustLayout('rhel').extractedPaths, ['/etc/pki/ca-trust/extracted', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/pki/tls/certs/ca-bundle.trust.crt']);
  assert.deepEqual(trustLayout('debian').extractedPaths, ['/etc/ssl/certs']);
  const [change] = trustStoreModule.plan(params(), facts('rhel'));
  const save = change?.steps[0];
  assert.ok(save?.kind === 'run');
  assert.deepEqual(save.argv.slice(3), ['epoch-trust-save', savedExtractedDir, ...trustLayout('rhel').extractedPaths]);
  assert.ok(!savedExtractedDir.startsWith('/etc/'));
});

/** The save and restore scripts of a rhel plan, run on a scratch tree (their paths are arguments, so never /etc). */
function extractedScripts(): { save: string; restore: string } {
  const [install] = trustStoreModule.plan(params(), facts('rhel'));
  const save = install?.steps[0];
  const restore = install?.undo?.[2];
  assert.ok(save?.kind === 'run' && restore?.kind === 'run');
  return { save: save.argv[2] as string, restore: restore.argv[2] as string };
}

function scratchStore(): { root: string; saved: string; paths: string[]; run: (script: string) => string } {
  const root = mkdtempSync(join(tmpdir(), 'epoch-trust-'));
  mkdirSync(join(root, 'extracted/pem'), { recursive: true });
  mkdirSync(join(root, 'extracted/java'), { recursive: true });
  writeFileSync(join(root, 'extracted/pem/tls-ca-bundle.pem'), 'bundle v1\n');
  writeFileSync(join(root, 'extracted/java/cacerts'), 'jks stamped t1\n');
  symlinkSync('extracted/pem/tls-ca-bundle.pem', join(root, 'ca-bundle.crt'));
  const saved = join(root, 'saved/trust-store/x');
  const paths = [join(root, 'extracted'), join(root, 'ca-bundle.crt'), join(root, 'missing.crt')];
  const run = (script: string) => execFileSync('sh', ['-c', script, 'test', saved, ...paths], { encoding: 'utf8' });
  return { root, saved, paths, run };
}

test('removal after an unchanged trust set: the saved extraction comes back byte for byte (the JKS too)', () => {
  const { save, restore } = extractedScripts();
  const s = scratchStore();
  try {
    s.run(save);
    assert.ok(existsSync(join(s.saved, 'tree.tar')));
    // Install + removal regenerate: the PEM bundle is the same again, the keystore carries a new time stamp.
    writeFileSync(join(s.root, 'extracted/java/cacerts'), 'jks stamped t2\n');
    assert.match(s.run(restore), /restored the saved extraction/);
    assert.equal(readFileSync(join(s.root, 'extracted/java/cacerts'), 'utf8'), 'jks stamped t1\n');
    assert.equal(readlinkSync(join(s.root, 'ca-bundle.crt')), 'extracted/pem/tls-ca-bundle.pem');
    assert.equal(existsSync(s.saved), false, 'the saved copy is dropped');
  } finally {
    rmSync(s.root, { recursive: true, force: true });
  }
});

test('removal after someone changed the store meanwhile: the fresh extraction stays, and the output says so', () => {
  const { save, restore } = extractedScripts();
  const s = scratchStore();
  try {
    s.run(save);
    writeFileSync(join(s.root, 'extracted/pem/tls-ca-bundle.pem'), 'bundle v2 (another CA added)\n');
    writeFileSync(join(s.root, 'extracted/java/cacerts'), 'jks stamped t2\n');
    assert.match(s.run(restore), /differ from the saved ones .*kept the fresh extraction/);
    assert.equal(readFileSync(join(s.root, 'extracted/java/cacerts'), 'utf8'), 'jks stamped t2\n');
    assert.equal(readFileSync(join(s.root, 'extracted/pem/tls-ca-bundle.pem'), 'utf8'), 'bundle v2 (another CA added)\n');
  } finally {
    rmSync(s.root, { recursive: true, force: true });
  }
});

test('rotation: two anchors of ours; the pristine state saved by the first comes back when the last one goes', () => {
  const { save, restore } = extractedScripts();
  const s = scratchStore();
  const bundle = join(s.root, 'extracted/pem/tls-ca-bundle.pem');
  const jks = join(s.root, 'extracted/java/cacerts');
  try {
    const pristine = { bundle: readFileSync(bundle, 'utf8'), jks: readFileSync(jks, 'utf8') };
    s.run(save); // the old CA's install saves the pristine state
    writeFileSync(bundle, `${pristine.bundle}old CA\n`);
    s.run(save); // the new CA's install keeps that snapshot
    writeFileSync(bundle, `${pristine.bundle}old CA\nnew CA\n`);
    writeFileSync(bundle, `${pristine.bundle}new CA\n`); // the old CA is removed: the new one is still there
    writeFileSync(jks, 'jks stamped t3\n');
    assert.match(s.run(restore), /kept the fresh extraction/);
    writeFileSync(bundle, pristine.bundle); // the new CA is removed: the trust set is pristine again
    writeFileSync(jks, 'jks stamped t4\n');
    assert.match(s.run(restore), /restored the saved extraction/);
    assert.equal(readFileSync(jks, 'utf8'), pristine.jks);
    // The snapshot is gone with it: nothing to restore, and no error.
    assert.match(s.run(restore), /no saved extraction/);
  } finally {
    rmSync(s.root, { recursive: true, force: true });
  }
});

test('a different CA under the same name is replaced, undo restores the previous anchor', () => {
  const [change] = trustStoreModule.plan(params(), facts('debian', { currentAnchor: otherPem }));
  assert.match(change?.summary ?? '', /^replace CA anchor/);
  assert.deepEqual(change?.undo?.[0], { kind: 'put', path: '/usr/local/share/ca-certificates/epoch-provision-ca.crt', content: otherPem, mode: 0o644, owner: 'root:root', validate: ['openssl', 'x509', '-noout', '-in', '{}'] });
});

test('anchor in place but bundle stale → refresh only; twin: bundle fresh → nothing', () => {
  const stale = trustStoreModule.plan(params(), facts('rhel', { currentAnchor: caPem }));
  assert.deepEqual(stale.map((c) => c.id), ['trust-refresh:rhel']);
  assert.deepEqual(stale[0]?.steps, [{ kind: 'run', argv: ['update-ca-trust', 'extract'], timeoutMs: 120_000 }]);
  assert.deepEqual(trustStoreModule.plan(params(), facts('rhel', { currentAnchor: caPem, bundleTrustsDesired: true })), []);
});

test('unknown distro: plan fails with the gather-time reason', () => {
  assert.throws(() => trustStoreModule.plan(params(), facts('debian', { layout: null, unsupportedReason: 'unsupported distro for the CA trust store: ID=gentoo' })), /h1: unsupported distro .*ID=gentoo/);
});

test('missing refresh tool: a clear error instead of a half-done install', () => {
  assert.throws(() => trustStoreModule.plan(params(), facts('debian', { refreshCommandPresent: false })), /`update-ca-certificates` is not installed/);
});

test('per-host source missing on the host: a clear error', () => {
  assert.throws(() => trustStoreModule.plan(trustStoreParams.parse({}), facts('debian', { desiredPem: null, desiredSource: 'h1:/etc/epoch-agent/ca/ca.crt' })), /no CA certificate at h1:\/etc\/epoch-agent\/ca\/ca.crt; run the ca module first/);
});

test('params: cert_file is read on the controller during validation; a bad file fails validation', () => {
  const ok = trustStoreParams.parse({ cert_file: resolve(import.meta.dirname, '../../../../test/fixtures/ca/ca-ec.crt') });
  assert.equal(ok.cert_pem, caPem);
  const bad = trustStoreParams.safeParse({ cert_file: '/nonexistent/ca.crt' });
  assert.equal(bad.success, false);
  assert.match(bad.error?.issues[0]?.message ?? '', /^\/nonexistent\/ca.crt: cannot read: no such file$/);
});

test('params: anchor names are restricted to safe file names', () => {
  assert.equal(trustStoreParams.safeParse({ name: '../etc/passwd' }).success, false);
});

test('report names the CA fingerprint per host', () => {
  const [line] = trustStoreModule.report(params(), facts('debian', { currentAnchor: caPem, bundleTrustsDesired: true }));
  assert.match(line ?? '', /^h1: CA sha256 ([0-9A-F]{2}:){31}[0-9A-F]{2} trusted by \/etc\/ssl\/certs\/ca-certificates.crt$/);
});

test('debian removal tells ca-certificates-java, which update-ca-certificates never tells about a local anchor', () => {
  const step = removeRefreshStep(trustLayout('debian'), 'epoch-provision-ca');
  assert.equal(step.kind, 'run');
  const argv = step.kind === 'run' ? step.argv : [];
  assert.deepEqual(argv.slice(3), ['epoch-trust-remove', 'epoch-provision-ca', 'update-ca-certificates', '--fresh']);
  assert.match(argv[2] ?? '', /printf '%s\\n' "-\/etc\/ssl\/certs\/\$name\.pem" \| "\$hook"/);
  assert.deepEqual(removeRefreshStep(trustLayout('rhel'), 'epoch-provision-ca'), { kind: 'run', argv: ['update-ca-trust', 'extract'], timeoutMs: 120_000 });
});

test('reload_unit: the agent re-reads the bundle after every change and undo (a removed CA stops being trusted upstream)', () => {
  const reload = tryReloadStep('epoch-agent.service');
  assert.deepEqual(reload.argv.slice(-2), ['try-reload-or-restart', 'epoch-agent.service']);
  const p = params({ reload_unit: 'epoch-agent.service' });
  for (const family of ['debian', 'rhel'] as const) {
    const [added] = trustStoreModule.plan(p, facts(family));
    assert.deepEqual(added?.steps.at(-1), reload);
    assert.deepEqual(added?.undo?.at(-1), reload);
    assert.match(added?.summary ?? '', /, then reload epoch-agent\.service if it runs$/);
    const [removed] = trustStoreModule.plan(params({ state: 'absent', reload_unit: 'epoch-agent.service' }), facts(family, { currentAnchor: caPem, bundleTrustsDesired: true }));
    assert.deepEqual(removed?.steps.at(-1), reload);
    assert.deepEqual(removed?.undo?.at(-1), reload);
    const [refreshOnly] = trustStoreModule.plan(p, facts(family, { currentAnchor: caPem }));
    assert.deepEqual(refreshOnly?.steps.at(-1), reload);
    // Already converged: nothing to reload.
    assert.deepEqual(trustStoreModule.plan(p, facts(family, { currentAnchor: caPem, bundleTrustsDesired: true })), []);
    assert.deepEqual(trustStoreModule.plan(params({ state: 'absent', reload_unit: 'epoch-agent.service' }), facts(family)), []);
  }
  // Without it, no reload step (the default).
  assert.ok(!trustStoreModule.plan(params(), facts('debian'))[0]?.steps.some((s) => s.kind === 'run' && s.argv[3] === 'epoch-try-reload-or-restart'));
  assert.throws(() => trustStoreParams.parse({ cert_pem: caPem, reload_unit: 'not a unit' }), /must be a systemd service name/);
});

// gather for real on this machine, read-only (an anchor name nobody installs; the CA file is a test fixture).
test('gather: the distro from the run\'s host facts makes it one round trip, with the same facts as reading os-release', async (t) => {
  const { LocalTransport } = await import('../../transport/local-transport');
  const { classifyOs } = await import('../../facts/os-release');
  const { HostMemo } = await import('../../facts/host-memo');
  const { bundleTrustsMemoKey } = await import('../ca/host-files');
  const osText = ['/etc/os-release', '/usr/lib/os-release'].filter((f) => existsSync(f)).map((f) => readFileSync(f, 'utf8'))[0];
  const verdict = osText === undefined ? null : classifyOs(osText);
  if (!verdict?.supported) return t.skip('this machine has no supported os-release');
  const local = new LocalTransport({ hostName: 'local' });
  let calls = 0;
  const transport = { ...local, hostName: 'local', exec: (argv: readonly string[], o?: Parameters<typeof local.exec>[1]) => {
      calls++;
      return local.exec(argv, o);
    }, getFile: local.getFile.bind(local), close: local.close.bind(local) };
  const caFile = resolve(import.meta.dirname, '../../../../test/fixtures/ca/ca-ec.crt');
  const p = trustStoreParams.parse({ name: 'epoch-test-never-installed', host_cert_file: caFile });
  const withoutFacts = await trustStoreModule.gather({ name: 'local', vars: {}, transport }, p);
  assert.equal(calls, 2, 'no facts: os-release first');
  calls = 0;
  const memo = new HostMemo();
  const withFacts = await trustStoreModule.gather({ name: 'local', vars: { epoch_facts: { os: verdict } }, transport, memo }, p);
  assert.equal(calls, 1, 'the distro from the facts: one round trip');
  assert.deepEqual({ ...withFacts, os: null }, { ...withoutFacts, os: null });
  assert.equal(withFacts.os.id, verdict.os.id);
  assert.equal(withFacts.desiredPem, caPem);
  assert.equal(withFacts.currentAnchor, null);
  assert.equal(withFacts.bundleTrustsDesired, false, 'the fixture CA is in no system bundle');
  // The bundle check is kept in the run's memo (trust_coverage asks the same); cleared by a change, asked again.
  const key = bundleTrustsMemoKey(withFacts.layout!.bundleFile, { file: caFile });
  assert.equal(memo.get(key), false);
  memo.set(key, true);
  assert.equal((await trustStoreModule.gather({ name: 'local', vars: { epoch_facts: { os: verdict } }, transport, memo }, p)).bundleTrustsDesired, true, 'answered from the memo');
  memo.clear();
  assert.equal((await trustStoreModule.gather({ name: 'local', vars: { epoch_facts: { os: verdict } }, transport, memo }, p)).bundleTrustsDesired, false, 'asked the host again');
});
