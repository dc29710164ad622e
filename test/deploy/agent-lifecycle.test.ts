// Agent deployment on real systemd lab hosts (Debian 12, Debian's nodejs), over real SSH:
// install + hardening in effect, upgrade under an HTTPS client loop through the fail-open binding with zero failed
// requests, rollback, the preflight error on a host without Node, and the no-systemd supervisor.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { agentRollbackCommand } from '../../provisioner/src/cli/commands/agent-rollback';
import { executeSteps } from '../../provisioner/src/runner/apply-steps';
import { agentRelease } from '../../provisioner/src/modules/agent/agent-release';
import { agentService } from '../../provisioner/src/modules/agent/agent-service';
import { agentPreflight } from '../../provisioner/src/modules/agent/preflight';
import { planAgentRollback } from '../../provisioner/src/modules/agent/rollback';
import { confirmFirewall, firewallModule } from '../../provisioner/src/modules/firewall/index';
import type { SshTransport } from '../../provisioner/src/transport/ssh-transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { buildAgent } from './support/build-agent';
import { ClientLoop } from './support/client-loop';
import { connectLabHost, converge, planOn } from './support/converge';

const skip = labSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('agent deployment on systemd lab hosts', { skip, timeout: 15 * 60_000 }, () => {
  let lab: Lab;
  let work: string;
  let v1: string;
  let v2: string;
  const transports: SshTransport[] = [];
  let deb1: SshTransport;
  let deb2: SshTransport;
  const agentNode = (lab: Lab, host: string, args: string[]) => lab.execOk(host, ['node', '/opt/epoch-agent/current/epoch-agent.cjs', ...args]);
  const issuerSeenBy = async (host: string) =>
    (await lab.exec(host, ['sh', '-c', 'openssl s_client -connect upstream.lab.test:443 -servername upstream.lab.test < /dev/null 2> /dev/null | openssl x509 -noout -issuer'])).stdout;
  /** Waits until the binding redirects again (the new agent passed its health check), so the loop spans the load. */
  const untilIntercepted = async (host: string) => {
    for (let i = 0; i < 75 && !/epoch-agent/.test(await issuerSeenBy(host)); i++) await sleep(200);
  };
  const health = async (host: string) => JSON.parse(await lab.execOk(host, ['curl', '-fsS', '--max-time', '3', 'http://127.0.0.1:9443/healthz'])) as { ready: boolean; version: string };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'epoch-deploy-'));
    v1 = await buildAgent(join(work, 'agent-0.1.0'), '0.1.0');
    v2 = await buildAgent(join(work, 'agent-0.1.1-test'), '0.1.1-test');
    lab = await startLab({ hosts: 2 });
    deb1 = await connectLabHost(lab, lab.hosts[0]!);
    deb2 = await connectLabHost(lab, lab.hosts[1]!);
    transports.push(deb1, deb2);
  });
  after(async () => {
    for (const t of transports) await t.close();
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function install(t: SshTransport, host: string) {
    assert.deepEqual(await converge(t, agentPreflight, {}), [], 'Debian 12 nodejs passes preflight');
    const release = await converge(t, agentRelease, { artifact_dir: v1 });
    assert.deepEqual(release.map((c) => c.id), ['release:0.1.0', 'link:/opt/epoch-agent/current']);
    // The CA module's job in a playbook; here the agent makes one (root-owned 0600, which agent_service fixes).
    await lab.execOk(host, ['mkdir', '-p', '/etc/epoch-agent/ca']);
    await agentNode(lab, host, ['ca', 'init', '--cert-out', '/etc/epoch-agent/ca/ca.crt', '--key-out', '/etc/epoch-agent/ca/ca.key']);
    const service = await converge(t, agentService, {});
    assert.deepEqual(service.map((c) => c.id), [
      'user:epoch-agent',
      'dir:/etc/epoch-agent',
      'dir:/var/lib/epoch-agent',
      'dir:/opt/epoch-agent/libexec',
      'mode:/etc/epoch-agent/ca/ca.key',
      'file:/opt/epoch-agent/libexec/wait-healthy.cjs',
      'file:/etc/epoch-agent/agent.json',
      'file:/etc/systemd/system/epoch-agent.service',
      'enable:epoch-agent.service',
      'start:epoch-agent.service',
    ]);
  }

  test('install on systemd hosts: converges, runs healthy, and a second run changes nothing', async () => {
    await install(deb1, 'deb1');
    const h = await health('deb1');
    assert.equal(h.ready, true);
    assert.equal(h.version, '0.1.0');
    for (const [m, p] of [[agentPreflight, {}], [agentRelease, { artifact_dir: v1 }], [agentService, {}]] as const) {
      assert.deepEqual(await planOn(deb1, m as typeof agentPreflight, p), [], `${m.name} is converged`);
    }
    assert.equal(await lab.execOk('deb1', ['getent', 'passwd', 'epoch-agent']).then((l) => l.trim().split(':')[6]), '/usr/sbin/nologin');
    assert.equal((await lab.execOk('deb1', ['stat', '-c', '%U %a', '/etc/epoch-agent/ca/ca.key', '/var/lib/epoch-agent', '/etc/epoch-agent/agent.json'])).trim(), 'epoch-agent 600\nepoch-agent 750\nroot 640');
  });

  test('the unit hardening is in effect (systemctl show, and the live process)', async () => {
    const shown = await lab.execOk('deb1', [
      'systemctl', 'show', 'epoch-agent.service', '-p',
      'User,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,CapabilityBoundingSet,MemoryMax,ReadWritePaths,Restart,StartLimitBurst,StartLimitIntervalUSec,TimeoutStopUSec,ActiveState,MainPID',
    ]);
    const p = Object.fromEntries(shown.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.equal(p.User, 'epoch-agent');
    assert.equal(p.NoNewPrivileges, 'yes');
    assert.equal(p.ProtectSystem, 'strict');
    assert.equal(p.ProtectHome, 'yes');
    assert.equal(p.PrivateTmp, 'yes');
    assert.equal(p.CapabilityBoundingSet, '');
    assert.equal(p.MemoryMax, String(256 * 1024 * 1024));
    assert.equal(p.ReadWritePaths, '/var/lib/epoch-agent');
    assert.equal(p.Restart, 'on-failure');
    assert.equal(p.StartLimitBurst, '5');
    assert.equal(p.StartLimitIntervalUSec, '5min');
    assert.equal(p.TimeoutStopUSec, '20s');
    assert.equal(p.ActiveState, 'active');
    const status = await lab.execOk('deb1', ['cat', `/proc/${p.MainPID}/status`]);
    assert.match(status, /^CapEff:\s+0+$/m);
    assert.match(status, /^CapBnd:\s+0+$/m);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    const uid = (await lab.execOk('deb1', ['id', '-u', 'epoch-agent'])).trim();
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
    // ProtectSystem=strict: the agent's mount namespace has /usr and /etc read-only, its state dir writable.
    const ro = await lab.exec('deb1', ['nsenter', '-t', p.MainPID!, '-m', 'sh', '-c', 'touch /etc/epoch-probe 2>&1; touch /var/lib/epoch-agent/.probe && rm /var/lib/epoch-agent/.probe && echo state-writable']);
    assert.match(ro.stdout, /Read-only file system/);
    assert.match(ro.stdout, /state-writable/);
    assert.match(await lab.execOk('deb1', ['journalctl', '-u', 'epoch-agent.service', '--no-pager', '-n', '50']), /epoch-agent/);
  });

  /** Why the firewall binding cannot run on the lab hosts, or null when it can. */
  async function bindingProblem(): Promise<string | null> {
    const r = await deb1.exec(['nft', 'list', 'ruleset']);
    return r.exitCode === 0 ? null : `lab hosts cannot change netfilter (\`nft list ruleset\` over SSH: ${r.stderr.trim().replaceAll("\n", " | ")}); systemd-nspawn grants CAP_NET_ADMIN only with --private-network or --capability=CAP_NET_ADMIN`;
  }
  const loadCounts: { phase: string; ok: number; failed: string[] }[] = [];
  let noBinding: string | null = null;

  test('upgrade to a new version: upload, switch, drain-restart; with the binding, under an HTTPS client loop', async (t) => {
    noBinding = await bindingProblem();
    let loop: ClientLoop | null = null;
    let before = { ok: 0, failed: [] as string[] };
    if (noBinding) t.diagnostic(`no client loop through the agent: ${noBinding}`);
    else {
      await converge(deb1, firewallModule, { healthUrl: 'http://127.0.0.1:9443/healthz', agentPort: 8443, controllerAddresses: [`${lab.controllerAddress}/32`] });
      await confirmFirewall(deb1);
      await lab.execOk('deb1', ['sh', '-c', 'cat /etc/ssl/certs/ca-certificates.crt /etc/epoch-agent/ca/ca.crt > /root/clients-ca.pem']);
      assert.match(await issuerSeenBy('deb1'), /epoch-agent/, 'the client is intercepted before the upgrade');
      loop = new ClientLoop(lab, lab.host('deb1'));
      await loop.start('https://upstream.lab.test/', '/root/clients-ca.pem', 120);
      // An in-flight download that spans the restart must drain, not break: 1.2 MB at 400 KB/s.
      await lab.execOk('deb1', ['sh', '-c', 'setsid sh -c \'curl -sS --cacert /root/clients-ca.pem --limit-rate 400k -o /root/slow.bin -w "%{http_code} %{size_download}" https://upstream.lab.test/bytes/1200000 > /root/slow.out 2>&1\' < /dev/null > /dev/null 2>&1 &']);
      await sleep(1500);
      before = await loop.count();
    }
    const pidBefore = (await lab.execOk('deb1', ['systemctl', 'show', '-p', 'MainPID', '--value', 'epoch-agent.service'])).trim();
    const release = await converge(deb1, agentRelease, { artifact_dir: v2 });
    assert.deepEqual(release.map((c) => c.id), ['release:0.1.1-test', 'link:/opt/epoch-agent/current']);
    const service = await converge(deb1, agentService, {});
    assert.deepEqual(service.map((c) => c.summary), ['restart epoch-agent.service (drains in-flight connections; release 0.1.0 -> 0.1.1-test)']);
    assert.equal((await health('deb1')).version, '0.1.1-test');
    assert.notEqual((await lab.execOk('deb1', ['systemctl', 'show', '-p', 'MainPID', '--value', 'epoch-agent.service'])).trim(), pidBefore);
    // The old agent stopped on SIGTERM (a drain), not by SIGKILL after TimeoutStopSec.
    const journal = await lab.execOk('deb1', ['journalctl', '-u', 'epoch-agent.service', '--no-pager', '-o', 'cat']);
    assert.doesNotMatch(journal, /State 'stop-sigterm' timed out|Killing process .* with signal SIGKILL/);
    if (!loop) return;
    await untilIntercepted('deb1');
    await sleep(1500);
    const result = await loop.finish();
    loadCounts.push({ phase: 'upgrade 0.1.0 -> 0.1.1-test', ...result });
    t.diagnostic(`upgrade 0.1.0 -> 0.1.1-test under load: ${result.ok} requests ok, ${result.failed.length} failed`);
    if (result.failed.length > 0) {
      const j = await lab.exec('deb1', ['journalctl', '-u', 'epoch-agent.service', '-u', 'epoch-firewall.service', '-o', 'short-unix', '--no-pager', '-n', '80']);
      t.diagnostic(`failures: ${result.failed.join(' / ')}\njournal:\n${j.stdout}`);
    }
    assert.ok(result.ok > before.ok + 5, `requests kept flowing during the upgrade (${before.ok} before, ${result.ok} in all)`);
    for (let i = 0; i < 50 && !(await lab.exec('deb1', ['cat', '/root/slow.out'])).stdout; i++) await sleep(200);
    // The download in flight across the restart counts with the loop (it is lost only to a binding transition).
    const slow = (await lab.execOk('deb1', ['cat', '/root/slow.out'])).trim();
    if (slow !== '200 1200000') loadCounts.at(-1)!.failed.push(`in-flight 1.2 MB download: ${slow}`);
    let again = '';
    for (let i = 0; i < 50 && !/epoch-agent/.test(again); i++) {
      again = await issuerSeenBy('deb1');
      if (!/epoch-agent/.test(again)) await sleep(200);
    }
    assert.match(again, /epoch-agent/, 'intercepted again once the new agent is healthy');
  });

  test('rollback switches current back to the previous release and restarts, under the client loop', async (t) => {
    const loop = noBinding ? null : new ClientLoop(lab, lab.host('deb1'));
    await loop?.start('https://upstream.lab.test/', '/root/clients-ca.pem', 120);
    await sleep(1000);
    const plan = await planAgentRollback({ name: 'deb1', vars: {}, transport: deb1 });
    assert.equal(plan.from, '0.1.1-test');
    assert.equal(plan.to, '0.1.0');
    assert.deepEqual(plan.changes.map((c) => c.id), ['link:/opt/epoch-agent/current', 'restart:epoch-agent.service']);
    for (const c of plan.changes) await executeSteps(deb1, c.steps);
    if (loop) {
      // The binding's load after the new agent's health check happens under the loop.
      await untilIntercepted('deb1');
      await sleep(1500);
      const result = await loop.finish();
      t.diagnostic(`rollback 0.1.1-test -> 0.1.0 under load: ${result.ok} requests ok, ${result.failed.length} failed`);
      loadCounts.push({ phase: 'rollback 0.1.1-test -> 0.1.0', ...result });
    }
    assert.equal((await health('deb1')).version, '0.1.0');
    assert.equal((await lab.execOk('deb1', ['readlink', '/opt/epoch-agent/current', '/opt/epoch-agent/previous'])).trim(), 'releases/0.1.0\nreleases/0.1.1-test');
    // The pinned release plan and the service plan are converged after the rollback.
    assert.deepEqual(await planOn(deb1, agentRelease, { artifact_dir: v1, version: '0.1.0' }), []);
    assert.deepEqual(await planOn(deb1, agentService, {}), []);
  });

  test('zero failed client requests across the upgrade and the rollback (counted)', (t) => {
    if (noBinding) {
      t.skip(noBinding);
      return;
    }
    const failed = loadCounts.flatMap((c) => c.failed.map((f) => `${c.phase}: ${f}`));
    t.diagnostic(loadCounts.map((c) => `${c.phase}: ${c.ok} ok, ${c.failed.length} failed`).join('; '));
    // Both phases ran a client loop through the binding, and requests flowed in each.
    assert.deepEqual(loadCounts.map((c) => c.phase), ['upgrade 0.1.0 -> 0.1.1-test', 'rollback 0.1.1-test -> 0.1.0']);
    for (const c of loadCounts) assert.ok(c.ok >= 10, `${c.phase}: ${c.ok} requests ok, expected a steady loop (>= 10)`);
    // The binding parks its rules (chains kept, conntrack kept) and redirects only SYNs of new connections, so
    // neither the unload at the agent's stop nor the load after its health check resets a connection.
    assert.deepEqual(failed, []);
  });

  test('`epoch-provision agent-rollback --limit deb1` swaps back again (a rollback of the rollback)', async () => {
    const out: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => out.push(a.join(' '));
    let code: number;
    try {
      code = await agentRollbackCommand(['--inventory', lab.inventoryPath, '--limit', 'deb1', '--known-hosts', lab.knownHostsFile]);
    } finally {
      console.log = log;
    }
    assert.equal(code, 0, out.join('\n'));
    assert.match(out.join('\n'), /deb1: rolling back the agent 0\.1\.0 -> 0\.1\.1-test/);
    assert.equal((await health('deb1')).version, '0.1.1-test');
    assert.deepEqual(await planOn(deb1, agentService, {}), []);
  });

  test('the rollback playbook path: agent_release {version: previous}, then agent_service restarts', async () => {
    const switched = await planOn(deb1, agentRelease, { version: 'previous' });
    assert.deepEqual(switched.map((c) => c.diff?.after), ['current -> 0.1.0\nprevious -> 0.1.1-test\n']);
    for (const c of switched) await executeSteps(deb1, c.steps);
    const restarted = await converge(deb1, agentService, {});
    assert.deepEqual(restarted.map((c) => c.id), ['restart:epoch-agent.service']);
    assert.equal((await health('deb1')).version, '0.1.0');
  });

  test('a host without Node gets the clear preflight error naming the fix', async () => {
    await lab.execOk('deb2', ['sh', '-c', 'mkdir -p /root/node-aside && mv /usr/bin/node /usr/bin/nodejs /root/node-aside/']);
    try {
      await assert.rejects(planOn(deb2, agentPreflight, {}), {
        name: 'PreflightError',
        message:
          "epoch-agent needs Node.js >= 18.19.0, but no node or nodejs was found in PATH. Fix: run `apt-get install nodejs` (Debian 12 ships 18.19), or set `epoch_agent_push_node: true` to push the controller's Node runtime to /opt/epoch-agent/runtime/bin/node.",
      });
    } finally {
      await lab.execOk('deb2', ['sh', '-c', 'mv /root/node-aside/node /root/node-aside/nodejs /usr/bin/']);
    }
  });

  test('no systemd: the sh supervisor runs the agent, restarts it with backoff, and stops it', async () => {
    await converge(deb2, agentRelease, { artifact_dir: v1 });
    await lab.execOk('deb2', ['mkdir', '-p', '/etc/epoch-agent/ca']);
    await agentNode(lab, 'deb2', ['ca', 'init', '--cert-out', '/etc/epoch-agent/ca/ca.crt', '--key-out', '/etc/epoch-agent/ca/ca.key']);
    const changes = await converge(deb2, agentService, { init: 'supervisor' });
    assert.ok(changes.some((c) => c.id === 'start:supervisor'));
    assert.equal((await health('deb2')).ready, true);
    const supervisor = (await lab.execOk('deb2', ['cat', '/run/epoch-agent/supervisor.pid'])).trim();
    const child = (await lab.execOk('deb2', ['pgrep', '-P', supervisor])).trim().split('\n')[0]!;
    assert.match(await lab.execOk('deb2', ['ps', '-o', 'user=', '-p', child]), /epoch-agent/);
    assert.match(await lab.execOk('deb2', ['cat', `/proc/${child}/status`]), /^CapEff:\s+0+$/m);
    await lab.execOk('deb2', ['kill', '-KILL', child]);
    let restarted = '';
    for (let i = 0; i < 50; i++) {
      await sleep(200);
      restarted = (await lab.exec('deb2', ['pgrep', '-P', supervisor])).stdout.trim();
      if (restarted && restarted !== child && (await lab.exec('deb2', ['curl', '-fsS', 'http://127.0.0.1:9443/healthz'])).exitCode === 0) break;
    }
    assert.ok(restarted && restarted !== child, 'the supervisor started a new agent');
    assert.match(await lab.execOk('deb2', ['cat', '/var/log/epoch-agent.log']), /agent exited with status 137 after \d+s; restarting in 1s/);
    await lab.execOk('deb2', ['/opt/epoch-agent/libexec/epoch-agent-supervise.sh', 'stop']);
    assert.equal((await lab.exec('deb2', ['/opt/epoch-agent/libexec/epoch-agent-supervise.sh', 'status'])).exitCode, 3);
    assert.notEqual((await lab.exec('deb2', ['kill', '-0', supervisor])).exitCode, 0);
  });

  test('push_node: a host without Node gets the controller\'s runtime, and the agent runs on it', async () => {
    await lab.execOk('deb2', ['sh', '-c', 'mkdir -p /root/node-aside && mv /usr/bin/node /usr/bin/nodejs /root/node-aside/']);
    try {
      const pushed = await converge(deb2, agentPreflight, { push_node: true });
      assert.deepEqual(pushed.map((c) => c.id), ['file:/opt/epoch-agent/runtime/bin/node']);
      assert.equal((await lab.execOk('deb2', ['/opt/epoch-agent/runtime/bin/node', '--version'])).trim(), process.version);
      const changes = await converge(deb2, agentService, { init: 'supervisor' });
      assert.ok(changes.some((c) => c.id === 'file:/etc/epoch-agent/supervise.env'));
      assert.equal((await health('deb2')).ready, true);
      const supervisor = (await lab.execOk('deb2', ['cat', '/run/epoch-agent/supervisor.pid'])).trim();
      const child = (await lab.execOk('deb2', ['pgrep', '-P', supervisor])).trim().split('\n')[0]!;
      assert.equal((await lab.execOk('deb2', ['readlink', `/proc/${child}/exe`])).trim(), '/opt/epoch-agent/runtime/bin/node');
      await lab.execOk('deb2', ['/opt/epoch-agent/libexec/epoch-agent-supervise.sh', 'stop']);
    } finally {
      await lab.execOk('deb2', ['sh', '-c', 'mv /root/node-aside/node /root/node-aside/nodejs /usr/bin/']);
    }
  });

  test('uninstall (firewall, service, release absent) leaves no unit, user, files or rules; a second run changes nothing', async () => {
    if (!noBinding) await converge(deb1, firewallModule, { state: 'absent', healthUrl: 'http://127.0.0.1:9443/healthz', agentPort: 8443, controllerAddresses: [`${lab.controllerAddress}/32`] });
    const service = await converge(deb1, agentService, { state: 'absent' });
    assert.deepEqual(service.map((c) => c.id), ['stop:epoch-agent.service', 'absent:/etc/systemd/system/epoch-agent.service', 'absent:files', 'absent:/etc/epoch-agent', 'absent:user:epoch-agent']);
    const release = await converge(deb1, agentRelease, { state: 'absent' });
    assert.deepEqual(release.map((c) => c.id), ['absent:/opt/epoch-agent']);
    assert.notEqual((await lab.exec('deb1', ['getent', 'passwd', 'epoch-agent'])).exitCode, 0);
    assert.equal((await lab.execOk('deb1', ['systemctl', 'show', '-p', 'LoadState', '--value', 'epoch-agent.service'])).trim(), 'not-found');
    assert.equal((await lab.exec('deb1', ['ls', '-d', '/opt/epoch-agent', '/var/lib/epoch-agent', '/etc/systemd/system/epoch-agent.service'])).stdout, '');
    // The CA module owns /etc/epoch-agent/ca; whatever it left keeps the folder, nothing of ours is in it.
    assert.deepEqual((await lab.exec('deb1', ['ls', '-A', '/etc/epoch-agent'])).stdout.trim().split('\n').filter((n) => n && n !== 'ca'), []);
  });
});
