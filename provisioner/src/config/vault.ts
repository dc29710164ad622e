// Ansible Vault 1.1/1.2 AES256, the format `ansible-vault encrypt` and `encrypt_string` write:
//   $ANSIBLE_VAULT;1.1;AES256            (1.2 adds `;<vault-id label>`)
//   hex( hex(salt) \n hex(hmac) \n hex(ciphertext) ), wrapped at 80 columns
// key material = PBKDF2-HMAC-SHA256(password, salt, 10000 iterations, 80 bytes) → AES key | HMAC key | CTR IV;
// the plaintext is PKCS#7-padded to 16 bytes, encrypted with AES-256-CTR, and HMAC-SHA256 covers the ciphertext.
import { createCipheriv, createDecipheriv, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

const headerRe = /^\$ANSIBLE_VAULT;(1\.[12]);AES256(?:;([^\s;]+))?\s*$/;

export class VaultFormatError extends Error {}
/** The HMAC did not match: wrong password (or a corrupted envelope). */
export class VaultPasswordError extends Error {}

/** An encrypted value as read from `!vault |` (or `{"__ansible_vault": ...}` in JSON); decrypted on demand. */
export class VaultValue {
  constructor(
    readonly envelope: string,
    /** `file:line:column` of the value, for error messages. */
    readonly location: string,
  ) {}

  /** ansible-inventory prints undecrypted vault values this way. */
  toJSON(): { __ansible_vault: string } {
    return { __ansible_vault: this.envelope };
  }

  toString(): string {
    return '<vault-encrypted>';
  }
}

/**
 * Clear texts of everything decrypted in this process (memory only), so error messages never echo a secret:
 * problems.ts' show() masks them.
 */
const knownSecrets = new Set<string>();

export function registerSecret(value: unknown): void {
  if (typeof value === 'string' && value.trim().length >= 3) knownSecrets.add(value.trim());
  else if (Array.isArray(value)) for (const v of value) registerSecret(v);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) registerSecret(v);
}

/** Replaces every known secret inside `text` with <secret>. */
export function maskSecrets(text: string): string {
  let out = text;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join('<secret>');
  return out;
}

export const isVaultText = (text: string): boolean => text.trimStart().startsWith('$ANSIBLE_VAULT;');

function deriveKeys(password: string, salt: Buffer): { key: Buffer; hmacKey: Buffer; iv: Buffer } {
  const material = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, 10000, 80, 'sha256');
  return { key: material.subarray(0, 32), hmacKey: material.subarray(32, 64), iv: material.subarray(64, 80) };
}

/** Encrypts like `ansible-vault encrypt` (format 1.1). `salt` is only for reproducible test vectors. */
export function encryptVault(plaintext: string | Buffer, password: string, options: { salt?: Buffer } = {}): string {
  const salt = options.salt ?? randomBytes(32);
  const { key, hmacKey, iv } = deriveKeys(password, salt);
  const data = Buffer.from(plaintext);
  const padLength = 16 - (data.length % 16);
  const padded = Buffer.concat([data, Buffer.alloc(padLength, padLength)]);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const ciphertext = Buffer.concat([cipher.update(padded), cipher.final()]);
  const hmac = createHmac('sha256', hmacKey).update(ciphertext).digest();
  const inner = `${salt.toString('hex')}\n${hmac.toString('hex')}\n${ciphertext.toString('hex')}`;
  const outer = Buffer.from(inner, 'ascii').toString('hex');
  const lines = outer.match(/.{1,80}/g) ?? [];
  return ['$ANSIBLE_VAULT;1.1;AES256', ...lines].join('\n');
}

/** Decrypts a vault envelope. Throws VaultFormatError (not a vault) or VaultPasswordError (wrong password). */
export function decryptVault(envelope: string, password: string): string {
  const lines = envelope.trim().split(/\r?\n/).map((l) => l.trim());
  const header = lines.shift() ?? '';
  if (!headerRe.test(header)) {
    throw new VaultFormatError(`not an Ansible Vault 1.1/1.2 AES256 envelope (header ${JSON.stringify(header.slice(0, 40))})`);
  }
  const hex = lines.join('');
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) throw new VaultFormatError('vault body is not hex');
  const parts = Buffer.from(hex, 'hex').toString('ascii').split('\n');
  if (parts.length !== 3 || !parts.every((p) => /^(?:[0-9a-fA-F]{2})+$/.test(p))) {
    throw new VaultFormatError('vault body is not salt\\nhmac\\nciphertext');
  }
  const [salt, expectedHmac, ciphertext] = parts.map((p) => Buffer.from(p, 'hex')) as [Buffer, Buffer, Buffer];
  const { key, hmacKey, iv } = deriveKeys(password, salt);
  const actualHmac = createHmac('sha256', hmacKey).update(ciphertext).digest();
  if (expectedHmac.length !== actualHmac.length || !timingSafeEqual(expectedHmac, actualHmac)) {
    throw new VaultPasswordError('HMAC mismatch: wrong vault password or corrupted value');
  }
  const decipher = createDecipheriv('aes-256-ctr', key, iv);
  const padded = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  const padLength = padded.at(-1) ?? 0;
  if (padLength < 1 || padLength > 16 || padLength > padded.length) throw new VaultFormatError('bad PKCS#7 padding');
  const plaintext = padded.subarray(0, padded.length - padLength).toString('utf8');
  registerSecret(plaintext);
  return plaintext;
}
