// Test-side driver for one module on one host, with the runner's contract: gather, plan, record undo, apply,
// then plan again, which must be empty.
import type { Change } from '../../../provisioner/src/core/change';
import type { CommandLogger } from '../../../provisioner/src/transport/command-log';
import type { ProvisionModule } from '../../../provisioner/src/modules/module';
import { executeSteps } from '../../../provisioner/src/runner/apply-steps';
import { type SshTransport, SshTransport as Ssh } from '../../../provisioner/src/transport/ssh-transport';
import type { Transport } from '../../../provisioner/src/transport/transport';
import type { Lab, LabHost } from '../../support/lab';

export async function planOn<P, F>(transport: Transport, module: ProvisionModule<P, F>, raw: unknown): Promise<Change[]> {
  const params = module.params.parse(raw);
  return module.plan(params, await module.gather({ name: transport.hostName, vars: {}, transport }, params));
}

export async function converge<P, F>(transport: Transport, module: ProvisionModule<P, F>, raw: unknown, journal: Change[] = []): Promise<Change[]> {
  const changes = await planOn(transport, module, raw);
  for (const change of changes) {
    journal.push(change);
    await executeSteps(transport, change.steps);
  }
  const again = await planOn(transport, module, raw);
  if (again.length > 0) throw new Error(`${module.name} did not converge on ${transport.hostName}: ${again.map((c) => c.summary).join('; ')}`);
  return changes;
}

export function connectLabHost(lab: Lab, host: LabHost, onCommand?: CommandLogger): Promise<SshTransport> {
  return Ssh.connect({
    hostName: host.name,
    target: { address: host.address, port: 22, user: 'root' },
    privateKeyFile: lab.keyFile,
    agentSocket: '',
    knownHostsFile: lab.knownHostsFile,
    connectTimeoutMs: 15_000,
    ...(onCommand && { onCommand }),
  });
}
