// What epoch-provision already left on the host: the agent release `current` points at, and the journal
// generations under /var/lib/epoch-provision/journal/ (one file per run, named <generation>.jsonl).

export const journalDir = '/var/lib/epoch-provision/journal';

export interface EpochState {
  /** Release folder name `/opt/epoch-agent/current` points at, or null when no agent is installed. */
  agentRelease: string | null;
  /** Journal generations, oldest first. */
  generations: string[];
  /** The newest generation, or null on a host we never changed. */
  lastGeneration: string | null;
}

export function parseEpochState(currentLink: string | null, journalListing: string | null): EpochState {
  const target = currentLink?.trim();
  const agentRelease = target ? (target.replace(/\/+$/, '').split('/').pop() ?? null) : null;
  const generations = (journalListing ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.endsWith('.jsonl'))
    .map((l) => l.slice(0, -'.jsonl'.length))
    .sort();
  return { agentRelease: agentRelease || null, generations, lastGeneration: generations.at(-1) ?? null };
}
