// INI inventory values go through Python's ast.literal_eval in Ansible, and stay strings when that fails:
// `port=22` is the int 22, `x='5'` on a host line is the int 5 (shlex already removed the quotes),
// `flag=True` is a bool, `flag=yes` the string "yes", `ip=10.0.0.1` a string, `l=[1, 'a']` a list.
// This is that subset of literal_eval: numbers, strings, True/False/None, lists, tuples, dicts, sets.

class NotLiteral extends Error {}

export function parseIniValue(text: string): unknown {
  try {
    return literalEval(text);
  } catch (e) {
    if (e instanceof NotLiteral) return text;
    throw e;
  }
}

export function literalEval(text: string): unknown {
  const p = new Parser(text);
  p.skipSpace();
  const value = p.parseTopLevel();
  p.skipSpace();
  if (!p.done()) throw new NotLiteral('trailing text');
  return value;
}

class Parser {
  pos = 0;
  constructor(readonly src: string) {}

  done(): boolean {
    return this.pos >= this.src.length;
  }

  skipSpace(): void {
    while (!this.done()) {
      const c = this.src[this.pos]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\\') {
        // a backslash-newline continues the line in Python source
        if (c === '\\') {
          if (this.src[this.pos + 1] === '\n') this.pos += 2;
          else return;
          continue;
        }
        this.pos++;
      } else if (c === '#') {
        while (!this.done() && this.src[this.pos] !== '\n') this.pos++;
      } else return;
    }
  }

  /** `1, 2` without brackets is a tuple at the top level. */
  parseTopLevel(): unknown {
    if (this.done()) throw new NotLiteral('empty');
    const first = this.parseValue();
    this.skipSpace();
    if (this.src[this.pos] !== ',') return first;
    const items = [first];
    while (this.src[this.pos] === ',') {
      this.pos++;
      this.skipSpace();
      if (this.done()) break;
      items.push(this.parseValue());
      this.skipSpace();
    }
    return items;
  }

  parseValue(): unknown {
    this.skipSpace();
    const c = this.src[this.pos];
    if (c === undefined) throw new NotLiteral('unexpected end');
    if (c === '[') return this.parseSequence('[', ']');
    if (c === '(') return this.parseSequence('(', ')');
    if (c === '{') return this.parseBrace();
    if (c === '-' || c === '+') {
      this.pos++;
      this.skipSpace();
      const v = this.parseValue();
      if (typeof v !== 'number') throw new NotLiteral('unary sign on a non-number');
      return c === '-' ? -v : v;
    }
    if (/[0-9.]/.test(c)) return this.parseNumber();
    const str = this.tryString();
    if (str !== undefined) return str;
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.src.slice(this.pos));
    if (m) {
      this.pos += m[0].length;
      if (m[0] === 'True') return true;
      if (m[0] === 'False') return false;
      if (m[0] === 'None') return null;
    }
    throw new NotLiteral('not a literal');
  }

  parseSequence(open: string, close: string): unknown[] {
    this.pos++; // open
    const items: unknown[] = [];
    let sawComma = false;
    for (;;) {
      this.skipSpace();
      if (this.src[this.pos] === close) {
        this.pos++;
        // `(1)` is just 1 in Python, `(1,)` a tuple
        if (open === '(' && items.length === 1 && !sawComma) return items[0] as unknown[];
        return items;
      }
      items.push(this.parseValue());
      this.skipSpace();
      if (this.src[this.pos] === ',') {
        sawComma = true;
        this.pos++;
      } else if (this.src[this.pos] !== close) throw new NotLiteral(`expected , or ${close}`);
    }
  }

  parseBrace(): unknown {
    this.pos++;
    this.skipSpace();
    if (this.src[this.pos] === '}') {
      this.pos++;
      return {};
    }
    const firstKey = this.parseValue();
    this.skipSpace();
    if (this.src[this.pos] !== ':') {
      // a set: Ansible turns it into a list when serialising
      const items = [firstKey];
      while (this.src[this.pos] === ',') {
        this.pos++;
        this.skipSpace();
        if (this.src[this.pos] === '}') break;
        items.push(this.parseValue());
        this.skipSpace();
      }
      if (this.src[this.pos] !== '}') throw new NotLiteral('expected }');
      this.pos++;
      return [...new Set(items)];
    }
    const out: Record<string, unknown> = {};
    let key: unknown = firstKey;
    for (;;) {
      if (this.src[this.pos] !== ':') throw new NotLiteral('expected :');
      this.pos++;
      out[String(key)] = this.parseValue();
      this.skipSpace();
      if (this.src[this.pos] === ',') {
        this.pos++;
        this.skipSpace();
      }
      if (this.src[this.pos] === '}') {
        this.pos++;
        return out;
      }
      key = this.parseValue();
      this.skipSpace();
    }
  }

  parseNumber(): number {
    const rest = this.src.slice(this.pos);
    const m =
      /^0[xX][0-9a-fA-F_]+|^0[oO][0-7_]+|^0[bB][01_]+/.exec(rest) ??
      /^(?:\d[\d_]*)?(?:\.\d[\d_]*|\.)?(?:[eE][+-]?\d+)?/.exec(rest);
    if (!m || m[0] === '' || m[0] === '.') throw new NotLiteral('not a number');
    const text = m[0].replace(/_/g, '');
    this.pos += m[0].length;
    if (/[jJ]/.test(this.src[this.pos] ?? '')) throw new NotLiteral('complex numbers are not supported');
    if (/^0[xX]/.test(text)) return Number.parseInt(text.slice(2), 16);
    if (/^0[oO]/.test(text)) return Number.parseInt(text.slice(2), 8);
    if (/^0[bB]/.test(text)) return Number.parseInt(text.slice(2), 2);
    // Python 3 rejects 0123 (a leading zero on a non-zero int)
    if (/^0\d/.test(text) && !/[.eE]/.test(text) && !/^0+$/.test(text)) throw new NotLiteral('leading zero');
    return Number(text);
  }

  tryString(): string | undefined {
    let out: string | undefined;
    // Adjacent literals concatenate: 'a' 'b' == 'ab'
    for (;;) {
      const m = /^([rRbBuU]{0,2})('''|"""|'|")/.exec(this.src.slice(this.pos));
      if (!m) return out;
      const prefix = m[1]!.toLowerCase();
      if (prefix.includes('u') && prefix.length > 1) return out;
      const raw = prefix.includes('r');
      const quote = m[2]!;
      this.pos += m[0].length;
      let s = '';
      for (;;) {
        if (this.done()) throw new NotLiteral('unterminated string');
        if (this.src.startsWith(quote, this.pos)) {
          this.pos += quote.length;
          break;
        }
        const c = this.src[this.pos]!;
        if (c === '\n' && quote.length === 1) throw new NotLiteral('newline in string');
        if (c === '\\') {
          const next = this.src[this.pos + 1];
          if (next === undefined) throw new NotLiteral('unterminated string');
          if (raw) {
            s += c + next;
            this.pos += 2;
            continue;
          }
          this.pos += 2;
          s += this.escape(next);
          continue;
        }
        s += c;
        this.pos++;
      }
      out = (out ?? '') + s;
      this.skipSpace();
    }
  }

  escape(c: string): string {
    const simple: Record<string, string> = {
      n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '0': '\0', '\n': '',
    };
    if (c in simple) return simple[c]!;
    const hexLen = c === 'x' ? 2 : c === 'u' ? 4 : c === 'U' ? 8 : 0;
    if (hexLen) {
      const hex = this.src.slice(this.pos, this.pos + hexLen);
      if (!new RegExp(`^[0-9a-fA-F]{${hexLen}}$`).test(hex)) throw new NotLiteral('bad escape');
      this.pos += hexLen;
      return String.fromCodePoint(Number.parseInt(hex, 16));
    }
    return `\\${c}`;
  }
}
