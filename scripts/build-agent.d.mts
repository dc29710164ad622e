export interface AgentManifest {
  name: 'epoch-agent';
  version: string;
  files: Record<string, string>;
}
export function buildAgent(outDir: string, version: string): Promise<AgentManifest>;
