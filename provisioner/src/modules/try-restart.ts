// Restart or reload a unit only if it is loaded and running: undo and rollback steps run on half-provisioned hosts,
// where the unit may not exist yet (plain `systemctl try-restart` exits 5 there) or systemd may not be PID 1 at all.
import type { Step } from '../core/change';

const script = 'if [ -d /run/systemd/system ] && [ "$(systemctl show -p LoadState --value "$2" 2>/dev/null)" = loaded ]; then systemctl "$1" "$2"; fi';

function tryUnitStep(verb: 'try-restart' | 'try-reload-or-restart', unit: string, timeoutMs: number): Extract<Step, { kind: 'run' }> {
  return { kind: 'run', argv: ['sh', '-c', script, `epoch-${verb}`, verb, unit], timeoutMs };
}

export function tryRestartStep(unit: string, timeoutMs = 120_000): Extract<Step, { kind: 'run' }> {
  return tryUnitStep('try-restart', unit, timeoutMs);
}

/** Reload a unit (its ExecReload, else a restart) only if it is loaded and running; a no-op elsewhere. */
export function tryReloadStep(unit: string, timeoutMs = 120_000): Extract<Step, { kind: 'run' }> {
  return tryUnitStep('try-reload-or-restart', unit, timeoutMs);
}
