// Where the lab keeps things, and the guards every destructive step goes through: nothing is chrooted into,
// removed or written unless it resolves inside the lab's own directory, and never to `/`.
import { existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Everything the lab creates on disk lives here (image cache, per-lab overlays, state). */
const configuredHome = resolve(process.env.EPOCH_LAB_HOME ?? '/var/tmp/epoch-lab');
// Resolved through symlinks once, so that every path built from it is real (writeInRoot relies on that).
export const labHome = existsSync(configuredHome) ? realpathSync(configuredHome) : configuredHome;
export const imagesDir = join(labHome, 'images');
export const baseDir = join(labHome, 'base');
export const labsDir = join(labHome, 'labs');
export const slotsDir = join(labHome, 'slots');

/** The repository root: the nearest ancestor holding provisioner/lab (works from tsx sources and from dist/). */
export function repoRoot(): string {
  if (process.env.EPOCH_REPO && existsSync(join(process.env.EPOCH_REPO, 'provisioner/lab'))) return process.env.EPOCH_REPO;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'provisioner/lab/upstream-server.mjs'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the repository (provisioner/lab) above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const assetsDir = () => join(repoRoot(), 'provisioner/lab');

/**
 * Refuses a path that resolves to `/` or outside labHome. Call before every chroot, rm -rf and mount target.
 * Returns the resolved path.
 */
export function assertInsideLabHome(path: string, what: string): string {
  const real = existsSync(path) ? realpathSync(path) : resolve(path);
  const home = existsSync(labHome) ? realpathSync(labHome) : labHome;
  if (real === '/' || real === home || !real.startsWith(home + sep)) {
    throw new Error(`refusing to ${what} ${path}: it resolves to ${real}, expected a path inside ${home}`);
  }
  return real;
}

/** Mount points at or below dir (from /proc/self/mountinfo), deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const point = mp.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (point === dir || point.startsWith(prefix)) out.push(point);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** rm -rf inside labHome only, and never through a live mount. */
export function removeTree(path: string): void {
  if (!existsSync(path) && !isSymlink(path)) return;
  const real = assertInsideLabHome(path, 'remove');
  const mounted = mountsUnder(real);
  if (mounted.length > 0) throw new Error(`refusing to remove ${real}: still mounted: ${mounted.join(', ')}`);
  rmSync(real, { recursive: true, force: true });
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Writes a file inside a host root (an overlay mount) without following a symlink out of it: the target and its
 * parent folder must be real (non-link) entries. Atomic (temp + rename).
 */
export function writeInRoot(root: string, rel: string, content: string | Buffer, mode = 0o644): void {
  const target = join(root, rel);
  const parent = dirname(target);
  if (!target.startsWith(root + sep)) throw new Error(`${rel} escapes ${root}`);
  mkdirSync(parent, { recursive: true });
  if (realpathSync(parent) !== parent) throw new Error(`refusing to write ${target}: ${parent} is or contains a symlink`);
  if (isSymlink(target)) throw new Error(`refusing to write ${target}: it is a symlink`);
  const tmp = `${target}.epoch-tmp`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, target);
}

/** Atomic write of a controller-side file (state, inventory): temp file in the same folder, then rename. */
export function writeAtomic(path: string, content: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, path);
}
