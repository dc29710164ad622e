#!/usr/bin/env node
// Lab speed and size: times `epoch-provision lab up N` with a warm image cache, then measures the memory the hosts
// really use (PSS of every process in the hosts' cgroups, plus the drop in MemAvailable), then times `lab down`.
//   node bench/lab-scale.mjs [N=50] [--flavor debian|rhel|mixed]      (root; builds the image first if needed)
// Prints one JSON line (also appended to bench/results/lab-scale.jsonl).
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '..');
const args = process.argv.slice(2);
const hosts = Number(args.find((a) => /^\d+$/.test(a)) ?? 50);
const flavor = args.includes('--flavor') ? args[args.indexOf('--flavor') + 1] : 'debian';
const name = `bench${process.pid % 10000}`;
const labHome = process.env.EPOCH_LAB_HOME ?? '/var/tmp/epoch-lab';

function cli(...a) {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'provisioner/src/cli/main.ts'), 'lab', ...a], {
    cwd: repo,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) {
    spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'provisioner/src/cli/main.ts'), 'lab', 'down', '--name', name], { cwd: repo, stdio: 'inherit' });
    throw new Error(`lab ${a.join(' ')} exited ${r.status}`);
  }
  return seconds;
}

const memAvailableKiB = () => Number(/^MemAvailable:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))[1]);

function pssKiB(pid) {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]);
  } catch {
    return 0;
  }
}

function cgroupPids(dir) {
  const out = [];
  const walk = (d) => {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) out.push(Number(p));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {}
  };
  walk(dir);
  return out;
}

if (process.getuid() !== 0) {
  console.error('bench/lab-scale: needs root');
  process.exit(2);
}
const imageSeconds = cli('image');
const before = memAvailableKiB();
const upSeconds = cli('up', String(hosts), '--flavor', flavor, '--name', name);
await new Promise((r) => setTimeout(r, 5000)); // let boot-time spikes settle
const state = JSON.parse(readFileSync(join(labHome, 'labs', name, 'state.json'), 'utf8'));
const pids = new Set(state.hosts.flatMap((h) => h.cgroups.flatMap(cgroupPids)));
const pss = [...pids].reduce((n, p) => n + pssKiB(p), 0);
const used = before - memAvailableKiB();
const running = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'provisioner/src/cli/main.ts'), 'lab', 'status', '--name', name], { cwd: repo, encoding: 'utf8' });
const runningCount = (running.stdout.match(/ running$/gm) ?? []).length;
const downSeconds = cli('down', '--name', name);
const result = {
  when: new Date().toISOString(),
  command: `node bench/lab-scale.mjs ${hosts} --flavor ${flavor}`,
  hosts,
  flavor,
  running: runningCount,
  image_check_s: Number(imageSeconds.toFixed(1)),
  up_s: Number(upSeconds.toFixed(1)),
  down_s: Number(downSeconds.toFixed(1)),
  processes: pids.size,
  pss_total_mib: Number((pss / 1024).toFixed(0)),
  pss_per_host_mib: Number((pss / 1024 / hosts).toFixed(1)),
  memavailable_drop_mib: Number((used / 1024).toFixed(0)),
};
console.log(JSON.stringify(result));
mkdirSync(join(repo, 'bench/results'), { recursive: true });
if (existsSync(join(repo, 'bench/results'))) appendFileSync(join(repo, 'bench/results/lab-scale.jsonl'), `${JSON.stringify(result)}\n`);
