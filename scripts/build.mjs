#!/usr/bin/env node
// Builds both programs with esbuild:
//   dist/agent/epoch-agent.cjs   the agent, one CommonJS file for node18 (Debian 12's nodejs), every dependency inlined,
//                                plus dist/agent/prebuilds/<platform-arch>/origdst.node and manifest.json (sha256 per file)
//   dist/epoch-provision.mjs     the controller CLI for node20; npm dependencies stay in node_modules
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = process.env.EPOCH_AGENT_VERSION ?? pkg.version;
const agentOut = join(root, 'dist/agent');
rmSync(agentOut, { recursive: true, force: true });
mkdirSync(agentOut, { recursive: true });

await build({
  entryPoints: [join(root, 'agent/src/main.ts')],
  outfile: join(agentOut, 'epoch-agent.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  external: ['*.node'],
  define: { 'process.env.EPOCH_AGENT_VERSION': JSON.stringify(version) },
  banner: { js: '#!/usr/bin/env node' },
  legalComments: 'none',
  logLevel: 'warning',
  // agent/src/native/origdst.ts reads import.meta.url only when running from source (no __dirname there).
  logOverride: { 'empty-import-meta': 'silent' },
});

// The native original-destination helper: one N-API binary per architecture (ABI-stable across Node 18-22).
const prebuilds = join(root, 'agent/native/prebuilds');
if (existsSync(prebuilds)) {
  for (const arch of readdirSync(prebuilds)) {
    const src = join(prebuilds, arch, 'origdst.node');
    if (!existsSync(src)) continue;
    mkdirSync(join(agentOut, 'prebuilds', arch), { recursive: true });
    copyFileSync(src, join(agentOut, 'prebuilds', arch, 'origdst.node'));
  }
}

function* files(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (name !== 'manifest.json') yield path;
  }
}
const manifest = {
  name: 'epoch-agent',
  version,
  files: Object.fromEntries(
    [...files(agentOut)].map((f) => [relative(agentOut, f), createHash('sha256').update(readFileSync(f)).digest('hex')]),
  ),
};
writeFileSync(join(agentOut, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);

await build({
  entryPoints: [join(root, 'provisioner/src/cli/main.ts')],
  outfile: join(root, 'dist/epoch-provision.mjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  define: { 'process.env.EPOCH_VERSION': JSON.stringify(pkg.version) },
  legalComments: 'none',
  logLevel: 'warning',
});
console.log(`built dist/agent (epoch-agent ${version}, ${Object.keys(manifest.files).length} files) and dist/epoch-provision.mjs`);
