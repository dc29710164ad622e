// Trust coverage on a real debian host: the per-host report before interception, the opt-in NODE_EXTRA_CA_CERTS
// systemd drop-in checked with real node clients run as services, and its undo.
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { executeSteps } from '../../provisioner/src/runner/apply-steps';
import { caModule } from '../../provisioner/src/modules/ca/ca';
import { trustCoverageModule } from '../../provisioner/src/modules/trust-coverage/trust-coverage';
import { trustStoreModule } from '../../provisioner/src/modules/trust-store/trust-store';
import type { Transport } from '../../provisioner/src/transport/transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { apply, connect, replan, startTlsServer, stopUnit, verifyAsNobody } from './lab-helpers';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join(repo, 'test/fixtures/ca', name);
const skip = labSkipReason();
const testDir = '/opt/epoch-ca-test';

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
      assert.match(refused.stdout, /error (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)/, `bundled-roots node rejects before the fix: ${refused.stdout}${refused.stderr}`);

      const fixed = await apply(trustCoverageModule, { ...params, fix_env: true }, t);
      assert.deepEqual(fixed.changes.map((c) => c.id), ['env:/etc/systemd/system.conf.d/epoch-provision-ca.conf']);
      assert.match(fixed.report.find((l) => l.includes(`(${bundledNode})`)) ?? '', /trusts the CA via NODE_EXTRA_CA_CERTS/);
      const accepted = await nodeAsService(bundledNode);
      assert.match(accepted.stdout, /status 200/, `node trusts the CA with the drop-in: ${accepted.stdout}${accepted.stderr}`);
      assert.deepEqual(await replan(trustCoverageModule, { ...params, fix_env: true }, t), []);

      await executeSteps(t, fixed.undo);
      assert.equal(await lab.exec(host, ['test', '-e', '/etc/systemd/system.conf.d/epoch-provision-ca.conf']).then((r) => r.exitCode), 1);
      assert.match((await nodeAsService(bundledNode)).stdout, /error (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)/, 'undo restores the previous behaviour');
    } finally {
      await stopUnit(lab, host, 'epoch-ca-cov');
      await executeSteps(t, trust.undo);
    }
  });
});
