// Read-only probes shared by the CA, trust-store and trust-coverage modules' gather steps.
import type { Argv } from '../../core/change';
import { RemoteCommandError } from '../../core/errors';
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
  const r = await probe(transport, ['cat', '--', path]);
  if (r.exitCode === 0) return r.stdout;
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `reading ${path}`);
}

/** `sha256sum` of a file (never its content: used for private keys), or null when it does not exist. */
export async function hostFileSha256(transport: Transport, path: string): Promise<string | null> {
  const r = await probe(transport, ['sha256sum', '--', path]);
  if (r.exitCode === 0) return r.stdout.trim().split(/\s+/)[0] ?? null;
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `hashing ${path}`);
}

/** The names in a folder (`ls -A`), or null when it does not exist. */
export async function readHostDir(transport: Transport, path: string): Promise<string[] | null> {
  const r = await probe(transport, ['ls', '-A1', '--', path]);
  if (r.exitCode === 0) return r.stdout.split('\n').filter((name) => name !== '');
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `listing ${path}`);
}

/** Mode (octal string) and owner name of a file, or null when it does not exist. */
export async function hostFileStat(transport: Transport, path: string): Promise<{ mode: string; owner: string } | null> {
  const r = await probe(transport, ['stat', '-c', '%a %U', '--', path]);
  if (r.exitCode === 0) {
    const [mode = '', owner = ''] = r.stdout.trim().split(' ');
    return { mode, owner };
  }
  if (/No such file or directory/.test(r.stderr)) return null;
  throw failed(r, `stat ${path}`);
}

/** The absolute path of a command on the host's PATH, or null. */
export async function hostCommandPath(transport: Transport, command: string): Promise<string | null> {
  const r = await probe(transport, ['sh', '-c', 'command -v "$1"', 'sh', command]);
  const path = r.stdout.trim();
  return r.exitCode === 0 && path.startsWith('/') ? path : null;
}

/** Whether `pem` (a certificate) verifies against `bundle` alone, as OpenSSL clients would check it. */
export async function bundleTrusts(transport: Transport, bundle: string, pem: string): Promise<boolean> {
  // Only the bundle: OpenSSL 3 would otherwise also consult its default store (the hashed certs folder).
  let r = await probe(transport, ['openssl', 'verify', '-no-CApath', '-no-CAstore', '-CAfile', bundle, '/dev/stdin'], pem);
  if (r.exitCode !== 0 && /no-CAstore/.test(r.stderr)) r = await probe(transport, ['openssl', 'verify', '-no-CApath', '-CAfile', bundle, '/dev/stdin'], pem);
  return r.exitCode === 0 && /: OK\s*$/.test(r.stdout);
}
