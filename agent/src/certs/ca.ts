// The signing CA: generation (`epoch-agent ca init`), loading, and the certificate signing step they share.
import { type KeyObject, X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { bitString, bool, explicit, nullValue, octetString, oid, seq, set, smallInteger, time, unsignedInteger, utf8 } from './der';
import { OID, keyIdentifier, parseCertificate } from './x509';

export interface CertificateAuthority {
  cert: X509Certificate;
  certPem: string;
  key: KeyObject;
  /** The CA's subject Name, raw DER: the issuer of every leaf it signs. */
  subject: Buffer;
  keyId: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, lowercase hex without colons (contracts/health.ts). */
  fingerprintSha256: string;
}

export function fingerprintSha256(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, '').toLowerCase();
}

/** AlgorithmIdentifier for signing with this key: ECDSA-SHA256 for EC keys, SHA256-RSA for RSA keys. */
export function signatureAlgorithm(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ec') return seq(oid(OID.ecdsaWithSha256));
  if (key.asymmetricKeyType === 'rsa') return seq(oid(OID.sha256WithRsa), nullValue());
  throw new Error(`unsupported CA key type ${key.asymmetricKeyType}; expected ec (P-256) or rsa`);
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }. */
export function signCertificate(tbs: Buffer, sigAlg: Buffer, key: KeyObject): Buffer {
  return seq(tbs, sigAlg, bitString(sign('sha256', tbs, key)));
}

/** 16 random bytes, top bit clear so the INTEGER stays 16 bytes and positive (RFC 5280: at most 20 octets). */
export function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b;
}

export const extension = (id: string, critical: boolean, value: Buffer): Buffer =>
  critical ? seq(oid(id), bool(true), octetString(value)) : seq(oid(id), octetString(value));

export const commonNameSubject = (cn: string): Buffer => seq(set(seq(oid(OID.commonName), utf8(cn))));

export const toPem = (label: string, der: Buffer): string =>
  `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

export interface GeneratedCa {
  certPem: string;
  keyPem: string;
  fingerprintSha256: string;
}

/** A self-signed EC P-256 CA: basicConstraints CA:TRUE (critical), keyUsage keyCertSign+cRLSign (critical), SKI+AKI. */
export function generateCa(name: string, days: number, now = new Date()): GeneratedCa {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ski = keyIdentifier(spki);
  const subject = commonNameSubject(name);
  const sigAlg = signatureAlgorithm(privateKey);
  // Backdate an hour for hosts whose clocks lag the controller's.
  const notBefore = new Date(now.getTime() - 3600_000);
  const notAfter = new Date(now.getTime() + days * 86400_000);
  const tbs = seq(
    explicit(0, smallInteger(2)),
    unsignedInteger(randomSerial()),
    sigAlg,
    subject,
    seq(time(notBefore), time(notAfter)),
    subject,
    spki,
    explicit(
      3,
      seq(
        extension(OID.basicConstraints, true, seq(bool(true))),
        // keyCertSign (bit 5) + cRLSign (bit 6): 0b0000011x, 1 unused bit.
        extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)),
        extension(OID.subjectKeyIdentifier, false, octetString(ski)),
        extension(OID.authorityKeyIdentifier, false, seq(Buffer.concat([Buffer.from([0x80, ski.length]), ski]))),
      ),
    ),
  );
  const der = signCertificate(tbs, sigAlg, privateKey);
  const cert = new X509Certificate(der);
  return {
    certPem: toPem('CERTIFICATE', der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    fingerprintSha256: fingerprintSha256(cert),
  };
}

export function loadCa(certPem: string, keyPem: string, source = 'CA'): CertificateAuthority {
  const cert = new X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  if (!cert.checkPrivateKey(key)) throw new Error(`${source}: the private key does not match the certificate`);
  if (!cert.ca) throw new Error(`${source}: certificate is not a CA (basicConstraints CA:TRUE missing)`);
  signatureAlgorithm(key);
  const parsed = parseCertificate(cert.raw);
  const skiExt = parsed.extensions.get(OID.subjectKeyIdentifier);
  // SKI extnValue is an OCTET STRING; strip its 2-byte header (ids are 20 bytes).
  const keyId = skiExt && skiExt.length > 2 ? Buffer.from(skiExt.subarray(2)) : keyIdentifier(parsed.spki);
  return {
    cert,
    certPem: cert.toString(),
    key,
    subject: parsed.subject,
    keyId,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprintSha256: fingerprintSha256(cert),
  };
}

/** An in-memory CA nobody trusts: forged leaves for upstreams that failed verification, so clients fail as they would without us. */
export function untrustedCa(now = new Date()): CertificateAuthority {
  const g = generateCa('epoch-agent upstream-invalid (untrusted)', 3650, now);
  return loadCa(g.certPem, g.keyPem, 'upstream-invalid CA');
}
