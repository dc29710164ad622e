// Runs the fact script on a host (one command, one round trip) and parses it.
import { RemoteCommandError } from '../core/errors';
import type { Transport } from '../transport/transport';
import { type HostFacts, hostFactsScript, parseHostFacts } from './host-facts';

export async function gatherHostFacts(transport: Transport, timeoutMs = 30_000): Promise<HostFacts> {
  const r = await transport.exec(['sh', '-c', hostFactsScript], { timeoutMs });
  if (r.exitCode !== 0 && !r.stdout.includes('@@epoch:end@@')) {
    const why = r.timedOut ? `timed out after ${timeoutMs} ms` : `exited ${r.exitCode}`;
    throw new RemoteCommandError(`gathering facts ${why}: ${r.stderr.trim()}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
  }
  return parseHostFacts(r.stdout);
}
