// Read-only probes shared by the CA, trust-store and trust-coverage modules' gather steps.
import { createHash } from 'node:crypto';
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
// has no -no-CAstore: asked again without it only when this openssl does not know the option. Args: the bundle, and
// the certificate's file on the host (else the PEM comes on stdin).
const bundleVerifyScript = `b=$1
if [ $# -ge 2 ]; then pem=$(cat -- "$2") || exit 1; else pem=$(cat); fi
v() { printf '%s\n' "$pem" | openssl verify -no-CApath "$@" -CAfile "$b" /dev/stdin; }
out=$(v -no-CAstore 2>/dev/null); rc=$?
if [ "$rc" -ne 0 ] && ! openssl verify -help 2>&1 | grep -q -e -no-CAstore; then out=$(v 2>/dev/null); rc=$?; fi
printf '%s\n' "$out"
exit "$rc"`;
export const bundleTrustsProbe = (bundle: string, pem: string): BatchProbe => ({ argv: ['sh', '-c', bundleVerifyScript, 'epoch-bundle-verify', bundle], stdin: pem });
/** The same check for the certificate in a file on the host (read in the same round trip as the file itself). */
export const bundleTrustsFileProbe = (bundle: string, certFile: string): BatchProbe => ({ argv: ['sh', '-c', bundleVerifyScript, 'epoch-bundle-verify', bundle, certFile] });
export const bundleTrustsFrom = (r: ExecResult): boolean => r.exitCode === 0 && /: OK\s*$/.test(r.stdout);
/**
 * The run memo's key (HostContext.memo) for the bundle check: trust_store and trust_coverage both ask whether the
 * same CA verifies against the same system bundle, and `openssl verify` parsing a whole bundle is the costliest
 * probe of a converged host. The memo is cleared when a task changes the host, so the answer is never stale.
 */
export function bundleTrustsMemoKey(bundle: string, ca: { pem: string } | { file: string }): string {
  const source = 'pem' in ca ? `pem:${createHash('sha256').update(ca.pem).digest('hex')}` : `file:${ca.file}`;
  return `bundle-trusts:${bundle}:${source}`;
}

// ---- several read-only probes in one round trip ----

export interface BatchProbe {
  argv: Argv;
  stdin?: string;
}

// Each probe runs in its own subshell with its stdin from a file, its stdout and stderr captured apart into files;
// then a header line per probe with its index and exit status. At the end every output's size (one `wc -c`) and all
// outputs in order, base64-encoded on one line (any bytes survive): three process starts for the whole batch rather
// than one or two per probe (on a fleet every process start on the host counts). The scratch folder is private
// (mktemp -d) and removed on exit.
const batchScript = `d=$(mktemp -d "\${TMPDIR:-/tmp}/epoch-probe.XXXXXX") || exit 97
trap 'rm -rf -- "$d"' EXIT
i=0
while [ $# -ge 2 ]; do
  if [ -n "$2" ]; then printf %s "$2" | base64 -d > "$d/in" || exit 98; else : > "$d/in"; fi
  (eval "$1") < "$d/in" > "$d/o$i" 2> "$d/e$i"
  printf '@@epoch-probe %s %s\n' "$i" "$?"
  i=$((i + 1))
  shift 2
done
n=$i i=0
while [ "$i" -lt "$n" ]; do set -- "$@" "$d/o$i" "$d/e$i"; i=$((i + 1)); done
echo '@@epoch-probe sizes'
wc -c -- "$@" || exit 99
echo '@@epoch-probe data'
cat -- "$@" | base64 -w0 || exit 99
echo
echo '@@epoch-probe end'`;

export function probeBatchArgv(probes: readonly BatchProbe[]): Argv {
  const args = probes.flatMap((p) => [quoteArgv(p.argv), p.stdin === undefined || p.stdin === '' ? '' : Buffer.from(p.stdin, 'utf8').toString('base64')]);
  return ['sh', '-c', batchScript, 'epoch-probe-batch', ...args];
}

/** Splits the batch script's output back into one result per probe; throws when a probe's record is missing. */
export function parseProbeBatch(stdout: string, probes: readonly BatchProbe[], durationMs = 0): ExecResult[] {
  const lines = stdout.split('\n');
  const codes: number[] = [];
  let at = 0;
  for (; at < lines.length && lines[at] !== '@@epoch-probe sizes'; at++) {
    const m = /^@@epoch-probe (\d+) (\d+)$/.exec(lines[at] ?? '');
    if (!m) continue;
    const index = Number(m[1]);
    if (!probes[index] || index !== codes.length) throw new Error(`probe batch: unexpected record ${index} (expected ${codes.length} of ${probes.length})`);
    codes.push(Number(m[2]));
  }
  const stoppedAt = () => (probes[codes.length] ? `; stopped at \`${quoteArgv(probes[codes.length]!.argv)}\`` : '');
  if (codes.length !== probes.length) throw new Error(`probe batch: got ${codes.length} of ${probes.length} results${stoppedAt()}`);
  // `wc -c` lines ("SIZE PATH", then a total): stdout and stderr of each probe, in order.
  const sizes: number[] = [];
  for (at++; at < lines.length && lines[at] !== '@@epoch-probe data'; at++) {
    const m = /^\s*(\d+)\s/.exec(lines[at] ?? '');
    if (m && sizes.length < 2 * probes.length) sizes.push(Number(m[1]));
  }
  const data = Buffer.from(lines[at + 1] ?? '', 'base64');
  const total = sizes.reduce((a, b) => a + b, 0);
  if (sizes.length !== 2 * probes.length || lines[at + 2] !== '@@epoch-probe end' || data.length !== total) {
    throw new Error(`probe batch: the outputs of ${probes.length} probes are incomplete (${sizes.length} sizes, ${data.length} of ${total} bytes)`);
  }
  let offset = 0;
  const next = (size: number) => {
    const text = data.subarray(offset, offset + size).toString('utf8');
    offset += size;
    return text;
  };
  return probes.map((probe, i) => ({ command: quoteArgv(probe.argv), exitCode: codes[i]!, stdout: next(sizes[2 * i]!), stderr: next(sizes[2 * i + 1]!), durationMs, timedOut: false }));
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
