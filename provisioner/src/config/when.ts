// `when:` conditions, the simple forms only: `var`, `not var`, `var == 'x'`, `var != 'x'`, `var | bool`, `var | default(x)`,
// `var is defined`, `var is not defined`, `var is undefined`, true/false, joined by `and`. A list means all
// must hold (as in Ansible; the loader joins it with ` and `). `or` and parentheses are not supported; anything
// else is a ConfigError naming the condition, never guessed.
import { ConfigError } from '../core/errors';
import { parseRef, refText, Resolver, type TemplateRef, TemplateLexer, TemplateSyntaxError, truthy, undefinedVariable } from './templating';

type Operand =
  | { kind: 'ref'; ref: TemplateRef; bool: boolean; default?: { value: unknown; whenFalsy: boolean } }
  | { kind: 'literal'; value: unknown };

export type Condition =
  | { kind: 'and'; parts: Condition[] }
  | { kind: 'not'; inner: Condition }
  | { kind: 'truthy'; operand: Operand }
  | { kind: 'compare'; op: '==' | '!='; left: Operand; right: Operand }
  | { kind: 'defined'; ref: TemplateRef; negate: boolean };

const supported =
  "supported: var, not var, var == 'x', var != 'x', var | bool, var | default(x), var is defined, var is not defined, joined by and";

export function parseCondition(text: string): Condition {
  const source = text.trim();
  if (/^\{\{.*\}\}$/s.test(source)) {
    throw new TemplateSyntaxError(`when: ${JSON.stringify(text)} must be a bare expression without {{ }} (as in Ansible)`);
  }
  const lx = new TemplateLexer(source);
  const fail = (why: string): TemplateSyntaxError => new TemplateSyntaxError(`unsupported when: ${JSON.stringify(source)}: ${why} (${supported})`);
  const parts = [parseNot(lx, fail)];
  for (;;) {
    const mark = lx.pos;
    if (lx.ident() !== 'and') {
      lx.pos = mark;
      break;
    }
    parts.push(parseNot(lx, fail));
  }
  const cond: Condition = parts.length === 1 ? parts[0]! : { kind: 'and', parts };
  if (!lx.done()) throw fail(`unexpected ${JSON.stringify(lx.src.slice(lx.pos).trim())}`);
  return cond;
}

function parseNot(lx: TemplateLexer, fail: (why: string) => TemplateSyntaxError): Condition {
  const start = lx.pos;
  if (lx.ident() === 'not') return { kind: 'not', inner: parseNot(lx, fail) };
  lx.pos = start;
  const left = parseOperand(lx, fail);
  const mark = lx.pos;
  if (lx.ident() === 'is') {
    if (left.kind !== 'ref' || left.bool) throw fail('`is` tests apply to a variable');
    let negate = false;
    let test = lx.ident();
    if (test === 'not') {
      negate = true;
      test = lx.ident();
    }
    if (test === 'defined') return { kind: 'defined', ref: left.ref, negate };
    if (test === 'undefined') return { kind: 'defined', ref: left.ref, negate: !negate };
    throw fail(`test ${JSON.stringify(test ?? '')} is not supported (only defined/undefined)`);
  }
  lx.pos = mark;
  for (const op of ['==', '!='] as const) {
    if (lx.eat(op)) return { kind: 'compare', op, left, right: parseOperand(lx, fail) };
  }
  return { kind: 'truthy', operand: left };
}

function parseOperand(lx: TemplateLexer, fail: (why: string) => TemplateSyntaxError): Operand {
  const lit = lx.literal();
  if (lit) return { kind: 'literal', value: lit.value };
  let ref: TemplateRef | undefined;
  try {
    ref = parseRef(lx);
  } catch (e) {
    if (e instanceof TemplateSyntaxError) throw fail(e.message);
    throw e;
  }
  if (!ref) throw fail(lx.done() ? 'it is incomplete' : `unexpected ${JSON.stringify(lx.src.slice(lx.pos).trim())}`);
  const operand: Operand = { kind: 'ref', ref, bool: false };
  while (lx.eat('|')) {
    const filter = lx.ident();
    if (filter === 'bool' && !operand.bool) operand.bool = true;
    else if ((filter === 'default' || filter === 'd') && !operand.default && !operand.bool) {
      const value = lx.eat('(') ? lx.literal() : undefined;
      if (!value) throw fail('default needs a literal value: default(...)');
      let whenFalsy = false;
      if (lx.eat(',')) {
        const flag = lx.literal();
        if (!flag || typeof flag.value !== 'boolean') throw fail("default's second argument must be true or false");
        whenFalsy = flag.value;
      }
      if (!lx.eat(')')) throw fail('expected ) after the default value');
      operand.default = { value: value.value, whenFalsy };
    } else throw fail(`filter ${JSON.stringify(filter ?? '')} is not supported here (only | default(...) | bool)`);
  }
  return operand;
}

/** Ansible's `bool` filter: true for true, 1, and the strings yes/on/1/true (any case). */
export function ansibleBool(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 1) return true;
  if (typeof value === 'string') return ['yes', 'on', '1', 'true'].includes(value.toLowerCase());
  return false;
}

function equal(a: unknown, b: unknown): boolean {
  if (typeof a === 'boolean' && typeof b === 'number') return Number(a) === b;
  if (typeof a === 'number' && typeof b === 'boolean') return a === Number(b);
  return JSON.stringify(a) === JSON.stringify(b);
}

export function evaluateCondition(cond: Condition, resolver: Resolver, location: string, source: string): boolean {
  const value = (operand: Operand): unknown => {
    if (operand.kind === 'literal') return operand.value;
    let v = resolver.lookup(operand.ref, location, source);
    if (operand.default && (typeof v === 'symbol' || (operand.default.whenFalsy && !truthy(v)))) v = operand.default.value;
    if (typeof v === 'symbol') {
      throw undefinedVariable(location, `when: ${JSON.stringify(source)}: ${refText(operand.ref)} is undefined`, operand.ref);
    }
    const resolved = typeof v === 'string' ? resolver.resolveString(v, location) : v;
    return operand.bool ? ansibleBool(resolved) : resolved;
  };
  switch (cond.kind) {
    case 'and':
      return cond.parts.every((p) => evaluateCondition(p, resolver, location, source));
    case 'not':
      return !evaluateCondition(cond.inner, resolver, location, source);
    case 'truthy':
      return truthy(value(cond.operand));
    case 'compare':
      return equal(value(cond.left), value(cond.right)) === (cond.op === '==');
    case 'defined': {
      const defined = typeof resolver.lookup(cond.ref, location, source) !== 'symbol';
      return cond.negate ? !defined : defined;
    }
  }
}

/**
 * Evaluates a task's `when` (a string, a list of strings that must all hold, or a boolean) against a host's
 * variables. Throws ConfigError (with `location`) for unsupported forms and undefined variables.
 */
export function evaluateWhen(
  when: string | readonly string[] | boolean | undefined,
  vars: Readonly<Record<string, unknown>> | Resolver,
  location = '',
): boolean {
  if (when === undefined) return true;
  if (typeof when === 'boolean') return when;
  const resolver = vars instanceof Resolver ? vars : new Resolver(vars);
  for (const text of typeof when === 'string' ? [when] : when) {
    let cond: Condition;
    try {
      cond = parseCondition(text);
    } catch (e) {
      if (e instanceof TemplateSyntaxError) throw new ConfigError([{ location, message: e.message }]);
      throw e;
    }
    if (!evaluateCondition(cond, resolver, location, text)) return false;
  }
  return true;
}
