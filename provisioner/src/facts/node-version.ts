// `node --version` → a comparable version, or null when node is absent or prints something else.

export interface NodeVersion {
  raw: string;
  major: number;
  minor: number;
  patch: number;
}

export function parseNodeVersion(output: string | null): NodeVersion | null {
  const m = output?.trim().match(/^v(\d+)\.(\d+)\.(\d+)/);
  if (!m) return null;
  return { raw: output?.trim() ?? '', major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}
