// The acceptance test of issue 9 (item 7), on a mixed debian/rhel lab fleet of 6 hosts, driving the real CLI
// (`node bin/epoch-provision.mjs ... --yes --output json`) as a child process:
//   0. snapshot every host (/etc hashes, symlinks and dirs, trust bundles, nft + iptables rulesets) before anything;
//   1. `--check` predicts exactly the changes the apply makes (per host and task, by change id);
//   2. the apply runs site.yml's serial [1, "50%", "100%"] as batches [[h1], 3 hosts, 2 hosts];
//   3. verify is green (verify.yml exit 0, every host ok; the `verify` task ok in the site run);
//   3b. verify's probe tells intercepted from direct traffic (the agent's own user is not redirected), with curl's
//      %{certs} and with an older curl through openssl s_client;
//   4. a second apply changes nothing;
//   5. a canary whose agent cannot start (its port taken) halts the rollout and is rolled back byte-identically
//      (a second, 3-host lab, so this step does not depend on the state steps 1-4 and 6 leave);
//   6. rollback then uninstall restore every host byte-identically; uninstall is idempotent.
// Steps run in order on one lab; each later step needs the earlier ones' state.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CliRun, cli, explain, ofType, repo } from '../support/cli-run';
import { assertLikeSnapshot, differencesFromSnapshot, type Snapshot, snapshot, snapshotDiff } from '../support/host-snapshot';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { parseProbe, probeArgv, verifyParams } from '../../provisioner/src/modules/verify/verify';

const skip = labSkipReason();
const journalDir = '/var/lib/epoch-provision/journal';
const intercept = ['-e', 'epoch_intercept=true'];

describe('acceptance: staged install, verify, canary halt, rollback and uninstall on a mixed fleet', { skip }, () => {
  let lab: Lab;
  let hosts: string[];
  const snapshots = new Map<string, Snapshot>();
  let checkRun: CliRun | undefined;
  let applyRun: CliRun | undefined;

  before(async () => {
    // The CLI and the agent release it pushes come from dist/; build them from the current sources.
    const build = spawnSync(process.execPath, [join(repo, 'scripts/build.mjs')], { cwd: repo, encoding: 'utf8', timeout: 180_000 });
    assert.equal(build.status, 0, `npm run build failed: ${build.stderr}`);
    lab = await startLab({ hosts: 6, flavor: 'mixed' });
    hosts = lab.hosts.map((h) => h.name);
  });
  after(async () => {
    await lab?.down();
  });

  test('0. snapshot every host before anything runs', async () => {
    for (const host of hosts) snapshots.set(host, await snapshot(lab, host));
    assert.deepEqual(new Set(lab.hosts.map((h) => h.flavor)), new Set(['debian', 'rhel']));
    for (const [host, s] of snapshots) {
      assert.ok((s.get('files') ?? []).length > 100, `${host}: /etc snapshot has only ${(s.get('files') ?? []).length} files`);
      assert.ok((s.get('bundles') ?? []).length > 0, `${host}: no trust bundle found`);
      assert.ok(s.has('nft'), `${host}: no nft ruleset section`);
    }
    // An idle host does not change by itself (the reason the snapshot excludes nothing).
    const again = await snapshot(lab, hosts[0] as string);
    assert.equal(snapshotDiff(snapshots.get(hosts[0] as string) as Snapshot, again), '');
  });

  test('1. --check predicts exactly what apply changes', async (t) => {
    checkRun = cli(lab, ['playbooks/site.yml', '--check', ...intercept]);
    const touchedByCheck = await differencesFromSnapshot(lab, snapshots, hosts);
    // The apply runs whatever the check did: steps 2-6 need it.
    applyRun = cli(lab, ['playbooks/site.yml', ...intercept]);
    t.diagnostic(`apply: ${explain(applyRun)}`);
    assert.equal(touchedByCheck, '', '--check changed hosts');
    assert.equal(checkRun.status, 0, `the --check run failed:\n${explain(checkRun)}`);
    const predicted = checkRun.changes;
    const applied = applyRun.changes;
    const mismatches: string[] = [];
    for (const [host, tasks] of applied) {
      for (const [task, ids] of tasks) {
        const p = predicted.get(host)?.get(task);
        if (p === undefined) mismatches.push(`${host} / ${task}: applied [${ids}], --check never ran this task`);
        else if (p.join(',') !== ids.join(',')) mismatches.push(`${host} / ${task}: --check predicted [${p}], apply changed [${ids}]`);
      }
    }
    for (const [host, tasks] of predicted) {
      for (const [task, ids] of tasks) {
        if (ids.length && !applied.get(host)?.has(task)) mismatches.push(`${host} / ${task}: --check predicted [${ids}], apply never ran this task`);
      }
    }
    assert.equal(mismatches.join('\n'), '');
  });

  test('2. the apply rolls out in batches [1, "50%", "100%"] and succeeds', () => {
    assert.ok(applyRun, 'step 1 did not apply');
    const batches = ofType(applyRun, 'batch-start').map((e) => e.hosts);
    const order = ofType(applyRun, 'play-start')[0]?.hosts ?? [];
    assert.deepEqual(new Set(order), new Set(hosts));
    assert.deepEqual(batches, [order.slice(0, 1), order.slice(1, 4), order.slice(4, 6)]);
    assert.equal(applyRun.status, 0, explain(applyRun));
    assert.equal(applyRun.recap?.exitCode, 0);
    for (const host of hosts) {
      const h = applyRun.byHost[host];
      assert.ok(h && h.failed === 0 && h.unreachable === 0 && !h.notRun && h.changed > 0, `${host}: ${JSON.stringify(h)}`);
    }
  });

  test('3. verify is green', () => {
    assert.ok(applyRun, 'step 1 did not apply');
    const verifyResults = ofType(applyRun, 'task-result').filter((e) => e.task === 'verify interception end to end');
    assert.deepEqual(
      Object.fromEntries(verifyResults.map((e) => [e.host, `${e.status}${e.message ? `: ${e.message}` : ''}`])),
      Object.fromEntries(hosts.map((h) => [h, 'ok'])),
      'the verify task of the site run',
    );
    const verify = cli(lab, ['playbooks/verify.yml']);
    assert.equal(verify.status, 0, explain(verify));
    for (const host of hosts) {
      const h = verify.byHost[host];
      assert.ok(h && h.ok > 0 && h.failed === 0 && h.unreachable === 0 && h.changed === 0, `${host}: ${JSON.stringify(h)}`);
    }
  });

  test('3b. verify tells intercepted from direct traffic, with curl 7.88+ (%{certs}) and with an older curl', async () => {
    const host = hosts[1] as string;
    const probe = async (user: string) => {
      const p = verifyParams.parse({ probe_url: 'https://upstream.lab.test/', probe_user: user, timeout_seconds: 5 });
      const f = parseProbe((await lab.exec(host, probeArgv(p), { timeoutMs: 60_000 })).stdout);
      return { status: f.systemStatus, issued: f.hostCaIssued, check: f.hostCaCheck, counted: f.metricsAfter !== null && f.metricsAfter > (f.metricsBefore ?? 0) };
    };
    // The agent's own user is excluded from the redirect by owner match: its request reaches the upstream directly.
    const intercepted = await probe('nobody');
    const direct = await probe('epoch-agent');
    // Older curl (Ubuntu 22.04's 7.81, RHEL 9's 7.76) warns about %{certs} and prints nothing for it: a stand-in
    // early on PATH, removed again (it must not be there already).
    await lab.execOk(host, ['sh', '-c', '[ ! -e /usr/local/bin/curl ] && cat > /usr/local/bin/curl && chmod 755 /usr/local/bin/curl'], { stdin: olderCurl });
    let olderIntercepted: Awaited<ReturnType<typeof probe>>;
    let olderDirect: Awaited<ReturnType<typeof probe>>;
    try {
      olderIntercepted = await probe('nobody');
      olderDirect = await probe('epoch-agent');
    } finally {
      await lab.execOk(host, ['rm', '-f', '/usr/local/bin/curl']);
    }
    assert.deepEqual(intercepted, { status: 200, issued: true, check: "signature verified with the host CA's key", counted: true });
    assert.deepEqual({ ...direct, check: /^issuer name is not the host CA's/.test(direct.check) }, { status: 200, issued: false, check: true, counted: false }, direct.check);
    assert.deepEqual(olderIntercepted, { status: 200, issued: true, check: 'openssl verify code 0', counted: true });
    assert.deepEqual({ ...olderDirect, check: /^openssl verify code [1-9]/.test(olderDirect.check) }, { status: 200, issued: false, check: true, counted: false }, olderDirect.check);
  });

  test('4. a second apply changes nothing', () => {
    const again = cli(lab, ['playbooks/site.yml', ...intercept]);
    assert.equal(again.status, 0, explain(again));
    const changed = ofType(again, 'task-result').filter((e) => e.status !== 'ok' && e.status !== 'skipped' || e.changes.length > 0);
    assert.deepEqual(changed.map((e) => `${e.host} / ${e.task}: ${e.status} [${e.changes.map((c) => c.id)}] ${e.message ?? ''}`), []);
    assert.deepEqual(Object.fromEntries(hosts.map((h) => [h, again.byHost[h]?.changed])), Object.fromEntries(hosts.map((h) => [h, 0])));
  });

  test('5. a canary whose agent cannot start halts the rollout and is rolled back', async () => {
    // A lab of its own, so this step starts from a fresh state whatever steps 1-4 left.
    const small = await startLab({ hosts: 3, flavor: 'mixed' });
    try {
      const smallHosts = small.hosts.map((h) => h.name);
      const smallSnapshots = new Map<string, Snapshot>();
      for (const host of smallHosts) smallSnapshots.set(host, await snapshot(small, host));
      // The lab inventory lists the debian group first, so deb1 is the canary (asserted below from play-start).
      const canary = 'deb1';
      // The agent's listen port is taken: it cannot start. The transient unit lives in /run, not /etc.
      await small.execOk(canary, ['systemd-run', '--unit=acceptance-blocker', 'python3', '-m', 'http.server', '--bind', '127.0.0.1', '8443']);
      await small.execOk(canary, ['sh', '-c', 'for i in $(seq 50); do python3 -c "import socket; socket.create_connection((\'127.0.0.1\', 8443), 1)" 2>/dev/null && exit 0; sleep 0.2; done; exit 1']);
      const r = cli(small, ['playbooks/site.yml', ...intercept]);
      await small.exec(canary, ['systemctl', 'stop', 'acceptance-blocker.service']);
      assert.equal(ofType(r, 'play-start')[0]?.hosts[0], canary, 'the canary is the first host of the play');
      assert.equal(r.status, 5, explain(r));
      assert.equal(r.recap?.exitCode, 5);
      const batches = ofType(r, 'batch-start').map((e) => e.hosts);
      assert.deepEqual(batches, [[canary]], 'only the canary batch started');
      const halted = ofType(r, 'rollout-halted');
      assert.equal(halted.length, 1);
      const others = smallHosts.filter((h) => h !== canary);
      assert.deepEqual(new Set(halted[0]?.notRun), new Set(others));
      for (const h of others) assert.equal(r.byHost[h]?.notRun, true, `${h}: ${JSON.stringify(r.byHost[h])}`);
      assert.equal(r.byHost[canary]?.failed, 1);
      const rollback = ofType(r, 'rollback-entry').filter((e) => e.host === canary);
      assert.ok(rollback.length > 0, 'no rollback-entry event for the canary');
      assert.deepEqual(rollback.filter((e) => e.status !== 'rolled-back' && e.status !== 'already-rolled-back').map((e) => `${e.change}: ${e.status} ${e.message ?? ''}`), []);
      for (const h of others) {
        assert.equal((await small.exec(h, ['test', '-e', journalDir])).exitCode, 1, `${h}: ${journalDir} exists on a host the rollout never touched`);
      }
      await assertLikeSnapshot(small, smallSnapshots, smallHosts);
    } finally {
      await small.down();
    }
  });

  test('6. rollback, then uninstall, restore the byte-identical state; uninstall is idempotent', async () => {
    const rollback = cli(lab, ['rollback']);
    assert.equal(rollback.status, 0, explain(rollback));
    const uninstall = cli(lab, ['uninstall']);
    assert.equal(uninstall.status, 0, explain(uninstall));
    const again = cli(lab, ['uninstall']);
    assert.equal(again.status, 0, explain(again));
    assert.deepEqual(Object.fromEntries(hosts.map((h) => [h, again.byHost[h]?.changed])), Object.fromEntries(hosts.map((h) => [h, 0])), 'second uninstall');
    await assertLikeSnapshot(lab, snapshots, hosts);
  });

  test('6b. uninstall also takes the inventory as a hosts.yml path (as the run command does)', () => {
    const r = cli(lab, ['uninstall'], lab.inventoryPath);
    assert.equal(r.status, 0, explain(r));
    assert.deepEqual(Object.fromEntries(hosts.map((h) => [h, r.byHost[h]?.changed])), Object.fromEntries(hosts.map((h) => [h, 0])));
  });
});

// Stands in for curl older than 7.88, which has no %{certs} in --write-out (it warns and prints nothing for it).
const olderCurl = `#!/bin/sh
for a; do
  shift
  case $a in *'%{certs}'*) echo "curl: unknown --write-out variable: 'certs'" >&2; a=$(printf '%s' "$a" | sed 's/%{certs}//') ;; esac
  set -- "$@" "$a"
done
exec /usr/bin/curl "$@"
`;
