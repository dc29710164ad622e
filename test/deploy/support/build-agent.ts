// Lab tests build the agent exactly as `npm run build` does, into a private folder with a chosen version, so they can
// push two real versions without touching the shared dist/.
import { buildAgent as build } from '../../../scripts/build-agent.mjs';

export async function buildAgent(outDir: string, version: string): Promise<string> {
  await build(outDir, version);
  return outDir;
}
