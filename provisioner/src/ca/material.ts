// A CA as the provisioner holds it: the certificate (public) and, for fleet/import modes, the private key.
// The key is wrapped so that logging, JSON-serialising or inspecting a params object never prints it.
import { type KeyObject, X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigError } from '../core/errors';

export class SecretKey {
  readonly #key: KeyObject;
  constructor(key: KeyObject) {
    this.#key = key;
  }
  get keyObject(): KeyObject {
    return this.#key;
  }
  /** Unencrypted PKCS#8 PEM, only for a `put` step marked secret. */
  revealPkcs8Pem(): string {
    return this.#key.export({ type: 'pkcs8', format: 'pem' }).toString();
  }
  toJSON(): string {
    return '[private key redacted]';
  }
  toString(): string {
    return '[private key redacted]';
  }
  [inspect.custom](): string {
    return '[private key redacted]';
  }
}

export interface CaMaterial {
  /** The CA certificate as a single normalised PEM block. */
  certPem: string;
  key: SecretKey;
  /** Where each part came from, for error messages. */
  certSource: string;
  keySource: string;
}

/** SHA-256 fingerprint in OpenSSL's and keytool's style: `AB:CD:...`. */
export function certFingerprint(certPem: string | Buffer): string {
  return new X509Certificate(certPem).fingerprint256;
}

/** A one-line problem with a file: exit 2, no host touched. */
export function fileProblem(file: string, message: string): ConfigError {
  return new ConfigError([{ location: file, message }]);
}
