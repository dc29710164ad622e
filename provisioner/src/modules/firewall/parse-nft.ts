// `nft -j list table <family> epoch_provision` → canonical chain/rule keys, comparable with the desired model.
// Anything we do not recognise becomes an `unknown:` key, which never equals a desired rule, so the plan
// replaces the table rather than declaring a half-understood table converged.
import { type Chain, type ChainName, ruleKey, intervalsKey } from './model';
import { type Family, type Interval, cidrInterval, mergeIntervals, parseAddressValue, parseCidr } from './net';

export interface LiveChain {
  name: string;
  header: string;
  ruleKeys: string[];
}

export interface LiveNftTable {
  family: string;
  chains: LiveChain[];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObj = (v: Json | undefined): v is { [k: string]: Json } => typeof v === 'object' && v !== null && !Array.isArray(v);

export function chainHeader(hook: string, type = 'nat', prio: number | string = -100, policy = 'accept'): string {
  return `type=${type} hook=${hook} prio=${prio} policy=${policy}`;
}

export function parseNftTableJson(text: string): LiveNftTable | null {
  const doc = JSON.parse(text) as Json;
  const items = isObj(doc) && Array.isArray(doc.nftables) ? doc.nftables : null;
  if (!items) throw new Error(`nft -j output has no "nftables" array: ${text.slice(0, 200)}`);
  let family: string | null = null;
  const chains = new Map<string, LiveChain>();
  for (const item of items) {
    if (!isObj(item)) continue;
    if (isObj(item.table)) family = String(item.table.family);
    if (isObj(item.chain)) {
      const c = item.chain;
      const header = c.hook === undefined ? 'regular' : chainHeader(String(c.hook), String(c.type), c.prio as number, String(c.policy));
      chains.set(String(c.name), { name: String(c.name), header, ruleKeys: [] });
    }
    if (isObj(item.rule)) {
      const r = item.rule;
      const chain = chains.get(String(r.chain));
      if (chain) chain.ruleKeys.push(ruleKeyFromExpr(Array.isArray(r.expr) ? r.expr : [], family === 'ip6' ? 6 : family === 'ip' ? 4 : null));
    }
  }
  if (family === null) return null;
  return { family, chains: [...chains.values()] };
}

function scalars(right: Json | undefined): Json[] {
  if (isObj(right) && Array.isArray(right.set)) return right.set;
  return [right ?? null];
}

function addressIntervals(values: Json[], family: Family): Interval[] | null {
  const out: Interval[] = [];
  for (const v of values) {
    if (typeof v === 'string') out.push(parseAddressValue(v));
    else if (isObj(v) && isObj(v.prefix)) out.push(cidrInterval(parseCidr(`${String(v.prefix.addr)}/${String(v.prefix.len)}`, true)));
    else if (isObj(v) && Array.isArray(v.range) && v.range.length === 2) {
      const [a, b] = v.range.map((x) => parseAddressValue(String(x)));
      out.push({ family, first: a!.first, last: b!.first });
    } else return null;
  }
  if (out.some((iv) => iv.family !== family)) return null;
  return mergeIntervals(out);
}

function numbers(values: Json[]): number[] | null {
  const out: number[] = [];
  for (const v of values) {
    if (typeof v === 'number') out.push(v);
    else if (isObj(v) && Array.isArray(v.range) && v.range.every((x) => typeof x === 'number')) {
      const [a, b] = v.range as number[];
      for (let n = a!; n <= b!; n++) out.push(n);
    } else return null;
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

function matchKeyFromJson(m: { [k: string]: Json }): string | null {
  if (m.op !== '==' && m.op !== 'in') return null;
  const left = m.left;
  const values = scalars(m.right);
  if (isObj(left) && isObj(left.meta)) {
    const key = String(left.meta.key);
    if (key === 'skuid' || key === 'skgid') {
      const ns = numbers(values);
      return ns ? `${key}=${ns.join(',')}` : null;
    }
    if (key === 'oifname' || key === 'iifname') {
      if (!values.every((v) => typeof v === 'string')) return null;
      return `${key}=${[...new Set(values as string[])].sort().join(',')}`;
    }
    return null;
  }
  if (isObj(left) && isObj(left.ct) && left.ct.key === 'state' && left.ct.dir === undefined) {
    return values.length === 1 && values[0] === 'new' ? 'ct-state=new' : null;
  }
  // `tcp flags & (fin|syn|rst|ack) == syn`
  if (isObj(left) && Array.isArray(left['&']) && left['&'].length === 2 && m.op === '==') {
    const [field, mask] = left['&'];
    const isFlags = isObj(field) && isObj(field.payload) && field.payload.protocol === 'tcp' && field.payload.field === 'flags';
    const maskSet = Array.isArray(mask) ? [...mask].map(String).sort().join(',') : null;
    return isFlags && maskSet === 'ack,fin,rst,syn' && values.length === 1 && values[0] === 'syn' ? 'tcp-syn' : null;
  }
  if (isObj(left) && isObj(left.payload)) {
    const { protocol, field } = left.payload;
    if (protocol === 'tcp' && field === 'dport') {
      const ns = numbers(values);
      return ns ? `tcp-dport=${ns.join(',')}` : null;
    }
    if ((protocol === 'ip' || protocol === 'ip6') && (field === 'daddr' || field === 'saddr')) {
      const family: Family = protocol === 'ip' ? 4 : 6;
      const ivs = addressIntervals(values, family);
      return ivs ? intervalsKey(field, family, ivs) : null;
    }
  }
  return null;
}

/** Canonical key of one rule's expression list; `familyHint` is unused for inet (addresses carry their family). */
export function ruleKeyFromExpr(expr: Json[], _familyHint: Family | null): string {
  const matches: string[] = [];
  let verdict: string | null = null;
  for (const e of expr) {
    if (!isObj(e)) return `unknown:${JSON.stringify(expr)}`;
    if (isObj(e.match)) {
      const key = matchKeyFromJson(e.match);
      if (key === null) return `unknown:${JSON.stringify(expr)}`;
      matches.push(key);
    } else if ('return' in e && verdict === null) {
      verdict = 'return';
    } else if (isObj(e.redirect) && typeof e.redirect.port === 'number' && Object.keys(e.redirect).length === 1 && verdict === null) {
      verdict = `redirect:${e.redirect.port}`;
    } else {
      return `unknown:${JSON.stringify(expr)}`;
    }
  }
  if (verdict === null) return `unknown:${JSON.stringify(expr)}`;
  return `${matches.sort().join(' ')} => ${verdict}`;
}

/** The same canonical form for a desired chain. */
export function desiredChainKeys(c: Chain): LiveChain {
  return { name: c.name, header: chainHeader(c.hook), ruleKeys: c.rules.map(ruleKey) };
}

export function nftTablesEqual(live: LiveNftTable | null, desired: Chain[]): boolean {
  if (!live) return false;
  const want = desired.map(desiredChainKeys);
  if (live.chains.length !== want.length) return false;
  return want.every((w) => {
    const l = live.chains.find((c) => c.name === w.name);
    return !!l && l.header === w.header && l.ruleKeys.length === w.ruleKeys.length && l.ruleKeys.every((k, i) => k === w.ruleKeys[i]);
  });
}

export type { ChainName };
