// `epoch-provision lab` from the command line: a second `up` is idempotent, `down` with nothing up does nothing,
// and without root `up` says so in one line and changes nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { labHome } from '../../provisioner/src/lab/paths';
import { labSkipReason } from '../support/lab';

const repo = join(import.meta.dirname, '../..');
const name = `c${process.pid}`;
const skip = labSkipReason();

function cli(args: string[], asUser?: number) {
  const argv = ['--import', 'tsx', join(repo, 'provisioner/src/cli/main.ts'), 'lab', ...args];
  const cmd = asUser === undefined ? [process.execPath, ...argv] : ['setpriv', `--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', process.execPath, ...argv];
  return spawnSync(cmd[0] as string, cmd.slice(1), { cwd: repo, encoding: 'utf8', timeout: 300_000 });
}

const statePath = join(labHome, 'labs', name, 'state.json');
const hostPids = () =>
  (JSON.parse(readFileSync(statePath, 'utf8')) as { hosts: { nspawn: { pid: number } }[] }).hosts.map((h) => h.nspawn.pid);

describe('epoch-provision lab (CLI)', { skip }, () => {
  after(() => {
    cli(['down', '--name', name]);
  });

  test('lab up starts the hosts and a second lab up keeps them as they are', () => {
    const first = cli(['up', '2', '--name', name]);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /2 host\(s\) running/);
    const pids = hostPids();
    const second = cli(['up', '2', '--name', name]);
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(hostPids(), pids);
    assert.doesNotMatch(second.stderr, /starting/);
  });

  test('lab status and lab exec reach the hosts', () => {
    const status = cli(['status', '--name', name]);
    assert.equal(status.status, 0, status.stdout);
    assert.match(status.stdout, /deb1\s+debian\s+\S+\s+running/);
    const exec = cli(['exec', '--name', name, 'deb2', '--', 'cat', '/etc/hostname']);
    assert.equal(exec.status, 0, exec.stderr);
    assert.equal(exec.stdout, 'deb2\n');
    const missing = cli(['exec', '--name', name, 'deb9', '--', 'true']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /no host deb9 .*hosts: deb1 deb2/);
  });

  test('lab down removes the lab, and a second lab down does nothing', () => {
    const down = cli(['down', '--name', name]);
    assert.equal(down.status, 0, down.stderr);
    assert.equal(existsSync(join(labHome, 'labs', name)), false);
    const again = cli(['down', '--name', name]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /not up; nothing to do/);
  });

  test('without root, lab up says so in one line and changes nothing', () => {
    const r = cli(['up', '1', '--name', name], 65534);
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /needs root/);
    assert.equal(existsSync(join(labHome, 'labs', name)), false);
  });

  test('bad arguments are refused before anything happens', () => {
    const r = cli(['up', '2', '--flavor', 'arch', '--name', name]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--flavor arch: expected debian, rhel or mixed/);
    assert.equal(existsSync(join(labHome, 'labs', name)), false);
  });
});
