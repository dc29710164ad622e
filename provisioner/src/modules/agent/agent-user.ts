// agent_user: the `epoch-agent` system user and group (no login shell). Its own module so the user exists before the
// CA is installed (the key is owned by it) and before the agent starts; agent_service plans the same changes, so the
// two never disagree. Undo removes the user only when we created it.
import { z } from 'zod';
import type { Change } from '../../core/change';
import type { ProvisionModule } from '../module';
import { agentGroup, agentUser, stateDir } from './layout';

export const nologin = '/usr/sbin/nologin';
/** Marks a user we created: uninstall removes only users carrying it. */
export const userComment = 'epoch-agent TLS observability proxy';

export interface AgentUserFacts {
  /** From `getent passwd`; null when the user does not exist. */
  user: { uid: number; shell: string; gecos?: string } | null;
}

export function parsePasswdLine(line: string): AgentUserFacts['user'] {
  const f = line.trim().split(':');
  if (f.length < 7 || f[0] !== agentUser) return null;
  return { uid: Number(f[2]), shell: f[6] ?? '', gecos: f[4] ?? '' };
}

/** The changes that make the agent user exist with no login shell; [] when it already does. */
export function userChanges(user: AgentUserFacts['user']): Change[] {
  if (!user) {
    return [
      {
        id: `user:${agentUser}`,
        summary: `create system user ${agentUser} (group ${agentGroup}, shell ${nologin})`,
        steps: [{ kind: 'run', argv: ['useradd', '--system', '--user-group', '--home-dir', stateDir, '--no-create-home', '--shell', nologin, '--comment', userComment, agentUser] }],
        // We created it, so undo removes it (and its group); a pre-existing user is never removed.
        undo: [{ kind: 'run', argv: ['userdel', agentUser] }],
      },
    ];
  }
  if (user.shell !== nologin) {
    return [
      {
        id: `user:${agentUser}:shell`,
        summary: `set ${agentUser}'s shell to ${nologin} (is ${user.shell || '(empty)'})`,
        diff: { subject: `user ${agentUser} shell`, before: `${user.shell}\n`, after: `${nologin}\n` },
        steps: [{ kind: 'run', argv: ['usermod', '--shell', nologin, agentUser] }],
        undo: [{ kind: 'run', argv: ['usermod', '--shell', user.shell || '/bin/sh', agentUser] }],
      },
    ];
  }
  return [];
}

export const agentUserModule: ProvisionModule<Record<string, never>, AgentUserFacts> = {
  name: 'agent_user',
  params: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  async gather(host) {
    const r = await host.transport.exec(['getent', 'passwd', agentUser], { timeoutMs: 15_000 });
    // getent exits 2 for "no such key": that is a fact, not an error.
    if (r.exitCode !== 0 && r.exitCode !== 2) throw new Error(`getent passwd ${agentUser} exited ${r.exitCode}: ${r.stderr.trim()}`);
    return { user: r.exitCode === 0 ? parsePasswdLine(r.stdout) : null };
  },
  plan: (_params, facts) => userChanges(facts.user),
};
