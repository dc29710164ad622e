// `epoch-provision agent-rollback`: on each selected host, switch /opt/epoch-agent/current back to the previous
// release and restart the agent (systemd `restart` returns once /healthz is ready; the firewall binding keeps new
// connections direct meanwhile). Hosts go one at a time and the command stops at the first failure.
//   epoch-provision agent-rollback --inventory NAME [--limit PATTERN] [--check] [--known-hosts FILE]
//                                  [--accept-new-host-keys] [--become-password-env VAR]
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type ConnectionSpec, connectionSpecsFor, loadInventory, selectHosts } from '../../config';
import { ConfigError, isConfigError, isUnreachableError } from '../../core/errors';
import { planAgentRollback } from '../../modules/agent/rollback';
import { executeSteps } from '../../runner/apply-steps';
import { LocalTransport } from '../../transport/local-transport';
import { SshTransport } from '../../transport/ssh-transport';
import type { Transport } from '../../transport/transport';
import { exitCodes } from '../exit-codes';

const usage = `usage: epoch-provision agent-rollback --inventory NAME|PATH [--limit PATTERN] [--check]
         [--known-hosts FILE] [--accept-new-host-keys] [--become-password-env VAR]
  Switches the agent on each host back to its previous release and restarts it, one host at a time.`;

export async function agentRollbackCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        inventory: { type: 'string', short: 'i' },
        limit: { type: 'string', short: 'l' },
        check: { type: 'boolean', default: false },
        'known-hosts': { type: 'string', default: join(homedir(), '.ssh', 'known_hosts') },
        'accept-new-host-keys': { type: 'boolean', default: false },
        'become-password-env': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`epoch-provision agent-rollback: ${(e as Error).message}\n${usage}`);
    return exitCodes.config;
  }
  if (values.help) {
    console.log(usage);
    return exitCodes.ok;
  }
  const spec = (values.inventory as string | undefined) ?? process.env.EPOCH_INVENTORY;
  if (!spec) {
    console.error(`epoch-provision agent-rollback: --inventory is required (or set EPOCH_INVENTORY)\n${usage}`);
    return exitCodes.config;
  }
  let hosts: string[];
  let specs: Map<string, ConnectionSpec>;
  try {
    const inventory = await loadInventory(spec);
    hosts = selectHosts(inventory, 'all', values.limit as string | undefined);
    const becomePasswordEnv = values['become-password-env'] as string | undefined;
    specs = connectionSpecsFor(inventory, hosts, { ...(becomePasswordEnv !== undefined && { becomePasswordEnv }) });
  } catch (e) {
    if (isConfigError(e)) {
      console.error(`epoch-provision agent-rollback: ${e.message}`);
      return exitCodes.config;
    }
    throw e;
  }
  if (hosts.length === 0) {
    console.error('epoch-provision agent-rollback: no hosts matched');
    return exitCodes.config;
  }
  for (const name of hosts) {
    let transport: Transport | undefined;
    try {
      transport = await open(name, specs.get(name), values);
      const plan = await planAgentRollback({ name, vars: {}, transport });
      console.log(`${name}: ${values.check ? 'would roll back' : 'rolling back'} the agent ${plan.from ?? '(none)'} -> ${plan.to}`);
      if (values.check) continue;
      for (const change of plan.changes) {
        console.log(`${name}:   ${change.summary}`);
        await executeSteps(transport, change.steps);
      }
      console.log(`${name}: ok, agent ${plan.to} is current and running`);
    } catch (e) {
      console.error(`${name}: ${isUnreachableError(e) ? 'unreachable' : 'failed'}: ${(e as Error).message}`);
      console.error('epoch-provision agent-rollback: stopped; later hosts were not touched');
      return isUnreachableError(e) ? exitCodes.hostsUnreachable : exitCodes.hostsFailed;
    } finally {
      await transport?.close();
    }
  }
  return exitCodes.ok;
}

async function open(name: string, spec: ConnectionSpec | undefined, values: Record<string, string | boolean | undefined>): Promise<Transport> {
  if (!spec) throw new ConfigError([{ location: name, message: 'no connection settings for this host' }]);
  let password: string | undefined;
  if (spec.becomePasswordEnv) {
    password = process.env[spec.becomePasswordEnv];
    if (password === undefined) throw new ConfigError([{ location: '--become-password-env', message: `environment variable ${spec.becomePasswordEnv} is not set (expected the sudo password)` }]);
  }
  const become = spec.become ? { user: spec.becomeUser, ...(password !== undefined && { password }) } : undefined;
  if (spec.kind === 'local') return new LocalTransport({ hostName: name, ...(become && { become }) });
  return SshTransport.connect({
    hostName: name,
    target: { address: spec.address, port: spec.port, user: spec.user },
    jumps: spec.proxyJump.map((j) => ({ address: j.address, port: j.port, user: j.user ?? spec.user })),
    ...(spec.privateKeyFile !== undefined && { privateKeyFile: spec.privateKeyFile }),
    knownHostsFile: spec.knownHostsFile ?? (values['known-hosts'] as string),
    acceptNewHostKeys: values['accept-new-host-keys'] === true,
    ...(become && { become }),
  });
}
