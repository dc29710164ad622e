// The default command end to end against real sshd hosts (network namespaces of our own, see
// test/transport/netns-sshd.ts): ProxyJump, an idempotent second run, --check, unreachable hosts and a halted rollout.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunEvent } from '../../provisioner/src/core/run-events';
import { type NetnsSshLab, skipReason, startNetnsSshLab } from '../transport/netns-sshd';

const repo = resolve(import.meta.dirname, '../..');
const skip = skipReason();

describe('epoch-provision run (netns sshd)', { skip }, () => {
  let lab: NetnsSshLab;
  let work: string;
  const marker = (host: string) => `/tmp/eprn-${process.pid}-${host}`;

  before(async () => {
    lab = await startNetnsSshLab();
    work = join(lab.dir, 'work');
    mkdirSync(join(work, 'playbooks'), { recursive: true });
    const inventory = [
      'all:',
      '  vars:',
      '    ansible_user: root',
      `    ansible_ssh_private_key_file: ${lab.clientKey}`,
      '  children:',
      '    canary:',
      '      hosts:',
      `        dead: {ansible_host: ${lab.bastion.address}, ansible_port: 2200}`,
      '    fleet:',
      '      hosts:',
      `        bastion: {ansible_host: ${lab.bastion.address}}`,
      `        inner: {ansible_host: ${lab.inner.address}, ansible_port: 2222, ansible_ssh_common_args: "-o ProxyJump=root@${lab.bastion.address}"}`,
      '',
    ].join('\n');
    writeFileSync(join(work, 'hosts.yml'), inventory);
    const play = (hosts: string, extra: string) =>
      [
        `- name: markers on ${hosts}`,
        `  hosts: ${hosts}`,
        extra,
        '  tasks:',
        '    - name: create marker',
        '      command:',
        `        argv: [touch, "/tmp/eprn-${process.pid}-{{ inventory_hostname }}"]`,
        `        creates: "/tmp/eprn-${process.pid}-{{ inventory_hostname }}"`,
        '',
      ].join('\n');
    writeFileSync(join(work, 'playbooks', 'site.yml'), play('fleet', '  serial: [1, "100%"]'));
    writeFileSync(join(work, 'playbooks', 'halt.yml'), play('all', '  serial: 1\n  max_fail_percentage: 0'));
    writeFileSync(join(work, 'playbooks', 'one-batch.yml'), play('all', '  vars: {}'));
  });
  after(async () => {
    for (const h of ['dead', 'bastion', 'inner']) rmSync(marker(h), { force: true });
    await lab?.stop();
  });

  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), join(repo, 'provisioner/src/cli/main.ts'), '--inventory', join(work, 'hosts.yml'), '--known-hosts', lab.knownHosts, '--output', 'json', '--log-dir', join(work, 'logs'), ...args], {
      cwd: work,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, SSH_AUTH_SOCK: '' },
    });
    const events = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunEvent);
    const recap = events.find((e) => e.type === 'recap');
    return { status: r.status, stderr: r.stderr, events, recap: recap?.type === 'recap' ? recap : undefined };
  };
  const counts = (recap: ReturnType<typeof cli>['recap']) => Object.fromEntries((recap?.hosts ?? []).map((h) => [h.host, [h.ok, h.changed, h.failed, h.unreachable, h.notRun]]));

  test('--check previews the change and touches nothing', () => {
    const r = cli('--check', '--diff');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(counts(r.recap), { bastion: [1, 1, 0, 0, false], inner: [1, 1, 0, 0, false] });
    assert.equal(existsSync(marker('bastion')) || existsSync(marker('inner')), false);
  });

  test('apply through the bastion, then the already-converged twin changes nothing', () => {
    const first = cli('--yes');
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(counts(first.recap), { bastion: [1, 1, 0, 0, false], inner: [1, 1, 0, 0, false] });
    assert.ok(existsSync(marker('bastion')) && existsSync(marker('inner')));
    const batches = first.events.filter((e) => e.type === 'batch-start').map((e) => (e.type === 'batch-start' ? e.hosts : []));
    assert.deepEqual(batches, [['bastion'], ['inner']]);
    const second = cli('--yes');
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(counts(second.recap), { bastion: [1, 0, 0, 0, false], inner: [1, 0, 0, 0, false] });
    const logs = readdirSync(join(work, 'logs'));
    assert.ok(logs.length >= 2);
    const log = readFileSync(join(work, 'logs', logs[0] ?? ''), 'utf8');
    assert.match(log, /"kind":"command".*env LC_ALL=C/);
  });

  test('without --yes and without a terminal nothing is applied (exit 2)', () => {
    const r = cli();
    assert.equal(r.status, 2);
    assert.match(r.stderr, /pass --yes/);
  });

  test('an unreachable canary halts the rollout: later batches are untouched (exit 5)', () => {
    for (const h of ['bastion', 'inner']) rmSync(marker(h), { force: true });
    const r = cli('--yes', 'playbooks/halt.yml');
    assert.equal(r.status, 5, r.stderr);
    assert.deepEqual(counts(r.recap), { dead: [0, 0, 0, 1, false], bastion: [0, 0, 0, 0, true], inner: [0, 0, 0, 0, true] });
    const unreachable = r.events.find((e) => e.type === 'host-unreachable');
    assert.match(unreachable?.type === 'host-unreachable' ? unreachable.message : '', /ECONNREFUSED/);
    assert.equal(existsSync(marker('bastion')) || existsSync(marker('inner')), false, 'no later-batch host was touched');
    const starts = r.events.filter((e) => e.type === 'host-start').map((e) => (e.type === 'host-start' ? e.host : ''));
    assert.deepEqual(starts, ['dead']);
  });

  test('an unreachable host in a single batch is exit 4 and the other hosts still run', () => {
    const r = cli('--yes', 'playbooks/one-batch.yml');
    assert.equal(r.status, 4, r.stderr);
    assert.deepEqual(counts(r.recap), { dead: [0, 0, 0, 1, false], bastion: [1, 1, 0, 0, false], inner: [1, 1, 0, 0, false] });
  });
});
