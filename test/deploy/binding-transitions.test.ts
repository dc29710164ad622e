// The fail-open binding's transitions (load <-> unload) while the real agent runs and clients connect: the firewall
// module's own rules, driven by its own on-host script, must fail no request (bar a rare residual, see below). Why this needed care: when our nft
// table was deleted on unload, nothing in the netns needed conntrack any more, so the kernel stopped tracking:
// redirected connections in flight lost their NAT mapping, and connections started meanwhile had no entry when the
// table came back, so their next packet was picked up mid-stream as "new" (nf_conntrack_tcp_loose), redirected to
// the agent and reset. The module now parks (keeps its nat chains with a conntrack rule, redirects nothing) instead
// of deleting, and redirects only SYNs of new connections (provisioner/src/modules/firewall/model.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { agentRelease } from '../../provisioner/src/modules/agent/agent-release';
import { agentService } from '../../provisioner/src/modules/agent/agent-service';
import { confirmFirewall, firewallModule, firewallScriptPath } from '../../provisioner/src/modules/firewall/index';
import type { SshTransport } from '../../provisioner/src/transport/ssh-transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { buildAgent } from './support/build-agent';
import { connectLabHost, converge } from './support/converge';

const skip = labSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('redirect rule transitions while the agent runs', { skip, timeout: 10 * 60_000 }, () => {
  let lab: Lab;
  let work: string;
  let ssh: SshTransport;
  let uid: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'epoch-binding-'));
    const build = await buildAgent(join(work, 'agent'), '0.1.0');
    lab = await startLab({ hosts: 1 });
    ssh = await connectLabHost(lab, lab.hosts[0]!);
    await converge(ssh, agentRelease, { artifact_dir: build });
    await lab.execOk('deb1', ['sh', '-c', 'mkdir -p /etc/epoch-agent/ca && node /opt/epoch-agent/current/epoch-agent.cjs ca init --cert-out /etc/epoch-agent/ca/ca.crt --key-out /etc/epoch-agent/ca/ca.key']);
    await converge(ssh, agentService, {});
    await lab.execOk('deb1', ['sh', '-c', 'cat /etc/ssl/certs/ca-certificates.crt /etc/epoch-agent/ca/ca.crt > /root/clients-ca.pem']);
    uid = (await lab.execOk('deb1', ['id', '-u', 'epoch-agent'])).trim();
  });
  after(async () => {
    await ssh?.close();
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  // 8 clients x 6 sequential new connections; one rule transition lands in the middle of each burst.
  const burst = `for c in 1 2 3 4 5 6 7 8; do ( for i in 1 2 3 4 5 6; do if e=$(curl -sS -o /dev/null --max-time 5 --cacert /root/clients-ca.pem https://upstream.lab.test/ 2>&1); then echo ok; else echo "FAIL curl-exit-$? at $(date +%T.%N): $e"; fi; done ) & done; wait`;
  const exclusions = () => `meta skuid ${uid} return\n oifname "lo" return\n ip daddr { 127.0.0.0/8, ${lab.controllerAddress} } return\n tcp dport 22 return\n`;

  /** `on`/`off` move the rules to the redirecting / direct state; a transition lands in the middle of each burst. */
  async function transitions(on: () => Promise<unknown>, off: () => Promise<unknown>, rounds: number) {
    const tally = { unload: { ok: 0, fail: 0 }, load: { ok: 0, fail: 0 }, failures: [] as string[] };
    for (let round = 0; round < rounds; round++) {
      for (const which of ['unload', 'load'] as const) {
        await (which === 'unload' ? on() : off());
        await sleep(300);
        const run = lab.exec('deb1', ['sh', '-c', burst], { timeoutMs: 120_000 });
        await sleep(350);
        await (which === 'unload' ? off() : on());
        const out = (await run).stdout.trim().split('\n');
        tally[which].ok += out.filter((l) => l === 'ok').length;
        const failed = out.filter((l) => l.startsWith('FAIL'));
        tally[which].fail += failed.length;
        tally.failures.push(...failed.map((l) => `round ${round} ${which}: ${l}`));
      }
    }
    return tally;
  }

  // First, before any rules of ours exist in the host: the old shape, reported (not asserted) for comparison.
  test('for comparison, deleting and re-adding a table (the old unload/load) fails requests in flight', async (t) => {
    const on = `table inet epoch_test {\n chain output {\n  type nat hook output priority -100; policy accept;\n  ${exclusions()} tcp dport 443 redirect to :8443\n }\n}\n`;
    const nft = (text: string) => lab.execOk('deb1', ['nft', '-f', '-'], { stdin: text });
    const tally = await transitions(() => nft(on), () => nft(`${on}delete table inet epoch_test\n`), 4);
    await lab.exec('deb1', ['nft', 'delete', 'table', 'inet', 'epoch_test']);
    t.diagnostic(`delete/re-add table: ${JSON.stringify(tally)}`);
  });

  for (const backend of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
    test(`the firewall module's own rules (${backend}), loaded and unloaded by its host script: at most 1 failed request in 768 across 8 loads and 8 unloads`, async (t) => {
      const params = { backend, agentPort: 8443, controllerAddresses: [`${lab.controllerAddress}/32`] };
      await converge(ssh, firewallModule, params);
      await confirmFirewall(ssh);
      // The watcher would re-load on its own; these transitions are driven by hand with the same script commands.
      await lab.execOk('deb1', ['systemctl', 'stop', 'epoch-firewall.service']);
      try {
        const tally = await transitions(
          () => lab.execOk('deb1', [firewallScriptPath, 'load']),
          () => lab.execOk('deb1', [firewallScriptPath, 'unload']),
          8,
        );
        t.diagnostic(`${backend} module rules: ${JSON.stringify(tally)}`);
        for (const failure of tally.failures.slice(0, 3)) {
          // The agent's and the binding's own lines around the failure (minus its per-connection "intercepted" lines),
          // to tell a rule transition from an agent-side failure.
          const at = /at (\d\d:\d\d:\d\d)/.exec(failure)?.[1];
          if (!at) continue;
          const [h, m, sec] = at.split(':').map(Number) as [number, number, number];
          const clock = (d: number) => new Date(Date.UTC(2000, 0, 1, h, m, sec + d)).toISOString().slice(11, 19);
          const journal = await lab.exec('deb1', ['journalctl', '-u', 'epoch-agent', '-u', 'epoch-firewall', '--since', clock(-2), '--until', clock(2), '--no-pager', '-o', 'short-precise']);
          t.diagnostic(`${failure}\n${journal.stdout.split('\n').filter((l) => !/"outcome":"intercepted"/.test(l)).slice(-40).join('\n')}`);
        }
        // Known residual, cause not yet found: about 1 in 2,000 connections opened at the instant of a transition
        // fails its TLS handshake (curl 35, SSL_ERROR_SYSCALL), seen with nft and iptables-nft alike. Deleting the
        // table instead fails ~1 in 10 (the comparison above). At most one failure per 768 is tolerated, and reported.
        assert.ok(tally.unload.fail + tally.load.fail <= 1, tally.failures.join('; '));
        assert.equal(tally.unload.ok + tally.load.ok + tally.unload.fail + tally.load.fail, 2 * 8 * 48);
      } finally {
        await lab.execOk('deb1', ['systemctl', 'start', 'epoch-firewall.service']);
        await converge(ssh, firewallModule, { ...params, state: 'absent' });
      }
    });
  }
});
