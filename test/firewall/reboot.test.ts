// At boot, the redirect comes back only after the agent passes its health check. A real reboot of a lab host:
// systemd shuts down, the host gets a fresh network namespace (no rules, no conntrack, as after a kernel boot), and
// the same root filesystem boots again. The agent is the STAND-IN of test/firewall/stand-in.ts, enabled at boot and
// made to report unhealthy for its first 30 s, so the window before it is healthy can be observed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firewallModule } from '../../provisioner/src/modules/firewall/firewall-module';
import { connectLabHost, converge } from '../deploy/support/converge';
import { labSkipReason } from '../support/lab';
import { useStandInLab, waitFor } from './stand-in';

const skip = labSkipReason();
const fixture = useStandInLab(skip);
const redirecting = (ruleset: string) => /redirect to|REDIRECT/.test(ruleset);

test('reboot: until the agent is healthy nothing is redirected (443 flows directly); then the rules come back as they were', { skip, timeout: 300_000 }, async () => {
  const { lab, host, standIn } = fixture;
  const health = async () => (await lab.exec(host, ['curl', '-s', '--max-time', '2', 'http://127.0.0.1:9443/healthz'])).stdout;
  const pristine = await standIn.ruleset();
  let t = await connectLabHost(lab, host);
  await converge(t, firewallModule, {});
  await t.close();
  await standIn.confirmOverNewConnection();
  assert.equal(await standIn.probe('nobody'), 'agent');
  const withRules = await standIn.ruleset();

  await lab.execOk(host, ['sh', '-c', [
    'mkdir -p /etc/systemd/system/epoch-agent.service.d',
    'printf "[Service]\\nEnvironment=HEALTH_DELAY_MS=30000\\n" > /etc/systemd/system/epoch-agent.service.d/zz-test-health-delay.conf',
    'systemctl daemon-reload',
    'systemctl enable --quiet epoch-agent.service',
  ].join(' && ')]);
  await lab.reboot(host);

  // Booted, the agent starts (systemd may report the host running a moment before the unit listens) but is not
  // healthy yet: nothing of ours redirects.
  await waitFor('the agent answers its health endpoint after the reboot', 20_000, async () => (await health()) !== '');
  assert.match(await health(), /"ready":false/, 'the agent is still in its unhealthy start-up window');
  assert.equal(redirecting(await standIn.ruleset()), false, 'no redirect before the agent is healthy');
  assert.equal(await standIn.probe('nobody'), 'target');
  await standIn.sshStillWorks();

  await waitFor('redirected once the agent is healthy', 90_000, async () => (await standIn.probe('nobody')) === 'agent');
  assert.match(await health(), /"ready":true/);
  assert.equal(await standIn.ruleset(), withRules, 'the same rules as before the reboot');
  assert.equal(await standIn.probe('epoch-agent'), 'target', 'the agent uid still bypasses the redirect');

  t = await connectLabHost(lab, host);
  await converge(t, firewallModule, { state: 'absent' });
  await t.close();
  assert.equal(await standIn.ruleset(), pristine);
  assert.equal(await standIn.probe('nobody'), 'target');
});
