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
