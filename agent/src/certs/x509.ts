// Reads the parts of an X.509 certificate the forger mirrors, straight from its DER, so the subject and
// subjectAltName are copied byte-for-byte rather than through X509Certificate's lossy string forms.
import { createHash } from 'node:crypto';
import { children, content, oidToString, raw, read } from './der';

export const OID = {
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  commonName: '2.5.4.3',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

export interface ParsedCertificate {
  /** The Name SEQUENCE, raw. */
  subject: Buffer;
  /** The SubjectPublicKeyInfo SEQUENCE, raw. */
  spki: Buffer;
  /** Extension OID → extnValue contents (the DER inside the OCTET STRING). */
  extensions: Map<string, Buffer>;
}

export function parseCertificate(der: Buffer): ParsedCertificate {
  const cert = read(der);
  const [tbs] = children(der, cert);
  if (!tbs) throw new Error('certificate has no TBSCertificate');
  const fields = children(der, tbs);
  let i = fields[0]?.tag === 0xa0 ? 1 : 0; // optional [0] version
  i += 3; // serialNumber, signature, issuer
  const validity = fields[i];
  const subject = fields[i + 1];
  const spki = fields[i + 2];
  if (!validity || !subject || !spki) throw new Error('TBSCertificate is missing subject or subjectPublicKeyInfo');
  const extensions = new Map<string, Buffer>();
  const extWrapper = fields.slice(i + 3).find((f) => f.tag === 0xa3);
  if (extWrapper) {
    const [list] = children(der, extWrapper);
    for (const ext of list ? children(der, list) : []) {
      const parts = children(der, ext);
      const id = parts[0];
      const value = parts[parts.length - 1];
      if (id && value) extensions.set(oidToString(content(der, id)), content(der, value));
    }
  }
  return { subject: raw(der, subject), spki: raw(der, spki), extensions };
}

export interface GeneralNames {
  dns: string[];
  ips: Buffer[];
  /** Every GeneralName, raw, in order (so unknown kinds are mirrored too). */
  all: Buffer[];
}

export function parseGeneralNames(der: Buffer): GeneralNames {
  const out: GeneralNames = { dns: [], ips: [], all: [] };
  for (const gn of children(der, read(der))) {
    out.all.push(raw(der, gn));
    if (gn.tag === 0x82) out.dns.push(content(der, gn).toString('ascii').toLowerCase());
    else if (gn.tag === 0x87) out.ips.push(Buffer.from(content(der, gn)));
  }
  return out;
}

/** Subject key identifier per RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdentifier(spki: Buffer): Buffer {
  const parts = children(spki, read(spki));
  const bits = parts[1];
  if (bits?.tag !== 0x03) throw new Error('SubjectPublicKeyInfo has no BIT STRING');
  return createHash('sha1').update(content(spki, bits!).subarray(1)).digest();
}

/** Does a certificate DNS name (possibly a `*.` wildcard) cover `host`? */
export function dnsNameCovers(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  if (!pattern.startsWith('*.')) return false;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot + 1) === pattern.slice(2);
}
