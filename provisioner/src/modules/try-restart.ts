// Restart a unit only if it is loaded and running: undo and rollback steps run on half-provisioned hosts, where the
// unit may not exist yet (plain `systemctl try-restart` exits 5 there) or systemd may not be PID 1 at all.
import type { Step } from '../core/change';

const script = 'if [ -d /run/systemd/system ] && [ "$(systemctl show -p LoadState --value "$1" 2>/dev/null)" = loaded ]; then systemctl try-restart "$1"; fi';

export function tryRestartStep(unit: string, timeoutMs = 120_000): Extract<Step, { kind: 'run' }> {
  return { kind: 'run', argv: ['sh', '-c', script, 'epoch-try-restart', unit], timeoutMs };
}
