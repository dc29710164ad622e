// Ansible's PLAY RECAP: host padded to 26, then `name=count` fields padded to 4 (lib/ansible/plugins/callback/default.py).
import type { HostRecap } from '../core/run-events';

export function formatRecap(hosts: readonly HostRecap[], width = 80): string {
  const lines = [`PLAY RECAP ${'*'.repeat(Math.max(3, width - 11))}`];
  const field = (name: string, n: number) => `${name}=${String(n).padEnd(4)}`;
  for (const h of hosts) {
    const fields = [field('ok', h.ok), field('changed', h.changed), field('unreachable', h.unreachable), field('failed', h.failed), field('skipped', h.skipped)];
    lines.push(`${h.host.padEnd(26)} : ${fields.join(' ')}${h.notRun ? ' not-run (rollout halted before its batch)' : ''}`.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}
