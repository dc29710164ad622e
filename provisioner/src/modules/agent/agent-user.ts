// agent_user: the `epoch-agent` system user and group (no login shell). Its own module so the user exists before the
// CA is installed (the key is owned by it) and before the agent starts; agent_service plans the same changes, so the
// two never disagree. Undo removes the user only when we created it.
import { z } from 'zod';
import type { Change, Step } from '../../core/change';
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

/** Where the shadow-utils backups (/etc/passwd- ...) wait while we own a user: root-only, outside /etc. */
export const shadowBackupsDir = '/var/lib/epoch-provision/saved/shadow-backups';
const shadowBackupFiles = ['passwd-', 'group-', 'shadow-', 'gshadow-'];

// useradd/userdel rewrite /etc/passwd- and friends, so removing the user alone would not give back the same /etc.
// Before useradd we copy the backups that exist (and note which did not, in `saved`); after userdel they come back
// byte for byte (atomically: copy beside, then rename) and the ones that did not exist are removed again.
const saveScript = `set -e
umask 077
d=$1; shift
rm -rf -- "$d"
mkdir -p -- "$d"
for f in ${shadowBackupFiles.join(' ')}; do
  if [ -e "/etc/$f" ]; then cp -p -- "/etc/$f" "$d/$f"; fi
done
: > "$d/saved"
exec "$@"`;

const restoreScript = `set -e
d=$1; user=$2
userdel -- "$user"
[ -f "$d/saved" ] || exit 0
for f in ${shadowBackupFiles.join(' ')}; do
  if [ -e "$d/$f" ]; then
    cp -p -- "$d/$f" "/etc/$f.epoch-restore"
    mv -f -- "/etc/$f.epoch-restore" "/etc/$f"
  else
    rm -f -- "/etc/$f"
  fi
done
rm -rf -- "$d"
rmdir --ignore-fail-on-non-empty -- "\${d%/*}"`;

/** Remove the agent user (one we created) and put the shadow-utils backups back as they were before useradd. */
export function removeUserSteps(): Step[] {
  return [{ kind: 'run', argv: ['sh', '-c', restoreScript, 'epoch-userdel', shadowBackupsDir, agentUser] }];
}

/** The changes that make the agent user exist with no login shell; [] when it already does. */
export function userChanges(user: AgentUserFacts['user']): Change[] {
  if (!user) {
    return [
      {
        id: `user:${agentUser}`,
        summary: `create system user ${agentUser} (group ${agentGroup}, shell ${nologin})`,
        steps: [
          {
            kind: 'run',
            argv: ['sh', '-c', saveScript, 'epoch-useradd', shadowBackupsDir, 'useradd', '--system', '--user-group', '--home-dir', stateDir, '--no-create-home', '--shell', nologin, '--comment', userComment, agentUser],
          },
        ],
        // We created it, so undo removes it (and its group); a pre-existing user is never removed.
        undo: removeUserSteps(),
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
