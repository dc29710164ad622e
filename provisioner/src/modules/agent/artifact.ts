// The agent release as the controller ships it: dist/agent/ (written by scripts/build.mjs) verified against its
// manifest, packed into one deterministic tar.gz that the host unpacks into /opt/epoch-agent/releases/<version>/.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ProvisionError } from '../../core/errors';
import { versionPattern } from './layout';

export interface AgentManifest {
  name: 'epoch-agent';
  version: string;
  /** relative path → sha256 hex, for every file but manifest.json itself. */
  files: Record<string, string>;
}

export interface AgentArtifact {
  dir: string;
  version: string;
  manifest: AgentManifest;
  /** Every file of the release dir, manifest.json included, with its sha256: what the host must match. */
  expectedSums: Record<string, string>;
  /** gzip'd ustar of the release dir: packed on first use (gzip -9 of the bundle is ~60 ms, and a converged fleet
   * uploads nothing). */
  readonly tarball: Buffer;
}

export class ArtifactError extends ProvisionError {
  constructor(message: string) {
    super(message, 'artifact');
  }
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

export function parseManifest(text: string, source: string): AgentManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ArtifactError(`${source}: not JSON (${(err as Error).message})`);
  }
  const m = raw as Partial<AgentManifest>;
  if (m?.name !== 'epoch-agent') throw new ArtifactError(`${source}: name is ${JSON.stringify(m?.name)}, expected "epoch-agent"`);
  if (typeof m.version !== 'string' || !versionPattern.test(m.version)) {
    throw new ArtifactError(`${source}: version ${JSON.stringify(m.version)} is not a valid release name (${versionPattern})`);
  }
  if (!m.files || typeof m.files !== 'object') throw new ArtifactError(`${source}: files must map paths to sha256`);
  for (const [path, sum] of Object.entries(m.files)) {
    if (normalize(path) !== path || path.startsWith('/') || path.startsWith('..') || /[\s\\]/.test(path)) {
      throw new ArtifactError(`${source}: file path ${JSON.stringify(path)} must be relative, normalised and without spaces`);
    }
    if (!/^[0-9a-f]{64}$/.test(String(sum))) throw new ArtifactError(`${source}: sha256 of ${path} is ${JSON.stringify(sum)}, expected 64 hex digits`);
  }
  if (!('epoch-agent.cjs' in m.files)) throw new ArtifactError(`${source}: files lacks epoch-agent.cjs`);
  return m as AgentManifest;
}

const cache = new Map<string, AgentArtifact>();

/** Loads and verifies an artifact dir once per process (gather runs per host; 50 hosts share one read). */
export function loadAgentArtifact(dir: string): AgentArtifact {
  const hit = cache.get(dir);
  if (hit) return hit;
  const manifestPath = join(dir, 'manifest.json');
  let manifestText: string;
  try {
    manifestText = readFileSync(manifestPath, 'utf8');
  } catch (err) {
    throw new ArtifactError(`cannot read ${manifestPath} (${(err as NodeJS.ErrnoException).code ?? err}); run \`npm run build\` first`);
  }
  const manifest = parseManifest(manifestText, manifestPath);
  const entries: { path: string; data: Buffer }[] = [];
  for (const [path, expected] of Object.entries(manifest.files).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const data = readFileSync(join(dir, path));
    const actual = sha256(data);
    if (actual !== expected) throw new ArtifactError(`${join(dir, path)}: sha256 is ${actual}, manifest says ${expected}; rebuild`);
    entries.push({ path, data });
  }
  entries.push({ path: 'manifest.json', data: Buffer.from(manifestText) });
  let tarball: Buffer | null = null;
  const artifact: AgentArtifact = {
    dir,
    version: manifest.version,
    manifest,
    expectedSums: { ...manifest.files, 'manifest.json': sha256(manifestText) },
    get tarball() {
      tarball ??= gzipSync(packTar(entries), { level: 9 });
      return tarball;
    },
  };
  cache.set(dir, artifact);
  return artifact;
}

/** A minimal deterministic ustar writer: regular files only, mode 0644, owner 0:0, mtime 0. */
export function packTar(entries: readonly { path: string; data: Buffer }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const { path, data } of entries) {
    if (Buffer.byteLength(path) > 100) throw new ArtifactError(`tar: path ${path} is longer than 100 bytes`);
    const header = Buffer.alloc(512);
    const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'utf8');
    const octal = (offset: number, length: number, n: number) => field(offset, length, `${n.toString(8).padStart(length - 1, '0')}\0`);
    field(0, 100, path);
    octal(100, 8, 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, data.length);
    octal(136, 12, 0);
    field(148, 8, '        ');
    field(156, 1, '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    field(265, 32, 'root');
    field(297, 32, 'root');
    let sum = 0;
    for (const byte of header) sum += byte;
    field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}
