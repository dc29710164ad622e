// Runs the fact script on a host (one command, one round trip) and parses it.
import { RemoteCommandError } from '../core/errors';
import type { Transport } from '../transport/transport';
import { identityFrom } from './binary-identity';
import { FactParseError } from './fact-parse-error';
import type { HostMemo } from './host-memo';
import { type HostFacts, hostFactsScript, parseHostFacts } from './host-facts';
import { cacheKeyForNode, nodeVersions, versionRe } from './node-version-cache';
import { type NodeVersion, parseNodeVersion } from './node-version';
import { splitSections } from './sections';

/** `memo`: the run's memo for this host, which keeps the node binary's identity for the tasks that follow. */
export async function gatherHostFacts(transport: Transport, timeoutMs = 30_000, memo?: HostMemo): Promise<HostFacts> {
  const r = await transport.exec(['sh', '-c', hostFactsScript], { timeoutMs });
  if (r.exitCode !== 0 && !r.stdout.includes('@@epoch:end@@')) {
    const why = r.timedOut ? `timed out after ${timeoutMs} ms` : `exited ${r.exitCode}`;
    throw new RemoteCommandError(`gathering facts ${why}: ${r.stderr.trim()}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
  }
  const facts = parseHostFacts(r.stdout);
  const identity = splitSections(r.stdout).get('node-identity');
  if (typeof identity === 'string') facts.node = await nodeVersionFor(transport, identity, timeoutMs, memo);
  return facts;
}

/** node's version: from the cache while its identity holds, else `node --version` (a second call), then cached. */
async function nodeVersionFor(transport: Transport, section: string, timeoutMs: number, memo: HostMemo | undefined): Promise<NodeVersion | null> {
  const lines = section.split('\n').filter((l) => l !== '');
  const path = lines.find((l) => l.startsWith('path='))?.slice(5) ?? '';
  if (!path.startsWith('/')) throw new FactParseError('node', 'the node-identity section has no path= line', section);
  const id = identityFrom(lines, true, memo);
  const key = id.lines ? cacheKeyForNode(transport.hostName, path, id.lines) : null;
  const hit = key ? nodeVersions.peek(key) : null;
  if (hit) return parseNodeVersion(hit.version);
  const r = await transport.exec([path, '--version'], { timeoutMs });
  const version = r.exitCode === 0 ? r.stdout.trim() : '';
  // Only a version is remembered; a node that did not run is asked again next time.
  if (key && versionRe.test(version)) await nodeVersions.get(key, async () => ({ version }));
  return parseNodeVersion(version || null);
}
