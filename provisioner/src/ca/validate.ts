// The checks a CA must pass before any host is touched. Each problem is one line naming the file.
import { X509Certificate } from 'node:crypto';
import type { ConfigProblem } from '../core/errors';
import { ConfigError } from '../core/errors';
import type { CaMaterial } from './material';
import { keyUsageBits, readCaExtensions } from './x509-der';

export interface CaValidationOptions {
  /** Reject a CA that expires within this many days (default 30). */
  minValidDays?: number;
  now?: Date;
}

export const defaultMinValidDays = 30;
const strongCurves = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
const dayMs = 86_400_000;

/** Every problem with the CA, empty when it is usable. */
export function caProblems(material: CaMaterial, options: CaValidationOptions = {}): ConfigProblem[] {
  const now = options.now ?? new Date();
  const minValidDays = options.minValidDays ?? defaultMinValidDays;
  const problems: ConfigProblem[] = [];
  const at = (location: string, message: string) => problems.push({ location, message });
  const cert = new X509Certificate(material.certPem);
  const subject = cert.subject.replace(/\n/g, ', ');

  const ext = readCaExtensions(cert.raw);
  if (!ext.basicConstraintsCa) at(material.certSource, `not a CA: basicConstraints CA:TRUE is missing (subject "${subject}")`);
  if (ext.keyUsage !== undefined && !ext.keyUsage.has(keyUsageBits.keyCertSign)) {
    at(material.certSource, `not a CA: keyUsage lacks keyCertSign (subject "${subject}")`);
  } else if (ext.keyUsage === undefined) {
    at(material.certSource, `not a CA: no keyUsage extension, expected keyCertSign (subject "${subject}")`);
  }

  if (!cert.checkPrivateKey(material.key.keyObject)) {
    at(material.keySource, `private key does not match the certificate in ${material.certSource} (subject "${subject}")`);
  }

  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    at(material.certSource, `CA expired on ${notAfter.toISOString()}`);
  } else if (notAfter.getTime() - now.getTime() < minValidDays * dayMs) {
    const left = Math.floor((notAfter.getTime() - now.getTime()) / dayMs);
    at(material.certSource, `CA expires on ${notAfter.toISOString()}, in ${left} day(s); at least ${minValidDays} required`);
  }
  if (notBefore.getTime() > now.getTime()) at(material.certSource, `CA is not valid before ${notBefore.toISOString()}`);

  const strength = keyStrengthProblem(cert);
  if (strength) at(material.certSource, strength);
  return problems;
}

/** Throws a ConfigError listing every problem; returns quietly for a usable CA. */
export function assertUsableCa(material: CaMaterial, options: CaValidationOptions = {}): void {
  const problems = caProblems(material, options);
  if (problems.length) throw new ConfigError(problems);
}

function keyStrengthProblem(cert: X509Certificate): string | undefined {
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    return bits < 2048 ? `weak key: RSA-${bits}, expected RSA of at least 2048 bits or EC P-256` : undefined;
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = details.namedCurve ?? 'unknown';
    return strongCurves.has(curve) ? undefined : `weak key: EC curve ${curve}, expected P-256, P-384 or P-521`;
  }
  return `unsupported key type ${key.asymmetricKeyType}, expected RSA (at least 2048 bits) or EC P-256/P-384/P-521`;
}
