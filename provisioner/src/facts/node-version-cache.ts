// `node --version` answers by binary identity (binary-identity.ts), shared by the host facts and the agent modules'
// runtime probe: a converged host starts no node just to say which version it has.
import { identityKey } from './binary-identity';
import { controllerCacheDir, ProbeCache } from './probe-cache';

export const versionRe = /^v\d+\.\d+\.\d+\S*$/;
export const isVersion = (v: unknown): v is { version: string } => typeof v === 'object' && v !== null && typeof (v as { version: unknown }).version === 'string' && versionRe.test((v as { version: string }).version);

/** `node --version` by binary identity; one per controller process (EPOCH_PROVISION_NO_CACHE=1: no files). */
export const nodeVersions = new ProbeCache<{ version: string }>(controllerCacheDir('node-versions'), isVersion);

/** The cache key: the host, the path as found on PATH, and the binary's identity. */
export function cacheKeyForNode(host: string, path: string, identity: readonly string[]): string {
  return identityKey({ v: 1, kind: 'node --version', host, path, identity });
}

