// Finding a Node runtime on a host that can run the agent bundle (built for node18), and parsing what the probe says.
import type { Argv } from '../../core/change';
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

// One read-only call: architecture, libc, distro, init system, and every Node candidate with its version.
const probeScript = `
echo "machine=$(uname -m)"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')"
( . /etc/os-release 2>/dev/null; echo "os_id=\${ID:-}"; echo "os_id_like=\${ID_LIKE:-}"; echo "os_version_id=\${VERSION_ID:-}" )
if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
for c in "$@"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  case $p in /*) ;; *) continue ;; esac
  v=$(timeout 10 "$p" --version 2>/dev/null) || v=
  echo "node=$p \${v:-unrunnable}"
done
`;

export const runtimeProbeArgv: Argv = ['sh', '-c', probeScript, 'epoch-runtime-probe', ...nodeCandidates];

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
