// A small typed validator for the agent's config file. Why not zod (the provisioner's validator): in the agent
// bundle zod was 750 KB of the 1.19 MB, ~10 MB of RSS and ~40 ms of CPU at every start (the agent, check-config and
// `ca init` each start node), on every host, for one schema. Messages follow zod's wording, so the agent's and the
// provisioner's errors read alike.

export type Path = readonly (string | number)[];
export interface Issue {
  path: Path;
  message: string;
  /** Issues about the object itself (unknown keys) print no "(got …)". */
  showValue: boolean;
}

const invalid = Symbol('invalid');
type Invalid = typeof invalid;

/** Checks a present value; records issues and returns `invalid`, or returns the (normalised) value. */
export type Check<T> = (value: unknown, path: Path, issues: Issue[]) => T | Invalid;

/** A field of an object: required, defaulted when absent, or optional (absent stays absent). */
interface Field<T, Kind extends 'required' | 'default' | 'optional'> {
  kind: Kind;
  check: Check<T>;
  fallback?: () => unknown;
  /** The fallback is input to validate (a section's {}), not the value itself. */
  checkFallback?: boolean;
}
// biome-ignore lint/suspicious/noExplicitAny: any field shape, inferred per key below
type AnyField = Field<any, 'required' | 'default' | 'optional'> | Check<any>;
type FieldType<F> = F extends Field<infer T, infer _K> ? T : F extends Check<infer T> ? T : never;
type IsOptional<F> = F extends Field<unknown, 'optional'> ? true : false;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type ObjectOf<S extends Record<string, AnyField>> = Simplify<
  { [K in keyof S as IsOptional<S[K]> extends true ? never : K]: FieldType<S[K]> } & {
    [K in keyof S as IsOptional<S[K]> extends true ? K : never]?: FieldType<S[K]>;
  }
>;

const fail = (issues: Issue[], path: Path, message: string): Invalid => {
  issues.push({ path, message, showValue: true });
  return invalid;
};

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (Number.isNaN(v)) return 'NaN';
  return typeof v;
}

const expected = (what: string, v: unknown) => `Invalid input: expected ${what}, received ${typeName(v)}`;

export function string(opts: { minLength?: number; message?: string } = {}): Check<string> {
  return (v, path, issues) => {
    if (typeof v !== 'string') return fail(issues, path, expected('string', v));
    if (opts.minLength !== undefined && v.length < opts.minLength) {
      return fail(issues, path, opts.message ?? `Too small: expected string to have >=${opts.minLength} characters`);
    }
    return v;
  };
}

export function integer(min?: number, max?: number): Check<number> {
  return (v, path, issues) => {
    if (typeof v !== 'number' || Number.isNaN(v)) return fail(issues, path, expected('number', v));
    if (!Number.isInteger(v)) return fail(issues, path, 'Invalid input: expected int, received number');
    if (min !== undefined && v < min) return fail(issues, path, `Too small: expected number to be >=${min}`);
    if (max !== undefined && v > max) return fail(issues, path, `Too big: expected number to be <=${max}`);
    return v;
  };
}

export function boolean(): Check<boolean> {
  return (v, path, issues) => (typeof v === 'boolean' ? v : fail(issues, path, expected('boolean', v)));
}

export function oneOf<const T extends readonly string[]>(options: T): Check<T[number]> {
  return (v, path, issues) =>
    typeof v === 'string' && options.includes(v) ? (v as T[number]) : fail(issues, path, `Invalid option: expected one of ${options.map((o) => JSON.stringify(o)).join('|')}`);
}

/** The check passes, then `problem` (a message, or null when fine) looks at the value. */
export function refine<T>(check: Check<T>, problem: (v: T) => string | null): Check<T> {
  return (v, path, issues) => {
    const r = check(v, path, issues);
    if (r === invalid) return r;
    const why = problem(r);
    return why === null ? r : fail(issues, path, why);
  };
}

export function array<T>(item: Check<T>, opts: { minItems?: number } = {}): Check<T[]> {
  return (v, path, issues) => {
    if (!Array.isArray(v)) return fail(issues, path, expected('array', v));
    if (opts.minItems !== undefined && v.length < opts.minItems) return fail(issues, path, `Too small: expected array to have >=${opts.minItems} items`);
    const out: T[] = [];
    let ok = true;
    v.forEach((x, i) => {
      const r = item(x, [...path, i], issues);
      if (r === invalid) ok = false;
      else out.push(r);
    });
    return ok ? out : invalid;
  };
}

export function record<T>(value: Check<T>): Check<Record<string, T>> {
  return (v, path, issues) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(issues, path, expected('record', v));
    const out: Record<string, T> = {};
    let ok = true;
    for (const [k, x] of Object.entries(v)) {
      const r = value(x, [...path, k], issues);
      if (r === invalid) ok = false;
      else out[k] = r;
    }
    return ok ? out : invalid;
  };
}

export const withDefault = <T>(check: Check<T>, value: T | (() => T)): Field<T, 'default'> => ({
  kind: 'default',
  check,
  fallback: typeof value === 'function' ? (value as () => T) : () => structuredClone(value),
});
/** A section whose absence means "all of its own defaults": the empty object is validated in its place. */
export const section = <T>(check: Check<T>): Field<T, 'default'> => ({ kind: 'default', check, fallback: () => ({}), checkFallback: true });
export const optional = <T>(check: Check<T>): Field<T, 'optional'> => ({ kind: 'optional', check });

/** A strict object: unknown keys are errors, so a typo never silently becomes a default. */
export function object<S extends Record<string, AnyField>>(shape: S): Check<ObjectOf<S>> {
  return (v, path, issues) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(issues, path, expected('object', v));
    const input = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const [key, f] of Object.entries(shape)) {
      const field: Field<unknown, 'required' | 'default' | 'optional'> = typeof f === 'function' ? { kind: 'required', check: f } : f;
      let x = input[key];
      if (x === undefined) {
        if (field.kind === 'optional') continue;
        if (field.kind === 'default') {
          x = field.fallback!();
          if (!field.checkFallback) {
            out[key] = x;
            continue;
          }
        }
      }
      const r = field.check(x, [...path, key], issues);
      if (r === invalid) ok = false;
      else out[key] = r;
    }
    const unknown = Object.keys(input).filter((k) => !(k in shape));
    if (unknown.length) {
      issues.push({ path, message: `Unrecognized key${unknown.length > 1 ? 's' : ''}: ${unknown.map((k) => JSON.stringify(k)).join(', ')}`, showValue: false });
      ok = false;
    }
    return ok ? (out as ObjectOf<S>) : invalid;
  };
}

/** Runs a check at the top level: the value, or every issue found. */
export function validate<T>(check: Check<T>, value: unknown): { ok: true; value: T } | { ok: false; issues: Issue[] } {
  const issues: Issue[] = [];
  const r = check(value, [], issues);
  return r === invalid || issues.length ? { ok: false, issues } : { ok: true, value: r };
}
