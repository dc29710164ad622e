// The small, honest subset of Jinja2 we resolve: `{{ var }}`, `{{ var.sub }}`, `{{ var['k'] }}`, `{{ var[0] }}`
// and `{{ var | default('x') }}` (also `default(other_var)` and `default('x', true)`). Anything else — other
// filters, expressions, `{% %}` blocks, lookups — is a ConfigError naming the expression, never literal text.
// A value that is exactly one `{{ ref }}` keeps its type (a list stays a list, 22 stays a number).
import { ConfigError, type ConfigProblem } from '../core/errors';
import { Problems, show } from './problems';
import { VaultValue } from './vault';

export type RefStep = string | number;

export interface TemplateRef {
  /** Variable name, then the attribute/index path. */
  path: RefStep[];
}

export type DefaultArg = { kind: 'literal'; value: unknown } | { kind: 'ref'; ref: TemplateRef };

export interface TemplateExpr {
  source: string;
  ref: TemplateRef;
  default?: { value: DefaultArg; whenFalsy: boolean };
}

export type Segment = { kind: 'text'; text: string } | { kind: 'expr'; expr: TemplateExpr };

export class TemplateSyntaxError extends Error {}

export const hasTemplate = (text: string): boolean => /\{\{|\{%|\{#/.test(text);

/** Splits a string into text and `{{ }}` expressions; throws TemplateSyntaxError for anything unsupported. */
export function parseTemplate(text: string): Segment[] {
  const blocks = /\{%|\{#/.exec(text);
  if (blocks) {
    throw new TemplateSyntaxError(
      `Jinja ${blocks[0] === '{%' ? 'statements ({% %})' : 'comments ({# #})'} are not supported in ${show(text)} (only {{ var }}, {{ var.sub }} and {{ var | default(...) }})`,
    );
  }
  const segments: Segment[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < text.length) {
    const open = text.indexOf('{{', pos);
    let literal = text.slice(pos, open < 0 ? undefined : open);
    if (trimNext) literal = literal.trimStart();
    let inner = '';
    let close = -1;
    if (open >= 0) {
      close = findClose(text, open + 2);
      if (close < 0) throw new TemplateSyntaxError(`unterminated {{ in ${show(text)}`);
      inner = text.slice(open + 2, close);
      // Jinja whitespace control: {{- strips the whitespace before, -}} the whitespace after
      if (inner.startsWith('-')) {
        literal = literal.trimEnd();
        inner = inner.slice(1);
      }
      trimNext = inner.endsWith('-');
      if (trimNext) inner = inner.slice(0, -1);
    }
    if (literal) segments.push({ kind: 'text', text: literal });
    if (open < 0) break;
    segments.push({ kind: 'expr', expr: parseExpression(inner) });
    pos = close + 2;
  }
  return segments;
}

/** The matching `}}`, skipping quoted strings. */
function findClose(text: string, from: number): number {
  let quote: string | undefined;
  for (let i = from; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '}' && text[i + 1] === '}') return i;
  }
  return -1;
}

class Lexer {
  pos = 0;
  constructor(readonly src: string) {}
  ws(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos]!)) this.pos++;
  }
  peek(): string | undefined {
    this.ws();
    return this.src[this.pos];
  }
  eat(s: string): boolean {
    this.ws();
    if (this.src.startsWith(s, this.pos)) {
      this.pos += s.length;
      return true;
    }
    return false;
  }
  ident(): string | undefined {
    this.ws();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.src.slice(this.pos));
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }
  done(): boolean {
    this.ws();
    return this.pos >= this.src.length;
  }
  /** A string, number, true/false/none literal; undefined if there is none here. */
  literal(): { value: unknown } | undefined {
    this.ws();
    if (this.src[this.pos] === '[') {
      // a list of literals, e.g. default([443, 8443])
      const start = this.pos;
      this.pos++;
      const items: unknown[] = [];
      while (!this.eat(']')) {
        const item = this.literal();
        if (!item) {
          this.pos = start;
          return undefined;
        }
        items.push(item.value);
        if (!this.eat(',') && this.peek() !== ']') {
          this.pos = start;
          return undefined;
        }
      }
      return { value: items };
    }
    const rest = this.src.slice(this.pos);
    const str = /^'((?:[^'\\]|\\.)*)'|^"((?:[^"\\]|\\.)*)"/.exec(rest);
    if (str) {
      this.pos += str[0].length;
      return { value: (str[1] ?? str[2] ?? '').replace(/\\(.)/g, '$1') };
    }
    const num = /^-?\d+(?:\.\d+)?(?![A-Za-z_])/.exec(rest);
    if (num) {
      this.pos += num[0].length;
      return { value: Number(num[0]) };
    }
    const word = /^(true|True|false|False|none|None)(?![A-Za-z0-9_])/.exec(rest);
    if (word) {
      this.pos += word[0].length;
      const w = word[1]!.toLowerCase();
      return { value: w === 'true' ? true : w === 'false' ? false : null };
    }
    return undefined;
  }
}

const reserved = new Set(['not', 'and', 'or', 'is', 'in', 'if', 'else', 'true', 'false', 'none', 'True', 'False', 'None', 'lookup', 'query', 'range']);

/** `name(.attr | [idx] | ['key'])*`, or undefined when the text here is not a reference. */
export function parseRef(lx: Lexer): TemplateRef | undefined {
  const start = lx.pos;
  const name = lx.ident();
  if (!name || reserved.has(name)) {
    lx.pos = start;
    return undefined;
  }
  const path: RefStep[] = [name];
  for (;;) {
    if (lx.src[lx.pos] === '.') {
      lx.pos++;
      const m = /^(?:[A-Za-z_][A-Za-z0-9_]*|\d+)/.exec(lx.src.slice(lx.pos));
      if (!m) throw new TemplateSyntaxError(`expected an attribute name after "." in ${show(lx.src.trim())}`);
      lx.pos += m[0].length;
      path.push(/^\d+$/.test(m[0]) ? Number(m[0]) : m[0]);
    } else if (lx.src[lx.pos] === '[') {
      lx.pos++;
      const lit = lx.literal();
      if (!lit || (typeof lit.value !== 'string' && typeof lit.value !== 'number') || !lx.eat(']')) {
        throw new TemplateSyntaxError(`only literal subscripts like ['key'] or [0] are supported, in ${show(lx.src.trim())}`);
      }
      path.push(lit.value as RefStep);
    } else break;
  }
  if (lx.src[lx.pos] === '(') throw new TemplateSyntaxError(`function calls are not supported: ${show(lx.src.trim())}`);
  return { path };
}

export { Lexer as TemplateLexer };

/** The inside of one `{{ }}`. */
export function parseExpression(source: string): TemplateExpr {
  const lx = new Lexer(source);
  const unsupported = (why: string): TemplateSyntaxError =>
    new TemplateSyntaxError(`unsupported expression {{${source}}}: ${why} (only {{ var }}, {{ var.sub }} and {{ var | default(...) }} are resolved)`);
  const ref = parseRef(lx);
  if (!ref) throw unsupported(lx.done() ? 'it is empty' : 'it does not start with a variable name');
  const expr: TemplateExpr = { source: source.trim(), ref };
  while (lx.eat('|')) {
    const filter = lx.ident();
    if (filter !== 'default' && filter !== 'd') throw unsupported(`filter ${JSON.stringify(filter ?? lx.src.slice(lx.pos))} is not supported`);
    if (expr.default) throw unsupported('only one default filter is supported');
    if (!lx.eat('(')) throw unsupported('default needs a value: default(...)');
    let value: DefaultArg;
    const lit = lx.literal();
    if (lit) value = { kind: 'literal', value: lit.value };
    else {
      const r = parseRef(lx);
      if (!r) throw unsupported('the default value must be a literal or a variable');
      value = { kind: 'ref', ref: r };
    }
    let whenFalsy = false;
    if (lx.eat(',')) {
      const flag = lx.literal();
      if (!flag || typeof flag.value !== 'boolean') throw unsupported("default's second argument must be true or false");
      whenFalsy = flag.value;
    }
    if (!lx.eat(')')) throw unsupported('expected ) after the default value');
    expr.default = { value, whenFalsy };
  }
  if (!lx.done()) throw unsupported(`unexpected ${show(lx.src.slice(lx.pos).trim())}`);
  return expr;
}

export const refText = (ref: TemplateRef): string =>
  ref.path.map((s, i) => (i === 0 ? String(s) : typeof s === 'number' ? `[${s}]` : `.${s}`)).join('');

/** Jinja/Python truthiness. */
export function truthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object' && !(value instanceof VaultValue)) return Object.keys(value).length > 0;
  return true;
}

const UNDEFINED = Symbol('undefined');

/** Ansible's `omit`: `param: "{{ x | default(omit) }}"` drops the parameter when x is undefined. */
export const OMIT = Symbol('omit');

/** A problem caused by an undefined variable; `undefinedRoot` lets preflight defer run-time variables. */
export type UndefinedVariableProblem = ConfigProblem & { undefinedRoot: string };

export function undefinedVariable(location: string, message: string, ref: TemplateRef): ConfigError {
  const problem: UndefinedVariableProblem = { location, message, undefinedRoot: String(ref.path[0]) };
  return new ConfigError([problem]);
}

/**
 * Resolves templates against one host's variables. Variables may themselves hold templates (Ansible templates
 * lazily); loops are reported. Errors are ConfigErrors located at `location`.
 */
export class Resolver {
  private readonly resolving = new Set<string>();
  private readonly cache = new Map<string, unknown>();

  constructor(
    readonly vars: Readonly<Record<string, unknown>>,
    /** Where each variable was defined, for errors inside a variable's own value. */
    readonly varLocations: Readonly<Record<string, string>> = {},
  ) {}

  /** Resolves every string inside `value` (deeply). `locate(path)` gives the location of a nested value. */
  resolveValue(value: unknown, locate: (path: RefStep[]) => string, path: RefStep[] = []): unknown {
    if (typeof value === 'string') return this.resolveString(value, locate(path));
    if (value instanceof VaultValue) {
      throw new ConfigError([{ location: value.location, message: 'value is vault-encrypted; pass --vault-password-file to decrypt it' }]);
    }
    if (Array.isArray(value)) {
      const problems = new Problems();
      const out = value.map((v, i) => {
        try {
          return this.resolveValue(v, locate, [...path, i]);
        } catch (e) {
          problems.absorb(e);
          return undefined;
        }
      });
      problems.throwIfAny();
      return out;
    }
    if (value !== null && typeof value === 'object') {
      const problems = new Problems();
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        try {
          const resolved = this.resolveValue(v, locate, [...path, k]);
          if (resolved !== OMIT) out[k] = resolved;
        } catch (e) {
          problems.absorb(e);
        }
      }
      problems.throwIfAny();
      return out;
    }
    return value;
  }

  resolveString(text: string, location: string): unknown {
    if (!hasTemplate(text)) return text;
    let segments: Segment[];
    try {
      segments = parseTemplate(text);
    } catch (e) {
      if (e instanceof TemplateSyntaxError) throw new ConfigError([{ location, message: e.message }]);
      throw e;
    }
    if (segments.length === 1 && segments[0]!.kind === 'expr') return this.evaluate(segments[0]!.expr, location);
    return segments
      .map((s) => {
        if (s.kind === 'text') return s.text;
        const v = this.evaluate(s.expr, location);
        if (v === OMIT) throw new ConfigError([{ location, message: `omit must be a whole value, not part of ${show(text)}` }]);
        return typeof v === 'string' ? v : v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      })
      .join('');
  }

  evaluate(expr: TemplateExpr, location: string): unknown {
    let value = this.lookup(expr.ref, location, expr.source);
    if (expr.default && (value === UNDEFINED || (expr.default.whenFalsy && !truthy(value)))) {
      const d = expr.default.value;
      value = d.kind === 'literal' ? d.value : this.lookup(d.ref, location, expr.source);
    }
    if (value === UNDEFINED) {
      throw undefinedVariable(location, `undefined variable ${refText(expr.ref)} in {{ ${expr.source} }}`, expr.ref);
    }
    return value;
  }

  /** The value of a reference, or UNDEFINED. */
  lookup(ref: TemplateRef, location: string, source: string): unknown {
    const [name, ...rest] = ref.path as [string, ...RefStep[]];
    if (name === 'omit' && rest.length === 0 && !Object.hasOwn(this.vars, name)) return OMIT;
    if (!Object.hasOwn(this.vars, name)) return UNDEFINED;
    let value = this.variable(name);
    for (const step of rest) {
      if (value === null || typeof value !== 'object' || value instanceof VaultValue) return UNDEFINED;
      if (Array.isArray(value)) {
        const index = typeof step === 'number' ? step : /^\d+$/.test(step) ? Number(step) : Number.NaN;
        if (!(index in value)) return UNDEFINED;
        value = value[index];
      } else {
        const key = String(step);
        if (!Object.hasOwn(value, key)) return UNDEFINED;
        value = (value as Record<string, unknown>)[key];
      }
    }
    if (value instanceof VaultValue) {
      throw new ConfigError([
        { location, message: `{{ ${source} }} uses a vault-encrypted value (${value.location}); pass --vault-password-file to decrypt it` },
      ]);
    }
    return value;
  }

  /** A top-level variable with its own templates resolved (once per resolver). */
  variable(name: string): unknown {
    if (this.cache.has(name)) return this.cache.get(name);
    if (this.resolving.has(name)) {
      throw new ConfigError([
        { location: this.varLocations[name] ?? '', message: `variable ${name} refers to itself through ${[...this.resolving].join(' → ')}` },
      ]);
    }
    const raw = this.vars[name];
    if (raw instanceof VaultValue) return raw; // lookup() reports it with the place it is used
    this.resolving.add(name);
    try {
      const loc = this.varLocations[name] ?? '';
      const value = this.resolveValue(this.vars[name], (path) => (path.length ? `${loc} (${name}.${path.join('.')})` : loc));
      this.cache.set(name, value);
      return value;
    } finally {
      this.resolving.delete(name);
    }
  }
}

/** Static check (no variables needed): reports every unsupported template inside `value`. */
export function checkTemplates(value: unknown, locate: (path: RefStep[]) => string, problems: Problems, path: RefStep[] = []): void {
  if (typeof value === 'string') {
    if (!hasTemplate(value)) return;
    try {
      parseTemplate(value);
    } catch (e) {
      if (e instanceof TemplateSyntaxError) problems.add(locate(path), e.message);
      else throw e;
    }
  } else if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) checkTemplates(v, locate, problems, [...path, i]);
  }
  else if (value !== null && typeof value === 'object' && !(value instanceof VaultValue)) {
    for (const [k, v] of Object.entries(value)) checkTemplates(v, locate, problems, [...path, k]);
  }
}
