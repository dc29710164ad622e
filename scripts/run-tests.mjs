#!/usr/bin/env node
// The test command: unit tests (beside the source, *.test.ts) in parallel, then lab tests
// (test/**/*.test.ts, real hosts) one file at a time because they share this machine's 2 cores.
// Usage: node scripts/run-tests.mjs [--unit | --lab] [path-substring ...]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { hostSnapshot, snapshotChanges } from './host-snapshot.mjs';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const args = process.argv.slice(2);
const only = args.includes('--unit') ? 'unit' : args.includes('--lab') ? 'lab' : 'all';
const filters = args.filter((a) => !a.startsWith('--'));

function* walk(dir) {
  let names;
  try { names = readdirSync(dir); } catch { return; }
  for (const name of names) {
    if (name === 'node_modules' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (name.endsWith('.test.ts')) yield relative(root, path);
  }
}
const pick = (files) => files.filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
const unit = pick([...walk(join(root, 'agent/src')), ...walk(join(root, 'provisioner/src')), ...walk(join(root, 'contracts'))]);
const lab = pick([...walk(join(root, 'test'))]);

const totals = { pass: 0, fail: 0, skipped: 0 };
// Controller-side caches (XDG_CACHE_HOME) go to this run's own folder, removed at the end, not to the user's home.
const runDir = mkdtempSync(join(tmpdir(), 'epoch-tests-'));
function run(label, files, concurrency) {
  if (files.length === 0) return;
  console.log(`\n== ${label}: ${files.length} file(s)`);
  const tap = join(runDir, `${label.replace(/\W+/g, '-')}.tap`);
  const r = spawnSync(process.execPath, [
    '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...files,
  ], { cwd: root, stdio: 'inherit', env: { ...process.env, EPOCH_REPO: root, XDG_CACHE_HOME: join(runDir, 'cache') } });
  let text = '';
  try { text = readFileSync(tap, 'utf8'); } catch {}
  const count = (k) => Number(text.match(new RegExp(`^# ${k} (\\d+)$`, 'm'))?.[1] ?? 0);
  totals.pass += count('pass');
  totals.fail += count('fail') + count('cancelled');
  totals.skipped += count('skipped') + count('todo');
  if (r.status !== 0 && count('fail') + count('cancelled') === 0) totals.fail += 1; // a crash outside any test
}
// Machine safety: lab tests work inside their own hosts only; anything they leave behind on this machine fails the run.
const guard = only !== 'unit' && process.getuid?.() === 0 && lab.length > 0;
const before = guard ? hostSnapshot() : null;
if (only !== 'lab') run('unit tests', unit, 2);
if (only !== 'unit') run('lab tests', lab, 1);
if (before) {
  const changes = snapshotChanges(before, hostSnapshot());
  if (changes.length > 0) {
    console.log(`\n✖ machine safety: the tests changed this machine's root namespace or left things behind:\n  ${changes.join('\n  ')}`);
    totals.fail += 1;
  } else console.log('\n✔ machine safety: this machine\'s netfilter rules, trust store, users, namespaces, links, routes and mounts are as before the lab tests');
}
rmSync(runDir, { recursive: true, force: true });
console.log(`\n${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped`);
process.exit(totals.fail > 0 || totals.pass === 0 ? 1 : 0);
