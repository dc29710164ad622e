// The Node trust probe (trust-coverage.ts: nodeProbe) starts node twice on the host, a few hundred ms of CPU each on a
// busy host. Its answer (version, whether the CA is among the compiled-in roots, whether node reads the OpenSSL default
// store) depends only on:
//   - the node binary and the shared libraries it loads (Debian's node is a small stub over libnode and the system
//     libssl): identified by realpath, device, inode, size, mtime and ctime of each file (ldd lists the libraries);
//     a package upgrade replaces the file (new inode, new ctime), an in-place rewrite changes mtime/ctime;
//   - the environment the probe runs in that Node and OpenSSL read (NODE_*, OPENSSL_*, SSL_CERT_*; e.g.
//     NODE_OPTIONS=--use-openssl-ca), hashed on the host;
//   - the CA being checked (its SHA-256), and the probe's own source.
// So a converged host pays one `stat` (in the gather's batch) instead of two node starts. An identity that cannot be
// taken completely (no ldd, an unreadable library) is never cached: the probe runs.
import { createHash } from 'node:crypto';
import type { Argv } from '../../core/change';
import type { ExecResult } from '../../transport/transport';
import { type BinaryIdentity, identityFrom, identityFunction, identityKey } from '../../facts/binary-identity';
import type { HostMemo } from '../../facts/host-memo';
import { controllerCacheDir, ProbeCache } from '../../facts/probe-cache';

export interface NodeProbeResult {
  version: string;
  bundled: boolean;
  system: boolean;
}

/** `known`: knownIdentities(memo), the real paths whose identity this run already took on the host. */
export function nodeIdentityArgv(node: string, known = ''): Argv {
  return ['sh', '-c', `epoch_known=$1\n${identityFunction}\nepoch_identity "$2"`, 'epoch-node-identity', known, node];
}

/** The node on PATH (`path=`, nothing when there is none) and its identity, in one call. */
export function nodeOnPathIdentityArgv(known = ''): Argv {
  return ['sh', '-c', `epoch_known=$1\n${identityFunction}\np=$(command -v node 2>/dev/null) || exit 0\ncase $p in /*) echo "path=$p"; epoch_identity "$p" ;; esac`, 'epoch-node-identity', known];
}

/** The node on PATH that nodeOnPathIdentityArgv found, or null. */
export function nodeOnPathFrom(r: ExecResult): string | null {
  const path = r.stdout.split('\n').find((l) => l.startsWith('path='))?.slice(5);
  return r.exitCode === 0 && path?.startsWith('/') ? path : null;
}

export type NodeIdentity = BinaryIdentity;

/** `memo`: the run's memo, which answers known=yes and keeps what was taken now. */
export function parseNodeIdentity(r: ExecResult, memo?: HostMemo): NodeIdentity {
  const id = identityFrom(r.stdout.split('\n').filter((l) => l !== ''), r.exitCode === 0, memo);
  return id.lines ? id : { lines: null, why: r.exitCode === 0 ? id.why : `identity probe exited ${r.exitCode}: ${r.stderr.trim()}` };
}

/** The cache key: host, the node as configured, its identity, the CA's SHA-256 ('' when unknown) and the probe's source. */
export function nodeProbeKey(host: string, node: string, identity: readonly string[], caPem: string, probeSource: string): string {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  return identityKey({ v: 1, host, node, identity, ca: caPem === '' ? '' : sha(caPem), probe: sha(probeSource) });
}

export function isNodeProbeResult(v: unknown): v is NodeProbeResult {
  const o = v as NodeProbeResult;
  return typeof o === 'object' && o !== null && typeof o.version === 'string' && /^v\d+\./.test(o.version) && typeof o.bundled === 'boolean' && typeof o.system === 'boolean';
}

/** One per controller process. */
export const nodeProbeResults = new ProbeCache<NodeProbeResult>(controllerCacheDir('node-probes'), isNodeProbeResult);
