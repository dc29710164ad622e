// Public API of provisioner/src/config (what the runner and the CLI use). Everything here is pure or reads local
// files only; nothing connects to a host. Every config problem is collected and thrown together as one
// ConfigError (core/errors.ts, exit 2), each with `file:line:column` and the offending value.
//
// Inventory
//   loadInventory(spec, {cwd?, vaultPassword?, keepEncrypted?, playbookDir?}): Promise<Inventory>
//     spec: `prod` → `<cwd>/inventories/prod` (folder or file) if it exists, else a file/folder path.
//     Ansible INI and YAML, folders of inventory files, group_vars/ and host_vars/ (files and folders), host ranges.
//     Host vars are merged with Ansible's precedence (all < parent < child group < host; same depth by
//     ansible_group_priority then name; inventory-file vars < group_vars/ files < host vars < host_vars/).
//     `!vault` values are decrypted with vaultPassword (readVaultPasswordFile(path) reads --vault-password-file);
//     without it each one is a problem naming the variable and its file:line, unless keepEncrypted (for --list).
//     Variables keep their `{{ }}` templates; they are resolved per host when used (see below).
//   selectHosts(inv, pattern, limit?): string[]       hosts in inventory order (limit = --limit, intersected)
//   matchPattern(inv, pattern): {hosts, unmatched}    the same plus the terms that matched nothing (for warnings)
//   connectionSpecFor(host, {becomePasswordEnv?, defaultUser?, extraVars?}): ConnectionSpec
//   connectionSpecsFor(inv, hostNames, opts): Map<string, ConnectionSpec>   all hosts' problems in one ConfigError
//     Templated connection vars are resolved. A become password found in the inventory is attached as the
//     non-enumerable `becomePassword` (memory only); otherwise the transport reads the env var named by
//     becomePasswordEnv (or prompts).
//   formatInventoryList(inv, limit?): string           `ansible-inventory --list` JSON
//
// Playbooks
//   loadPlaybook(path, {inventory?, extraVars?, limit?, tags?, vaultPassword?, onWarning?, runtimeVars?}): Promise<Play[]>
//     Task params are returned UNRESOLVED (templates intact, exactly as written, free-form strings turned into
//     their mapping). Loading checks the shape, module names, template and `when` syntax, and validates params
//     that hold no template. With `inventory` it also preflights: for every host each play selects (after
//     limit/tags) it evaluates `when` and resolves + validates params, so all errors surface before any SSH.
//   loadRun(inventorySpec, playbookPath, opts): {inventory, plays}   both loaded; the problems of both in one error
//   runtimeVariables: epoch_facts/epoch_run_id/epoch_generation — undefined ones are left to run time by preflight
//   hostRunVars(inv, hostName, play, extraVars): {vars, varLocations}   a host's variables for a play
//     (magic vars < inventory vars < play vars < extra vars)
//   resolveTaskParams(task, vars, varLocations?): params   per host, at run time: resolves {{ }} and returns
//     the module schema's parsed output (e.g. command's `cmd` string → `argv`)
//   evaluateWhen(task.when, vars, task.whenLocation ?? task.location): boolean
//   filterTasksByTags(tasks, {tags, skipTags}): Task[]  Ansible semantics incl. always/never/tagged/untagged
//
// Modules: modules/registry.ts (registerModule/getModule/listModules). Importing this file registers `command`;
// import the other module folders before loadPlaybook, or their names are reported as unknown modules.
// Error messages never echo a decrypted vault value (vault.ts keeps the clear texts in memory to mask them).
export { connectionSpecFor, connectionSpecsFor, magicVars, parseSshArgs, type ConnectionOptions } from './connection';
export { loadInventory, readVaultPasswordFile, resolveInventorySpec, type LoadInventoryOptions } from './inventory';
export { formatInventoryList, inventoryList } from './inventory-list';
export { matchPattern, selectHosts, type PatternMatch } from './patterns';
export { hostRunVars, loadPlaybook, loadRun, resolveTaskParams, runtimeVariables, type LoadPlaybookOptions, type LoadRunOptions } from './playbook';
export { filterTasksByTags, shouldRunTags, splitTagList, type TagFilter } from './tags';
export { Resolver } from './templating';
export type { ConnectionSpec, Inventory, InventoryGroup, InventoryHost, Play, Task } from './types';
export { decryptVault, encryptVault, VaultValue } from './vault';
export { evaluateWhen } from './when';
