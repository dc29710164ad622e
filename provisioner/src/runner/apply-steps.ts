// Executes a Change's steps on a host. A `put` is atomic: temp file beside the target, optional validation of the
// temp file, then rename. Any non-zero exit fails the step with the command, exit code and stderr.
import type { Argv, Step } from '../core/change';
import { RemoteCommandError } from '../core/errors';
import { quoteArgv } from '../transport/shell-quote';
import type { Transport } from '../transport/transport';

// The whole put in one round trip (on a fleet each command costs the host a process start and the run a round trip:
// a put was five). The content comes on stdin; the temp file is private until chmod; any failing step removes the
// temp file and names itself on the last stderr line. Args: dir temp dest mode owner [validate argv...].
export const putScript = `dir=$1 tmp=$2 dest=$3 mode=$4 owner=$5
shift 5
step() {
  what=$1; shift
  "$@" && return 0
  rc=$?; rm -f -- "$tmp"; printf '@@epoch-put %s %s\\n' "$what" "$rc" >&2; exit "$rc"
}
write() { (umask 077 && cat > "$tmp"); }
step mkdir mkdir -p -- "$dir"
step write write
[ -z "$owner" ] || step chown chown -- "$owner" "$tmp"
step chmod chmod -- "$mode" "$tmp"
[ $# -eq 0 ] || step validate "$@"
step mv mv -f -- "$tmp" "$dest"`;

type PutStep = Extract<Step, { kind: 'put' }>;
const validateArgv = (step: PutStep, temp: string): Argv => step.validate?.map((a) => (a === '{}' ? temp : a)) ?? [];
const dirOf = (path: string) => path.slice(0, path.lastIndexOf('/')) || '/';

export function putArgv(step: PutStep, temp: string): Argv {
  return ['sh', '-c', putScript, 'epoch-put', dirOf(step.path), temp, step.path, step.mode.toString(8), step.owner ?? '', ...validateArgv(step, temp)];
}

/** The failed step's name, exit code and its own error output, from the put script's stderr. */
export function putFailure(stderr: string): { step: string; exitCode: number | null; detail: string } {
  const lines = stderr.trimEnd().split('\n');
  const m = /^@@epoch-put (\S+) (\d+)$/.exec(lines[lines.length - 1] ?? '');
  if (!m) return { step: 'put', exitCode: null, detail: stderr.trim() };
  return { step: m[1]!, exitCode: Number(m[2]), detail: lines.slice(0, -1).join('\n').trim() };
}

export async function executeStep(transport: Transport, step: Step): Promise<void> {
  if (step.kind === 'run') {
    const options = { ...(step.stdin !== undefined && { stdin: step.stdin }), ...(step.timeoutMs && { timeoutMs: step.timeoutMs }), secret: step.secret ?? false };
    await mustSucceed(transport, step.argv, options);
    return;
  }
  const dir = dirOf(step.path);
  const temp = `${dir}/.epoch-tmp-${process.pid}-${Date.now().toString(36)}-${step.path.slice(dir.length + 1)}`;
  const r = await transport.exec(putArgv(step, temp), { stdin: step.content, secret: step.secret ?? false });
  if (r.exitCode === 0) return;
  const f = putFailure(r.stderr);
  const what = r.timedOut
    ? 'timed out'
    : f.step === 'validate'
      ? `validation \`${quoteArgv(validateArgv(step, temp))}\` exited ${f.exitCode}`
      : `${f.step} exited ${f.exitCode ?? r.exitCode}`;
  throw new RemoteCommandError(`put ${step.path}: ${what}: ${f.detail || r.stdout.trim()}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
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
