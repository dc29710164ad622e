// Ansible's `serial` → batches of hosts (playbook_executor _get_serialized_batches): each value is a count or a
// percentage of ALL the play's hosts (floored, at least 1); the last value repeats until every host is placed;
// 0 or an empty list means every remaining host in one batch.

/** `"30%"` of `total` hosts, floored, at least 1; a number is taken as is. */
export function serialValueToCount(value: number | string, total: number): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new Error(`serial value must be a whole number >= 0 or "N%", got ${value}`);
    return value;
  }
  const text = value.trim();
  const pct = text.match(/^(\d+(?:\.\d+)?)\s*%$/);
  if (pct) return Math.floor((Number(pct[1]) / 100) * total) || 1;
  if (/^\d+$/.test(text)) return Number(text);
  throw new Error(`serial value must be a whole number or a percentage like "10%", got ${JSON.stringify(value)}`);
}

/** The batch sizes for `total` hosts. */
export function batchSizes(serial: readonly (number | string)[], total: number): number[] {
  const sizes: number[] = [];
  let remaining = total;
  let item = 0;
  while (remaining > 0) {
    const value = serial.length === 0 ? 0 : serial[Math.min(item, serial.length - 1)];
    const count = serialValueToCount(value ?? 0, total);
    if (count <= 0) {
      sizes.push(remaining);
      break;
    }
    const size = Math.min(count, remaining);
    sizes.push(size);
    remaining -= size;
    item += 1;
  }
  return sizes;
}

/** Splits hosts (in inventory order) into batches. */
export function splitBatches<T>(hosts: readonly T[], serial: readonly (number | string)[]): T[][] {
  const batches: T[][] = [];
  let start = 0;
  for (const size of batchSizes(serial, hosts.length)) {
    batches.push(hosts.slice(start, start + size));
    start += size;
  }
  return batches;
}
