// CA rotation on a batch of real lab hosts (deb1 + rhel1): trust the new CA beside the old, switch signing (refused
// until the host trusts the new CA), remove the old; a verifier running as `nobody` the whole time never fails.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { certFingerprint } from '../../provisioner/src/ca/material';
import { caModule } from '../../provisioner/src/modules/ca/ca';
import { trustStoreModule } from '../../provisioner/src/modules/trust-store/trust-store';
import type { Transport } from '../../provisioner/src/transport/transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { apply, connect, replan, startTlsServer, stopUnit, trustSnapshot, verifyAsNobody } from './lab-helpers';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join(repo, 'test/fixtures/ca', name);
const skip = labSkipReason();
const testDir = '/opt/epoch-ca-test';

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
