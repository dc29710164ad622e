// Fleet CA files on the controller: the key encrypted at rest (encrypted PKCS#8: PBES2, PBKDF2, AES-256-CBC),
// created under umask 077 so no other user can ever read a half-written file.
import { createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CaMaterial } from './material';

export const minPassphraseLength = 8;

export function encryptedKeyPem(material: CaMaterial, passphrase: string): string {
  if (passphrase.length < minPassphraseLength) throw new Error(`passphrase too short: ${passphrase.length} characters, expected at least ${minPassphraseLength}`);
  return material.key.keyObject.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
}

export interface WrittenCaFiles {
  certFile: string;
  keyFile: string;
}

/** Writes DIR/ca.crt (0644) and DIR/ca.key (0600, encrypted). Refuses to overwrite unless `force`. */
export function writeFleetCa(dir: string, material: CaMaterial, passphrase: string, force = false): WrittenCaFiles {
  const keyPem = encryptedKeyPem(material, passphrase);
  // Round-trip before writing: a key we cannot decrypt again must never replace anything.
  createPrivateKey({ key: keyPem, format: 'pem', passphrase });
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  if (!force) {
    for (const file of [certFile, keyFile]) if (existsSync(file)) throw new Error(`${file}: already exists; pass --force to replace it`);
  }
  const previous = process.umask(0o077);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const flag = force ? 'w' : 'wx';
    writeFileSync(keyFile, keyPem, { mode: 0o600, flag });
    chmodSync(keyFile, 0o600);
    writeFileSync(certFile, material.certPem, { mode: 0o600, flag });
    chmodSync(certFile, 0o644); // public; readable so it can be handed to hosts and auditors
  } finally {
    process.umask(previous);
  }
  return { certFile, keyFile };
}
