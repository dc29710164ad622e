// A tiny argv parser: `--flag VALUE`, `--flag=VALUE` and boolean flags; unknown flags are errors.
export interface ParsedArgs {
  positional: string[];
  values: Map<string, string>;
  booleans: Set<string>;
}

export class UsageError extends Error {}

export function parseArgs(argv: string[], valueFlags: readonly string[], booleanFlags: readonly string[] = []): ParsedArgs {
  const out: ParsedArgs = { positional: [], values: new Map(), booleans: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      out.positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    if (booleanFlags.includes(name) && eq < 0) {
      out.booleans.add(name);
      continue;
    }
    if (!valueFlags.includes(name)) throw new UsageError(`unknown option --${name}`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
    out.values.set(name, value);
  }
  return out;
}
