// Forges the leaf a client sees: mirrors the upstream cert's subject and subjectAltName (adding the SNI, or the
// destination IP when there is no SNI), EKU serverAuth, a random serial, one P-256 key per process.
import { type KeyObject, generateKeyPairSync } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { type CertificateAuthority, extension, randomSerial, signCertificate, signatureAlgorithm, toPem } from './ca';
import { bitString, explicit, implicitPrimitive, oid, seq, smallInteger, time, unsignedInteger } from './der';
import { OID, dnsNameCovers, parseCertificate, parseGeneralNames } from './x509';

/** Browsers reject long-lived leaves; mitmproxy uses 199 days (mitmproxy#815). */
export const LEAF_MAX_DAYS = 199;
/** Backdated 2 days so hosts with slow clocks accept a fresh leaf. */
export const LEAF_BACKDATE_DAYS = 2;
const DAY = 86400_000;

export interface ForgeRequest {
  /** The upstream leaf, DER. */
  upstream: Buffer;
  /** The client's SNI, lowercase, or null. */
  sni: string | null;
  /** The original destination IP, used as an IP SAN when there is no SNI. */
  destinationIp: string;
}

export interface ForgedLeaf {
  certPem: string;
  /** Name added to the SAN because the upstream cert did not cover it (part of the cache key). */
  addedName: string | null;
}

export function ipBytes(ip: string): Buffer | null {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) return null;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return ipBytes(mapped[1]!);
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = ip.includes('::') && tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.from(groups.flatMap((g: string) => [(parseInt(g, 16) >> 8) & 255, parseInt(g, 16) & 255]));
}

/** What the SAN must gain so the client's name check passes: the SNI, or the IP without SNI. */
export function missingName(upstream: Buffer, sni: string | null, destinationIp: string): { dns?: string; ip?: Buffer } | null {
  const sanDer = parseCertificate(upstream).extensions.get(OID.subjectAltName);
  const names = sanDer ? parseGeneralNames(sanDer) : { dns: [], ips: [], all: [] };
  if (sni) return names.dns.some((d) => dnsNameCovers(d, sni)) ? null : { dns: sni };
  const ip = ipBytes(destinationIp);
  if (!ip) return null;
  return names.ips.some((b) => b.equals(ip)) ? null : { ip };
}

export class Forger {
  readonly leafKey: KeyObject;
  readonly leafKeyPem: string;
  private readonly leafSpki: Buffer;

  constructor(readonly ca: CertificateAuthority) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.leafKey = privateKey;
    this.leafKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.leafSpki = publicKey.export({ type: 'spki', format: 'der' });
  }

  validity(now: Date): [Date, Date] {
    const notBefore = new Date(Math.max(now.getTime() - LEAF_BACKDATE_DAYS * DAY, this.ca.notBefore.getTime()));
    const notAfter = new Date(Math.min(now.getTime() + LEAF_MAX_DAYS * DAY, this.ca.notAfter.getTime()));
    if (notAfter <= now) throw new Error(`CA expired at ${this.ca.notAfter.toISOString()}; cannot forge leaves`);
    return [notBefore, notAfter];
  }

  forge(req: ForgeRequest, now = new Date()): ForgedLeaf {
    const upstream = parseCertificate(req.upstream);
    const sanDer = upstream.extensions.get(OID.subjectAltName);
    const names = sanDer ? parseGeneralNames(sanDer).all : [];
    const missing = missingName(req.upstream, req.sni, req.destinationIp);
    let addedName: string | null = null;
    if (missing?.dns) {
      names.push(implicitPrimitive(2, Buffer.from(missing.dns, 'ascii')));
      addedName = missing.dns;
    } else if (missing?.ip) {
      names.push(implicitPrimitive(7, missing.ip));
      addedName = req.destinationIp;
    }
    const [notBefore, notAfter] = this.validity(now);
    const sigAlg = signatureAlgorithm(this.ca.key);
    // An empty subject makes the SAN critical (RFC 5280 4.2.1.6).
    const emptySubject = upstream.subject.length <= 2;
    const extensions = [
      extension(OID.basicConstraints, true, seq()),
      // digitalSignature only: the leaf key is EC (ECDHE_ECDSA / TLS 1.3 signatures).
      extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)),
      extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
      extension(OID.authorityKeyIdentifier, false, seq(Buffer.concat([Buffer.from([0x80, this.ca.keyId.length]), this.ca.keyId]))),
    ];
    if (names.length > 0) extensions.push(extension(OID.subjectAltName, emptySubject, seq(...names)));
    const tbs = seq(
      explicit(0, smallInteger(2)),
      unsignedInteger(randomSerial()),
      sigAlg,
      this.ca.subject,
      seq(time(notBefore), time(notAfter)),
      upstream.subject,
      this.leafSpki,
      explicit(3, seq(...extensions)),
    );
    return { certPem: toPem('CERTIFICATE', signCertificate(tbs, sigAlg, this.ca.key)), addedName };
  }
}

