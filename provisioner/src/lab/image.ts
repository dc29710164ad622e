// The lab image: one Debian 12 debootstrap root shared read-only by every host (overlay lower layer), plus a thin
// rhel layer on top of it. Cached under /var/tmp/epoch-lab, keyed by a hash of the package list and setup scripts:
//   base/<base-hash>/rootfs          debootstrap output (reused while the package list is unchanged)
//   images/<hash>/debian             configured root (setup-base.sh run in chroot)
//   images/<hash>/rhel               overlay delta for the rhel flavour (setup-rhel.sh), used as lowerdir=rhel:debian
//   images/<hash>/ca/ca.{crt,key}    the lab "public" CA, generated once per image, trusted by every host
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertInsideLabHome, assetsDir, baseDir, imagesDir, labHome, mountsUnder, removeTree } from './paths';
import { isAlive, runOk, sleep, tracked } from './proc';

export const imagePackages = [
  'openssh-server', 'systemd', 'systemd-sysv', 'dbus', 'ca-certificates', 'p11-kit', 'p11-kit-modules',
  'libnss3-tools', 'nftables', 'iptables', 'nodejs', 'curl', 'python3', 'openssl', 'sudo', 'procps', 'iproute2',
  // Runtimes with their own CA store, for trust-coverage: Debian's certifi (patched to the system bundle), requests,
  // and a headless JRE whose cacerts ca-certificates-java keeps in sync through an update-ca-certificates hook.
  'python3-certifi', 'python3-requests', 'openjdk-17-jre-headless', 'ca-certificates-java',
] as const;
const suite = 'bookworm';

export interface LabImage {
  hash: string;
  dir: string;
  debianRoot: string;
  rhelLayer: string;
  caCert: string;
  caKey: string;
}

/** The Debian mirror this machine already uses (deb822 sources), so the lab needs no other network access. */
export function debianMirror(): string {
  const file = '/etc/apt/sources.list.d/debian.sources';
  if (existsSync(file)) {
    for (const stanza of readFileSync(file, 'utf8').split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.*)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uri && suites.includes(suite)) return uri;
    }
  }
  if (existsSync('/etc/apt/sources.list')) {
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(readFileSync('/etc/apt/sources.list', 'utf8'));
    if (m?.[1]) return m[1];
  }
  return 'http://deb.debian.org/debian';
}

const hex = (parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
};

export function baseHash(mirror = debianMirror()): string {
  return hex(['debootstrap-minbase', suite, mirror, ...[...imagePackages].sort()]);
}

export function imageHash(mirror = debianMirror()): string {
  const dir = join(assetsDir(), 'image');
  const files = readdirSync(dir).sort();
  return hex([baseHash(mirror), ...files.flatMap((f) => [f, readFileSync(join(dir, f))])]);
}

export function imagePaths(hash: string): LabImage {
  const dir = join(imagesDir, hash);
  return {
    hash,
    dir,
    debianRoot: join(dir, 'debian'),
    rhelLayer: join(dir, 'rhel'),
    caCert: join(dir, 'ca/ca.crt'),
    caKey: join(dir, 'ca/ca.key'),
  };
}

/** The cached image if it is complete, else null. */
export function cachedImage(): LabImage | null {
  const img = imagePaths(imageHash());
  return existsSync(join(img.dir, 'ready')) ? img : null;
}

/** A lock file holding the owner's pid; a lock whose owner died is taken over. */
async function withLock<T>(lockFile: string, what: string, log: (m: string) => void, fn: () => Promise<T>): Promise<T> {
  let announced = false;
  for (;;) {
    try {
      writeFileSync(lockFile, `${process.pid} ${tracked(process.pid)?.startTime ?? ''}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const [pid, start] = readFileSync(lockFile, 'utf8').trim().split(' ');
      if (!pid || !start || !isAlive({ pid: Number(pid), startTime: start })) {
        removeTree(lockFile);
        continue;
      }
      if (!announced) log(`waiting for ${what} (pid ${pid} holds ${lockFile})`);
      announced = true;
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    removeTree(lockFile);
  }
}

/** Builds the image unless it is cached. log() receives one-line progress messages. */
export async function ensureImage(log: (m: string) => void): Promise<LabImage> {
  const mirror = debianMirror();
  const img = imagePaths(imageHash(mirror));
  if (existsSync(join(img.dir, 'ready'))) return img;
  mkdirSync(imagesDir, { recursive: true });
  mkdirSync(baseDir, { recursive: true });
  return withLock(join(labHome, 'image.lock'), 'another image build', log, async () => {
    if (existsSync(join(img.dir, 'ready'))) return img;
    const base = await ensureBase(mirror, log);
    const started = Date.now();
    log(`configuring lab image ${img.hash} (setup scripts in chroot)`);
    const tmp = `${img.dir}.building`;
    await cleanBuildDir(tmp);
    if (existsSync(img.dir)) removeTree(img.dir);
    mkdirSync(join(tmp, 'ca'), { recursive: true, mode: 0o700 });
    const ca = { cert: join(tmp, 'ca/ca.crt'), key: join(tmp, 'ca/ca.key') };
    await generateCa(ca.cert, ca.key, 'epoch lab public CA');

    const debian = join(tmp, 'debian');
    await runOk(['cp', '-a', '--reflink=auto', base, debian], { timeoutMs: 600_000 });
    await runInChroot(debian, 'setup-base.sh', ca.cert);

    // The rhel layer: an overlay upper dir over the finished debian root, kept as a lower layer for rhel hosts.
    const rhel = join(tmp, 'rhel');
    const work = join(tmp, 'rhel-work');
    const merged = join(tmp, 'rhel-merged');
    for (const d of [rhel, work, merged]) mkdirSync(d, { recursive: true });
    await mountOverlay(merged, [debian], rhel, work);
    try {
      await runInChroot(merged, 'setup-rhel.sh', ca.cert);
    } finally {
      await runOk(['umount', merged]);
    }
    removeTree(work);
    removeTree(merged);
    writeFileSync(join(tmp, 'ready'), `${new Date().toISOString()}\n`);
    renameSync(tmp, img.dir);
    log(`lab image ${img.hash} ready in ${Math.round((Date.now() - started) / 1000)} s`);
    return img;
  });
}

async function cleanBuildDir(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const m of mountsUnder(assertInsideLabHome(dir, 'clean'))) await runOk(['umount', '-l', m]);
  removeTree(dir);
}

/** debootstrap --variant=minbase with the package list, cached by baseHash. */
async function ensureBase(mirror: string, log: (m: string) => void): Promise<string> {
  const dir = join(baseDir, baseHash(mirror));
  const rootfs = join(dir, 'rootfs');
  if (existsSync(join(dir, 'ready'))) return rootfs;
  if (!existsSync('/usr/sbin/debootstrap')) {
    throw new Error('debootstrap is not installed (apt-get install debootstrap); it builds the lab image');
  }
  const tmp = `${dir}.building`;
  await cleanBuildDir(tmp);
  mkdirSync(tmp, { recursive: true });
  const cache = join(labHome, 'debs');
  mkdirSync(cache, { recursive: true });
  log(`debootstrap ${suite} from ${mirror} (a few minutes, once per package list)`);
  const started = Date.now();
  await runOk(
    [
      'debootstrap', '--variant=minbase', `--cache-dir=${cache}`, `--include=${imagePackages.join(',')}`,
      suite, join(tmp, 'rootfs'), mirror,
    ],
    { timeoutMs: 1_800_000 },
  );
  writeFileSync(join(tmp, 'ready'), `${new Date().toISOString()}\n`);
  if (existsSync(dir)) removeTree(dir);
  renameSync(tmp, dir);
  log(`debootstrap done in ${Math.round((Date.now() - started) / 1000)} s`);
  return rootfs;
}

/** Copies the image assets into <root>/epoch-lab-setup and runs one of them with `chroot <root> /bin/sh`. */
async function runInChroot(root: string, script: string, caCert: string): Promise<void> {
  const real = assertInsideLabHome(root, 'chroot into');
  const setup = join(real, 'epoch-lab-setup');
  mkdirSync(setup, { recursive: true });
  const assets = join(assetsDir(), 'image');
  for (const f of readdirSync(assets)) copyFileSync(join(assets, f), join(setup, f));
  copyFileSync(caCert, join(setup, 'lab-public-ca.crt'));
  assertInsideLabHome(real, 'chroot into');
  await runOk(['chroot', real, '/bin/sh', `/epoch-lab-setup/${script}`], {
    timeoutMs: 600_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', HOME: '/root', DEBIAN_FRONTEND: 'noninteractive' },
  });
  removeTree(setup);
}

export async function mountOverlay(target: string, lowers: string[], upper: string, work: string): Promise<void> {
  assertInsideLabHome(target, 'mount onto');
  await runOk([
    'mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}`, target,
  ]);
}

/** A self-signed CA (ECDSA P-256): the private key is created under umask 077. */
export async function generateCa(certFile: string, keyFile: string, cn: string): Promise<void> {
  writeFileSync(keyFile, '', { mode: 0o600 }); // openssl keeps the mode of an existing file
  await runOk(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile]);
  await runOk([
    'openssl', 'req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '3650', '-subj', `/CN=${cn}/O=epoch lab`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash', '-out', certFile,
  ]);
}

/** Removes cached images (and debootstrap bases) that are neither current nor used by a lab that is up. */
export function pruneImages(keep: Set<string>, log: (m: string) => void): void {
  const currentBase = baseHash();
  for (const [dir, keepSet] of [[imagesDir, keep], [baseDir, new Set([currentBase])]] as const) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir)) {
      if (keepSet.has(entry) || entry.endsWith('.building') || !/^[0-9a-f]{16}$/.test(entry)) continue;
      const path = join(dir, entry);
      if (mountsUnder(path).length > 0) continue;
      log(`removing outdated lab image cache ${path}`);
      removeTree(path);
    }
  }
}
