// Agent release rollback, for `epoch-provision rollback`: point `current` back at `previous` (the two links swap,
// so a second rollback undoes the first), then restart the agent so it runs that release. The switch is
// agent_release pinned to the previous version, so a playbook can do the same with `agent_release: {version: X}`.
import type { Change } from '../../core/change';
import type { HostContext } from '../module';
import { gatherRemoteRelease, planRelease, ReleaseError, type RemoteReleaseState } from './agent-release';
import { supervisorScript, unitName, unitPath } from './layout';

export interface AgentRollbackPlan {
  from: string | null;
  to: string;
  changes: Change[];
}

// systemd: clear a start-limit failure (a bad release often leaves one) and restart; `restart` returns after the
// ExecStartPost readiness check. Without systemd: the supervisor, when installed.
const restartScript = `unit=$1 unit_path=$2 supervise=$3
if [ -d /run/systemd/system ] && [ -f "$unit_path" ]; then
  systemctl reset-failed "$unit" 2> /dev/null || true
  exec systemctl restart "$unit"
elif [ -x "$supervise" ]; then
  exec "$supervise" restart
fi
echo "epoch-agent is installed neither as $unit nor under $supervise; switched the release only" >&2
`;

export function restartAgentChange(reason: string): Change {
  return {
    id: `restart:${unitName}`,
    summary: `restart the agent (${reason}); returns once /healthz is ready`,
    steps: [{ kind: 'run', argv: ['sh', '-c', restartScript, 'epoch-agent-restart', unitName, unitPath, supervisorScript], timeoutMs: 180_000 }],
    // The switch's own undo restarts the agent on the release it puts back.
    undo: [],
  };
}

/** Plans the rollback from the host's links; errors when there is nothing to go back to. */
export async function planAgentRollback(host: HostContext): Promise<AgentRollbackPlan> {
  return planRollbackFrom(await gatherRemoteRelease(host, '', []));
}

/** The pure part: from the links and the release list to the changes. */
export function planRollbackFrom(remote: RemoteReleaseState): AgentRollbackPlan {
  const to = remote.previous;
  if (to === null) {
    throw new ReleaseError(`cannot roll back the agent: no previous release (current is ${remote.current ?? '(none)'}, releases: ${remote.releases.join(', ') || 'none'})`);
  }
  if (!remote.releases.includes(to)) throw new ReleaseError(`cannot roll back the agent: previous points at ${to}, which is no longer on the host`);
  // No pruning during a rollback: keep everything that is there.
  const switchChanges = planRelease({ artifact_dir: '', version: to, keep_releases: Number.MAX_SAFE_INTEGER, state: 'present' }, { remote, target: to, artifact: null });
  return { from: remote.current, to, changes: [...switchChanges, restartAgentChange(`roll back ${remote.current ?? '(none)'} -> ${to}`)] };
}
