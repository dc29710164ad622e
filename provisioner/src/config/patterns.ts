// Host patterns as Ansible evaluates them (InventoryManager): `web:&prod`, `all:!db1`, `web,db`, globs `web*`,
// regex `~web\d+`, subscripts `web[0]` / `web[1:3]` / `web[-1]`, and `@file` (one pattern per line, like a
// .retry file). Order: plain patterns are unioned first, then `&` intersects, then `!` excludes.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../core/errors';
import type { Inventory } from './types';

export interface PatternMatch {
  /** Matching hosts, in inventory order. */
  hosts: string[];
  /** Terms that matched no host or group (Ansible warns "Could not match supplied host pattern"). */
  unmatched: string[];
}

/** Splits on commas, or on colons outside brackets (so `web[1:3]` stays whole), like split_host_pattern. */
export function splitPattern(pattern: string): string[] {
  const text = pattern.trim();
  if (text.includes(',')) return text.split(',').map((p) => p.trim()).filter(Boolean);
  if (text.startsWith('~') || text.startsWith('!~') || text.startsWith('&~')) return [text];
  return text.match(/(?:[^\s:[\]]|\[[^\]]*\])+/g) ?? [];
}

/** Expands `@file` terms: each non-empty line of the file is a pattern (relative paths from `cwd`). */
function expandFiles(terms: string[], cwd: string): string[] {
  return terms.flatMap((term) => {
    if (!term.startsWith('@')) return [term];
    const path = resolve(cwd, term.slice(1));
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new ConfigError([{ location: '', message: `cannot read host list ${term}: ${(e as Error).message}` }]);
    }
    return text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .flatMap((line) => splitPattern(line));
  });
}

function compileMatcher(term: string): (name: string) => boolean {
  let re: RegExp;
  try {
    if (term.startsWith('~')) re = new RegExp(`^(?:${term.slice(1)})`);
    else re = globToRegExp(term);
  } catch (e) {
    throw new ConfigError([{ location: '', message: `invalid host pattern ${JSON.stringify(term)}: ${(e as Error).message}` }]);
  }
  return (name) => re.test(name);
}

/** Python fnmatch.translate: `*`, `?`, `[seq]`, `[!seq]`; case-sensitive, anchored. */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) out += '\\[';
      else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        out += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 's');
}

function hostsOfGroup(inv: Inventory, group: string): Set<string> {
  const out = new Set<string>();
  if (group === 'all') {
    for (const h of inv.hosts.keys()) out.add(h);
    return out;
  }
  const seen = new Set<string>();
  const visit = (g: string): void => {
    if (seen.has(g)) return;
    seen.add(g);
    const info = inv.groups.get(g);
    if (!info) return;
    for (const h of info.hosts) out.add(h);
    for (const c of info.children) visit(c);
  };
  visit(group);
  return out;
}

/** One term without its `&`/`!` prefix → matching hosts in inventory order. */
function matchTerm(inv: Inventory, term: string): string[] {
  const order = [...inv.hosts.keys()];
  let base = term;
  let subscript: { start: number; end?: number; single: boolean } | undefined;
  const sub = term.startsWith('~') ? null : /^(.+)\[(?:(-?\d+)|(-?\d+)?:(-?\d*))\]$/.exec(term);
  if (sub) {
    base = sub[1]!;
    subscript =
      sub[2] !== undefined
        ? { start: Number(sub[2]), single: true }
        : { start: Number(sub[3] ?? 0), ...(sub[4] ? { end: Number(sub[4]) } : {}), single: false };
  }
  const found = new Set<string>();
  const isSpecial = base.startsWith('~') || /[.?*[]/.test(base);
  let matchedGroup = false;
  if (inv.groups.has(base) || base === 'all') {
    matchedGroup = true;
    for (const h of hostsOfGroup(inv, base)) found.add(h);
  } else if (isSpecial) {
    const matches = compileMatcher(base);
    for (const g of inv.groups.keys()) {
      if (matches(g)) {
        matchedGroup = true;
        for (const h of hostsOfGroup(inv, g)) found.add(h);
      }
    }
  }
  if (!matchedGroup || isSpecial) {
    if (inv.hosts.has(base)) found.add(base);
    else if (isSpecial) {
      const matches = compileMatcher(base);
      for (const h of order) if (matches(h)) found.add(h);
    }
  }
  let hosts = order.filter((h) => found.has(h));
  if (subscript) {
    const n = hosts.length;
    const norm = (i: number): number => (i < 0 ? n + i : i);
    if (subscript.single) {
      const h = hosts[norm(subscript.start)];
      hosts = h === undefined ? [] : [h];
    } else {
      // Ansible's [a:b] includes b; an empty end means "to the last"
      const start = norm(subscript.start);
      const end = subscript.end === undefined ? n - 1 : norm(subscript.end);
      hosts = hosts.slice(start, end + 1);
    }
  }
  return hosts;
}

/** Evaluates a pattern and reports unmatched terms. `cwd` resolves `@file` paths. */
export function matchPattern(inv: Inventory, pattern: string, cwd = process.cwd()): PatternMatch {
  const terms = expandFiles(splitPattern(pattern), cwd);
  const plain = terms.filter((t) => !t.startsWith('&') && !t.startsWith('!'));
  const and = terms.filter((t) => t.startsWith('&')).map((t) => t.slice(1));
  const not = terms.filter((t) => t.startsWith('!')).map((t) => t.slice(1));
  if (plain.length === 0 && terms.length > 0) plain.push('all');
  const unmatched: string[] = [];
  const matchOrNote = (term: string, shown: string): string[] => {
    const hosts = matchTerm(inv, term);
    if (hosts.length === 0) unmatched.push(shown);
    return hosts;
  };
  let selected = new Set<string>();
  for (const t of plain) for (const h of matchOrNote(t, t)) selected.add(h);
  for (const t of and) {
    const other = new Set(matchOrNote(t, `&${t}`));
    selected = new Set([...selected].filter((h) => other.has(h)));
  }
  for (const t of not) {
    const other = new Set(matchOrNote(t, `!${t}`));
    selected = new Set([...selected].filter((h) => !other.has(h)));
  }
  return { hosts: [...inv.hosts.keys()].filter((h) => selected.has(h)), unmatched };
}

/**
 * The hosts a pattern selects, in inventory order. With `limit` (the --limit pattern), only hosts that both
 * select, as ansible-playbook does with a play's `hosts:` and --limit.
 */
export function selectHosts(inv: Inventory, pattern: string, limit?: string): string[] {
  const hosts = matchPattern(inv, pattern).hosts;
  if (limit === undefined || limit.trim() === '') return hosts;
  const allowed = new Set(matchPattern(inv, limit).hosts);
  return hosts.filter((h) => allowed.has(h));
}
