#!/usr/bin/env node
// Makes a fresh Debian/Ubuntu clone ready to run: missing apt packages (scripts/apt-packages.txt), npm ci when
// node_modules is missing, and the build when dist/ is older than the sources. Quiet and quick when all is there.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const run = (cmd, args, env = {}) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`ensure-prereqs: \`${cmd} ${args.join(' ')}\` failed (exit ${r.status})`);
    process.exit(1);
  }
};
const wanted = readFileSync(join(root, 'scripts/apt-packages.txt'), 'utf8')
  .split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${field} format, not a JS template
const q = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\n', ...wanted], { encoding: 'utf8' });
const installed = new Set(q.stdout.split('\n').filter((l) => l.endsWith('install ok installed')).map((l) => l.split(' ')[0]));
const missing = wanted.filter((p) => !installed.has(p));
if (missing.length > 0) {
  if (process.getuid?.() !== 0) {
    console.error(`ensure-prereqs: missing apt packages: ${missing.join(' ')}; run as root (sudo) so they can be installed`);
    process.exit(2);
  }
  console.log(`ensure-prereqs: installing ${missing.join(' ')}`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { DEBIAN_FRONTEND: 'noninteractive' });
}
if (!existsSync(join(root, 'node_modules/.package-lock.json'))) run('npm', ['ci', '--no-audit', '--no-fund']);
run('npm', ['run', '--silent', 'build']);
