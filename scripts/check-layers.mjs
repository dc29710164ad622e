#!/usr/bin/env node
// Enforces the one-way layering from the brief, so a wrong-way import fails `npm run lint`:
//   provisioner: cli → runner → modules → facts → transport → core   (config beside runner, ca beside modules)
//   agent:       main → io → proxy → certs                           (observe beside proxy, config/log are leaves)
// The agent and the provisioner never import each other; both may import contracts/ (types only).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

/** For each layer folder: the layer folders it may import from (besides itself). */
const allowed = {
  provisioner: {
    cli: ['runner', 'config', 'modules', 'facts', 'transport', 'ca', 'lab', 'core', 'output'],
    output: ['core'],
    lab: ['core'],
    runner: ['config', 'modules', 'facts', 'transport', 'core'],
    config: ['modules', 'core'],
    modules: ['facts', 'transport', 'ca', 'core'],
    ca: ['core'],
    facts: ['transport', 'core'],
    transport: ['core'],
    core: [],
  },
  agent: {
    'main.ts': ['cli', 'io', 'proxy', 'observe', 'export', 'certs', 'config', 'log', 'native'],
    cli: ['io', 'proxy', 'observe', 'export', 'certs', 'config', 'log', 'native'],
    io: ['proxy', 'observe', 'export', 'certs', 'config', 'log', 'native'],
    export: ['observe', 'config', 'log'],
    proxy: ['observe', 'certs', 'config', 'log'],
    observe: ['config'],
    certs: ['config'],
    native: [],
    config: [],
    log: [],
  },
};

const importRe = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'dist') continue;
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (/\.(ts|mts|mjs|js)$/.test(name)) yield path;
  }
}

function layerOf(file) {
  const rel = relative(root, file).split(sep);
  if (rel[0] === 'contracts') return { pkg: 'contracts', layer: 'contracts' };
  if ((rel[0] === 'agent' || rel[0] === 'provisioner') && rel[1] === 'src') {
    return { pkg: rel[0], layer: rel.length === 3 ? rel[2] : rel[2] };
  }
  return null;
}

const problems = [];
for (const pkg of ['agent', 'provisioner', 'contracts']) {
  const base = pkg === 'contracts' ? join(root, 'contracts') : join(root, pkg, 'src');
  let files;
  try { files = [...walk(base)]; } catch { continue; }
  for (const file of files) {
    const from = layerOf(file);
    if (!from) continue;
    const text = readFileSync(file, 'utf8');
    const isTest = /\.test\.ts$/.test(file);
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2];
      if (!spec?.startsWith('.')) continue;
      const to = layerOf(resolve(dirname(file), spec));
      const where = `${relative(root, file)}: imports '${spec}'`;
      if (!to) {
        if (!isTest) problems.push(`${where}, outside agent/src, provisioner/src and contracts/`);
        continue;
      }
      if (from.pkg === 'contracts' && to.pkg !== 'contracts') problems.push(`${where}; contracts/ must import nothing else`);
      if (to.pkg === 'contracts' || from.pkg === 'contracts') continue;
      if (from.pkg !== to.pkg) { problems.push(`${where}; the agent and the provisioner never import each other`); continue; }
      if (from.layer === to.layer) continue;
      const may = allowed[from.pkg][from.layer];
      if (!may) { problems.push(`${relative(root, file)}: layer '${from.layer}' is not in scripts/check-layers.mjs`); continue; }
      if (!may.includes(to.layer) && !(isTest && to.layer === 'core')) {
        problems.push(`${where}; ${from.pkg} layer '${from.layer}' may import only [${may.join(', ')}], not '${to.layer}'`);
      }
    }
  }
}
if (problems.length) {
  console.error(`check-layers: ${problems.length} wrong-way import(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('check-layers: imports follow the layering');
