// Reads a YAML/JSON file the way Ansible (PyYAML, YAML 1.1) does, and remembers where every value came from,
// so that each config error can name file:line:column. `!vault` scalars become VaultValue objects.
import { relative } from 'node:path';
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { Problems } from './problems';
import { VaultValue } from './vault';

export type PathKey = string | number;

export interface YamlSource {
  file: string;
  /** The document as plain JS (YAML 1.1 scalars: yes/no are booleans, 0644 is octal). */
  value: unknown;
  /** Location of the value at `path`, or of its nearest ancestor that has one. */
  locate(path: readonly PathKey[]): string;
  /** Location of the key that introduces `path` (falls back to the value). */
  locateKey(path: readonly PathKey[]): string;
}

/** Paths are shown relative to the working directory when they are inside it. */
export function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}

const pathId = (path: readonly PathKey[]): string => path.map(String).join('\u0001');

/** Parses `text` (the content of `file`); YAML syntax errors go to `problems`, and the value is then undefined. */
export function parseYamlSource(file: string, text: string, problems: Problems, locationSuffix = ''): YamlSource {
  const shown = displayPath(file) + locationSuffix;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    version: '1.1',
    merge: true,
    uniqueKeys: false, // PyYAML keeps the last of duplicate keys; Ansible only warns
    lineCounter,
    prettyErrors: false,
    customTags: [
      { tag: '!vault', resolve: (s: string) => s },
      { tag: '!unsafe', resolve: (s: string) => s },
    ],
  });
  const at = (offset: number): string => {
    const { line, col } = lineCounter.linePos(offset);
    return `${shown}:${line}:${col}`;
  };
  const valueLocs = new Map<string, string>();
  const keyLocs = new Map<string, string>();
  for (const error of doc.errors) problems.add(at(error.pos[0]), `YAML syntax error: ${error.message.split('\n')[0]}`);
  let value: unknown;
  if (doc.errors.length === 0) {
    value = convert(doc, doc.contents, [], { at, valueLocs, keyLocs, depth: 0 });
  }
  const locate = (path: readonly PathKey[]): string => {
    for (let n = path.length; n >= 0; n--) {
      const loc = valueLocs.get(pathId(path.slice(0, n)));
      if (loc) return loc;
    }
    return `${shown}:1:1`;
  };
  return {
    file,
    value,
    locate,
    locateKey: (path) => keyLocs.get(pathId(path)) ?? locate(path),
  };
}

interface Ctx {
  at(offset: number): string;
  valueLocs: Map<string, string>;
  keyLocs: Map<string, string>;
  depth: number;
}

function convert(doc: Document, node: unknown, path: PathKey[], ctx: Ctx): unknown {
  if (ctx.depth > 200) throw new Error('YAML nesting too deep (alias loop?)');
  if (node === null || node === undefined) return null;
  const id = pathId(path);
  const n = node as Node;
  if (n.range && !ctx.valueLocs.has(id)) ctx.valueLocs.set(id, ctx.at(n.range[0]));
  if (isAlias(n)) {
    const target = n.resolve(doc);
    return convert(doc, target, path, { ...ctx, depth: ctx.depth + 1 });
  }
  if (isScalar(n)) {
    if (n.tag === '!vault') return new VaultValue(String(n.value), ctx.valueLocs.get(id) ?? '');
    return n.value;
  }
  if (isSeq(n)) {
    return n.items.map((item, i) => convert(doc, item, [...path, i], { ...ctx, depth: ctx.depth + 1 }));
  }
  if (isMap(n)) {
    const out: Record<string, unknown> = {};
    const merged: Record<string, unknown> = {};
    for (const pair of n.items) {
      if (!isPair(pair)) continue;
      const keyNode = pair.key as Node | null;
      const rawKey = isScalar(keyNode) ? keyNode.value : keyNode ? String(keyNode) : null;
      if (isScalar(keyNode) && (typeof rawKey === 'symbol' || (rawKey === '<<' && keyNode.source === '<<'))) {
        // YAML 1.1 merge keys: explicit keys of this map win over merged ones
        const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
        for (const source of sources) {
          const v = convert(doc, source, path, { ...ctx, depth: ctx.depth + 1 });
          if (v && typeof v === 'object' && !Array.isArray(v)) {
            for (const [k, val] of Object.entries(v)) if (!(k in merged)) merged[k] = val;
          }
        }
        continue;
      }
      const key = rawKey === null ? 'null' : String(rawKey);
      const childPath = [...path, key];
      if (keyNode?.range) ctx.keyLocs.set(pathId(childPath), ctx.at(keyNode.range[0]));
      ctx.valueLocs.delete(pathId(childPath)); // a duplicate key: the last one wins, so does its location
      const valueNode = pair.value as Node | null;
      if (valueNode === null && keyNode?.range) ctx.valueLocs.set(pathId(childPath), ctx.at(keyNode.range[0]));
      out[key] = convert(doc, valueNode, childPath, { ...ctx, depth: ctx.depth + 1 });
    }
    for (const [k, v] of Object.entries(merged)) if (!(k in out)) out[k] = v;
    const keys = Object.keys(out);
    if (keys.length === 1 && keys[0] === '__ansible_vault' && typeof out.__ansible_vault === 'string') {
      return new VaultValue(out.__ansible_vault, ctx.valueLocs.get(id) ?? '');
    }
    return out;
  }
  return (n as { toJSON?: () => unknown }).toJSON?.() ?? null;
}
