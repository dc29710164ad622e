// The firewall module next to a host firewall that owns its own rules: firewalld (nftables backend, its own
// `table inet firewalld`) and ufw (iptables-nft filter chains). Each: the host firewall runs first; our install leaves
// its rules as they were; its reload, restart, or disable/enable keeps our rules and the redirect; a converged host
// still plans nothing afterwards; removal restores the whole ruleset, host firewall included, as it was before.
// The agent is the STAND-IN of test/firewall/stand-in.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { firewallModule } from '../../provisioner/src/modules/firewall/firewall-module';
import { connectLabHost, converge, planOn } from '../deploy/support/converge';
import { type Lab, type LabHost, labSkipReason } from '../support/lab';
import { type StandIn, useStandInLab, waitFor } from './stand-in';

const skip = labSkipReason();

describe('coexistence with host firewalls', { skip, timeout: 15 * 60_000 }, () => {
  let lab: Lab;
  let host: LabHost;
  let standIn: StandIn;
  useStandInLab(skip, (f) => {
    ({ lab, host, standIn } = f);
  });

  const sh = (script: string) => lab.execOk(host, ['sh', '-c', script], { timeoutMs: 60_000 });
  const oursNft = async () => (await lab.exec(host, ['nft', 'list', 'table', 'inet', 'epoch_provision'])).stdout;
  const oursIptables = async () =>
    (await lab.execOk(host, ['iptables-nft-save', '-t', 'nat'])).split('\n').filter((l) => /EPOCH_/.test(l)).join('\n');

  /** Install (with its commit-confirm), and check the redirect and that a second plan is empty. */
  async function installAndConfirm(expectBackend: string): Promise<void> {
    const t = await connectLabHost(lab, host);
    try {
      const changes = await converge(t, firewallModule, {});
      assert.match(changes.at(-1)!.summary, new RegExp(`load the ${expectBackend} rules`));
    } finally {
      await t.close();
    }
    await standIn.confirmOverNewConnection();
    assert.equal(await standIn.probe('nobody'), 'agent');
    assert.equal(await standIn.probe('epoch-agent'), 'target');
  }

  async function stillConverged(): Promise<void> {
    const t = await connectLabHost(lab, host);
    try {
      assert.deepEqual(await planOn(t, firewallModule, {}), []);
    } finally {
      await t.close();
    }
  }

  async function remove(): Promise<void> {
    const t = await connectLabHost(lab, host);
    try {
      await converge(t, firewallModule, { state: 'absent' });
    } finally {
      await t.close();
    }
  }

  test('firewalld: our nft table survives `firewall-cmd --reload` and a firewalld restart; its table is untouched; removal restores the ruleset', async () => {
    await standIn.resetHost();
    await sh('systemctl start firewalld.service');
    try {
      await waitFor('firewalld running', 60_000, async () => (await lab.exec(host, ['firewall-cmd', '--state'])).stdout.trim() === 'running');
      const firewalldTable = async () => lab.execOk(host, ['nft', 'list', 'table', 'inet', 'firewalld']);
      const pristine = await standIn.ruleset();
      const firewalldBefore = await firewalldTable();
      assert.match(firewalldBefore, /chain filter_INPUT/);
      assert.equal(await standIn.probe('nobody'), 'target');

      await installAndConfirm('nft');
      const ours = await oursNft();
      assert.match(ours, /redirect to :8443/);
      assert.equal(await firewalldTable(), firewalldBefore, "our install leaves firewalld's table as it was");

      // firewalld re-creates its own table on reload (so it is now listed after ours); ours is not touched.
      await sh('firewall-cmd --reload');
      assert.equal(await oursNft(), ours, 'our table after firewall-cmd --reload');
      assert.equal(await firewalldTable(), firewalldBefore, "firewalld's table after its reload");
      assert.equal(await standIn.probe('nobody'), 'agent');

      await sh('systemctl restart firewalld.service');
      await waitFor('firewalld running again', 60_000, async () => (await lab.exec(host, ['firewall-cmd', '--state'])).stdout.trim() === 'running');
      assert.equal(await oursNft(), ours, 'our table after a firewalld restart');
      assert.equal(await standIn.probe('nobody'), 'agent');
      await stillConverged();
      await standIn.sshStillWorks();

      await remove();
      assert.equal(await standIn.ruleset(), pristine, 'removal restores the ruleset, firewalld included');
      assert.equal(await standIn.probe('nobody'), 'target');
    } finally {
      await lab.exec(host, ['systemctl', 'stop', 'firewalld.service'], { timeoutMs: 60_000 });
    }
  });

  test('ufw: our nat chains survive `ufw reload` and a disable/enable; its chains are untouched; removal restores the ruleset', async () => {
    await standIn.resetHost();
    // SSH first, or enabling ufw's default "deny incoming" would cut the controller off.
    await sh('ufw allow 22/tcp >/dev/null && ufw --force enable');
    try {
      const ufwChains = async () =>
        (await standIn.ruleset()).split('\n').filter((l) => /ufw/.test(l)).join('\n');
      const pristine = await standIn.ruleset();
      const ufwBefore = await ufwChains();
      assert.match(ufwBefore, /ufw-user-input/);
      assert.equal(await standIn.probe('nobody'), 'target');

      // ufw's rules live in iptables-nft: auto-detection follows them there.
      await installAndConfirm('iptables-nft');
      const withRules = await standIn.ruleset();
      const ours = await oursIptables();
      assert.match(ours, /REDIRECT --to-ports 8443/);
      assert.equal(await ufwChains(), ufwBefore, "our install leaves ufw's chains as they were");

      await sh('ufw reload');
      assert.equal(await oursIptables(), ours, 'our chains after ufw reload');
      assert.equal(await standIn.probe('nobody'), 'agent');
      assert.equal(await standIn.ruleset(), withRules);

      await sh('ufw disable && ufw --force enable');
      assert.equal(await oursIptables(), ours, 'our chains after ufw disable and enable');
      assert.equal(await standIn.probe('nobody'), 'agent');
      await stillConverged();
      await standIn.sshStillWorks();

      await remove();
      assert.equal(await standIn.ruleset(), pristine, 'removal restores the ruleset, ufw included');
      assert.equal(await standIn.probe('nobody'), 'target');
    } finally {
      await lab.exec(host, ['ufw', 'disable'], { timeoutMs: 60_000 });
    }
  });
});
