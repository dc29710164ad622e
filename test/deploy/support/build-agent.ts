// Builds the agent the way scripts/build.mjs does (same esbuild options, prebuilds, manifest), but into a private
// folder and with a chosen version, so lab tests can push two real versions without touching the shared dist/.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(new URL('../../..', import.meta.url).pathname);

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (name !== 'manifest.json') yield path;
  }
}

export async function buildAgent(outDir: string, version: string): Promise<string> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: [join(root, 'agent/src/main.ts')],
    outfile: join(outDir, 'epoch-agent.cjs'),
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    external: ['*.node'],
    define: { 'process.env.EPOCH_AGENT_VERSION': JSON.stringify(version) },
    banner: { js: '#!/usr/bin/env node' },
    legalComments: 'none',
    logLevel: 'error',
    logOverride: { 'empty-import-meta': 'silent' },
  });
  const prebuilds = join(root, 'agent/native/prebuilds');
  if (existsSync(prebuilds)) {
    for (const arch of readdirSync(prebuilds)) {
      const src = join(prebuilds, arch, 'origdst.node');
      if (!existsSync(src)) continue;
      mkdirSync(join(outDir, 'prebuilds', arch), { recursive: true });
      copyFileSync(src, join(outDir, 'prebuilds', arch, 'origdst.node'));
    }
  }
  const manifest = {
    name: 'epoch-agent',
    version,
    files: Object.fromEntries([...files(outDir)].map((f) => [relative(outDir, f), createHash('sha256').update(readFileSync(f)).digest('hex')])),
  };
  writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return outDir;
}
