// Ansible's INI inventory format, following its ini plugin line by line:
//   host lines `name[:port] [key=value ...]` (split like Python's shlex with comments; values via literal_eval),
//   `[group]`, `[group:vars]` (key = value), `[group:children]`, comments with # or ;, host ranges.
import { expandHostRange, HostRangeError } from './host-range';
import type { InventoryBuilder } from './inventory-builder';
import { parseIniValue } from './python-literal';
import { displayPath } from './yaml-source';

const sectionRe = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$/;
const groupNameRe = /^([^:\]\s]+)\s*(?:#.*)?$/;

class IniLineError extends Error {}

/** Python shlex.split(line, comments=True, posix=True): quotes, backslashes, and `#` starts a comment. */
export function shlexSplit(line: string): string[] {
  const tokens: string[] = [];
  let token = '';
  let inToken = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (inToken) tokens.push(token);
      token = '';
      inToken = false;
      i++;
    } else if (c === '#') {
      break; // shlex ends the token and drops the rest of the line, even mid-word
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new IniLineError('No closing quotation');
      token += line.slice(i + 1, end);
      inToken = true;
      i = end + 1;
    } else if (c === '"') {
      inToken = true;
      i++;
      for (;;) {
        if (i >= line.length) throw new IniLineError('No closing quotation');
        const d = line[i]!;
        if (d === '"') break;
        if (d === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) {
          token += line[i + 1];
          i += 2;
          continue;
        }
        token += d;
        i++;
      }
      i++;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new IniLineError('No escaped character');
      token += line[i + 1];
      inToken = true;
      i += 2;
    } else {
      token += c;
      inToken = true;
      i++;
    }
  }
  if (inToken) tokens.push(token);
  return tokens;
}

/** `host:2222`, `[2001:db8::1]:2222`, `web[01:09]:22` → name pattern and port; bare IPv6 has no port. */
export function splitHostPort(pattern: string): { pattern: string; port?: number } {
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(pattern);
  if (v6 && v6[1]!.includes(':')) return v6[2] ? { pattern: v6[1]!, port: Number(v6[2]) } : { pattern: v6[1]! };
  const withoutRanges = pattern.replace(/\[[^\]]*\]/g, 'R');
  const colons = (withoutRanges.match(/:/g) ?? []).length;
  if (colons === 1) {
    const m = /^(.*):(\d+)$/.exec(pattern);
    if (m) return { pattern: m[1]!, port: Number(m[2]) };
  }
  return { pattern };
}

export function parseIniInventory(file: string, text: string, b: InventoryBuilder): void {
  const shown = displayPath(file);
  let group = 'ungrouped';
  let state = 'hosts';
  const pending = new Map<string, { line: number; state: string; parents: string[] }>();
  const lines = text.split(/\r?\n/);
  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.trim();
    const col = rawLine.length - rawLine.trimStart().length + 1;
    const here = `${shown}:${lineNo}:${col}`;
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    try {
      const section = sectionRe.exec(line);
      if (section) {
        group = section[1]!;
        state = section[2] ?? 'hosts';
        if (!['hosts', 'vars', 'children'].includes(state)) {
          throw new IniLineError(`section [${group}:${state}] has unknown type ${JSON.stringify(state)} (expected vars or children)`);
        }
        if (!b.groups.has(group)) {
          // [g] or [g:children] declares a group; [g:vars] alone does not (checked at the end)
          if (state === 'vars' && !pending.has(group)) pending.set(group, { line: lineNo, state, parents: [] });
          b.addGroup(group, here);
        }
        const waiting = pending.get(group);
        if (waiting && state !== 'vars') {
          if (waiting.state === 'children') addPendingChildren(group, pending, b, here);
          else pending.delete(group);
        }
        return;
      }
      if (line.startsWith('[') && line.endsWith(']')) {
        throw new IniLineError(`invalid section entry ${JSON.stringify(line)} (expected [group], [group:vars] or [group:children], without spaces)`);
      }
      if (state === 'hosts') parseHostLine(rawLine, line, group, b, shown, lineNo, here);
      else if (state === 'vars') {
        const eq = line.indexOf('=');
        if (eq < 0) throw new IniLineError(`expected key=value in [${group}:vars], got ${JSON.stringify(line)}`);
        const key = line.slice(0, eq).trim();
        const value = line.slice(eq + 1).trim();
        const afterEq = rawLine.slice(rawLine.indexOf('=') + 1);
        const valueCol = rawLine.indexOf('=') + 2 + (afterEq.length - afterEq.trimStart().length);
        b.setGroupVar(group, key, parseIniValue(value), `${shown}:${lineNo}:${valueCol}`);
      } else {
        const m = groupNameRe.exec(line);
        if (!m) throw new IniLineError(`expected a group name in [${group}:children], got ${JSON.stringify(line)}`);
        const child = m[1]!;
        if (!b.groups.has(child)) {
          const waiting = pending.get(child);
          if (waiting) waiting.parents.push(group);
          else pending.set(child, { line: lineNo, state: 'children', parents: [group] });
        } else b.addChild(group, child, here);
      }
    } catch (e) {
      if (e instanceof IniLineError || e instanceof HostRangeError) b.problems.add(here, e.message);
      else throw e;
    }
  });
  for (const [name, decl] of pending) {
    if (decl.state === 'vars') {
      b.problems.add(`${shown}:${decl.line}:1`, `section [${name}:vars] is for a group that is never defined: ${JSON.stringify(name)} (define [${name}] or list it under a [parent:children])`);
    } else {
      b.problems.add(
        `${shown}:${decl.line}:1`,
        `section [${decl.parents.at(-1)}:children] includes undefined group ${JSON.stringify(name)} (expected a [${name}] or [${name}:children] section)`,
      );
    }
  }
}

/** A group that was waiting to be declared: attach it to its parents, and theirs if they were waiting too. */
function addPendingChildren(group: string, pending: Map<string, { line: number; state: string; parents: string[] }>, b: InventoryBuilder, here: string): void {
  const waiting = pending.get(group);
  if (!waiting) return;
  pending.delete(group);
  for (const parent of waiting.parents) {
    b.addChild(parent, group, here);
    if (pending.get(parent)?.state === 'children') addPendingChildren(parent, pending, b, here);
  }
}

function parseHostLine(rawLine: string, line: string, group: string, b: InventoryBuilder, shown: string, lineNo: number, here: string): void {
  const tokens = shlexSplit(line);
  if (tokens.length === 0) return;
  const { pattern, port } = splitHostPort(tokens[0]!);
  if (tokens[0]!.endsWith(':') && port === undefined) {
    throw new IniLineError(`invalid host pattern ${JSON.stringify(tokens[0])}: ending in ':' is reserved for a port`);
  }
  if (pattern === '---') throw new IniLineError("invalid host pattern '---', which is normally a sign this is a YAML file");
  const names = expandHostRange(pattern);
  const assignments: [string, unknown, string][] = [];
  for (const token of tokens.slice(1)) {
    const eq = token.indexOf('=');
    if (eq < 0) throw new IniLineError(`expected key=value host variable assignment, got ${JSON.stringify(token)}`);
    const key = token.slice(0, eq);
    const at = rawLine.indexOf(`${key}=`);
    assignments.push([key, parseIniValue(token.slice(eq + 1)), `${shown}:${lineNo}:${at >= 0 ? at + 1 : 1}`]);
  }
  for (const name of names) {
    const host = b.addHost(group, name, here);
    if (port !== undefined) b.setHostVar(host, 'ansible_port', port, here);
    for (const [key, value, loc] of assignments) b.setHostVar(host, key, value, loc);
  }
}
