// Generates a fleet CA on the controller with native crypto (EC P-256 by default).
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { type CaMaterial, SecretKey } from './material';
import { buildSelfSignedCa } from './x509-der';

export const caKeyTypes = ['ec-p256', 'rsa-2048', 'rsa-4096'] as const;
export type CaKeyType = (typeof caKeyTypes)[number];

export interface CreateCaOptions {
  commonName: string;
  days: number;
  keyType?: CaKeyType;
  organization?: string;
  now?: Date;
}

export function createCa(options: CreateCaOptions): CaMaterial {
  if (!Number.isInteger(options.days) || options.days < 1) throw new Error(`CA validity must be a whole number of days ≥ 1, got ${options.days}`);
  const keyType = options.keyType ?? 'ec-p256';
  const pair =
    keyType === 'ec-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : generateKeyPairSync('rsa', { modulusLength: keyType === 'rsa-2048' ? 2048 : 4096 });
  const now = options.now ?? new Date();
  // Backdate an hour so hosts with slightly slow clocks accept it at once.
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now.getTime() + options.days * 86_400_000);
  const der = buildSelfSignedCa({
    commonName: options.commonName,
    ...(options.organization !== undefined && { organization: options.organization }),
    notBefore,
    notAfter,
    serial: randomBytes(16),
    publicKey: pair.publicKey,
    privateKey: pair.privateKey,
  });
  const cert = new X509Certificate(der);
  if (!cert.verify(pair.publicKey)) throw new Error('internal: the generated CA certificate does not verify with its own key');
  return { certPem: cert.toString(), key: new SecretKey(pair.privateKey), certSource: '(generated)', keySource: '(generated)' };
}
