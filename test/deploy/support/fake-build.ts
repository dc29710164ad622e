// A small agent build (the real layout: bundle, per-arch addon, manifest) for release-mechanics tests.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

export function writeFakeBuild(dir: string, version: string): string {
  mkdirSync(join(dir, 'prebuilds/linux-x64'), { recursive: true });
  mkdirSync(join(dir, 'prebuilds/linux-arm64'), { recursive: true });
  const files: Record<string, string | Buffer> = {
    'epoch-agent.cjs': `#!/usr/bin/env node\nconsole.log(${JSON.stringify(version)})\n`,
    'prebuilds/linux-x64/origdst.node': Buffer.from(`x64 addon ${version}`),
    'prebuilds/linux-arm64/origdst.node': Buffer.from(`arm64 addon ${version}`),
  };
  for (const [path, data] of Object.entries(files)) writeFileSync(join(dir, path), data);
  const manifest = { name: 'epoch-agent', version, files: Object.fromEntries(Object.entries(files).map(([p, d]) => [p, sha(d)])) };
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}
