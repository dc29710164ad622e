import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProbe, probeArgv, VerifyFailedError, verifyFailures, verifyModule, verifyParams } from './verify';

const params = verifyParams.parse({ probe_url: 'https://upstream.lab.test/status/200' });
const good = 'metrics_before=3\nsystem_rc=0 system_out=200\nhostca_verify=0\nissuer=CN = epoch-agent CA host1\nmetrics_after=4\n';

test('a host whose probe went through the agent is verified (plan is empty)', () => {
  const facts = { probe: parseProbe(good), firewallDrift: [], trustStoreDrift: null };
  assert.deepEqual(verifyFailures(params, facts), []);
  assert.deepEqual(verifyModule.plan(params, facts), []);
});

test('a certificate from another issuer means traffic is not intercepted', () => {
  const probe = parseProbe(good.replace('hostca_verify=0', 'hostca_verify=21').replace('epoch-agent CA host1', 'CN = lab public CA'));
  const failures = verifyFailures(params, { probe, firewallDrift: null, trustStoreDrift: null });
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, /not issued by the host CA .*lab public CA.*code 21.*not intercepted/);
  assert.throws(() => verifyModule.plan(params, { probe, firewallDrift: null, trustStoreDrift: null }), VerifyFailedError);
});

test('a failed request, uncounted metrics and drift are each reported', () => {
  const probe = parseProbe('metrics_before=4\nsystem_rc=35 system_out=curl: (35) TLS connect error\nhostca_verify=\nissuer=\nmetrics_after=4\n');
  assert.equal(probe.systemStatus, null);
  const failures = verifyFailures(params, { probe, firewallDrift: ['replace table ip epoch_provision'], trustStoreDrift: ['install CA'] });
  assert.equal(failures.length, 5);
  assert.match(failures[0]!, /as nobody failed \(curl exited 35: curl: \(35\) TLS connect error\)/);
  assert.match(failures[2]!, /did not count the probe request \(count stayed at 4\)/);
  assert.match(failures[3]!, /firewall rules differ/);
});

test('metrics that are unreachable are a failure, not a silent pass', () => {
  const probe = parseProbe(good.replace('metrics_before=3', 'metrics_before=none').replace('metrics_after=4', 'metrics_after=none'));
  assert.deepEqual(verifyFailures(params, { probe, firewallDrift: null, trustStoreDrift: null }), [`agent metrics at ${params.metrics_url} are unavailable`]);
});

test('probe argv carries host, port and user as separate words', () => {
  const argv = probeArgv(verifyParams.parse({ probe_url: 'https://[2001:db8::1]:8443/x', probe_user: 'probe' }));
  assert.deepEqual(argv.slice(3, 7), ['epoch-verify', 'probe', '2001:db8::1', '8443']);
});

test('params refuse a plain http probe URL', () => {
  assert.equal(verifyParams.safeParse({ probe_url: 'http://example.test/' }).success, false);
});
