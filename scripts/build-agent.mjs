// Builds the agent into outDir: dist layout of `npm run build` (scripts/build.mjs), also used by lab tests that need
// two real versions side by side. One CommonJS file for node18 (Debian 12's nodejs), every dependency inlined, plus
// prebuilds/<platform-arch>/origdst.node and manifest.json (version and sha256 of every file).
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

function* files(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (name !== 'manifest.json') yield path;
  }
}

/** Returns the manifest it wrote. */
export async function buildAgent(outDir, version) {
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
    logLevel: 'warning',
    // The bundle is CommonJS; the one import.meta use (the addon path under tsx) is guarded at run time.
    logOverride: { 'empty-import-meta': 'silent' },
  });
  // The native original-destination helper: one N-API binary per architecture (ABI-stable across Node 18-22).
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
  return manifest;
}
