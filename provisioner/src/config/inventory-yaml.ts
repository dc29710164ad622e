// Ansible's YAML inventory format: top-level groups (usually `all`), each a mapping of `hosts`, `vars` and
// `children`, nested to any depth. Host keys may hold ranges and `:port`.
import { expandHostRange, HostRangeError } from './host-range';
import type { InventoryBuilder } from './inventory-builder';
import { splitHostPort } from './inventory-ini';
import { show } from './problems';
import type { PathKey, YamlSource } from './yaml-source';

const isMapping = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && v.constructor === Object;

/** True when the document looks like a YAML inventory (a mapping of group mappings). */
export function looksLikeYamlInventory(value: unknown): boolean {
  return isMapping(value) && Object.values(value).every((g) => g === null || isMapping(g));
}

export function parseYamlInventory(src: YamlSource, b: InventoryBuilder): void {
  const top = src.value;
  if (top === null || top === undefined) return;
  if (!isMapping(top)) {
    b.problems.add(src.locate([]), `a YAML inventory must be a mapping of groups (e.g. all:), got ${show(top)}`);
    return;
  }
  if (typeof top.plugin === 'string') {
    b.problems.add(
      src.locateKey(['plugin']),
      `inventory plugin configuration (plugin: ${top.plugin}) is not supported: dynamic inventories are not read (expected a static YAML or INI inventory, e.g. the output of ansible-inventory --list -y)`,
    );
    return;
  }
  for (const [name, data] of Object.entries(top)) parseGroup(src, b, name, data, [name], undefined);
}

function parseGroup(src: YamlSource, b: InventoryBuilder, name: string, data: unknown, path: PathKey[], parent: string | undefined): void {
  const here = src.locateKey(path);
  b.addGroup(name, here);
  if (parent !== undefined) b.addChild(parent, name, here);
  if (data === null || data === undefined) return;
  if (!isMapping(data)) {
    b.problems.add(src.locate(path), `group ${JSON.stringify(name)} must be a mapping with hosts/vars/children, got ${show(data)}`);
    return;
  }
  for (const [key, value] of Object.entries(data)) {
    const keyPath = [...path, key];
    if (key === 'vars') {
      if (value === null) continue;
      if (!isMapping(value)) {
        b.problems.add(src.locate(keyPath), `vars of group ${JSON.stringify(name)} must be a mapping, got ${show(value)}`);
        continue;
      }
      for (const [k, v] of Object.entries(value)) b.setGroupVar(name, k, v, src.locate([...keyPath, k]));
    } else if (key === 'hosts') {
      if (value === null) continue;
      if (!isMapping(value)) {
        b.problems.add(
          src.locate(keyPath),
          `hosts of group ${JSON.stringify(name)} must be a mapping (host: vars or empty), got ${show(value)}`,
        );
        continue;
      }
      for (const [hostPattern, hostVars] of Object.entries(value)) {
        const hostPath = [...keyPath, hostPattern];
        let names: string[];
        const { pattern, port } = splitHostPort(hostPattern);
        try {
          names = expandHostRange(pattern);
        } catch (e) {
          if (!(e instanceof HostRangeError)) throw e;
          b.problems.add(src.locateKey(hostPath), e.message);
          continue;
        }
        if (hostVars !== null && !isMapping(hostVars)) {
          b.problems.add(src.locate(hostPath), `variables of host ${JSON.stringify(hostPattern)} must be a mapping, got ${show(hostVars)}`);
          continue;
        }
        for (const hostName of names) {
          const host = b.addHost(name, hostName, src.locateKey(hostPath));
          if (port !== undefined) b.setHostVar(host, 'ansible_port', port, src.locateKey(hostPath));
          for (const [k, v] of Object.entries(hostVars ?? {})) b.setHostVar(host, k, v, src.locate([...hostPath, k]));
        }
      }
    } else if (key === 'children') {
      if (value === null) continue;
      if (!isMapping(value)) {
        b.problems.add(src.locate(keyPath), `children of group ${JSON.stringify(name)} must be a mapping of groups, got ${show(value)}`);
        continue;
      }
      for (const [child, childData] of Object.entries(value)) parseGroup(src, b, child, childData, [...keyPath, child], name);
    } else {
      b.problems.add(src.locateKey(keyPath), `invalid key ${JSON.stringify(key)} in group ${JSON.stringify(name)} (expected hosts, vars or children)`);
    }
  }
}
