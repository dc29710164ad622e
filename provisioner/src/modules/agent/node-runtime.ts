// Finding a Node runtime on a host that can run the agent bundle (built for node18), and parsing what the probe says.
import type { Argv } from '../../core/change';
import type { ExecResult, Transport } from '../../transport/transport';
import { identityFrom, identityFunction, knownIdentities } from '../../facts/binary-identity';
import type { HostMemo } from '../../facts/host-memo';
import { cacheKeyForNode, nodeVersions } from '../../facts/node-version-cache';
import { pushedNodePath } from './layout';

export const minimumNodeVersion = '18.19.0';

export interface NodeCandidate {
  /** Absolute path as `command -v` resolved it. */
  path: string;
  /** `v18.19.0` as printed by `node --version`; null when the binary did not run. */
  version: string | null;
}

export interface HostRuntimeFacts {
  /** `uname -m`: x86_64, aarch64, ... */
  machine: string;
  /** `getconf GNU_LIBC_VERSION` without the prefix, e.g. `2.36`; null on musl or when unknown. */
  glibc: string | null;
  osId: string;
  osIdLike: string[];
  osVersionId: string;
  systemd: boolean;
  nodes: NodeCandidate[];
}

/** Names tried in order: Debian ships `node` (and `nodejs`), EL9's module stream ships `node`; last our pushed copy. */
export const nodeCandidates = ['node', 'nodejs', pushedNodePath] as const;

// One read-only call: architecture, libc, distro, init system, and every Node candidate with its identity (see
// binary-identity.ts; $1: the real paths whose identity this run already took on the host). Versions come from the
// controller cache while a binary's identity holds; only the others are started (`--version`, versionScript), in a
// second call.
const probeScript = `epoch_known=$1; shift
${identityFunction}
echo "machine=$(uname -m)"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')"
( . /etc/os-release 2>/dev/null; echo "os_id=\${ID:-}"; echo "os_id_like=\${ID_LIKE:-}"; echo "os_version_id=\${VERSION_ID:-}" )
if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
for c in "$@"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  case $p in /*) ;; *) continue ;; esac
  echo "node=$p"
  epoch_identity "$p" | sed 's/^/nodeid=/'
done
`;

/** `known`: knownIdentities(memo), the real paths whose identity the run holds ('' for none). */
export const runtimeProbeArgv = (known = ''): Argv => ['sh', '-c', probeScript, 'epoch-runtime-probe', known, ...nodeCandidates];

/** The run's memo (host-memo.ts) keeps the runtime facts here: agent_preflight and agent_service share one probe. */
export const runtimeMemoKey = 'node-runtime';

// Args: node binaries. Each distinct binary runs once: Debian's nodejs is a symlink to node, so its version is node's
// (a node start is 0.1-0.4 s of CPU on a busy host).
const versionScript = `set -f; seen=
for p in "$@"; do
  r=$(readlink -f -- "$p" 2>/dev/null) || r=
  v= known=
  case $r in /*[[:space:]]*|'') ;; /*) for s in $seen; do case $s in "$r=="*) v=\${s#"$r=="}; known=yes ;; esac; done ;; esac
  if [ -z "$known" ]; then
    v=$(timeout 10 "$p" --version 2>/dev/null) || v=
    case $r$v in *[[:space:]]*) ;; /*) seen="$seen $r==$v" ;; esac
  fi
  echo "node=$p \${v:-unrunnable}"
done
`;

export const nodeVersionArgv = (paths: readonly string[]): Argv => ['sh', '-c', versionScript, 'epoch-node-version', ...paths];

/** The identity lines the probe printed for each candidate path (`nodeid=` lines after its `node=` line). */
export function parseRuntimeIdentities(stdout: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('node=')) {
      const path = line.slice(5).trim();
      current = path.includes(' ') ? null : [];
      if (current) out.set(path, current);
    } else if (line.startsWith('nodeid=') && current) current.push(line.slice(7));
  }
  return out;
}

/**
 * The host's runtime facts: the probe, then `--version` only for candidates whose identity is not in the cache (or
 * is incomplete). `fail` makes the error the caller reports (its own error class). With the run's memo, a second
 * task on the same host gets the first one's answer (while nothing was applied in between).
 */
export async function probeRuntime(transport: Transport, host: string, fail: (message: string) => Error, memo?: HostMemo): Promise<HostRuntimeFacts> {
  const held = memo?.get<HostRuntimeFacts>(runtimeMemoKey);
  if (held) return held;
  const r = await transport.exec(runtimeProbeArgv(knownIdentities(memo)), { timeoutMs: 30_000 });
  return runtimeFromProbe(transport, host, fail, r, memo);
}

/** probeRuntime's work after the probe ran (alone, or in a batch of read-only probes: agent_service). */
export async function runtimeFromProbe(transport: Transport, host: string, fail: (message: string) => Error, r: ExecResult, memo?: HostMemo): Promise<HostRuntimeFacts> {
  if (r.exitCode !== 0) throw fail(`runtime probe \`${r.command}\` exited ${r.exitCode}: ${r.stderr.trim()}`);
  const facts = parseRuntimeProbe(r.stdout);
  const identities = parseRuntimeIdentities(r.stdout);
  const misses: { node: NodeCandidate; key: string | null }[] = [];
  for (const node of facts.nodes) {
    const lines = identities.get(node.path);
    if (!lines) continue; // a `node=PATH VERSION` line: already known
    const id = identityFrom(lines, true, memo);
    const key = id.lines ? cacheKeyForNode(host, node.path, id.lines) : null;
    const hit = key ? nodeVersions.peek(key) : null;
    if (hit) node.version = hit.version;
    else misses.push({ node, key });
  }
  if (misses.length === 0) {
    memo?.set(runtimeMemoKey, facts);
    return facts;
  }
  const v = await transport.exec(nodeVersionArgv(misses.map((m) => m.node.path)), { timeoutMs: 30_000 });
  if (v.exitCode !== 0) throw fail(`node version probe \`${v.command}\` exited ${v.exitCode}: ${v.stderr.trim()}`);
  const versions = new Map(parseRuntimeProbe(v.stdout).nodes.map((n) => [n.path, n.version]));
  for (const m of misses) {
    const version = versions.get(m.node.path) ?? null;
    m.node.version = version;
    // Only a version is remembered; a binary that did not run is asked again next time.
    if (version && m.key) await nodeVersions.get(m.key, async () => ({ version }));
  }
  memo?.set(runtimeMemoKey, facts);
  return facts;
}

export function parseRuntimeProbe(stdout: string): HostRuntimeFacts {
  const facts: HostRuntimeFacts = { machine: '', glibc: null, osId: '', osIdLike: [], osVersionId: '', systemd: false, nodes: [] };
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).trim();
    if (key === 'machine') facts.machine = value;
    else if (key === 'glibc') facts.glibc = value || null;
    else if (key === 'os_id') facts.osId = value;
    else if (key === 'os_id_like') facts.osIdLike = value.split(/\s+/).filter(Boolean);
    else if (key === 'os_version_id') facts.osVersionId = value;
    else if (key === 'systemd') facts.systemd = value === 'yes';
    else if (key === 'node') {
      const space = value.indexOf(' ');
      const path = space < 0 ? value : value.slice(0, space);
      const version = space < 0 ? '' : value.slice(space + 1);
      if (facts.nodes.some((n) => n.path === path)) continue;
      facts.nodes.push({ path, version: /^v\d+\.\d+\.\d+/.test(version) ? version : null });
    }
  }
  return facts;
}

/** Compares dotted numeric versions (`v18.19.0`, `18.19`); a missing part counts as 0. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string) => v.replace(/^v/, '').split(/[.-]/).slice(0, 3).map((p) => Number.parseInt(p, 10) || 0);
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The first candidate new enough to run the agent, or null. */
export function usableNode(nodes: readonly NodeCandidate[], minimum = minimumNodeVersion): NodeCandidate | null {
  return nodes.find((n) => n.version !== null && compareVersions(n.version, minimum) >= 0) ?? null;
}

export function isDebianFamily(facts: Pick<HostRuntimeFacts, 'osId' | 'osIdLike'>): boolean {
  return [facts.osId, ...facts.osIdLike].some((id) => id === 'debian' || id === 'ubuntu');
}

export function isRhelFamily(facts: Pick<HostRuntimeFacts, 'osId' | 'osIdLike'>): boolean {
  return [facts.osId, ...facts.osIdLike].some((id) => ['rhel', 'centos', 'fedora', 'rocky', 'almalinux'].includes(id));
}

/** `uname -m` → Node's process.arch, for matching a runtime pushed from the controller. */
export function nodeArchOf(machine: string): string | null {
  const map: Record<string, string> = { x86_64: 'x64', amd64: 'x64', aarch64: 'arm64', arm64: 'arm64' };
  return map[machine] ?? null;
}
