// A test run killed with SIGKILL leaves its lab behind; `epoch-provision lab clean` (and the next startLab, for labs
// whose owner died) removes all of it: processes, mounts, namespaces, bridge, folders.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { labHome } from '../../provisioner/src/lab/paths';
import { labSkipReason } from '../support/lab';

const repo = join(import.meta.dirname, '../..');
const skip = labSkipReason();

async function holdLab(name: string): Promise<{ pid: number; hosts: { netns: string; rootPath: string }[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'test/support/hold-lab.ts'), name, '1'], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0] as string);
    });
    child.once('exit', (code) => reject(new Error(`hold-lab exited ${code} before the lab was up`)));
  });
  child.removeAllListeners('exit');
  return { pid: child.pid as number, ...JSON.parse(line) };
}

function state(name: string) {
  return JSON.parse(readFileSync(join(labHome, 'labs', name, 'state.json'), 'utf8')) as {
    slot: number;
    hosts: { nspawn: { pid: number } }[];
    upstream: { process: { pid: number } };
  };
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

test('lab clean removes everything a SIGKILLed run left', { skip }, async () => {
  const name = `k${process.pid}`;
  const held = await holdLab(name);
  const s = state(name);
  process.kill(held.pid, 'SIGKILL');
  const pids = [...s.hosts.map((h) => h.nspawn.pid), s.upstream.process.pid];
  assert.ok(pids.every(alive), 'the lab should outlive its killed owner');

  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'provisioner/src/cli/main.ts'), 'lab', 'clean', '--name', name], {
    cwd: repo,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  await new Promise((res) => setTimeout(res, 200));
  assert.deepEqual(pids.filter(alive), []);
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.equal(netns.includes(`eplab${s.slot}-`), false, netns);
  assert.notEqual(spawnSync('ip', ['link', 'show', 'dev', `eplab${s.slot}`]).status, 0);
  assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(`/labs/${name}/`), false);
  assert.equal(existsSync(join(labHome, 'labs', name)), false);
});

test('the next startLab cleans labs whose owner process died', { skip }, async () => {
  const name = `o${process.pid}`;
  const held = await holdLab(name);
  const s = state(name);
  process.kill(held.pid, 'SIGKILL');
  await new Promise((res) => setTimeout(res, 200));
  const { withLab } = await import('../support/lab');
  await withLab({ hosts: 1 }, async () => {
    assert.equal(existsSync(join(labHome, 'labs', name)), false);
  });
  assert.equal(alive(s.hosts[0]?.nspawn.pid as number), false);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`a test run interrupted with ${signal} tears its lab down itself: processes, namespaces, bridge, mounts, folders`, { skip }, async () => {
    const name = `${signal === 'SIGINT' ? 'i' : 't'}${process.pid}`;
    const held = await holdLab(name);
    const s = state(name);
    const pids = [...s.hosts.map((h) => h.nspawn.pid), s.upstream.process.pid];
    const exited = new Promise<number | null>((res) => {
      const poll = setInterval(() => {
        if (!alive(held.pid)) {
          clearInterval(poll);
          res(0);
        }
      }, 100);
    });
    process.kill(held.pid, signal);
    await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error(`hold-lab still running 60 s after ${signal}`)), 60_000))]);
    assert.deepEqual(pids.filter(alive), [], 'no host or upstream process left');
    const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.equal(netns.includes(`eplab${s.slot}-`), false, netns);
    assert.notEqual(spawnSync('ip', ['link', 'show', 'dev', `eplab${s.slot}`]).status, 0, 'bridge removed');
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(`/labs/${name}/`), false);
    assert.equal(existsSync(join(labHome, 'labs', name)), false);
  });
}
