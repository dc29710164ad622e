// ca: puts the signing CA where the agent reads it (agent config's ca.certFile / ca.keyFile).
//   per-host (default): `epoch-agent ca init` runs ON the host; the key never leaves it, only the cert is read back.
//   fleet / import: a CA loaded and validated on the controller (during params validation, before any SSH) is pushed:
//   cert 0644, key 0600 owned by the agent user. The key is compared by sha256 only and never diffed or logged.
//   rotate_from: switching signing to a new CA is refused until the host's system bundle already trusts it.
import { createHash, X509Certificate } from 'node:crypto';
import { z } from 'zod';
import type { CaMaterial } from '../../ca/material';
import { certFingerprint } from '../../ca/material';
import type { Change, Step } from '../../core/change';
import type { HostContext, ProvisionModule } from '../module';
import { tryRestartStep } from '../try-restart';
import { parseOsRelease, trustFamilyOf, trustLayout } from '../trust-store/distro';
import {
  type BatchProbe,
  bundleTrusts,
  commandPathArgv,
  commandPathFrom,
  dirFrom,
  fileFrom,
  probeAll,
  readDirArgv,
  readFileArgv,
  sha256Argv,
  sha256From,
  statArgv,
  statFrom,
} from './host-files';
import { defaultCaCertPath, defaultCaKeyPath, defaultMinValidDays, loadCaMaterial, normalisePem } from './params';

const agentEntry = '/opt/epoch-agent/current/epoch-agent.cjs';
const pushedNode = '/opt/epoch-agent/runtime/bin/node';
const dayMs = 86_400_000;

export const caParams = z
  .object({
    /** absent: remove the signing CA files (uninstall). The key cannot come back: that change has no undo. */
    state: z.enum(['present', 'absent']).default('present'),
    mode: z.enum(['per-host', 'fleet', 'import']).default('per-host'),
    /** Signing paths on the host: what the agent config's ca.certFile / ca.keyFile point at. */
    cert_path: z.string().startsWith('/').default(defaultCaCertPath),
    key_path: z.string().startsWith('/').default(defaultCaKeyPath),
    owner: z.string().min(1).default('epoch-agent'),
    group: z.string().min(1).default('epoch-agent'),
    /** per-host: subject CN (default `epoch-provision CA <host>`) and validity. */
    name: z.string().min(1).max(64).optional(),
    days: z.number().int().min(1).max(36500).default(1825),
    /** per-host: how to run the agent; default: its node runtime + /opt/epoch-agent/current/epoch-agent.cjs. */
    agent_command: z.array(z.string().min(1)).min(1).optional(),
    /** fleet / import, on the controller. */
    cert_file: z.string().optional(),
    key_file: z.string().optional(),
    key_passphrase_env: z.string().optional(),
    p12_file: z.string().optional(),
    p12_password_env: z.string().optional(),
    min_valid_days: z.number().int().min(0).default(defaultMinValidDays),
    /** SHA-256 fingerprint of the CA being replaced (rotation step 2, "switch signing"). */
    /** Either `AB:CD:…` (openssl, keytool) or 64 hex digits (`epoch-agent ca fingerprint`). */
    rotate_from: z
      .string()
      .regex(/^(([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{64})$/, 'a SHA-256 fingerprint: AB:CD:… or 64 hex digits')
      .optional(),
    /** A unit to `systemctl try-restart` after the signing CA changed (the agent reads its CA at start). */
    restart_unit: z.string().regex(/^[A-Za-z0-9@._:-]+\.service$/).optional(),
  })
  .strict()
  .transform((p, ctx) => {
    if (p.state === 'absent') return { ...p, material: undefined as CaMaterial | undefined };
    if (p.mode === 'per-host') {
      for (const k of ['cert_file', 'key_file', 'p12_file'] as const) {
        if (p[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is for fleet/import modes; per-host generates the CA on the host` });
      }
      return { ...p, material: undefined as CaMaterial | undefined };
    }
    return { ...p, material: loadCaMaterial(p, ctx) };
  });

export type CaParams = z.output<typeof caParams>;

interface FileState {
  mode: string;
  owner: string;
}

export interface CaFacts {
  host: string;
  certPem: string | null;
  certStat: FileState | null;
  keyStat: FileState | null;
  /** sha256 of the key file's bytes (never its content). */
  keySha256: string | null;
  /** A previous key kept beside for undo (`<key_path>.epoch-prev`). */
  backupPresent: boolean;
  /** per-host: the argv prefix that runs the agent, or null when it is not installed. */
  agentArgv: string[] | null;
  /** The node the agent will run on, found even before the agent is pushed (for --check predictions). */
  nodePath?: string | null;
  /** rotation: does the system bundle trust the CA we would switch to? null when not checked. */
  bundleTrustsNew: boolean | null;
  /**
   * Every folder above cert_path and key_path (below /): null when missing (per-host creates it, and its undo
   * removes exactly those), else the names in it when the folder is ours by name (see productDir), or [] unlisted.
   */
  dirs: Record<string, string[] | null>;
  /** Reference time for expiry checks, taken at gather so plan stays pure. */
  now: number;
}

export const caModule: ProvisionModule<CaParams, CaFacts> & {
  report(params: CaParams, facts: CaFacts): string[];
  predict(params: CaParams, facts: CaFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null;
} = {
  name: 'ca',
  params: caParams,

  async gather(host: HostContext, params: CaParams): Promise<CaFacts> {
    const t = host.transport;
    // Every read-only probe in one round trip: the files, the folders above them, the agent's runtime.
    const probes: BatchProbe[] = [];
    const add = (argv: BatchProbe['argv']) => probes.push({ argv }) - 1;
    const cert = add(readFileArgv(params.cert_path));
    const certStat = add(statArgv(params.cert_path));
    const keyStat = add(statArgv(params.key_path));
    const keySha = add(sha256Argv(params.key_path));
    const backup = add(statArgv(`${params.key_path}.epoch-prev`));
    const dirProbes: { dir: string; stat: number; list: number | null }[] = [];
    for (const path of [params.cert_path, params.key_path]) {
      for (let dir = dirOf(path); dir !== '/' && !dirProbes.some((d) => d.dir === dir); dir = dirOf(dir)) {
        dirProbes.push({ dir, stat: add(statArgv(dir)), list: productDir(dir) ? add(readDirArgv(dir)) : null });
      }
    }
    const perHostRuntime = params.state === 'present' && params.mode === 'per-host' && !params.agent_command;
    const runtime = perHostRuntime
      ? { node: add(commandPathArgv('node')), nodejs: add(commandPathArgv('nodejs')), pushed: add(statArgv(pushedNode)), entry: add(statArgv(agentEntry)) }
      : null;
    const rotating = params.state === 'present' && params.rotate_from && params.material;
    const osRelease = rotating ? add(readFileArgv('/etc/os-release')) : -1;
    const r = await probeAll(t, probes);
    const at = (i: number) => r[i]!;

    const dirs: Record<string, string[] | null> = {};
    for (const d of dirProbes) {
      if (statFrom(at(d.stat), d.dir) === null) dirs[d.dir] = null;
      else dirs[d.dir] = d.list === null ? [] : dirFrom(at(d.list), d.dir);
    }
    const facts: CaFacts = {
      host: host.name,
      certPem: fileFrom(at(cert), params.cert_path),
      certStat: statFrom(at(certStat), params.cert_path),
      keyStat: statFrom(at(keyStat), params.key_path),
      keySha256: sha256From(at(keySha), params.key_path),
      backupPresent: statFrom(at(backup), `${params.key_path}.epoch-prev`) !== null,
      agentArgv: null,
      bundleTrustsNew: null,
      now: Date.now(),
      dirs,
    };
    if (params.state === 'present' && params.mode === 'per-host') {
      if (params.agent_command) facts.agentArgv = [...params.agent_command];
      else if (runtime) {
        // The same order the agent module picks its runtime in: the distro's node, then our pushed copy.
        const node = commandPathFrom(at(runtime.node)) ?? commandPathFrom(at(runtime.nodejs)) ?? (statFrom(at(runtime.pushed), pushedNode) !== null ? pushedNode : null);
        facts.nodePath = node;
        if (node && statFrom(at(runtime.entry), agentEntry) !== null) facts.agentArgv = [node, agentEntry];
      }
    }
    if (rotating && params.material) {
      const os = parseOsRelease(fileFrom(at(osRelease), '/etc/os-release') ?? '');
      facts.bundleTrustsNew = await bundleTrusts(t, trustLayout(trustFamilyOf(os)).bundleFile, params.material.certPem);
    }
    return facts;
  },

  plan(params: CaParams, facts: CaFacts): Change[] {
    if (params.state === 'absent') return planAbsent(params, facts);
    return params.mode === 'per-host' ? planPerHost(params, facts) : planPushed(params, facts);
  },

  /** An agent release pushed earlier in the run is what per-host mode runs `ca init` with. */
  predict(params: CaParams, facts: CaFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null {
    if (params.state !== 'present' || params.mode !== 'per-host' || facts.agentArgv || !earlier.has('agent_release')) return null;
    return planPerHost(params, { ...facts, agentArgv: [facts.nodePath ?? 'node', agentEntry] });
  },

  report(params: CaParams, facts: CaFacts): string[] {
    if (!facts.certPem) return [`${facts.host}: no signing CA at ${params.cert_path}`];
    const cert = new X509Certificate(facts.certPem);
    return [`${facts.host}: signing CA ${params.cert_path} sha256 ${cert.fingerprint256} (${params.mode}, expires ${new Date(cert.validTo).toISOString()})`];
  },
};

function planAbsent(p: CaParams, f: CaFacts): Change[] {
  const files = [
    ...(f.certPem !== null || f.certStat !== null ? [p.cert_path] : []),
    ...(f.keyStat !== null ? [p.key_path] : []),
    ...(f.backupPresent ? [`${p.key_path}.epoch-prev`] : []),
  ];
  const dirs = removableDirs(f.dirs, files);
  if (files.length === 0 && dirs.length === 0) return [];
  return [
    {
      id: `ca:absent:${p.cert_path}`,
      summary: `remove the signing CA files ${files.join(', ') || '(none left)'}${f.certPem ? ` (CA sha256 ${safeFingerprint(f.certPem)})` : ''}${dirs.length ? `, then the emptied folders ${dirs.join(', ')}` : ''}`,
      steps: [...(files.length ? [{ kind: 'run', argv: ['rm', '-f', '--', ...files] } satisfies Step] : []), ...(dirs.length ? [rmdirStep(dirs)] : [])],
      undo: null,
    },
  ];
}

/** Folders named for the product (a path segment starting with `epoch-`, e.g. /etc/epoch-agent/ca) are ours. */
export const productDir = (dir: string) => dir.split('/').some((segment) => segment.startsWith('epoch-'));

/**
 * Uninstall has no record of which folders it created: it removes only folders that are ours by name (productDir)
 * and that hold nothing once `files` (and the removable folders below them) are gone. Deepest first.
 */
export function removableDirs(dirs: Record<string, string[] | null>, files: readonly string[]): string[] {
  const gone = new Set(files);
  const out: string[] = [];
  for (const dir of Object.keys(dirs).sort((a, b) => b.length - a.length)) {
    const entries = dirs[dir];
    if (entries == null || !productDir(dir)) continue;
    if (entries.every((name) => gone.has(`${dir}/${name}`))) {
      out.push(dir);
      gone.add(dir);
    }
  }
  return out;
}

/** The folders above `paths` that do not exist, deepest first: what `mkdir -p` creates and undo removes. */
export function missingDirs(dirs: Record<string, string[] | null>): string[] {
  return Object.keys(dirs)
    .filter((d) => dirs[d] === null)
    .sort((a, b) => b.length - a.length);
}

/** rmdir each folder that still exists and is empty (a folder someone filled meanwhile stays). */
function rmdirStep(dirs: readonly string[]): Step {
  return { kind: 'run', argv: ['sh', '-c', 'for d; do [ -d "$d" ] && rmdir --ignore-fail-on-non-empty -- "$d"; done; exit 0', 'epoch-rmdir', ...dirs] };
}

function planPerHost(p: CaParams, f: CaFacts): Change[] {
  const name = p.name ?? `epoch-provision CA ${f.host}`.slice(0, 64);
  if (f.certPem !== null && f.keyStat !== null) {
    const problem = certProblem(f.certPem, f.now, p.min_valid_days);
    if (problem) {
      throw new Error(`${f.host}: the CA at ${p.cert_path} ${problem}; rotate it: generate the next CA beside it (ca with cert_path/key_path of the next CA), trust both, switch the agent config, then remove the old (provisioner/src/modules/ca/README.md)`);
    }
    return permissionChanges(p, f);
  }
  if (f.certPem !== null || f.keyStat !== null) {
    throw new Error(`${f.host}: only one half of the CA exists (${f.certPem !== null ? p.cert_path : p.key_path}); refusing to overwrite it: remove it or point cert_path/key_path elsewhere`);
  }
  if (!f.agentArgv) throw new Error(`${f.host}: per-host CA mode needs the agent (${agentEntry}) installed first, or agent_command`);
  const dirs = [...new Set([dirOf(p.cert_path), dirOf(p.key_path)])];
  const created = missingDirs(f.dirs);
  return [
    {
      id: `ca:per-host:${p.cert_path}`,
      summary: `generate the signing CA "${name}" on the host (${p.days} days; the key stays on the host): ${p.cert_path}, ${p.key_path}`,
      steps: [
        { kind: 'run', argv: ['mkdir', '-p', '-m', '0755', ...dirs] },
        { kind: 'run', argv: [...f.agentArgv, 'ca', 'init', '--cert-out', p.cert_path, '--key-out', p.key_path, '--name', name, '--days', String(p.days)], timeoutMs: 60_000 },
        { kind: 'run', argv: ['chown', `${p.owner}:${p.group}`, p.key_path] },
        { kind: 'run', argv: ['chmod', '0600', p.key_path] },
        { kind: 'run', argv: ['chmod', '0644', p.cert_path] },
      ],
      // The folders mkdir -p created go too (they did not exist at gather), never one that was there before.
      undo: [{ kind: 'run', argv: ['rm', '-f', '--', p.cert_path, p.key_path] }, ...(created.length ? [rmdirStep(created)] : [])],
    },
  ];
}

function planPushed(p: CaParams, f: CaFacts): Change[] {
  const material = p.material;
  if (!material) throw new Error(`${f.host}: ${p.mode} mode without a loaded CA (params were not validated)`);
  const certPem = normalisePem(material.certPem);
  const fingerprint = certFingerprint(certPem);
  const keyPem = material.key.revealPkcs8Pem();
  const keyHash = createHash('sha256').update(keyPem).digest('hex');
  const certSame = f.certPem !== null && normalisePem(f.certPem) === certPem;
  const keySame = f.keySha256 === keyHash;

  if (p.rotate_from && !(certSame && keySame)) {
    const current = f.certPem ? certFingerprint(f.certPem) : null;
    const plain = (fp: string) => fp.replace(/:/g, '').toUpperCase();
    if (current !== null && plain(current) !== plain(p.rotate_from)) {
      throw new Error(`${f.host}: rotate_from is ${p.rotate_from} but the host signs with ${current}; refusing to switch`);
    }
    if (f.bundleTrustsNew !== true) {
      throw new Error(`${f.host}: refusing to switch signing to CA sha256 ${fingerprint}: the host's system bundle does not trust it yet; install it beside the old one first (trust-store with another name)`);
    }
  }

  const changes: Change[] = [];
  const restart: Step[] = p.restart_unit ? [tryRestartStep(p.restart_unit)] : [];
  const backup = `${p.key_path}.epoch-prev`;
  if (!keySame) {
    // The old key is kept beside (same mode) so undo can restore it without the controller ever reading it.
    const keyExisted = f.keyStat !== null;
    changes.push({
      id: `ca:key:${p.key_path}`,
      summary: `${keyExisted ? 'replace' : 'install'} the signing CA key ${p.key_path} (mode 0600, owner ${p.owner}) for CA sha256 ${fingerprint}`,
      diff: { subject: p.key_path, before: keyExisted ? '(private key, sha256 of file ' + f.keySha256 + ')' : '', after: `(private key, sha256 of file ${keyHash})` },
      steps: [
        ...(keyExisted ? [{ kind: 'run' as const, argv: ['cp', '-p', '--', p.key_path, backup] }] : []),
        { kind: 'put', path: p.key_path, content: keyPem, mode: 0o600, owner: `${p.owner}:${p.group}`, validate: ['openssl', 'pkey', '-noout', '-in', '{}'], secret: true },
      ],
      undo: keyExisted ? [{ kind: 'run', argv: ['mv', '-f', '--', backup, p.key_path] }] : [{ kind: 'run', argv: ['rm', '-f', '--', p.key_path] }],
    });
  }
  if (!certSame) {
    changes.push({
      id: `ca:cert:${p.cert_path}`,
      summary: `${f.certPem === null ? 'install' : 'replace'} the signing CA certificate ${p.cert_path}: sha256 ${fingerprint}${f.certPem ? ` (was ${safeFingerprint(f.certPem)})` : ''}`,
      diff: { subject: p.cert_path, before: f.certPem ?? '', after: certPem },
      steps: [{ kind: 'put', path: p.cert_path, content: certPem, mode: 0o644, owner: 'root:root', validate: ['openssl', 'x509', '-noout', '-in', '{}'] }, ...restart],
      undo:
        f.certPem === null
          ? [{ kind: 'run', argv: ['rm', '-f', '--', p.cert_path] }, ...restart]
          : [{ kind: 'put', path: p.cert_path, content: f.certPem, mode: 0o644, owner: 'root:root', validate: ['openssl', 'x509', '-noout', '-in', '{}'] }, ...restart],
    });
  }
  if (keySame && certSame) return permissionChanges(p, f);
  return changes;
}

/** Key mode/owner drift on an otherwise converged CA. */
function permissionChanges(p: CaParams, f: CaFacts): Change[] {
  if (!f.keyStat || (f.keyStat.mode === '600' && f.keyStat.owner === p.owner)) return [];
  return [
    {
      id: `ca:key-perms:${p.key_path}`,
      summary: `fix ${p.key_path}: mode ${f.keyStat.mode} owner ${f.keyStat.owner}, expected 600 owner ${p.owner}`,
      steps: [
        { kind: 'run', argv: ['chown', `${p.owner}:${p.group}`, p.key_path] },
        { kind: 'run', argv: ['chmod', '0600', p.key_path] },
      ],
      undo: [
        { kind: 'run', argv: ['chown', f.keyStat.owner, p.key_path] },
        { kind: 'run', argv: ['chmod', f.keyStat.mode, p.key_path] },
      ],
    },
  ];
}

function certProblem(pem: string, now: number, minValidDays: number): string | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return 'is not a readable PEM certificate';
  }
  if (!cert.ca) return 'is not a CA certificate';
  const notAfter = Date.parse(cert.validTo);
  if (notAfter <= now) return `expired on ${new Date(notAfter).toISOString()}`;
  if (notAfter - now < minValidDays * dayMs) return `expires on ${new Date(notAfter).toISOString()}, within ${minValidDays} days`;
  return null;
}

function safeFingerprint(pem: string): string {
  try {
    return certFingerprint(pem);
  } catch {
    return 'unreadable';
  }
}

const dirOf = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';

