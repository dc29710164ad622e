// Staged rollout, host journal and rollback on real lab hosts (systemd, sshd, their own file systems).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunEvent } from '../../provisioner/src/core/run-events';
import { HostJournal, rollbackGeneration } from '../../provisioner/src/runner/journal';
import { newRunId } from '../../provisioner/src/runner/run-id';
import { runTask } from '../../provisioner/src/runner/run-task';
import { testFileModule } from '../../provisioner/src/runner/test-modules';
import { SshTransport } from '../../provisioner/src/transport/ssh-transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';

const repo = resolve(import.meta.dirname, '../..');
const skip = labSkipReason();
const marker = '/root/eprn-rollout';

describe('staged rollout and journal on lab hosts', { skip }, () => {
  let lab: Lab;
  let work: string;
  before(async () => {
    lab = await startLab({ hosts: 4 });
    work = mkdtempSync(join(tmpdir(), 'eprn-rollout-'));
    mkdirSync(join(work, 'playbooks'));
    // deb1 (the canary) fails; every other host would succeed.
    writeFileSync(
      join(work, 'playbooks', 'site.yml'),
      [
        '- name: staged',
        '  hosts: all',
        '  serial: [1, "50%"]',
        '  max_fail_percentage: 0',
        '  tasks:',
        '    - name: marker unless canary',
        '      command:',
        `        argv: [sh, -c, 'test "$1" != deb1 && touch ${marker}', sh, "{{ inventory_hostname }}"]`,
        `        creates: ${marker}`,
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(repo, 'provisioner/src/cli/main.ts'), '--inventory', lab.inventoryPath, '--yes', '--output', 'json', '--log-dir', join(work, 'logs'), ...args], {
      cwd: work,
      encoding: 'utf8',
      timeout: 120_000,
    });
    const events = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunEvent);
    const recap = events.find((e) => e.type === 'recap');
    const hosts = recap?.type === 'recap' ? recap.hosts : [];
    return { status: r.status, stderr: r.stderr, events, byHost: Object.fromEntries(hosts.map((h) => [h.host, h])) };
  };
  const hasMarker = async (host: string) => (await lab.exec(host, ['test', '-e', marker])).exitCode === 0;

  test('a failed canary halts the rollout; the later batches are not touched (no marker, no journal)', async () => {
    const r = cli();
    assert.equal(r.status, 5, r.stderr);
    assert.equal(r.byHost.deb1?.failed, 1);
    for (const h of ['deb2', 'deb3', 'deb4']) {
      assert.equal(r.byHost[h]?.notRun, true, `${h} reported as not run`);
      assert.equal(await hasMarker(h), false, `${h} untouched`);
      assert.notEqual((await lab.exec(h, ['test', '-d', '/var/lib/epoch-provision/journal'])).exitCode, 0, `${h} has no journal`);
    }
  });

  test('without the canary the rollout completes in batches 1, 1, 1; the second run changes nothing', async () => {
    const first = cli('--limit', 'all:!deb1');
    assert.equal(first.status, 0, first.stderr);
    const batches = first.events.filter((e) => e.type === 'batch-start').map((e) => (e.type === 'batch-start' ? e.hosts : []));
    assert.deepEqual(batches, [['deb2'], ['deb3'], ['deb4']], '50% of 3 hosts floors to 1');
    for (const h of ['deb2', 'deb3', 'deb4']) {
      assert.equal(first.byHost[h]?.changed, 1);
      assert.equal(await hasMarker(h), true);
    }
    const second = cli('--limit', 'all:!deb1');
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(Object.values(second.byHost).map((h) => h.changed), [0, 0, 0]);
  });

  test('the journal on the host holds each undo before the change; rollback restores, twice is a no-op', async () => {
    const host = lab.host('deb2');
    const t = await SshTransport.connect({ hostName: 'deb2', target: { address: host.address, port: 22, user: 'root' }, privateKeyFile: lab.keyFile, agentSocket: '', knownHostsFile: lab.knownHostsFile });
    try {
      const generation = newRunId();
      const journal = new HostJournal(t, generation);
      const ctx = { name: 'deb2', vars: {}, transport: t };
      await lab.execOk('deb2', ['sh', '-c', 'printf original > /etc/eprn-conf']);
      await runTask(ctx, testFileModule, { path: '/etc/eprn-conf', content: 'changed' }, 'conf', journal, { check: false, diff: false });
      await runTask(ctx, testFileModule, { path: '/etc/eprn-new', content: 'new' }, 'new', journal, { check: false, diff: false });
      assert.equal(await lab.execOk('deb2', ['cat', '/etc/eprn-conf']), 'changed');
      const journalText = await lab.execOk('deb2', ['cat', `/var/lib/epoch-provision/journal/${generation}.jsonl`]);
      assert.equal(journalText.trim().split('\n').length, 2);
      assert.equal((await lab.execOk('deb2', ['stat', '-c', '%a', `/var/lib/epoch-provision/journal/${generation}.jsonl`])).trim(), '600');

      const first = await rollbackGeneration(t, generation);
      assert.deepEqual([first.rolledBack, first.failed], [2, null]);
      assert.equal(await lab.execOk('deb2', ['cat', '/etc/eprn-conf']), 'original');
      assert.notEqual((await lab.exec('deb2', ['test', '-e', '/etc/eprn-new'])).exitCode, 0);
      const again = await rollbackGeneration(t, generation);
      assert.deepEqual([again.rolledBack, again.alreadyRolledBack], [0, 2]);
    } finally {
      await t.close();
    }
  });
});
