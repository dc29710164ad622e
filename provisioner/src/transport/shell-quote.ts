// The ONE place an argv array becomes a shell string (for ssh2 exec, which takes a command line).
import type { Argv } from '../core/change';

const safeWord = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one word for a POSIX shell: bare when it is plainly safe, otherwise single-quoted. */
export function quoteWord(word: string): string {
  if (word === '') return "''";
  if (safeWord.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Joins argv into a command line that a POSIX shell splits back into exactly the same words. */
export function quoteArgv(argv: Argv): string {
  if (argv.length === 0) throw new Error('quoteArgv: empty argv (expected at least the program name)');
  return argv.map(quoteWord).join(' ');
}

export interface RemoteCommandOptions {
  /** Run as this user through sudo (`sudo -n -u USER`). */
  become?: { user: string; withPassword: boolean };
}

/**
 * The full remote command line: `LC_ALL=C` for stable, parseable output, and sudo when asked.
 * With a password, `sudo -S -p ''` reads it from stdin's first line, so the prompt never appears in output.
 * `-k` ignores cached sudo credentials, so whether a password is read never depends on an earlier command
 * (a cached timestamp would otherwise leave the password line on the command's own stdin).
 */
export function remoteCommandLine(argv: Argv, options: RemoteCommandOptions = {}): string {
  const withLocale: string[] = ['env', 'LC_ALL=C', ...argv];
  if (!options.become) return quoteArgv(withLocale);
  const sudo = options.become.withPassword ? ['sudo', '-k', '-S', '-p', ''] : ['sudo', '-k', '-n'];
  return quoteArgv([...sudo, '-u', options.become.user, '--', ...withLocale]);
}
