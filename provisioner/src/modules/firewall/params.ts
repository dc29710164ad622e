// The firewall module's parameters (playbook variables), validated before the first SSH connection.
import { z } from 'zod';
import { parseCidr } from './net';

const port = z.number({ error: 'must be a port number' }).int('must be an integer port').min(1, 'port must be 1..65535').max(65535, 'port must be 1..65535');

const cidr = z.string().superRefine((text, ctx) => {
  try {
    parseCidr(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'interface names are 1-15 characters of letters, digits and _ . : @ -');

/** A numeric uid or a user name; names are resolved on the host with getent during gather. */
const userRef = z.union([z.number().int().min(0).max(4294967294), z.string().regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'not a valid user name')]);

export const firewallParams = z
  .object({
    state: z.enum(['present', 'absent']).default('present'),
    /** `auto` picks from the host's facts and refuses when they are ambiguous. */
    backend: z.enum(['auto', 'nft', 'iptables-nft', 'iptables-legacy']).default('auto'),
    modes: z.array(z.enum(['outgoing', 'incoming'])).min(1, 'at least one mode').default(['outgoing']),
    ports: z.array(port).min(1).default([443]),
    ipv4: z.boolean().default(true),
    ipv6: z.boolean().default(true),
    /** The agent's listener for REDIRECTed outgoing connections. */
    agentPort: port.default(8443),
    /** The agent's inbound (incoming mode) listener. */
    incomingPort: port.optional(),
    /** Ports whose inbound traffic goes to the incoming listener (default: `ports`). */
    incomingPorts: z.array(port).min(1).optional(),
    /** Container bridges (docker0, br-...): their outgoing traffic is redirected in PREROUTING, since OUTPUT never sees it. */
    containerInterfaces: z.array(interfaceName).default([]),
    agentUser: z.string().min(1).default('epoch-agent'),
    agentGroup: z.string().min(1).default('epoch-agent'),
    agentUnit: z.string().regex(/^[A-Za-z0-9@._:-]+\.service$/, 'must be a systemd service name').default('epoch-agent.service'),
    healthUrl: z.string().regex(/^http:\/\/(127\.0\.0\.1|\[::1\]|localhost):[0-9]{1,5}\/[^\s'"]*$/, 'must be a loopback http:// URL').default('http://127.0.0.1:9443/healthz'),
    sshPort: port.default(22),
    /** Addresses that must never be redirected; the address the controller connects from is added from facts. */
    controllerAddresses: z.array(cidr).default([]),
    excludeCidrs: z.array(cidr).default([]),
    excludePorts: z.array(port).default([]),
    excludeUsers: z.array(userRef).default([]),
    /** Commit-confirmed window: the host restores the previous state unless confirmed within it. */
    revertSeconds: z.number().int().min(10).max(3600).default(60),
    /** How long the load step waits for the agent's health before giving up (and leaving traffic direct). */
    healthTimeoutSeconds: z.number().int().min(1).max(600).default(30),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.modes.includes('incoming') && p.incomingPort === undefined) {
      ctx.addIssue({ code: 'custom', path: ['incomingPort'], message: 'incoming mode needs incomingPort (the agent\'s inbound listener)' });
    }
    if (!p.ipv4 && !p.ipv6) ctx.addIssue({ code: 'custom', path: ['ipv6'], message: 'at least one of ipv4 and ipv6 must be true' });
    const redirectTargets = [p.agentPort, ...(p.incomingPort !== undefined ? [p.incomingPort] : [])];
    const capturedPorts = [...p.ports, ...(p.incomingPorts ?? [])];
    for (const target of redirectTargets) {
      if (capturedPorts.includes(target)) {
        ctx.addIssue({ code: 'custom', path: ['ports'], message: `port ${target} is both captured and the agent's listener: connections would loop` });
      }
    }
    if (capturedPorts.includes(p.sshPort)) {
      ctx.addIssue({ code: 'custom', path: ['ports'], message: `port ${p.sshPort} is the SSH port; redirecting it would lock the controller out` });
    }
  });

export type FirewallParams = z.output<typeof firewallParams>;
export type FirewallParamsInput = z.input<typeof firewallParams>;
