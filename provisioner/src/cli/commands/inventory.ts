// `epoch-provision inventory --list [--inventory X] [--limit P] [--vault-password-file F]`
// and `inventory --host H`: the resolved inventory, shaped like ansible-inventory's output so users can diff them.
import { parseArgs } from 'node:util';
import { formatInventoryList, loadInventory, matchPattern, readVaultPasswordFile } from '../../config';
import { ConfigError } from '../../core/errors';
import { exitCodes } from '../exit-codes';

const usage = `usage: epoch-provision inventory --list [--inventory NAME|PATH] [--limit PATTERN] [--vault-password-file FILE]
       epoch-provision inventory --host HOST [--inventory NAME|PATH] [--vault-password-file FILE]`;

export async function inventoryCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        list: { type: 'boolean' },
        host: { type: 'string' },
        inventory: { type: 'string', short: 'i' },
        limit: { type: 'string', short: 'l' },
        'vault-password-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`epoch-provision inventory: ${(e as Error).message}\n${usage}`);
    return exitCodes.config;
  }
  if (values.help) {
    console.log(usage);
    return exitCodes.ok;
  }
  if (!values.list === (values.host === undefined)) {
    console.error(`epoch-provision inventory: give exactly one of --list or --host HOST\n${usage}`);
    return exitCodes.config;
  }
  const spec = (values.inventory as string | undefined) ?? process.env.EPOCH_INVENTORY;
  if (!spec) {
    console.error(`epoch-provision inventory: --inventory is required (or set EPOCH_INVENTORY)\n${usage}`);
    return exitCodes.config;
  }
  const passwordFile = values['vault-password-file'] as string | undefined;
  let vaultPassword: string | undefined;
  try {
    vaultPassword = passwordFile === undefined ? undefined : readVaultPasswordFile(passwordFile);
  } catch (e) {
    console.error(`epoch-provision inventory: ${(e as Error).message}`);
    return exitCodes.config;
  }
  try {
    const inventory = await loadInventory(spec, { vaultPassword, keepEncrypted: vaultPassword === undefined });
    for (const w of inventory.warnings) console.error(`[WARNING]: ${w}`);
    const limit = values.limit as string | undefined;
    if (limit !== undefined) {
      for (const term of matchPattern(inventory, limit).unmatched) console.error(`[WARNING]: Could not match supplied host pattern, ignoring: ${term}`);
    }
    if (values.host !== undefined) {
      const host = inventory.hosts.get(values.host as string);
      if (!host) {
        console.error(`epoch-provision inventory: no host ${JSON.stringify(values.host)} in ${inventory.source}`);
        return exitCodes.config;
      }
      const hostOnly = { ...inventory, hosts: new Map([[host.name, host]]) };
      const listed = JSON.parse(formatInventoryList(hostOnly, host.name)) as { _meta: { hostvars: Record<string, unknown> } };
      console.log(JSON.stringify(listed._meta.hostvars[host.name] ?? {}, null, 4));
      return exitCodes.ok;
    }
    console.log(formatInventoryList(inventory, limit));
    return exitCodes.ok;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`epoch-provision inventory: ${e.problems.length} problem(s):`);
      for (const p of e.problems) console.error(`  ${p.location ? `${p.location}: ` : ''}${p.message}`);
      return exitCodes.config;
    }
    throw e;
  }
}
