// bench/install-fleet: the full install (playbooks/site.yml with interception on) over N lab hosts (default 50),
// then the idempotent re-run, through the real CLI (dist/epoch-provision.mjs), timed. Goals (issue 9): the re-run
// under 3 s; the install at least 5x faster than the same steps in Ansible (ansible-playbook is not installed here,
// so that column is reported as not measured).
// Usage: npm run build && node --import tsx bench/install-fleet.ts [--hosts N] [--forks F] [--flavor mixed]  (root)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { labSkipReason, withLab } from '../test/support/lab';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const hosts = Number(arg('hosts', '50'));
const forks = Number(arg('forks', String(hosts)));
const flavor = arg('flavor', 'mixed') as 'mixed' | 'debian' | 'rhel';
const repo = resolve(import.meta.dirname, '..');

const skip = labSkipReason();
if (skip) {
  console.error(`install-fleet: cannot run: ${skip}`);
  process.exit(2);
}

interface Timed {
  seconds: number;
  exitCode: number | null;
  changed: number;
  failed: number;
  /** Per task: host-seconds summed over hosts, and the slowest host; the slowest tasks first. */
  tasks: { task: string; hostSeconds: number; maxSeconds: number }[];
}

// The controller's caches (keystore listings) start empty, as on a fresh CI runner; the re-run reuses them.
const cacheHome = mkdtempSync(join(tmpdir(), 'epoch-bench-cache-'));
process.on('exit', () => rmSync(cacheHome, { recursive: true, force: true }));

type Event = { type: string; task?: string; durationMs?: number; hosts?: { changed: number; failed: number }[] };

function run(inventory: string): Timed {
  const started = performance.now();
  const r = spawnSync(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), '--inventory', inventory, '--yes', '--output', 'json', '--forks', String(forks), '-e', 'epoch_intercept=true'], {
    cwd: repo,
    env: { ...process.env, XDG_CACHE_HOME: cacheHome },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  const events = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Event);
  const recap = events.find((e) => e.type === 'recap');
  const sum = (k: 'changed' | 'failed') => (recap?.hosts ?? []).reduce((a, h) => a + h[k], 0);
  const byTask = new Map<string, { hostSeconds: number; maxSeconds: number }>();
  for (const e of events) {
    if (e.type !== 'task-result' || !e.task || e.durationMs === undefined) continue;
    const t = byTask.get(e.task) ?? { hostSeconds: 0, maxSeconds: 0 };
    t.hostSeconds += e.durationMs / 1000;
    t.maxSeconds = Math.max(t.maxSeconds, e.durationMs / 1000);
    byTask.set(e.task, t);
  }
  const tasks = [...byTask].map(([task, t]) => ({ task, hostSeconds: Number(t.hostSeconds.toFixed(2)), maxSeconds: Number(t.maxSeconds.toFixed(2)) })).sort((a, b) => b.hostSeconds - a.hostSeconds);
  if (r.status !== 0) console.error(r.stderr.slice(-2000));
  return { seconds, exitCode: r.status, changed: sum('changed'), failed: sum('failed'), tasks };
}

await withLab({ hosts, flavor }, async (lab) => {
  const install = run(lab.inventoryPath);
  const rerun = run(lab.inventoryPath);
  const ansible = spawnSync('sh', ['-c', 'command -v ansible-playbook']).status === 0;
  const result = { date: new Date().toISOString(), hosts, flavor, forks, install, rerun, ansible: ansible ? 'installed, comparison not implemented' : 'not installed' };
  writeFileSync(join(repo, 'bench/results/install-fleet.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log('re-run, slowest tasks (host-seconds, slowest host):');
  for (const t of rerun.tasks.slice(0, 8)) console.log(`  ${t.task}: ${t.hostSeconds} s, max ${t.maxSeconds} s`);
  console.log(`| hosts | install | idempotent re-run | ansible-playbook |\n|---|---|---|---|`);
  console.log(`| ${hosts} (${flavor}, forks ${forks}) | ${install.seconds.toFixed(1)} s, exit ${install.exitCode}, ${install.changed} changed tasks, ${install.failed} failed | ${rerun.seconds.toFixed(1)} s, exit ${rerun.exitCode}, ${rerun.changed} changed | ${result.ansible} |`);
});
