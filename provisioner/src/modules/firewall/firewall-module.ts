// The `firewall` module (steer port-443 traffic into the agent, fail open) and `firewall_confirm` (disarm the
// on-host auto-revert after verification; the runner calls it over a NEW SSH connection, so a controller that lost
// the host never confirms and the host reverts on its own).
import type { Change } from '../../core/change';
import { RemoteCommandError } from '../../core/errors';
import type { Transport } from '../../transport/transport';
import type { HostContext, ProvisionModule } from '../module';
import { type FirewallFacts, gatherScript, parseGatherOutput, sshConnectionFrom, sshConnectionProbe } from './facts';
import { scriptPath, stagedScriptPath, stateDir } from './host-files';
import { type FirewallParams, firewallParams } from './params';
import { planFirewall } from './plan';
import { z } from 'zod';

export { FirewallRefusedError, chooseBackend } from './plan';
export type { FirewallFacts } from './facts';
export type { FirewallParams } from './params';

async function mustRun(transport: Transport, argv: readonly string[], options: Parameters<Transport['exec']>[1] = {}) {
  const r = await transport.exec(argv, { timeoutMs: 60_000, ...options });
  if (r.exitCode !== 0) {
    throw new RemoteCommandError(`\`${r.command}\` ${r.timedOut ? 'timed out' : `exited ${r.exitCode}`}: ${r.stderr.trim() || r.stdout.trim()}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
  }
  return r;
}

export async function gatherFirewall(transport: Transport, params: FirewallParams): Promise<FirewallFacts> {
  const probe = await mustRun(transport, ['sh', '-s'], { stdin: gatherScript(params) });
  // The script's own environment has SSH_CONNECTION when no sudo came between (a root login): one round trip.
  // Otherwise it is read again without become: sudo resets the environment, and SSH_CONNECTION with it.
  let ssh = sshConnectionFrom(probe.stdout);
  if (ssh === '') {
    const r = await transport.exec(sshConnectionProbe, { become: false, timeoutMs: 15_000 });
    ssh = r.exitCode === 0 ? r.stdout : '';
  }
  return parseGatherOutput(params, probe.stdout, ssh);
}

export const firewallModule: ProvisionModule<FirewallParams, FirewallFacts> & {
  predict(params: FirewallParams, facts: FirewallFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null;
} = {
  name: 'firewall',
  params: firewallParams,
  gather: (host: HostContext, params: FirewallParams) => gatherFirewall(host.transport, params),
  plan: planFirewall,
  predict: predictFirewall,
};

/**
 * --check: earlier tasks of the run create the agent user (agent_user) and start the agent (agent_service); plan as if
 * they had. The uid/gid are stand-ins (never applied: apply plans from the real facts, and refuses a missing user).
 */
export function predictFirewall(p: FirewallParams, f: FirewallFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null {
  if (p.state !== 'present') return null;
  const userComes = !f.agentUser && earlier.has('agent_user');
  const agentStarts = !f.agent.healthy && earlier.has('agent_service');
  if (!userComes && !agentStarts) return null;
  return planFirewall(p, {
    ...f,
    ...(userComes && { agentUser: { name: p.agentUser, ...predictedIdentity } }),
    ...(userComes && !f.agentGroup && { agentGroup: { name: p.agentGroup, gid: predictedIdentity.gid } }),
    ...(agentStarts && { agent: { active: true, healthy: true } }),
  });
}

/** Stand-in ids for a user that an earlier task creates (outside any real system uid range). */
const predictedIdentity = { uid: 4294967293, gid: 4294967293 };

// ---- confirmation ----

export interface ArmedRevert { id: string }

export interface ConfirmFacts { armed: ArmedRevert[] }

export async function listArmedReverts(transport: Transport): Promise<ArmedRevert[]> {
  const r = await mustRun(transport, ['sh', '-c', `ls -1 ${stateDir} 2>/dev/null | sed -n 's/^armed-//p'; true`]);
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean).map((id) => ({ id }));
}

export function planConfirm(_params: Record<string, never>, facts: ConfirmFacts): Change[] {
  if (facts.armed.length === 0) return [];
  return [
    {
      id: 'firewall:confirm',
      summary: `confirm firewall change(s) ${facts.armed.map((a) => a.id).join(', ')}: disarm the auto-revert`,
      steps: [{ kind: 'run', argv: [stagedScriptPath, 'confirm'], timeoutMs: 30_000 }],
      // Undoing a confirmation means reverting to the snapshot; the generation is the id after the timestamp.
      undo: facts.armed.map((a) => ({ kind: 'run' as const, argv: [stagedScriptPath, 'undo', a.id.replace(/^\d+-/, '')], timeoutMs: 120_000 })),
    },
  ];
}

export const firewallConfirmModule: ProvisionModule<Record<string, never>, ConfirmFacts> & {
  predict(params: Record<string, never>, facts: ConfirmFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null;
} = {
  name: 'firewall_confirm',
  params: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  gather: async (host) => ({ armed: await listArmedReverts(host.transport) }),
  plan: planConfirm,
  /** --check: a firewall change earlier in the run arms a revert, which this task will confirm. */
  predict: (params, facts, earlier) => (earlier.has('firewall') && facts.armed.length === 0 ? planConfirm(params, { armed: [{ id: 'armed-by-this-run' }] }) : null),
};

/** For a runner that confirms directly: call on a NEW connection after verification. Returns the confirmed ids. */
export async function confirmFirewall(transport: Transport): Promise<string[]> {
  const armed = await listArmedReverts(transport);
  if (armed.length === 0) return [];
  await mustRun(transport, [stagedScriptPath, 'confirm'], { timeoutMs: 30_000 });
  return armed.map((a) => a.id);
}

export const firewallScriptPath = scriptPath;
