// Why the fail-open binding loses client requests, and the ruleset shape that does not (measured on lab hosts with
// the real agent). When our nft table is deleted, nothing in the netns needs conntrack any more, so the kernel stops
// tracking: redirected connections in flight lose their NAT mapping and get reset. When the table comes back,
// connections that started meanwhile have no conntrack entry; their next packet is picked up mid-stream as "new"
// (nf_conntrack_tcp_loose) and the redirect rule sends it to the agent, which resets it. Keeping a nat base chain
// with a conntrack expression while "unloaded", and redirecting only SYNs, makes both transitions lossless.
// These are the firewall module's rules to change (provisioner/src/modules/firewall); this test pins the recipe.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { agentRelease } from '../../provisioner/src/modules/agent/agent-release';
import { agentService } from '../../provisioner/src/modules/agent/agent-service';
import type { SshTransport } from '../../provisioner/src/transport/ssh-transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { buildAgent } from './support/build-agent';
import { connectLabHost, converge } from './support/converge';

const skip = labSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('redirect rule transitions while the agent runs', { skip, timeout: 10 * 60_000 }, () => {
  let lab: Lab;
  let work: string;
  let t: SshTransport;
  let uid: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'epoch-binding-'));
    const build = await buildAgent(join(work, 'agent'), '0.1.0');
    lab = await startLab({ hosts: 1 });
    t = await connectLabHost(lab, lab.hosts[0]!);
    await converge(t, agentRelease, { artifact_dir: build });
    await lab.execOk('deb1', ['sh', '-c', 'mkdir -p /etc/epoch-agent/ca && node /opt/epoch-agent/current/epoch-agent.cjs ca init --cert-out /etc/epoch-agent/ca/ca.crt --key-out /etc/epoch-agent/ca/ca.key']);
    await converge(t, agentService, {});
    await lab.execOk('deb1', ['sh', '-c', 'cat /etc/ssl/certs/ca-certificates.crt /etc/epoch-agent/ca/ca.crt > /root/clients-ca.pem']);
    uid = (await lab.execOk('deb1', ['id', '-u', 'epoch-agent'])).trim();
  });
  after(async () => {
    await t?.close();
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  // 8 clients x 6 sequential new connections; one rule transition lands in the middle of each burst.
  const burst = `for c in 1 2 3 4 5 6 7 8; do ( for i in 1 2 3 4 5 6; do if curl -sS -o /dev/null --max-time 5 --cacert /root/clients-ca.pem https://upstream.lab.test/ 2>/dev/null; then echo ok; else echo FAIL; fi; done ) & done; wait`;
  const base = 'table inet epoch_test {\n chain output {\n  type nat hook output priority -100; policy accept;\n }\n}\n';
  const chain = (body: string) => `${base}flush chain inet epoch_test output\ntable inet epoch_test {\n chain output {\n  ${body} }\n}\n`;
  const exclusions = () => `meta skuid ${uid} return\n oifname "lo" return\n ip daddr { 127.0.0.0/8, ${lab.controllerAddress} } return\n tcp dport 22 return\n`;

  async function transitions(on: string, off: string, rounds: number) {
    const tally = { unload: { ok: 0, fail: 0 }, load: { ok: 0, fail: 0 } };
    for (let round = 0; round < rounds; round++) {
      for (const which of ['unload', 'load'] as const) {
        await lab.execOk('deb1', ['nft', '-f', '-'], { stdin: which === 'unload' ? on : off });
        await sleep(300);
        const run = lab.exec('deb1', ['sh', '-c', burst], { timeoutMs: 120_000 });
        await sleep(350);
        await lab.execOk('deb1', ['nft', '-f', '-'], { stdin: which === 'unload' ? off : on });
        const out = (await run).stdout.trim().split('\n');
        tally[which].ok += out.filter((l) => l === 'ok').length;
        tally[which].fail += out.filter((l) => l === 'FAIL').length;
      }
    }
    await lab.exec('deb1', ['nft', 'delete', 'table', 'inet', 'epoch_test']);
    return tally;
  }

  test('kept base chain with a conntrack expression + SYN-only redirect: no failed request across 8 loads and 8 unloads', async (t) => {
    const on = chain(`${exclusions()} ct state new tcp flags & (fin|syn|rst|ack) == syn tcp dport 443 redirect to :8443\n`);
    const off = chain('ct state new return\n');
    const tally = await transitions(on, off, 8);
    t.diagnostic(`recommended shape: ${JSON.stringify(tally)}`);
    assert.deepEqual([tally.unload.fail, tally.load.fail], [0, 0]);
    assert.equal(tally.unload.ok + tally.load.ok, 2 * 8 * 48);
  });

  test('for comparison, deleting and re-adding the table (today\'s unload/load) fails requests in flight', async (t) => {
    const on = `table inet epoch_test {\n chain output {\n  type nat hook output priority -100; policy accept;\n  ${exclusions()} tcp dport 443 redirect to :8443\n }\n}\n`;
    const off = 'delete table inet epoch_test\n';
    const tally = await transitions(on, `${on}${off}`, 4);
    // Reported, not asserted: this documents the kernel behaviour the recipe avoids.
    t.diagnostic(`delete/re-add table: ${JSON.stringify(tally)}`);
  });
});
