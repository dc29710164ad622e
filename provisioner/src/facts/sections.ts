// Splits the fact script's output into named sections. A section marked absent (tool not installed) is null.

const marker = /^@@epoch:([a-z0-9-]+)(:absent)?@@$/;

export function splitSections(output: string): Map<string, string | null> {
  const sections = new Map<string, string | null>();
  let name: string | null = null;
  let lines: string[] = [];
  const flush = () => {
    if (name !== null && !sections.has(name)) sections.set(name, lines.join('\n'));
  };
  for (const line of output.split('\n')) {
    const m = line.match(marker);
    if (m) {
      flush();
      name = m[1] ?? null;
      lines = [];
      if (m[2] && name) {
        sections.set(name, null);
        name = null;
      }
      continue;
    }
    if (name !== null) lines.push(line);
  }
  flush();
  return sections;
}
