// CA + trust store on real lab hosts, both flavours (deb1: Debian update-ca-certificates; rhel1: p11-kit
// update-ca-trust): install → verify as a non-root user (openssl verify + curl) → re-plan is empty → remove →
// every trust file byte-identical to before. Then the per-host mode with the real `epoch-agent ca init`.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { certFingerprint } from '../../provisioner/src/ca/material';
import { executeSteps } from '../../provisioner/src/runner/apply-steps';
import { caModule } from '../../provisioner/src/modules/ca/ca';
import { trustStoreModule } from '../../provisioner/src/modules/trust-store/trust-store';
import type { Transport } from '../../provisioner/src/transport/transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { apply, connect, replan, startTlsServer, stopUnit, trustSnapshot, verifyAsNobody } from './lab-helpers';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join(repo, 'test/fixtures/ca', name);
const agentBundle = join(repo, 'dist/agent/epoch-agent.cjs');
const skip = labSkipReason();
const testDir = '/opt/epoch-ca-test';

describe('CA install, verify and byte-identical removal on debian and rhel hosts', { skip }, () => {
  let lab: Lab;
  const transports = new Map<string, Transport>();
  const hosts = ['deb1', 'rhel1'];

  before(async () => {
    lab = await startLab({ hosts: 2, flavor: 'mixed' });
    for (const h of hosts) {
      transports.set(h, await connect(lab, h));
      await lab.execOk(h, ['sh', '-c', 'getent passwd epoch-agent >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin epoch-agent']);
      await lab.execOk(h, ['mkdir', '-p', '-m', '0755', testDir]);
      for (const f of ['leaf.crt', 'leaf-next.crt']) await lab.copyTo(h, fx(f), `${testDir}/${f}`, 0o644);
      for (const f of ['leaf.key', 'leaf-next.key']) await lab.copyTo(h, fx(f), `${testDir}/${f}`, 0o600);
    }
  });
  after(async () => {
    for (const t of transports.values()) await t.close();
    await lab?.down();
  });

  test('rhel1: p11-kit stamps its Java keystore with the extraction time (why that one file is compared by size)', async () => {
    const sum = async () => (await lab.execOk('rhel1', ['sha256sum', '/etc/pki/ca-trust/extracted/java/cacerts'])).split(' ')[0];
    await lab.execOk('rhel1', ['update-ca-trust', 'extract']);
    const first = await sum();
    await new Promise((r) => setTimeout(r, 1100));
    await lab.execOk('rhel1', ['update-ca-trust', 'extract']);
    assert.notEqual(await sum(), first);
  });

  for (const host of hosts) {
    test(`${host}: import CA → trusted by the system bundle for a non-root user → converged → removed byte for byte`, async () => {
      const t = transports.get(host) as Transport;
      const before = await trustSnapshot(lab, host);
      const caParams = { mode: 'import', cert_file: fx('ca-ec.crt'), key_file: fx('ca-ec.key') };
      const trustParams = { cert_file: fx('ca-ec.crt') };
      await startTlsServer(lab, host, 'epoch-ca-test-a', 18443, `${testDir}/leaf.crt`, `${testDir}/leaf.key`);
      try {
        const untrusted = await verifyAsNobody(lab, host, `${testDir}/leaf.crt`, 18443);
        assert.equal(untrusted.ok, false, `before install the leaf must not verify: ${untrusted.detail}`);

        const ca = await apply(caModule, caParams, t);
        assert.deepEqual(ca.changes.map((c) => c.id), ['ca:key:/etc/epoch-agent/ca/ca.key', 'ca:cert:/etc/epoch-agent/ca/ca.crt']);
        assert.equal((await lab.execOk(host, ['stat', '-c', '%a %U', '/etc/epoch-agent/ca/ca.key'])).trim(), '600 epoch-agent');
        const trust = await apply(trustStoreModule, trustParams, t);
        assert.equal(trust.changes.length, 1);
        const fp = certFingerprint(readFileSync(fx('ca-ec.crt')));
        assert.deepEqual(trust.report, [`${host}: CA sha256 ${fp} trusted by ${host === 'deb1' ? '/etc/ssl/certs/ca-certificates.crt' : '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem'}`]);
        console.log(`  run output: ${trust.report.join('; ')}`);

        const verified = await verifyAsNobody(lab, host, `${testDir}/leaf.crt`, 18443);
        assert.ok(verified.ok, verified.detail);

        assert.deepEqual(await replan(caModule, caParams, t), [], 'ca re-plan is empty');
        assert.deepEqual(await replan(trustStoreModule, trustParams, t), [], 'trust-store re-plan is empty');

        const removed = await apply(trustStoreModule, { ...trustParams, state: 'absent' }, t);
        assert.equal(removed.changes.length, 1);
        await executeSteps(t, ca.undo);
        assert.deepEqual(await replan(trustStoreModule, { ...trustParams, state: 'absent' }, t), []);
        assert.equal(await trustSnapshot(lab, host), before, 'trust files are byte-identical to before the install');
        assert.equal(existsSync(join(lab.host(host).rootPath, 'etc/epoch-agent/ca/ca.key')), false);
        const afterRemoval = await verifyAsNobody(lab, host, `${testDir}/leaf.crt`, 18443);
        assert.equal(afterRemoval.ok, false, 'after removal the leaf no longer verifies');
      } finally {
        await stopUnit(lab, host, 'epoch-ca-test-a');
      }
    });

    test(`${host}: per-host mode: epoch-agent ca init on the host, key never leaves it; trust, verify, converge, remove`, { skip: existsSync(agentBundle) ? false : `no agent bundle at ${agentBundle} (npm run build)` }, async () => {
      const t = transports.get(host) as Transport;
      const before = await trustSnapshot(lab, host);
      await lab.execOk(host, ['mkdir', '-p', '/opt/epoch-agent/current']);
      await lab.copyTo(host, agentBundle, '/opt/epoch-agent/current/epoch-agent.cjs', 0o644);
      const ca = await apply(caModule, {}, t);
      assert.equal(ca.changes.length, 1);
      assert.ok(ca.changes[0]?.steps.every((s) => s.kind === 'run'), 'no put: nothing secret travels');
      assert.match(ca.report[0] ?? '', new RegExp(`^${host}: signing CA /etc/epoch-agent/ca/ca.crt sha256 ([0-9A-F]{2}:){31}[0-9A-F]{2} \\(per-host`));
      console.log(`  run output: ${ca.report.join('; ')}`);
      assert.equal((await lab.execOk(host, ['stat', '-c', '%a %U', '/etc/epoch-agent/ca/ca.key'])).trim(), '600 epoch-agent');
      const agentFp = (await lab.execOk(host, ['node', '/opt/epoch-agent/current/epoch-agent.cjs', 'ca', 'fingerprint', '/etc/epoch-agent/ca/ca.crt'])).trim();
      const hostCert = await lab.execOk(host, ['cat', '/etc/epoch-agent/ca/ca.crt']);
      assert.equal(certFingerprint(hostCert).replace(/:/g, '').toLowerCase(), agentFp);

      const trust = await apply(trustStoreModule, {}, t);
      assert.equal(trust.changes.length, 1);
      assert.match(trust.report[0] ?? '', /trusted by/);
      // A leaf signed on the host by the host's CA (as the agent would forge it).
      const sign = [
        'set -e; cd /opt/epoch-ca-test',
        'openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout host-leaf.key -subj /CN=leaf.test -out host-leaf.csr 2>/dev/null',
        "printf 'subjectAltName=DNS:leaf.test\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > host-leaf.ext",
        'openssl x509 -req -in host-leaf.csr -CA /etc/epoch-agent/ca/ca.crt -CAkey /etc/epoch-agent/ca/ca.key -CAcreateserial -days 30 -extfile host-leaf.ext -out host-leaf.crt 2>/dev/null',
        'chmod 0644 host-leaf.crt',
      ].join('\n');
      await lab.execOk(host, ['sh', '-c', sign]);
      await startTlsServer(lab, host, 'epoch-ca-test-h', 18445, `${testDir}/host-leaf.crt`, `${testDir}/host-leaf.key`);
      try {
        const verified = await verifyAsNobody(lab, host, `${testDir}/host-leaf.crt`, 18445);
        assert.ok(verified.ok, verified.detail);
        assert.deepEqual(await replan(caModule, {}, t), []);
        assert.deepEqual(await replan(trustStoreModule, {}, t), []);
        await apply(trustStoreModule, { state: 'absent' }, t);
        await executeSteps(t, ca.undo);
        assert.equal(await trustSnapshot(lab, host), before, 'trust files are byte-identical to before');
        assert.equal((await verifyAsNobody(lab, host, `${testDir}/host-leaf.crt`, 18445)).ok, false);
      } finally {
        await stopUnit(lab, host, 'epoch-ca-test-h');
      }
    });
  }
});

describe('CA rotation across a batch (deb1 + rhel1) with a verifier running the whole time', { skip }, () => {
  let lab: Lab;
  const transports = new Map<string, Transport>();
  const hosts = ['deb1', 'rhel1'];
  const fpOld = certFingerprint(readFileSync(fx('ca-ec.crt')));
  const oldCa = { mode: 'import', cert_file: fx('ca-ec.crt'), key_file: fx('ca-ec.key') };
  const newCa = { mode: 'import', cert_file: fx('ca-next.crt'), key_file: fx('ca-next.key'), rotate_from: fpOld };
  const trustOld = { name: 'epoch-provision-ca', cert_file: fx('ca-ec.crt') };
  const trustNew = { name: 'epoch-provision-ca-next', cert_file: fx('ca-next.crt') };

  before(async () => {
    lab = await startLab({ hosts: 2, flavor: 'mixed' });
    for (const h of hosts) {
      transports.set(h, await connect(lab, h));
      await lab.execOk(h, ['sh', '-c', 'getent passwd epoch-agent >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin epoch-agent']);
      await lab.execOk(h, ['mkdir', '-p', '-m', '0755', testDir]);
      for (const f of ['leaf.crt', 'leaf-next.crt']) await lab.copyTo(h, fx(f), `${testDir}/${f}`, 0o644);
      for (const f of ['leaf.key', 'leaf-next.key']) await lab.copyTo(h, fx(f), `${testDir}/${f}`, 0o600);
    }
  });
  after(async () => {
    for (const t of transports.values()) await t.close();
    await lab?.down();
  });

  test('trust both → switch signing (refused until trusted) → remove old; no verification of the current signer fails', async () => {
    const each = async (fn: (host: string, t: Transport) => Promise<unknown>) => {
      for (const h of hosts) await fn(h, transports.get(h) as Transport);
    };
    const before = new Map<string, string>();
    await each(async (h) => before.set(h, await trustSnapshot(lab, h)));
    // Starting point: the old CA signs and is trusted everywhere. Port 18443 serves a leaf of the old CA, 18444 of the new.
    await each((_h, t) => apply(caModule, oldCa, t));
    await each((_h, t) => apply(trustStoreModule, trustOld, t));
    await each((h) => startTlsServer(lab, h, 'epoch-ca-rot-old', 18443, `${testDir}/leaf.crt`, `${testDir}/leaf.key`));
    await each((h) => startTlsServer(lab, h, 'epoch-ca-rot-new', 18444, `${testDir}/leaf-next.crt`, `${testDir}/leaf-next.key`));

    // The verifier: as `nobody`, keeps checking the leaf of whichever CA each host currently signs with.
    const signer = new Map(hosts.map((h) => [h, 'old' as 'old' | 'new']));
    const failures: string[] = [];
    let checks = 0;
    let stop = false;
    const verifier = (async () => {
      while (!stop && checks < 400) {
        for (const h of hosts) {
          const s = signer.get(h);
          const r = s === 'old' ? await verifyAsNobody(lab, h, `${testDir}/leaf.crt`, 18443) : await verifyAsNobody(lab, h, `${testDir}/leaf-next.crt`, 18444);
          checks += 1;
          if (!r.ok) failures.push(`${h} (signer ${s}): ${r.detail}`);
        }
      }
    })();
    try {
      // Guard: switching signing before the host trusts the new CA is refused.
      await assert.rejects(apply(caModule, newCa, transports.get('deb1') as Transport), /refusing to switch signing .* does not trust it yet/);

      // 1. Install the new CA beside the old on every host of the batch.
      await each((_h, t) => apply(trustStoreModule, trustNew, t));
      await each(async (h) => assert.ok((await verifyAsNobody(lab, h, `${testDir}/leaf-next.crt`, 18444)).ok, `${h} trusts the new CA`));
      // 2. Every host trusts it: switch signing, host by host.
      await each(async (h, t) => {
        const switched = await apply(caModule, newCa, t);
        assert.equal(switched.changes.length, 2);
        assert.match(switched.report[0] ?? '', new RegExp(`sha256 ${certFingerprint(readFileSync(fx('ca-next.crt')))}`));
        signer.set(h, 'new');
      });
      // Old forged certs still in clients' hands keep verifying until the old CA goes.
      await each(async (h) => assert.ok((await verifyAsNobody(lab, h, `${testDir}/leaf.crt`, 18443)).ok, `${h} still trusts the old CA`));
      // 3. Remove the old CA.
      await each((_h, t) => apply(trustStoreModule, { ...trustOld, state: 'absent' }, t));
      await each(async (h) => assert.equal((await verifyAsNobody(lab, h, `${testDir}/leaf.crt`, 18443)).ok, false, `${h} no longer trusts the old CA`));
      await new Promise((r) => setTimeout(r, 1500)); // let the verifier run against the final state too
    } finally {
      stop = true;
      await verifier;
    }
    assert.ok(checks >= 4, `the verifier ran (${checks} checks)`);
    assert.deepEqual(failures, [], `no verification of the current signer failed in ${checks} checks`);
    console.log(`  rotation: ${checks} verifications as nobody during the rotation, 0 failures`);

    // Converged in the final state; then clean up and the trust files match the start.
    await each(async (_h, t) => {
      assert.deepEqual(await replan(caModule, newCa, t), []);
      assert.deepEqual(await replan(trustStoreModule, trustNew, t), []);
      assert.deepEqual(await replan(trustStoreModule, { ...trustOld, state: 'absent' }, t), []);
    });
    await each((h) => stopUnit(lab, h, 'epoch-ca-rot-old'));
    await each((h) => stopUnit(lab, h, 'epoch-ca-rot-new'));
    await each((_h, t) => apply(trustStoreModule, { ...trustNew, state: 'absent' }, t));
    await each(async (h) => assert.equal(await trustSnapshot(lab, h), before.get(h), `${h}: trust files as before`));
  });
});

describe('trust coverage on a debian host: report, opt-in NODE_EXTRA_CA_CERTS drop-in, undo', { skip }, () => {
  let lab: Lab;
  let t: Transport;
  const host = 'deb1';
  const nodeClient = `require('https').get({host:'127.0.0.1',port:18446,servername:'leaf.test',headers:{host:'leaf.test'}},r=>{console.log('status',r.statusCode);process.exit(0)}).on('error',e=>{console.log('error',e.code);process.exit(3)})`;
  // A service started by systemd (as nobody), so it gets the manager's DefaultEnvironment like a real service would.
  const nodeAsService = (node: string) => lab.exec(host, ['systemd-run', '--wait', '--pipe', '--quiet', '-p', 'User=nobody', node, '-e', nodeClient], { timeoutMs: 60_000 });
  // An official Node build (bundled roots, like an app shipping its own runtime): the controller's own binary.
  const bundledNode = `${testDir}/node`;

  before(async () => {
    lab = await startLab({ hosts: 1, flavor: 'debian' });
    t = await connect(lab, host);
    await lab.execOk(host, ['sh', '-c', 'getent passwd epoch-agent >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin epoch-agent']);
    await lab.execOk(host, ['mkdir', '-p', '-m', '0755', testDir]);
    await lab.copyTo(host, fx('leaf.crt'), `${testDir}/leaf.crt`, 0o644);
    await lab.copyTo(host, fx('leaf.key'), `${testDir}/leaf.key`, 0o600);
    await lab.copyTo(host, process.execPath, bundledNode, 0o755);
  });
  after(async () => {
    await t?.close();
    await lab?.down();
  });

  test('a bundled-roots node rejects until the drop-in, Debian node follows the system store; fix converges, undo restores', async () => {
    const params = { cert_file: fx('ca-ec.crt'), node_binaries: [bundledNode] };
    await apply(caModule, { mode: 'import', cert_file: fx('ca-ec.crt'), key_file: fx('ca-ec.key') }, t);
    const trust = await apply(trustStoreModule, { cert_file: params.cert_file }, t);
    await startTlsServer(lab, host, 'epoch-ca-cov', 18446, `${testDir}/leaf.crt`, `${testDir}/leaf.key`);
    try {
      const { trustCoverageModule } = await import('../../provisioner/src/modules/trust-coverage/trust-coverage');
      const report = await (async () => {
        const p = trustCoverageModule.params.parse(params);
        return trustCoverageModule.report(p, await trustCoverageModule.gather({ name: host, vars: {}, transport: t }, p));
      })();
      console.log(`  coverage before interception:\n${report.map((l) => `    ${l}`).join('\n')}`);
      assert.match(report.find((l) => l.includes(`(${bundledNode})`)) ?? '', /WOULD REJECT intercepted connections; bundled roots only/);
      assert.match(report.find((l) => l.includes('(/usr/bin/node)')) ?? '', /trusts the CA \(it reads the system store\)/);
      assert.ok((await verifyAsNobody(lab, host, `${testDir}/leaf.crt`, 18446)).ok, 'openssl/curl trust the system store');
      assert.match((await nodeAsService('/usr/bin/node')).stdout, /status 200/, 'Debian node follows the system store, as reported');
      const refused = await nodeAsService(bundledNode);
      assert.match(refused.stdout, /error UNABLE_TO_VERIFY_LEAF_SIGNATURE/, `bundled-roots node rejects before the fix: ${refused.stdout}${refused.stderr}`);

      const fixed = await apply(trustCoverageModule, { ...params, fix_env: true }, t);
      assert.deepEqual(fixed.changes.map((c) => c.id), ['env:/etc/systemd/system.conf.d/epoch-provision-ca.conf']);
      assert.match(fixed.report.find((l) => l.includes(`(${bundledNode})`)) ?? '', /trusts the CA via NODE_EXTRA_CA_CERTS/);
      const accepted = await nodeAsService(bundledNode);
      assert.match(accepted.stdout, /status 200/, `node trusts the CA with the drop-in: ${accepted.stdout}${accepted.stderr}`);
      assert.deepEqual(await replan(trustCoverageModule, { ...params, fix_env: true }, t), []);

      await executeSteps(t, fixed.undo);
      assert.equal(await lab.exec(host, ['test', '-e', '/etc/systemd/system.conf.d/epoch-provision-ca.conf']).then((r) => r.exitCode), 1);
      assert.match((await nodeAsService(bundledNode)).stdout, /error UNABLE_TO_VERIFY_LEAF_SIGNATURE/, 'undo restores the previous behaviour');
    } finally {
      await stopUnit(lab, host, 'epoch-ca-cov');
      await executeSteps(t, trust.undo);
    }
  });
});
