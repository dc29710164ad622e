// Disaster recovery, end to end on a mixed lab fleet of 4 hosts (deb1, rhel1, deb2, rhel2), driving the real CLI
// (`node bin/epoch-provision.mjs ... --yes --output json`) as a child process. Issue 9, the gaps the acceptance test
// leaves open:
//   1. a canary that fails *verify* (its probe URL unreachable from that host only: a blackhole route) halts the
//      rollout with exit 5 and is rolled back to its pre-run state; the other hosts are never connected to;
//      its twin: once the route is gone, the same install succeeds on every host (generation A);
//   2. uninstall alone, from a full install (no rollback first), restores /etc, the trust bundles and the rulesets
//      byte for byte on a debian and a rhel host, while an HTTPS client loop as nobody never fails; a second
//      uninstall changes nothing;
//   3. `rollback --to A` after a generation B that pushed a new agent version restores A's release, rules and CA
//      exactly (verify.yml green); a second `rollback --to A` has nothing to do;
//   4. uninstall on hosts whose agent is dead (SIGKILLed; its release file deleted, then SIGKILLed) succeeds, leaves
//      nothing behind, never fails an HTTPS request, and is idempotent;
//   5. uninstall on half-provisioned hosts likewise: a run stopped before the firewall (--tags agent,ca), and a run
//      SIGKILLed after its firewall change and before confirm (rules loaded, auto-revert still armed).
// Steps run in order on one lab; each later step needs the earlier ones' state.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildAgent } from '../deploy/support/build-agent';
import { type CliRun, cli, cliKilledWhen, explain, ofType, repo } from '../support/cli-run';
import { assertLikeSnapshot, type Snapshot, snapshot } from '../support/host-snapshot';
import { HttpsLoop, type HttpsLoopResult } from '../support/https-loop';
import { type Lab, labSkipReason, startLab } from '../support/lab';

const skip = labSkipReason();
const journalDir = '/var/lib/epoch-provision/journal';
const probeUrl = 'https://upstream.lab.test/';
const forks = (n: number) => ['--forks', String(n)];
const intercept = ['-e', 'epoch_intercept=true'];
const verifyTask = 'verify interception end to end';

/** What an uninstalled (or rolled-back) host must not have: files, units (ours, or any failed one), user, anchors, tables. */
const leftoversScript = `for p in /opt/epoch-agent /etc/epoch-agent /var/lib/epoch-agent /etc/systemd/system/epoch-agent.service \\
  /etc/systemd/system/epoch-agent.service.d /etc/systemd/system/epoch-firewall.service /etc/epoch-provision \\
  /usr/local/lib/epoch-provision; do
  [ -e "$p" ] && echo "exists $p"
done
find /usr/local/share/ca-certificates /etc/pki/ca-trust/source/anchors -name 'epoch-provision*' 2> /dev/null | sed 's/^/anchor /'
getent passwd epoch-agent > /dev/null && echo "user epoch-agent"
getent group epoch-agent > /dev/null && echo "group epoch-agent"
systemctl list-units --all --no-legend --plain 'epoch*' | awk '{ print "unit " $1 " " $2 " " $3 " " $4 }'
systemctl list-units --failed --no-legend --plain | awk '{ print "failed unit " $1 }'
nft list tables | grep -i epoch | sed 's/^/nft /'
exit 0
`;

/** Succeeds once an HTTPS request as nobody works (after a kill, the binding parks the rules within ~1 s). */
const waitHttpsScript = `for i in $(seq 60); do
  runuser -u nobody -- curl -sS -o /dev/null --max-time 5 "$1" 2>/dev/null && exit 0
  sleep 0.5
done
exit 1`;

describe('disaster recovery: canary verify failure, uninstall from full/dead/half states, rollback --to', { skip }, () => {
  let lab: Lab;
  let hosts: string[];
  let work: string;
  const fresh = new Map<string, Snapshot>();
  let generationA: string | undefined;

  before(async () => {
    const build = spawnSync(process.execPath, [join(repo, 'scripts/build.mjs')], { cwd: repo, encoding: 'utf8', timeout: 180_000 });
    assert.equal(build.status, 0, `npm run build failed: ${build.stderr}`);
    work = mkdtempSync('/tmp/epoch-dr-');
    lab = await startLab({ hosts: 4, flavor: 'mixed' });
    hosts = lab.hosts.map((h) => h.name);
    for (const host of hosts) fresh.set(host, await snapshot(lab, host));
  });
  after(async () => {
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const leftovers = async (host: string) => {
    // pgrep on its own (not inside the script, whose text would match): the agent and the firewall binding.
    const processes = (await lab.exec(host, ['pgrep', '-af', '[e]poch-agent[.]cjs|[e]poch-firewall'])).stdout.trim();
    return [(await lab.execOk(host, ['sh', '-c', leftoversScript])).trim(), processes && `processes ${processes}`].filter(Boolean).join('\n');
  };
  const sshLogins = async (host: string) =>
    (await lab.exec(host, ['sh', '-c', 'journalctl --no-pager -o cat -t sshd -t sshd-session 2>/dev/null | grep -c "^Accepted"; true'])).stdout.trim();

  /** Runs `run` with an HTTPS loop as nobody on each host; always stops the loops. */
  async function withHttpsLoops<T>(on: readonly string[], run: () => T): Promise<{ result: T; loops: Record<string, HttpsLoopResult> }> {
    const loops = on.map((h) => [h, new HttpsLoop(lab, h, probeUrl)] as const);
    const counts: Record<string, HttpsLoopResult> = {};
    try {
      for (const [, loop] of loops) await loop.start(240);
      await new Promise((r) => setTimeout(r, 1000)); // a few requests before the run starts
      const result = run();
      await new Promise((r) => setTimeout(r, 1000)); // and a few after it ended
      return { result, loops: counts };
    } finally {
      for (const [h, loop] of loops) counts[h] = await loop.finish();
    }
  }

  function assertNoFailedRequests(loops: Record<string, HttpsLoopResult>): void {
    const failed = Object.entries(loops).flatMap(([h, l]) => l.failed.slice(0, 5).map((f) => `${h}: ${f}`));
    assert.deepEqual(failed, [], 'HTTPS requests as nobody failed during the run');
    for (const [h, l] of Object.entries(loops)) assert.ok(l.ok >= 5, `${h}: only ${l.ok} HTTPS requests completed during the run`);
  }

  const changedOf = (r: CliRun, on: readonly string[]) => Object.fromEntries(on.map((h) => [h, r.byHost[h]?.changed]));
  const zeroes = (on: readonly string[]) => Object.fromEntries(on.map((h) => [h, 0]));

  test('1. a canary that fails verify (probe URL unreachable from it only) halts the rollout and is rolled back', async (t) => {
    const canary = 'deb1';
    const others = hosts.filter((h) => h !== canary);
    // Realistic and outside /etc and netfilter: this host's route to the upstream goes nowhere.
    await lab.execOk(canary, ['ip', 'route', 'add', 'blackhole', `${lab.upstream.valid}/32`]);
    let r: CliRun;
    try {
      r = cli(lab, ['playbooks/site.yml', ...intercept, ...forks(hosts.length)]);
    } finally {
      await lab.execOk(canary, ['ip', 'route', 'del', 'blackhole', `${lab.upstream.valid}/32`]);
    }
    t.diagnostic(explain(r));
    assert.equal(ofType(r, 'play-start')[0]?.hosts[0], canary, 'the canary is the first host of the play');
    assert.equal(r.status, 5, explain(r));
    assert.equal(r.recap?.exitCode, 5);
    assert.deepEqual(ofType(r, 'batch-start').map((e) => e.hosts), [[canary]], 'only the canary batch started');
    const failed = ofType(r, 'task-result').filter((e) => e.status === 'failed');
    assert.deepEqual(failed.map((e) => `${e.host} / ${e.task}`), [`${canary} / ${verifyTask}`], 'the canary failed at verify, nowhere else');
    assert.match(failed[0]?.message ?? '', /HTTPS request to https:\/\/upstream\.lab\.test\/ as nobody failed/);
    // It had got as far as the redirect rules before verify failed: the rollback undid a full install.
    const changedTasks = ofType(r, 'task-result').filter((e) => e.host === canary && e.status === 'changed').map((e) => e.task);
    assert.ok(changedTasks.some((task) => /redirect port 443/.test(task)), `the canary's changed tasks: ${changedTasks.join(', ')}`);
    const rollback = ofType(r, 'rollback-entry').filter((e) => e.host === canary);
    assert.ok(rollback.length > 0, 'no rollback-entry event for the canary');
    assert.deepEqual(rollback.filter((e) => e.status !== 'rolled-back' && e.status !== 'already-rolled-back').map((e) => `${e.change}: ${e.status} ${e.message ?? ''}`), []);
    const halted = ofType(r, 'rollout-halted');
    assert.equal(halted.length, 1);
    assert.deepEqual(new Set(halted[0]?.notRun), new Set(others));
    for (const h of others) assert.equal(r.byHost[h]?.notRun, true, `${h}: ${JSON.stringify(r.byHost[h])}`);
    // Never connected to: no SSH login in their sshd log (the canary's log shows the control), no journal.
    assert.notEqual(await sshLogins(canary), '0', 'the canary shows no SSH login: the check below would prove nothing');
    assert.deepEqual(Object.fromEntries(await Promise.all(others.map(async (h) => [h, await sshLogins(h)]))), Object.fromEntries(others.map((h) => [h, '0'])), 'SSH logins on hosts of later batches');
    for (const h of others) assert.equal((await lab.exec(h, ['test', '-e', journalDir])).exitCode, 1, `${h}: ${journalDir} exists`);
    // The canary is back to its pre-run state: /etc, bundles, rulesets byte for byte; no unit, timer or process left.
    await assertLikeSnapshot(lab, fresh, [canary], 'the canary differs from before the run');
    assert.equal(await leftovers(canary), '');
  });

  test('1b. with the route back, the same install succeeds on every host (generation A), verify included', () => {
    const r = cli(lab, ['playbooks/site.yml', ...intercept, ...forks(hosts.length)]);
    assert.equal(r.status, 0, explain(r));
    generationA = ofType(r, 'run-start')[0]?.runId;
    for (const h of hosts) assert.ok(r.byHost[h] && r.byHost[h].changed > 0 && r.byHost[h].failed === 0, `${h}: ${JSON.stringify(r.byHost[h])}`);
    const verified = ofType(r, 'task-result').filter((e) => e.task === verifyTask);
    assert.deepEqual(Object.fromEntries(verified.map((e) => [e.host, e.status])), Object.fromEntries(hosts.map((h) => [h, 'ok'])));
  });

  test('2. uninstall alone, from a full install, restores the byte-identical state; HTTPS never fails; idempotent', async (t) => {
    const on = ['deb2', 'rhel2'];
    const limit = ['--limit', on.join(','), ...forks(on.length)];
    for (const h of on) assert.notEqual(await leftovers(h), '', `${h} is not installed`);
    const { result: r, loops } = await withHttpsLoops(on, () => cli(lab, ['uninstall', ...limit]));
    t.diagnostic(`HTTPS requests during uninstall: ${JSON.stringify(Object.fromEntries(Object.entries(loops).map(([h, l]) => [h, { ok: l.ok, failed: l.failed.length }])))}`);
    assert.equal(r.status, 0, explain(r));
    for (const h of on) assert.ok((r.byHost[h]?.changed ?? 0) > 0, `${h}: ${JSON.stringify(r.byHost[h])}`);
    assertNoFailedRequests(loops);
    await assertLikeSnapshot(lab, fresh, on, 'after uninstall, hosts differ from before install');
    assert.deepEqual(Object.fromEntries(await Promise.all(on.map(async (h) => [h, await leftovers(h)]))), Object.fromEntries(on.map((h) => [h, ''])));
    const again = cli(lab, ['uninstall', ...limit]);
    assert.equal(again.status, 0, explain(again));
    assert.deepEqual(changedOf(again, on), zeroes(on), 'second uninstall');
  });

  test('3. rollback --to A after a new agent version (generation B) restores A exactly; verify.yml green', async () => {
    assert.ok(generationA, 'step 1b did not record generation A');
    const on = ['deb1', 'rhel1'];
    const limit = ['--limit', on.join(','), ...forks(on.length)];
    const release = "echo current=$(readlink /opt/epoch-agent/current) previous=$(readlink /opt/epoch-agent/previous); ls -1 /opt/epoch-agent/releases; curl -s --max-time 5 http://127.0.0.1:9443/healthz | sed -n 's/.*\"version\":\"\\([^\"]*\\)\".*/running=\\1/p'";
    const atA = new Map<string, Snapshot>();
    const releaseAtA = new Map<string, string>();
    for (const h of on) {
      atA.set(h, await snapshot(lab, h));
      releaseAtA.set(h, await lab.execOk(h, ['sh', '-c', release]));
    }
    // Generation B: the same site.yml from a checkout whose dist/agent is a newer build.
    const checkout = join(work, 'checkout-b');
    mkdirSync(join(checkout, 'dist'), { recursive: true });
    symlinkSync(join(repo, 'playbooks'), join(checkout, 'playbooks'));
    await buildAgent(join(checkout, 'dist/agent'), '0.1.1-dr');
    const b = cli(lab, ['playbooks/site.yml', ...intercept, ...limit], lab.inventoryDir, { cwd: checkout });
    assert.equal(b.status, 0, explain(b));
    for (const h of on) {
      const ids = [...(b.changes.get(h)?.values() ?? [])].flat();
      assert.ok(ids.includes('release:0.1.1-dr'), `${h}: generation B did not push 0.1.1-dr: ${ids.join(', ')}`);
      assert.match(await lab.execOk(h, ['sh', '-c', release]), /running=0\.1\.1-dr/, `${h}: B's agent is not running`);
    }
    const rollback = cli(lab, ['rollback', '--to', generationA, ...limit]);
    assert.equal(rollback.status, 0, explain(rollback));
    assert.deepEqual(
      ofType(rollback, 'rollback-entry').filter((e) => e.status !== 'rolled-back').map((e) => `${e.host} ${e.generation} ${e.change}: ${e.status} ${e.message ?? ''}`),
      [],
    );
    assert.deepEqual(new Set(ofType(rollback, 'rollback-entry').map((e) => e.generation)), new Set([ofType(b, 'run-start')[0]?.runId]), 'only generation B was undone');
    for (const h of on) assert.equal(await lab.execOk(h, ['sh', '-c', release]), releaseAtA.get(h), `${h}: release state differs from generation A`);
    await assertLikeSnapshot(lab, atA, on, 'after rollback --to A, hosts differ from generation A (/etc, CA, bundles, rules)');
    const verify = cli(lab, ['playbooks/verify.yml', ...limit]);
    assert.equal(verify.status, 0, explain(verify));
    const again = cli(lab, ['rollback', '--to', generationA, ...limit]);
    assert.equal(again.status, 0, explain(again));
    assert.deepEqual(changedOf(again, on), zeroes(on), 'second rollback --to A');
  });

  test('4. uninstall on hosts whose agent is dead (SIGKILL; release file deleted + SIGKILL): clean, no failed HTTPS, idempotent', async (t) => {
    const on = ['deb1', 'rhel1'];
    const limit = ['--limit', on.join(','), ...forks(on.length)];
    await lab.execOk('rhel1', ['sh', '-c', 'rm -f -- "$(readlink -f /opt/epoch-agent/current)/epoch-agent.cjs"']);
    for (const h of on) await lab.execOk(h, ['systemctl', 'kill', '-s', 'KILL', 'epoch-agent.service']);
    // Fail open first (the binding parks the rules); only then is the uninstall what the loop measures.
    for (const h of on) await lab.execOk(h, ['sh', '-c', waitHttpsScript, 'sh', probeUrl], { timeoutMs: 60_000 });
    const state = await lab.exec('rhel1', ['systemctl', 'is-active', 'epoch-agent.service']);
    t.diagnostic(`rhel1 agent before uninstall: ${state.stdout.trim()}; deb1: ${(await lab.exec('deb1', ['systemctl', 'is-active', 'epoch-agent.service'])).stdout.trim()}`);
    assert.notEqual(state.stdout.trim(), 'active', 'rhel1: the agent runs without its release file');
    const { result: r, loops } = await withHttpsLoops(on, () => cli(lab, ['uninstall', ...limit]));
    t.diagnostic(`HTTPS requests during uninstall: ${JSON.stringify(Object.fromEntries(Object.entries(loops).map(([h, l]) => [h, { ok: l.ok, failed: l.failed.length }])))}`);
    assert.equal(r.status, 0, explain(r));
    assertNoFailedRequests(loops);
    await assertLikeSnapshot(lab, fresh, on, 'after uninstall of a dead agent, hosts differ from before install');
    assert.deepEqual(Object.fromEntries(await Promise.all(on.map(async (h) => [h, await leftovers(h)]))), Object.fromEntries(on.map((h) => [h, ''])));
    const again = cli(lab, ['uninstall', ...limit]);
    assert.equal(again.status, 0, explain(again));
    assert.deepEqual(changedOf(again, on), zeroes(on), 'second uninstall');
  });

  test('5. uninstall on half-provisioned hosts (a run stopped before the firewall; a run SIGKILLed before confirm): clean, no failed HTTPS, idempotent', async (t) => {
    const on = ['deb2', 'rhel2'];
    const limit = ['--limit', on.join(','), ...forks(on.length)];
    // rhel2: agent release, user, CA, trust store, coverage and a running agent; no firewall, verify or confirm.
    // deb2: the whole site.yml, the CLI SIGKILLed when verify starts: rules loaded, their auto-revert still armed.
    const [tagged, killed] = await Promise.all([
      cliKilledWhen(lab, ['playbooks/site.yml', ...intercept, '--tags', 'agent,ca', '--limit', 'rhel2'], () => false),
      cliKilledWhen(lab, ['playbooks/site.yml', ...intercept, '--limit', 'deb2'], (e) => e.type === 'task-start' && e.host === 'deb2' && e.task === verifyTask),
    ]);
    assert.equal(tagged.status, 0, explain(tagged));
    const ran = ofType(tagged, 'task-result').map((e) => e.task);
    assert.ok(ran.includes('signing CA') && !ran.some((task) => /redirect port 443|verify|confirm/.test(task)), `rhel2 ran ${ran.join(', ')}`);
    assert.equal(killed.killed, true, `deb2's run was not killed at verify: ${explain(killed)}`);
    const armed = (await lab.execOk('deb2', ['sh', '-c', 'ls -1 /var/lib/epoch-provision/firewall | grep "^armed-"; nft list tables | grep epoch; true'])).trim();
    t.diagnostic(`deb2 after the kill: ${armed.replace(/\n/g, '; ')}`);
    assert.match(armed, /^armed-/m, 'deb2: no armed firewall change left by the killed run');
    const { result: r, loops } = await withHttpsLoops(on, () => cli(lab, ['uninstall', ...limit]));
    t.diagnostic(`HTTPS requests during uninstall: ${JSON.stringify(Object.fromEntries(Object.entries(loops).map(([h, l]) => [h, { ok: l.ok, failed: l.failed.length }])))}`);
    assert.equal(r.status, 0, explain(r));
    assertNoFailedRequests(loops);
    await assertLikeSnapshot(lab, fresh, on, 'after uninstall of half-provisioned hosts, hosts differ from before install');
    // Includes the killed run's auto-revert timer: left armed, it would fire later and act on a reinstall.
    assert.deepEqual(Object.fromEntries(await Promise.all(on.map(async (h) => [h, await leftovers(h)]))), Object.fromEntries(on.map((h) => [h, ''])));
    const again = cli(lab, ['uninstall', ...limit]);
    assert.equal(again.status, 0, explain(again));
    assert.deepEqual(changedOf(again, on), zeroes(on), 'second uninstall');
  });
});
