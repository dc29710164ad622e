// Removes secret values (become password, vault-decrypted values, anything a caller marks) from log text.

export const redactedMark = '********';

export class Redactor {
  private readonly secrets: string[] = [];

  /** Values shorter than 4 characters are not redacted: they would mangle ordinary text and protect nothing. */
  add(secret: string | undefined | null): void {
    if (!secret || secret.length < 4 || this.secrets.includes(secret)) return;
    this.secrets.push(secret);
    // Longest first, so a secret containing another is replaced whole.
    this.secrets.sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join(redactedMark);
    return out;
  }

  /** Redacts every string inside a JSON-able value. */
  redactValue<T>(value: T): T {
    return JSON.parse(this.redact(JSON.stringify(value))) as T;
  }
}

const secretVarName = /(pass(word)?|secret|token|private_?key|vault)/i;

/** String values of variables whose names say they are secret (ansible_become_password, api_token, ...). */
export function secretValuesOf(vars: Readonly<Record<string, unknown>>): string[] {
  return Object.entries(vars)
    .filter(([k, v]) => secretVarName.test(k) && typeof v === 'string')
    .map(([, v]) => v as string);
}
