// Read-only probes shared by the CA, trust-store and trust-coverage modules' gather steps.
import type { Argv } from '../../core/change';
import { RemoteCommandError } from '../../core/errors';
import { quoteArgv } from '../../transport/shell-quote';
import type { ExecResult, Transport } from '../../transport/transport';

const probeTimeoutMs = 20_000;

export async function probe(transport: Transport, argv: Argv, stdin?: string, timeoutMs = probeTimeoutMs): Promise<ExecResult> {
  return transport.exec(argv, { timeoutMs, ...(stdin !== undefined && { stdin }) });
}

function failed(r: ExecResult, what: string): RemoteCommandError {
  return new RemoteCommandError(`${what}: \`${r.command}\` exited ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
}

/** A text file's content, or null when it does not exist. Any other failure is an error. */
export async function readHostFile(transport: Transport, path: string): Promise<string | null> {
  return fileFrom(await probe(transport, readFileArgv(path)), path);
}
export const readFileArgv = (path: string): Argv => ['cat', '--', path];
export function fileFrom(r: ExecResult, path: string): string | null {
  if (r.exitCode === 0) return r.stdout;
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `reading ${path}`);
}

/** `sha256sum` of a file (never its content: used for private keys), or null when it does not exist. */
export async function hostFileSha256(transport: Transport, path: string): Promise<string | null> {
  return sha256From(await probe(transport, sha256Argv(path)), path);
}
export const sha256Argv = (path: string): Argv => ['sha256sum', '--', path];
export function sha256From(r: ExecResult, path: string): string | null {
  if (r.exitCode === 0) return r.stdout.trim().split(/\s+/)[0] ?? null;
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `hashing ${path}`);
}

/** The names in a folder (`ls -A`), or null when it does not exist. */
export async function readHostDir(transport: Transport, path: string): Promise<string[] | null> {
  return dirFrom(await probe(transport, readDirArgv(path)), path);
}
export const readDirArgv = (path: string): Argv => ['ls', '-A1', '--', path];
export function dirFrom(r: ExecResult, path: string): string[] | null {
  if (r.exitCode === 0) return r.stdout.split('\n').filter((name) => name !== '');
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `listing ${path}`);
}

/** Mode (octal string) and owner name of a file, or null when it does not exist. */
export async function hostFileStat(transport: Transport, path: string): Promise<{ mode: string; owner: string } | null> {
  return statFrom(await probe(transport, statArgv(path)), path);
}
export const statArgv = (path: string): Argv => ['stat', '-c', '%a %U', '--', path];
export function statFrom(r: ExecResult, path: string): { mode: string; owner: string } | null {
  if (r.exitCode === 0) {
    const [mode = '', owner = ''] = r.stdout.trim().split(' ');
    return { mode, owner };
  }
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `stat ${path}`);
}

/** The absolute path of a command on the host's PATH, or null. */
export async function hostCommandPath(transport: Transport, command: string): Promise<string | null> {
  return commandPathFrom(await probe(transport, commandPathArgv(command)));
}
export const commandPathArgv = (command: string): Argv => ['sh', '-c', 'command -v "$1"', 'sh', command];
export function commandPathFrom(r: ExecResult): string | null {
  const path = r.stdout.trim();
  return r.exitCode === 0 && path.startsWith('/') ? path : null;
}

/** Whether `pem` (a certificate) verifies against `bundle` alone, as OpenSSL clients would check it. */
export async function bundleTrusts(transport: Transport, bundle: string, pem: string): Promise<boolean> {
  const p = bundleTrustsProbe(bundle, pem);
  return bundleTrustsFrom(await probe(transport, p.argv, p.stdin));
}
// Only the bundle: OpenSSL 3 would otherwise also consult its default store (the hashed certs folder). OpenSSL 1.1
// has no -no-CAstore: asked again without it only when this openssl does not know the option.
const bundleVerifyScript = `pem=$(cat)
v() { printf '%s\n' "$pem" | openssl verify -no-CApath "$@" -CAfile "$b" /dev/stdin; }
b=$1
out=$(v -no-CAstore 2>/dev/null); rc=$?
if [ "$rc" -ne 0 ] && ! openssl verify -help 2>&1 | grep -q -e -no-CAstore; then out=$(v 2>/dev/null); rc=$?; fi
printf '%s\n' "$out"
exit "$rc"`;
export const bundleTrustsProbe = (bundle: string, pem: string): BatchProbe => ({ argv: ['sh', '-c', bundleVerifyScript, 'epoch-bundle-verify', bundle], stdin: pem });
export const bundleTrustsFrom = (r: ExecResult): boolean => r.exitCode === 0 && /: OK\s*$/.test(r.stdout);

// ---- several read-only probes in one round trip ----

export interface BatchProbe {
  argv: Argv;
  stdin?: string;
}

// Each probe runs in its own subshell with its stdin from a file, its stdout and stderr captured apart; then a header
// line with its index and exit status, and both outputs base64-encoded on one line each (any bytes survive). The
// scratch folder is private (mktemp -d) and removed on exit.
const batchScript = `d=$(mktemp -d "\${TMPDIR:-/tmp}/epoch-probe.XXXXXX") || exit 97
trap 'rm -rf -- "$d"' EXIT
i=0
while [ $# -ge 2 ]; do
  if [ -n "$2" ]; then printf %s "$2" | base64 -d > "$d/in" || exit 98; else : > "$d/in"; fi
  (eval "$1") < "$d/in" > "$d/out" 2> "$d/err"
  rc=$?
  printf '@@epoch-probe %s %s\n' "$i" "$rc"
  base64 -w0 < "$d/out"; echo
  base64 -w0 < "$d/err"; echo
  i=$((i + 1))
  shift 2
done
echo '@@epoch-probe end'`;

export function probeBatchArgv(probes: readonly BatchProbe[]): Argv {
  const args = probes.flatMap((p) => [quoteArgv(p.argv), p.stdin === undefined || p.stdin === '' ? '' : Buffer.from(p.stdin, 'utf8').toString('base64')]);
  return ['sh', '-c', batchScript, 'epoch-probe-batch', ...args];
}

/** Splits the batch script's output back into one result per probe; throws when a probe's record is missing. */
export function parseProbeBatch(stdout: string, probes: readonly BatchProbe[], durationMs = 0): ExecResult[] {
  const lines = stdout.split('\n');
  const results: ExecResult[] = [];
  const decode = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');
  for (let i = 0; i < lines.length; i++) {
    const m = /^@@epoch-probe (\d+) (\d+)$/.exec(lines[i] ?? '');
    if (!m) continue;
    const index = Number(m[1]);
    const probe = probes[index];
    if (!probe || index !== results.length) throw new Error(`probe batch: unexpected record ${index} (expected ${results.length} of ${probes.length})`);
    results.push({ command: quoteArgv(probe.argv), exitCode: Number(m[2]), stdout: decode(lines[i + 1]), stderr: decode(lines[i + 2]), durationMs, timedOut: false });
    i += 2;
  }
  if (results.length !== probes.length || !lines.includes('@@epoch-probe end')) {
    throw new Error(`probe batch: got ${results.length} of ${probes.length} results${probes[results.length] ? `; stopped at \`${quoteArgv(probes[results.length]!.argv)}\`` : ''}`);
  }
  return results;
}

/** Runs read-only probes in ONE round trip, in order; each result is what probe() would have returned for it. */
export async function probeAll(transport: Transport, probes: readonly BatchProbe[], timeoutMs = probeTimeoutMs): Promise<ExecResult[]> {
  if (probes.length === 0) return [];
  const r = await transport.exec(probeBatchArgv(probes), { timeoutMs });
  if (r.exitCode !== 0 || r.timedOut) {
    throw new RemoteCommandError(
      `running ${probes.length} read-only probes in one call ${r.timedOut ? `timed out after ${timeoutMs} ms` : `exited ${r.exitCode}`}: ${r.stderr.trim() || '(no stderr)'}`,
      r.command,
      r.exitCode,
      r.stdout,
      r.stderr,
      r.timedOut,
    );
  }
  try {
    return parseProbeBatch(r.stdout, probes, r.durationMs);
  } catch (err) {
    throw new RemoteCommandError(`${err instanceof Error ? err.message : String(err)}; stderr: ${r.stderr.trim() || '(none)'}`, r.command, r.exitCode, r.stdout, r.stderr, r.timedOut);
  }
}
