// bench/runner-noop: a no-op (already converged) run over N lab hosts (default 50) through the real CLI path:
// inventory + playbook loading, one SSH connection per host, facts in one round trip, gather + plan of a converged
// task, recap. Reports wall time and controller peak RSS per run. Goal (issue 3): < 3 s wall, < 150 MB RSS.
// The controller runs as an esbuild bundle (like dist/epoch-provision.mjs), so process wall time is what a user sees.
// Usage: node --import tsx bench/runner-noop.ts [--hosts N] [--forks F] [--runs R]     (root; tears the lab down)
import { spawnSync } from 'node:child_process';
import { build } from 'esbuild';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { labSkipReason, withLab } from '../test/support/lab';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const hosts = arg('hosts', 50);
const forks = arg('forks', hosts);
const runs = arg('runs', 3);
const repo = resolve(import.meta.dirname, '..');

const skip = labSkipReason();
if (skip) {
  console.error(`runner-noop: cannot run: ${skip}`);
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'eprn-bench-'));
// Inside node_modules so the bundle resolves the npm dependencies it leaves external (as dist/ does).
const bundle = join(repo, 'node_modules', '.cache', 'epoch-bench', 'runner-noop-child.mjs');
await build({ entryPoints: [join(repo, 'bench/runner-noop-child.ts')], outfile: bundle, bundle: true, platform: 'node', target: 'node20', format: 'esm', packages: 'external', logLevel: 'warning' });
try {
  mkdirSync(join(work, 'playbooks'));
  writeFileSync(
    join(work, 'playbooks', 'site.yml'),
    ['- name: converged', '  hosts: all', '  tasks:', '    - name: already there', '      command:', '        argv: ["true"]', '        creates: /etc/os-release', ''].join('\n'),
  );
  const labStart = performance.now();
  await withLab({ hosts }, async (lab) => {
    console.log(`lab of ${hosts} host(s) up in ${Math.round(performance.now() - labStart)} ms`);
    for (let i = 1; i <= runs; i++) {
      const processStart = performance.now();
      const r = spawnSync(
        process.execPath,
        [bundle, '--inventory', lab.inventoryPath, 'playbooks/site.yml', '--yes', '--forks', String(forks), '--output', 'json', '--log-dir', join(work, 'logs')],
        { cwd: work, encoding: 'utf8', timeout: 120_000 },
      );
      const processMs = Math.round(performance.now() - processStart);
      const stats = r.stderr.split('\n').find((l) => l.startsWith('{"bench"'));
      const recapLine = r.stdout.split('\n').filter(Boolean).at(-1) ?? '{}';
      const recap = JSON.parse(recapLine) as { hosts?: { ok: number; changed: number; failed: number; unreachable: number }[] };
      const sum = (k: 'ok' | 'changed' | 'failed' | 'unreachable') => (recap.hosts ?? []).reduce((n, h) => n + h[k], 0);
      console.log(
        `run ${i}: ${stats ?? `no stats (exit ${r.status}): ${r.stderr.slice(-500)}`} processWallMs=${processMs} ` +
          `hosts=${recap.hosts?.length ?? 0} ok=${sum('ok')} changed=${sum('changed')} failed=${sum('failed')} unreachable=${sum('unreachable')}`,
      );
    }
  });
} finally {
  rmSync(work, { recursive: true, force: true });
}
