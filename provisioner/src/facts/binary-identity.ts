// Which exact program a path runs, cheaply (a stat, and ldd for the shared libraries), so answers that only a process
// start can give (`node --version`, the Node trust probe) can be cached on the controller and reused while it holds.
// Identity: the realpath, then device, inode, size, mtime and ctime of the file and of every library ldd lists
// (Debian's node is a small stub over libnode and the system libssl; a libnode upgrade leaves /usr/bin/node alone).
// A package upgrade replaces a file (new inode and ctime); an in-place rewrite changes mtime and ctime. Also a hash of
// the environment Node and OpenSSL read (NODE_*, OPENSSL_*, SSL_CERT_*). When any part cannot be taken (no ldd, an
// unreadable library), the identity is incomplete and must not be used as a cache key.
// Within one run the identity of a file is taken once per host (host-memo.ts): a script given the real paths the
// run already holds (the shell variable epoch_known, one per line) prints real= and known=yes for them, no ldd.
import { createHash } from 'node:crypto';
import { type HostMemo, identityMemoKey } from './host-memo';

/**
 * A POSIX sh function: `epoch_identity PATH` prints real=, file= (one per file), env=, complete=yes|no, why=; or
 * real= and known=yes when the real path is one of the lines of $epoch_known (taken earlier in this run).
 */
export const identityFunction = `epoch_identity() {
  real=$(readlink -f -- "$1") && [ -f "$real" ] || { echo "complete=no"; echo "why=$1 does not resolve to a file"; return 0; }
  echo "real=$real"
  case "
\${epoch_known:-}
" in *"
$real
"*) echo "known=yes"; return 0 ;; esac
  complete=yes
  libs=
  if command -v ldd > /dev/null 2>&1; then
    out=$(ldd -- "$real" 2>&1); rc=$?
    if [ "$rc" -eq 0 ]; then
      libs=$(printf '%s\\n' "$out" | sed -n 's/^.*=> \\(\\/[^ ]*\\) (0x.*$/\\1/p; s/^[[:space:]]*\\(\\/[^ ]*\\) (0x.*$/\\1/p')
    else
      case $out in *"not a dynamic executable"*|*"statically linked"*) ;; *) complete=no; echo "why=ldd failed: $(printf '%s' "$out" | head -n 1)" ;; esac
    fi
  else
    complete=no; echo "why=no ldd on the host"
  fi
  # shellcheck disable=SC2086
  stat -L -c 'file=%d:%i:%s:%Y:%Z:%n' -- "$real" $libs || { complete=no; echo "why=stat failed"; }
  echo "env=$(env | grep -E '^(NODE_|OPENSSL_|SSL_CERT_)' | LC_ALL=C sort | cksum)"
  echo "complete=$complete"
}`;

export interface BinaryIdentity {
  /** The lines that make up the identity (real path, files, environment hash), or null when incomplete. */
  lines: string[] | null;
  /** Why the identity is incomplete. */
  why: string;
}

/** Parses epoch_identity's lines (`exitOk`: the probe itself succeeded). */
export function parseIdentityLines(lines: readonly string[], exitOk = true): BinaryIdentity {
  const why = lines.find((l) => l.startsWith('why='))?.slice(4) ?? '';
  const files = lines.filter((l) => /^file=\d+:\d+:\d+:\d+:\d+:\//.test(l));
  const complete = exitOk && lines.includes('complete=yes') && files.length > 0 && lines.some((l) => l.startsWith('real=/')) && lines.some((l) => l.startsWith('env='));
  if (!complete) return { lines: null, why: why || 'identity incomplete' };
  return { lines: lines.filter((l) => /^(real|file|env)=/.test(l)), why: '' };
}

/** A cache key (hex) over the parts given; callers include the host, the path as configured and the identity lines. */
export function identityKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** The real paths whose identity this run holds for the host, one per line: a script's epoch_known. */
export function knownIdentities(memo: HostMemo | undefined): string {
  return (memo?.keys('identity:') ?? []).map((k) => k.slice('identity:'.length)).join('\n');
}

/**
 * epoch_identity's lines as an identity, with `known=yes` answered from the run's memo; a complete identity taken
 * now is remembered there for the tasks after this one. (A known=yes the memo cannot answer is incomplete: never a
 * cache key, so whatever it keys is probed again.)
 */
export function identityFrom(lines: readonly string[], exitOk: boolean, memo: HostMemo | undefined): BinaryIdentity {
  const real = lines.find((l) => l.startsWith('real=/'))?.slice(5);
  if (exitOk && lines.includes('known=yes')) {
    const held = real && memo?.get<string[]>(identityMemoKey(real));
    return held ? { lines: held, why: '' } : { lines: null, why: `the identity of ${real ?? '(no path)'} was reported as known, but this run holds none` };
  }
  const id = parseIdentityLines(lines, exitOk);
  if (id.lines && real && memo) memo.set(identityMemoKey(real), id.lines);
  return id;
}
