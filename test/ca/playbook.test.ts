// The CA modules through the real CLI and runner (`epoch-provision --inventory … PLAYBOOK`) on a mixed lab:
// --check touches nothing, apply, the second run changes nothing, the CA fingerprint is in the run output, and the
// uninstall-style play leaves every trust file byte-identical.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { certFingerprint } from '../../provisioner/src/ca/material';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { trustSnapshot } from './lab-helpers';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join(repo, 'test/fixtures/ca', name);
const skip = labSkipReason();

describe('ca, trust_store and trust_coverage through epoch-provision on debian + rhel', { skip }, () => {
  let lab: Lab;
  let work: string;
  const hosts = ['deb1', 'rhel1'];
  const snapshots = new Map<string, string>();

  before(async () => {
    lab = await startLab({ hosts: 2, flavor: 'mixed' });
    work = mkdtempSync(join(tmpdir(), 'epoch-ca-play-'));
    for (const h of hosts) {
      await lab.execOk(h, ['sh', '-c', 'getent passwd epoch-agent >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin epoch-agent']);
      snapshots.set(h, await trustSnapshot(lab, h));
    }
    const tasks = (state: 'present' | 'absent') =>
      state === 'present'
        ? [
            '    - name: signing CA',
            '      ca:',
            '        mode: import',
            `        cert_file: ${fx('ca-ec.crt')}`,
            `        key_file: ${fx('ca-ec.key')}`,
            '    - name: trust the CA',
            '      trust_store:',
            `        cert_file: ${fx('ca-ec.crt')}`,
            '    - name: trust coverage',
            '      trust_coverage:',
            `        cert_file: ${fx('ca-ec.crt')}`,
          ]
        : ['    - name: remove coverage fixes', '      trust_coverage:', '        state: absent', '    - name: untrust', '      trust_store:', '        state: absent', '    - name: remove CA files', '      ca:', '        state: absent'];
    for (const state of ['present', 'absent'] as const) {
      writeFileSync(join(work, `${state}.yml`), ['- name: ca', '  hosts: all', '  serial: [1, "100%"]', '  tasks:', ...tasks(state), ''].join('\n'));
    }
  });
  after(async () => {
    if (work) rmSync(work, { recursive: true, force: true });
    await lab?.down();
  });

  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'provisioner/src/cli/main.ts'), '--inventory', lab.inventoryPath, '--known-hosts', lab.knownHostsFile, '--output', 'json', '--log-dir', join(work, 'logs'), ...args], {
      cwd: repo,
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, SSH_AUTH_SOCK: '' },
    });
    const events = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
    const recap = events.find((e) => e.type === 'recap') as { hosts?: { host: string; changed: number; failed: number }[] } | undefined;
    const changed = Object.fromEntries((recap?.hosts ?? []).map((h) => [h.host, [h.changed, h.failed]]));
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, changed };
  };

  test('--check, apply, converged second run, fingerprint in the output, then removal restores the trust files', async () => {
    const check = cli('--check', join(work, 'present.yml'));
    assert.equal(check.status, 0, check.stderr + check.stdout.slice(-2000));
    for (const h of hosts) assert.equal(await trustSnapshot(lab, h), snapshots.get(h), `--check left ${h} untouched`);

    const first = cli('--yes', join(work, 'present.yml'));
    assert.equal(first.status, 0, first.stderr + first.stdout.slice(-2000));
    assert.deepEqual(first.changed, { deb1: [2, 0], rhel1: [2, 0] });
    assert.ok(first.stdout.includes(certFingerprint(readFileSync(fx('ca-ec.crt')))), 'the CA fingerprint is in the run output');
    assert.doesNotMatch(first.stdout + readFileSync(join(work, 'logs', spawnSync('ls', [join(work, 'logs')], { encoding: 'utf8' }).stdout.split('\n')[0] ?? ''), 'utf8'), /PRIVATE KEY-----\\n[A-Za-z0-9+/]/, 'the key never shows in the output or the run log');

    const second = cli('--yes', join(work, 'present.yml'));
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(second.changed, { deb1: [0, 0], rhel1: [0, 0] });

    const removed = cli('--yes', join(work, 'absent.yml'));
    assert.equal(removed.status, 0, removed.stderr + removed.stdout.slice(-2000));
    assert.deepEqual(removed.changed, { deb1: [2, 0], rhel1: [2, 0] });
    for (const h of hosts) assert.equal(await trustSnapshot(lab, h), snapshots.get(h), `${h}: trust files byte-identical after removal`);
    const again = cli('--yes', join(work, 'absent.yml'));
    assert.deepEqual(again.changed, { deb1: [0, 0], rhel1: [0, 0] });
  });
});
