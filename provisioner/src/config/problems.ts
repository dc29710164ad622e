// Config errors are collected, never thrown one at a time: the user fixes every problem in one pass (exit 2).
import { ConfigError, type ConfigProblem } from '../core/errors';
import { maskSecrets } from './vault';

export class Problems {
  readonly list: ConfigProblem[] = [];

  add(location: string, message: string): void {
    this.list.push({ location, message });
  }

  /** Moves the problems of a ConfigError into this collector; rethrows anything else. */
  absorb(error: unknown): void {
    if (error instanceof ConfigError) this.list.push(...error.problems);
    else throw error;
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new ConfigError(dedupe(this.list));
  }
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.location}\0${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A value for an error message: short, JSON-shaped, never the content of a vaulted secret. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  text = maskSecrets(text);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
