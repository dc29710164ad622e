// Ansible host ranges: `web[01:20].example.com`, `db-[a:f]`, `node[1:9:2]`, nested ones expand left to right.
// Same rules as ansible.inventory.expand_hostname_range: a zero-padded start fixes the width (and the end must
// have the same width), an empty start means 0, a start past the end gives no hosts.

export class HostRangeError extends Error {}

const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** True when `pattern` holds a `[x:y]` range (a bracket with a colon inside). */
export function hasHostRange(pattern: string): boolean {
  const open = pattern.indexOf('[');
  const close = pattern.indexOf(']', open);
  return open >= 0 && close > open && pattern.slice(open, close).includes(':');
}

export function expandHostRange(pattern: string): string[] {
  if (!hasHostRange(pattern)) return [pattern];
  const open = pattern.indexOf('[');
  const close = pattern.indexOf(']', open);
  const head = pattern.slice(0, open);
  const inner = pattern.slice(open + 1, close);
  const tail = pattern.slice(close + 1);
  const bounds = inner.split(':');
  if (bounds.length !== 2 && bounds.length !== 3) {
    throw new HostRangeError(`host range must be begin:end or begin:end:step, got [${inner}] in ${pattern}`);
  }
  const begin = bounds[0] || '0';
  const end = bounds[1] ?? '';
  const stepText = bounds[2] ?? '1';
  if (!end) throw new HostRangeError(`host range must specify an end value, got [${inner}] in ${pattern}`);
  const step = Number(stepText);
  if (!/^\d+$/.test(stepText) || step < 1) throw new HostRangeError(`host range step must be a positive integer, got ${JSON.stringify(stepText)} in ${pattern}`);

  let items: string[];
  const alphaBegin = begin.length === 1 ? letters.indexOf(begin) : -1;
  const alphaEnd = end.length === 1 ? letters.indexOf(end) : -1;
  if (alphaBegin >= 0 && alphaEnd >= 0) {
    if (alphaBegin > alphaEnd) throw new HostRangeError(`host range must have begin <= end, got [${inner}] in ${pattern}`);
    items = [];
    for (let i = alphaBegin; i <= alphaEnd; i += step) items.push(letters[i]!);
  } else {
    if (!/^\d+$/.test(begin) || !/^\d+$/.test(end)) {
      throw new HostRangeError(`host range bounds must both be numbers or both single letters, got [${inner}] in ${pattern}`);
    }
    const padded = begin.length > 1 && begin.startsWith('0');
    if (padded && begin.length !== end.length) {
      throw new HostRangeError(`host range must specify equal-length begin and end formats, got [${inner}] in ${pattern}`);
    }
    items = [];
    for (let i = Number(begin); i <= Number(end); i += step) {
      items.push(padded ? String(i).padStart(begin.length, '0') : String(i));
    }
  }
  return items.flatMap((item) => expandHostRange(`${head}${item}${tail}`));
}
