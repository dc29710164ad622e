import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { issuedBy, parseProbe, probeArgv, VerifyFailedError, verifyFailures, verifyModule, verifyParams } from './verify';

const params = verifyParams.parse({ probe_url: 'https://upstream.lab.test/status/200' });
const fixture = (name: string) => readFileSync(new URL(`../../../../test/fixtures/ca/${name}`, import.meta.url), 'utf8');
// test/fixtures/ca: leaf.crt is issued by ca-ec; ca-rsa is another CA.
const leaf = fixture('leaf.crt');
const hostCa = fixture('ca-ec.crt');
const curlOut = (status: string, certs: string, stderr = '') => `${stderr}\n@@status ${status}\n${certs}\n@@certs-end\n`;
// What the probe script prints with curl 7.88+ (the served chain) and the host CA read as root.
const probeOutput = (o: { rc?: number; curl?: string; ca?: string; before?: string; after?: string } = {}) =>
  `metrics_before=${o.before ?? '3'}\nsystem_rc=${o.rc ?? 0}\n@@curl\n${o.curl ?? curlOut('200', leaf)}\n@@curl-end\n@@ca\n${o.ca ?? hostCa}@@ca-end\nmetrics_after=${o.after ?? '4'}\n`;
const good = probeOutput();

test('a host whose probe went through the agent is verified (plan is empty)', () => {
  const facts = { probe: parseProbe(good), firewallDrift: [], trustStoreDrift: null };
  assert.deepEqual(verifyFailures(params, facts), []);
  assert.deepEqual(verifyModule.plan(params, facts), []);
});

test('the served certificate is checked against the host CA by issuer name and signature', () => {
  assert.deepEqual(issuedBy(leaf, hostCa), { issued: true, issuer: 'O=epoch-provision tests, CN=epoch-provision test ca-ec', why: "signature verified with the host CA's key" });
  const other = issuedBy(leaf, fixture('ca-rsa.crt'));
  assert.equal(other.issued, false);
  assert.match(other.why, /issuer name is not the host CA's \(O=epoch-provision tests, CN=epoch-provision test ca-rsa\)/);
  assert.match(issuedBy('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', hostCa).why, /served certificate does not parse/);
});

test('a certificate from another issuer means traffic is not intercepted', () => {
  const probe = parseProbe(probeOutput({ ca: fixture('ca-rsa.crt') }));
  const failures = verifyFailures(params, { probe, firewallDrift: null, trustStoreDrift: null });
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, /not issued by the host CA .*issuer O=epoch-provision tests, CN=epoch-provision test ca-ec; issuer name is not the host CA's.*not intercepted/);
  assert.throws(() => verifyModule.plan(params, { probe, firewallDrift: null, trustStoreDrift: null }), VerifyFailedError);
});

test('curl without %{certs} (older than 7.88): the openssl s_client answer decides', () => {
  const old = (code: string, issuer: string) =>
    `metrics_before=3\nsystem_rc=0\n@@curl\ncurl: unknown --write-out variable: 'certs'\n\n@@status 200\n\n@@certs-end\n\n@@curl-end\nhostca_verify=${code}\nissuer=${issuer}\nmetrics_after=4\n`;
  const ok = parseProbe(old('0', 'CN = epoch-provision CA host1'));
  assert.equal(ok.systemStatus, 200);
  assert.deepEqual(verifyFailures(params, { probe: ok, firewallDrift: null, trustStoreDrift: null }), []);
  const notOurs = parseProbe(old('21', 'CN = lab public CA'));
  assert.match(verifyFailures(params, { probe: notOurs, firewallDrift: null, trustStoreDrift: null })[0]!, /issuer CN = lab public CA; openssl verify code 21\): traffic is not intercepted/);
  const noAnswer = parseProbe(old('', ''));
  assert.equal(noAnswer.hostCaIssued, null);
  assert.match(verifyFailures(params, { probe: noAnswer, firewallDrift: null, trustStoreDrift: null })[0]!, /issuer unknown; openssl verify code none/);
});

test('a failed request, uncounted metrics and drift are each reported', () => {
  const probe = parseProbe(`metrics_before=4\nsystem_rc=35\n@@curl\n${curlOut('000', '', 'curl: (35) TLS connect error')}\n@@curl-end\nhostca_verify=\nissuer=\nmetrics_after=4\n`);
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
