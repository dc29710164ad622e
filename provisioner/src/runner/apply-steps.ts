// Executes a Change's steps on a host. A `put` is atomic: temp file beside the target, optional validation of the
// temp file, then rename. Any non-zero exit fails the step with the command, exit code and stderr.
import type { Step } from '../core/change';
import { RemoteCommandError } from '../core/errors';
import type { Transport } from '../transport/transport';

export async function executeStep(transport: Transport, step: Step): Promise<void> {
  if (step.kind === 'run') {
    const options = { ...(step.stdin !== undefined && { stdin: step.stdin }), ...(step.timeoutMs && { timeoutMs: step.timeoutMs }), secret: step.secret ?? false };
    await mustSucceed(transport, step.argv, options);
    return;
  }
  const dir = step.path.slice(0, step.path.lastIndexOf('/')) || '/';
  const temp = `${dir}/.epoch-tmp-${process.pid}-${Date.now().toString(36)}-${step.path.slice(dir.length + 1)}`;
  await mustSucceed(transport, ['mkdir', '-p', dir]);
  await transport.putFile(temp, step.content, step.mode);
  try {
    if (step.owner) await mustSucceed(transport, ['chown', step.owner, temp]);
    await mustSucceed(transport, ['chmod', step.mode.toString(8), temp]);
    if (step.validate) await mustSucceed(transport, step.validate.map((a) => (a === '{}' ? temp : a)));
    await mustSucceed(transport, ['mv', '-f', temp, step.path]);
  } catch (err) {
    await transport.exec(['rm', '-f', temp]);
    throw err;
  }
}

export async function executeSteps(transport: Transport, steps: readonly Step[]): Promise<void> {
  for (const step of steps) await executeStep(transport, step);
}

async function mustSucceed(transport: Transport, argv: readonly string[], options: Parameters<Transport['exec']>[1] = {}) {
  const r = await transport.exec(argv, options);
  if (r.exitCode !== 0) {
    const why = r.timedOut ? 'timed out' : `exited ${r.exitCode}`;
    throw new RemoteCommandError(`\`${r.command}\` ${why}: ${r.stderr.trim() || r.stdout.trim()}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
  }
  return r;
}
