#!/usr/bin/env node
// Builds both programs with esbuild:
//   dist/agent/                  the agent (scripts/build-agent.mjs): epoch-agent.cjs for node18, the prebuilt
//                                original-destination addons and manifest.json (sha256 per file)
//   dist/epoch-provision.mjs     the controller CLI for node20; npm dependencies stay in node_modules
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { build } from 'esbuild';
import { buildAgent } from './build-agent.mjs';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = process.env.EPOCH_AGENT_VERSION ?? pkg.version;
const manifest = await buildAgent(join(root, 'dist/agent'), version);

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
