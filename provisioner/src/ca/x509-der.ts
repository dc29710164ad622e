// The few X.509 pieces Node's X509Certificate does not expose (keyUsage bits, pathLen) and the encoder that builds a
// CA certificate for any key Node can sign with. node-forge's certificate model is RSA-only, so we use only its ASN.1
// codec and let node:crypto do keys and signatures (feasibility.md §1, variant c1).
import { createHash, type KeyObject, sign } from 'node:crypto';
import forge from 'node-forge';

const { asn1 } = forge;
type Node = forge.asn1.Asn1;

const oid = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

/** keyUsage bit positions (RFC 5280 §4.2.1.3). */
export const keyUsageBits = {
  digitalSignature: 0,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

export interface CaExtensions {
  basicConstraintsCa: boolean;
  /** undefined: no keyUsage extension at all. */
  keyUsage: Set<number> | undefined;
}

const u = asn1.Class.UNIVERSAL;
const T = asn1.Type;
const seq = (items: Node[]) => asn1.create(u, T.SEQUENCE, true, items);
const set = (items: Node[]) => asn1.create(u, T.SET, true, items);
const oidNode = (dotted: string) => asn1.create(u, T.OID, false, asn1.oidToDer(dotted).getBytes());
const octets = (bytes: string) => asn1.create(u, T.OCTETSTRING, false, bytes);
const bool = (v: boolean) => asn1.create(u, T.BOOLEAN, false, v ? '\xff' : '\x00');
const integerBytes = (bytes: Buffer) => asn1.create(u, T.INTEGER, false, bytes.toString('binary'));
const explicit = (tag: number, inner: Node) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, tag, true, [inner]);
const fromDer = (der: Buffer): Node => asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
const toDer = (node: Node): Buffer => Buffer.from(asn1.toDer(node).getBytes(), 'binary');

/** Reads basicConstraints and keyUsage from a DER certificate. Throws on a structure that is not X.509. */
export function readCaExtensions(der: Buffer): CaExtensions {
  const cert = fromDer(der);
  const tbs = children(cert)[0];
  if (!tbs) throw new Error('not an X.509 certificate: empty structure');
  const extsWrapper = children(tbs).find((n) => n.tagClass === asn1.Class.CONTEXT_SPECIFIC && n.type === 3);
  const result: CaExtensions = { basicConstraintsCa: false, keyUsage: undefined };
  if (!extsWrapper) return result;
  for (const ext of children(children(extsWrapper)[0])) {
    const parts = children(ext);
    const id = asn1.derToOid(parts[0]?.value as string);
    const valueNode = parts[parts.length - 1];
    if (!valueNode || typeof valueNode.value !== 'string') continue;
    const inner = asn1.fromDer(valueNode.value);
    if (id === oid.basicConstraints) {
      const first = children(inner)[0];
      result.basicConstraintsCa = first?.type === T.BOOLEAN && first.value === '\xff';
    } else if (id === oid.keyUsage) {
      result.keyUsage = bitStringBits(inner.value as string);
    }
  }
  return result;
}

function children(node: Node | undefined): Node[] {
  return node && Array.isArray(node.value) ? (node.value as Node[]) : [];
}

/** BIT STRING contents (first byte = unused bits) → set of bit positions, bit 0 = most significant. */
function bitStringBits(raw: string): Set<number> {
  const bits = new Set<number>();
  for (let i = 1; i < raw.length; i++) {
    const byte = raw.charCodeAt(i);
    for (let b = 0; b < 8; b++) if (byte & (0x80 >> b)) bits.add((i - 1) * 8 + b);
  }
  return bits;
}

function bitString(bits: number[]): Node {
  const top = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(top / 8) + 1);
  for (const b of bits) bytes[Math.floor(b / 8)] = (bytes[Math.floor(b / 8)] ?? 0) | (0x80 >> b % 8);
  const unused = 7 - (top % 8);
  return asn1.create(u, T.BITSTRING, false, String.fromCharCode(unused) + bytes.toString('binary'));
}

function time(date: Date): Node {
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return date.getUTCFullYear() < 2050
    ? asn1.create(u, T.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(u, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function name(commonName: string, organization: string | undefined): Node {
  const rdn = (id: string, value: string) => set([seq([oidNode(id), asn1.create(u, T.UTF8, false, forge.util.encodeUtf8(value))])]);
  return seq([...(organization ? [rdn(oid.organizationName, organization)] : []), rdn(oid.commonName, commonName)]);
}

export interface SelfSignedCaSpec {
  commonName: string;
  organization?: string;
  notBefore: Date;
  notAfter: Date;
  serial: Buffer;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/** Builds and signs a self-signed CA certificate (CA:TRUE pathlen 0, keyCertSign + cRLSign). Returns DER. */
export function buildSelfSignedCa(spec: SelfSignedCaSpec): Buffer {
  const isRsa = spec.privateKey.asymmetricKeyType === 'rsa';
  const sigAlg = seq(isRsa ? [oidNode(oid.sha256WithRsa), asn1.create(u, T.NULL, false, '')] : [oidNode(oid.ecdsaWithSha256)]);
  const spkiDer = spec.publicKey.export({ type: 'spki', format: 'der' });
  // Keep the BIT STRING raw (forge would otherwise decode an RSA key's contents into nodes).
  const fromDerRaw = asn1.fromDer as unknown as (bytes: forge.util.ByteStringBuffer, options: { decodeBitStrings: boolean }) => Node;
  const spki = fromDerRaw(forge.util.createBuffer(spkiDer.toString('binary')), { decodeBitStrings: false });
  // subjectKeyIdentifier: SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2 method 1).
  const bitsNode = children(spki)[1];
  if (!bitsNode || typeof bitsNode.value !== 'string') throw new Error('internal: SubjectPublicKeyInfo without a BIT STRING');
  const publicKeyBits = bitsNode.value.slice(1);
  const ski = createHash('sha1').update(Buffer.from(publicKeyBits, 'binary')).digest();
  const serial = Buffer.from(spec.serial);
  serial[0] = (serial[0] ?? 0) & 0x7f; // positive INTEGER
  if (serial[0] === 0) serial[0] = 1; // and minimally encoded
  const dn = name(spec.commonName, spec.organization);
  const extension = (id: string, critical: boolean, value: Node) =>
    seq([oidNode(id), ...(critical ? [bool(true)] : []), octets(asn1.toDer(value).getBytes())]);
  const tbs = seq([
    explicit(0, integerBytes(Buffer.from([2]))),
    integerBytes(serial),
    sigAlg,
    dn,
    seq([time(spec.notBefore), time(spec.notAfter)]),
    dn,
    spki,
    explicit(
      3,
      seq([
        extension(oid.basicConstraints, true, seq([bool(true), integerBytes(Buffer.from([0]))])),
        extension(oid.keyUsage, true, bitString([keyUsageBits.digitalSignature, keyUsageBits.keyCertSign, keyUsageBits.cRLSign])),
        extension(oid.subjectKeyIdentifier, false, octets(ski.toString('binary'))),
        extension(oid.authorityKeyIdentifier, false, seq([asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, ski.toString('binary'))])),
      ]),
    ),
  ]);
  const tbsDer = toDer(tbs);
  const signature = sign('sha256', tbsDer, spec.privateKey);
  const sigBits = asn1.create(u, T.BITSTRING, false, `\x00${signature.toString('binary')}`);
  return toDer(seq([tbs, sigAlg, sigBits]));
}
