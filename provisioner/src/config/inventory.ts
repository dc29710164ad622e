// Loads an Ansible inventory (a file, or a folder of files) plus the group_vars/ and host_vars/ beside it.
// Everything wrong is collected and thrown together as one ConfigError.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { InventoryBuilder, type VarsLayer } from './inventory-builder';
import { parseIniInventory } from './inventory-ini';
import { looksLikeYamlInventory, parseYamlInventory } from './inventory-yaml';
import { Problems, show } from './problems';
import type { Inventory } from './types';
import { decryptVault, isVaultText, registerSecret, VaultFormatError, VaultPasswordError, VaultValue } from './vault';
import { displayPath, parseYamlSource } from './yaml-source';

export interface LoadInventoryOptions {
  /** Where `inventories/NAME/` is looked up (default: the working directory). */
  cwd?: string;
  /** The vault password (from --vault-password-file, see readVaultPasswordFile). */
  vaultPassword?: string;
  /**
   * Leave `!vault` values encrypted (as VaultValue, printed like ansible-inventory's {"__ansible_vault": ...})
   * when there is no password, instead of reporting each one. For `inventory --list`, never for a run.
   */
  keepEncrypted?: boolean;
  /**
   * The playbook's folder: its group_vars/ and host_vars/ are read too, ranking above the inventory's (as in
   * Ansible). Ignored when it is the inventory's own folder.
   */
  playbookDir?: string;
}

const ignoredExtensions = new Set(['.pyc', '.pyo', '.swp', '.bak', '.rpm', '.md', '.txt', '.rst', '.orig', '.cfg', '.retry']);
const yamlExtensions = ['.yml', '.yaml', '.json'];
const varsExtensions = ['', ...yamlExtensions];

/** `prod` → `<cwd>/inventories/prod` when it exists, otherwise a file or folder path. */
export function resolveInventorySpec(spec: string, cwd = process.cwd()): string {
  const named = resolve(cwd, 'inventories', spec);
  if (!spec.includes('/') && existsSync(named)) return named;
  const asPath = resolve(cwd, spec);
  if (existsSync(asPath)) return asPath;
  throw new Error(
    `inventory ${JSON.stringify(spec)} not found: neither ${displayPath(named)} nor ${displayPath(asPath)} exists (expected a name under inventories/ or a path)`,
  );
}

/** Ansible reads the first line of the file and strips surrounding whitespace. Executable scripts are refused. */
export function readVaultPasswordFile(path: string): string {
  const st = statSync(path);
  if (!st.isFile()) throw new Error(`vault password file ${path} is not a regular file`);
  if (st.mode & 0o111) {
    throw new Error(`vault password file ${path} is executable: password scripts are not supported (expected a plain file holding the password)`);
  }
  const password = readFileSync(path, 'utf8').trim();
  if (!password) throw new Error(`vault password file ${path} is empty`);
  return password;
}

export async function loadInventory(spec: string, options: LoadInventoryOptions = {}): Promise<Inventory> {
  const problems = new Problems();
  let source: string;
  try {
    source = resolveInventorySpec(spec, options.cwd);
  } catch (e) {
    problems.add('', (e as Error).message);
    problems.throwIfAny();
    throw e;
  }
  const b = new InventoryBuilder(problems);
  const isDir = statSync(source).isDirectory();
  if (isDir) loadInventoryDir(source, b, options);
  else loadInventoryFile(source, b, options);

  const base = isDir ? source : dirname(source);
  loadVarsDir(join(base, 'group_vars'), [...b.groups.keys()], b.groupVarsFiles, b, options);
  loadVarsDir(join(base, 'host_vars'), [...b.hosts.keys()], b.hostVarsFiles, b, options);
  if (options.playbookDir !== undefined && resolve(options.playbookDir) !== resolve(base)) {
    loadVarsDir(join(options.playbookDir, 'group_vars'), [...b.groups.keys()], b.playGroupVarsFiles, b, options);
    loadVarsDir(join(options.playbookDir, 'host_vars'), [...b.hosts.keys()], b.playHostVarsFiles, b, options);
  }

  // Vault values are decrypted (or reported) before merging, so every host sees the clear value.
  const reveal = (vars: Record<string, unknown>, where: string): void => {
    for (const [k, v] of Object.entries(vars)) vars[k] = revealVaults(v, k, where, options, problems);
  };
  for (const g of b.groups.values()) reveal(g.vars, `group ${g.name}`);
  for (const h of b.hosts.values()) reveal(h.vars, `host ${h.name}`);
  for (const [name, layer] of b.groupVarsFiles) reveal(layer.vars, `group_vars/${name}`);
  for (const [name, layer] of b.hostVarsFiles) reveal(layer.vars, `host_vars/${name}`);
  for (const [name, layer] of b.playGroupVarsFiles) reveal(layer.vars, `group_vars/${name} (playbook)`);
  for (const [name, layer] of b.playHostVarsFiles) reveal(layer.vars, `host_vars/${name} (playbook)`);

  const inventory = b.finish(source);
  problems.throwIfAny();
  return inventory;
}

function loadInventoryDir(dir: string, b: InventoryBuilder, options: LoadInventoryOptions): void {
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.endsWith('~') || ignoredExtensions.has(extname(name))) continue;
    if (name === 'group_vars' || name === 'host_vars') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) loadInventoryDir(path, b, options);
    else loadInventoryFile(path, b, options);
  }
}

function readMaybeVaulted(path: string, b: InventoryBuilder, options: LoadInventoryOptions): { text: string; suffix: string } | undefined {
  const text = readFileSync(path, 'utf8').replace(/^\uFEFF/, ''); // editors on Windows add a BOM
  if (!isVaultText(text)) return { text, suffix: '' };
  if (options.vaultPassword === undefined) {
    b.problems.add(`${displayPath(path)}:1:1`, 'the whole file is vault-encrypted; pass --vault-password-file to read it');
    return undefined;
  }
  try {
    return { text: decryptVault(text, options.vaultPassword), suffix: ' (decrypted)' };
  } catch (e) {
    if (e instanceof VaultPasswordError || e instanceof VaultFormatError) {
      b.problems.add(`${displayPath(path)}:1:1`, `cannot decrypt the vault-encrypted file: ${e.message}`);
      return undefined;
    }
    throw e;
  }
}

function loadInventoryFile(path: string, b: InventoryBuilder, options: LoadInventoryOptions): void {
  const read = readMaybeVaulted(path, b, options);
  if (!read) return;
  const { text, suffix } = read;
  if (text.startsWith('#!')) {
    b.problems.add(`${displayPath(path)}:1:1`, 'dynamic inventory scripts are not supported (expected an INI or YAML inventory file)');
    return;
  }
  const ext = extname(path).toLowerCase();
  if (yamlExtensions.includes(ext)) {
    const src = parseYamlSource(path, text, b.problems, suffix);
    if (src.value !== undefined) parseYamlInventory(src, b);
    return;
  }
  if (ext === '') {
    // Like Ansible's plugin order: a file without extension is YAML if it parses as a YAML inventory, else INI
    const scratch = new Problems();
    const src = parseYamlSource(path, text, scratch, suffix);
    if (scratch.empty && src.value !== null && looksLikeYamlInventory(src.value)) {
      parseYamlInventory(src, b);
      return;
    }
  }
  parseIniInventory(path, text, b);
}

/** group_vars/NAME{,.yml,.yaml,.json}, each a file or a folder of such files (read recursively, sorted). */
function loadVarsDir(dir: string, names: string[], into: Map<string, VarsLayer>, b: InventoryBuilder, options: LoadInventoryOptions): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return;
  const used = new Set<string>();
  for (const name of names) {
    const layer: VarsLayer = { vars: {}, varLocations: {} };
    let found = false;
    for (const ext of varsExtensions) {
      const path = join(dir, name + ext);
      if (!existsSync(path)) continue;
      used.add(name + ext);
      found = true;
      for (const file of statSync(path).isDirectory() ? varsFilesIn(path) : [path]) loadVarsFile(file, layer, b, options);
    }
    if (found) into.set(name, layer);
  }
  for (const entry of readdirSync(dir).sort()) {
    if (used.has(entry) || entry.startsWith('.')) continue;
    b.warnings.push(`${displayPath(join(dir, entry))}: no group or host named ${JSON.stringify(stripVarsExtension(entry))} in the inventory; ignored`);
  }
}

function stripVarsExtension(name: string): string {
  const ext = extname(name);
  return yamlExtensions.includes(ext) ? basename(name, ext) : name;
}

function varsFilesIn(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.endsWith('~')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...varsFilesIn(path));
    else if (varsExtensions.includes(extname(name))) out.push(path);
  }
  return out;
}

function loadVarsFile(path: string, layer: VarsLayer, b: InventoryBuilder, options: LoadInventoryOptions): void {
  const read = readMaybeVaulted(path, b, options);
  if (!read) return;
  const src = parseYamlSource(path, read.text, b.problems, read.suffix);
  const value = src.value;
  if (value === undefined || value === null) return;
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof VaultValue) {
    b.problems.add(src.locate([]), `a vars file must be a mapping of variable names to values, got ${show(value)}`);
    return;
  }
  // Every value of a decrypted vault file is a secret as far as error messages go
  if (read.suffix) registerSecret(value);
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    layer.vars[k] = v;
    layer.varLocations[k] = src.locate([k]);
  }
}

/** Replaces VaultValue objects (at any depth) with their clear text, or reports them. */
function revealVaults(value: unknown, name: string, where: string, options: LoadInventoryOptions, problems: Problems): unknown {
  if (value instanceof VaultValue) {
    if (options.vaultPassword === undefined) {
      if (!options.keepEncrypted) {
        problems.add(value.location, `variable ${name} (${where}) is vault-encrypted; pass --vault-password-file to decrypt it`);
      }
      return value;
    }
    try {
      return decryptVault(value.envelope, options.vaultPassword);
    } catch (e) {
      if (e instanceof VaultPasswordError || e instanceof VaultFormatError) {
        problems.add(value.location, `cannot decrypt variable ${name} (${where}): ${e.message}`);
        return value;
      }
      throw e;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => revealVaults(v, `${name}[${i}]`, where, options, problems));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = revealVaults(v, `${name}.${k}`, where, options, problems);
    return out;
  }
  return value;
}
