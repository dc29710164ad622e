// bench/install-fleet: the full install (playbooks/site.yml with interception on) over N lab hosts (default 50),
// then the idempotent re-run, through the real CLI (dist/epoch-provision.mjs), timed. Goals (issue 9): the re-run
// under 3 s; the install at least 5x faster than the same steps in Ansible (ansible-playbook is not installed here,
// so that column is reported as not measured).
// Usage: npm run build && node --import tsx bench/install-fleet.ts [--hosts N] [--forks F] [--flavor mixed]  (root)
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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
}

function run(inventory: string): Timed {
  const started = performance.now();
  const r = spawnSync(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), '--inventory', inventory, '--yes', '--output', 'json', '--forks', String(forks), '-e', 'epoch_intercept=true'], {
    cwd: repo,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  const recap = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; hosts?: { changed: number; failed: number }[] })
    .find((e) => e.type === 'recap');
  const sum = (k: 'changed' | 'failed') => (recap?.hosts ?? []).reduce((a, h) => a + h[k], 0);
  if (r.status !== 0) console.error(r.stderr.slice(-2000));
  return { seconds, exitCode: r.status, changed: sum('changed'), failed: sum('failed') };
}

await withLab({ hosts, flavor }, async (lab) => {
  const install = run(lab.inventoryPath);
  const rerun = run(lab.inventoryPath);
  const ansible = spawnSync('sh', ['-c', 'command -v ansible-playbook']).status === 0;
  const result = { date: new Date().toISOString(), hosts, flavor, forks, install, rerun, ansible: ansible ? 'installed, comparison not implemented' : 'not installed' };
  writeFileSync(join(repo, 'bench/results/install-fleet.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`| hosts | install | idempotent re-run | ansible-playbook |\n|---|---|---|---|`);
  console.log(`| ${hosts} (${flavor}, forks ${forks}) | ${install.seconds.toFixed(1)} s, exit ${install.exitCode}, ${install.changed} changed tasks, ${install.failed} failed | ${rerun.seconds.toFixed(1)} s, exit ${rerun.exitCode}, ${rerun.changed} changed | ${result.ansible} |`);
});
