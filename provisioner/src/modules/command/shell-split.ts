// POSIX-shell-like word splitting for a command given as one string (`cmd: "ls -l '/a b'"`) and for
// ansible_ssh_common_args. Quotes and backslashes only; no expansion, no globbing, no operators: a string that
// needs a shell (`a | b`, `$HOME`) is rejected so it is never silently run differently from what was written.

export class ShellSplitError extends Error {}

export interface SplitOptions {
  /** Reject unquoted shell operators and expansions (`| & ; < > ( ) $ \``); on for commands, off for ssh args. */
  rejectShellSyntax?: boolean;
}

export function shellSplit(text: string, options: SplitOptions = {}): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ShellSplitError(`unterminated single quote at character ${i + 1} in ${JSON.stringify(text)}`);
      word += text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new ShellSplitError(`unterminated double quote in ${JSON.stringify(text)}`);
        const d = text[i]!;
        if (d === '"') break;
        if (d === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1]!)) {
          if (text[i + 1] !== '\n') word += text[i + 1];
          i += 2;
          continue;
        }
        if (options.rejectShellSyntax && (d === '$' || d === '`')) {
          throw new ShellSplitError(`${JSON.stringify(d)} expansion inside double quotes needs a shell, in ${JSON.stringify(text)}`);
        }
        word += d;
        i++;
      }
      i++;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new ShellSplitError(`trailing backslash in ${JSON.stringify(text)}`);
      if (text[i + 1] !== '\n') word += text[i + 1];
      else if (word === '') inWord = false;
      i += 2;
    } else if (options.rejectShellSyntax && '|&;<>()$`'.includes(c)) {
      throw new ShellSplitError(
        `${JSON.stringify(c)} at character ${i + 1} needs a shell, in ${JSON.stringify(text)}; use argv: ['sh', '-c', '...'] if you mean it`,
      );
    } else {
      word += c;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
