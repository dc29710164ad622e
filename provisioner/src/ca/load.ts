// Loads a CA from PEM files or PKCS#12 on the controller. Every failure is a ConfigError with one line per problem,
// located at the file that has it. Nothing here touches a host.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import forge from 'node-forge';
import { type CaMaterial, fileProblem, SecretKey } from './material';

export function readSourceFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory, expected a file' : (err as Error).message;
    throw fileProblem(file, `cannot read: ${why}`);
  }
}

const pemBlock = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

function pemBlocks(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(pemBlock)].map((m) => ({ label: m[1] as string, pem: m[0] }));
}

/** The first CERTIFICATE block of a PEM file, parsed. */
export function parseCertPem(file: string, data: Buffer): X509Certificate {
  const text = data.toString('latin1');
  const blocks = pemBlocks(text);
  const certBlock = blocks.find((b) => b.label === 'CERTIFICATE');
  if (!certBlock) {
    if (text.includes('-----BEGIN CERTIFICATE-----')) throw fileProblem(file, 'malformed PEM: "-----BEGIN CERTIFICATE-----" has no matching END line');
    const found = blocks.length ? `found ${blocks.map((b) => b.label).join(', ')}` : 'no PEM block at all';
    throw fileProblem(file, `malformed PEM: expected a "-----BEGIN CERTIFICATE-----" block, ${found}`);
  }
  try {
    return new X509Certificate(certBlock.pem);
  } catch (err) {
    throw fileProblem(file, `malformed PEM: the CERTIFICATE block does not decode as X.509 (${oneLine(err)})`);
  }
}

/** The private key of a PEM file (PKCS#8, PKCS#1, SEC1; encrypted PKCS#8 or legacy encrypted PEM with a passphrase). */
export function parseKeyPem(file: string, data: Buffer, passphrase: string | undefined): KeyObject {
  const text = data.toString('latin1');
  const keyBlock = pemBlocks(text).find((b) => b.label.endsWith('PRIVATE KEY'));
  if (!keyBlock) {
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw fileProblem(file, 'malformed PEM: the PRIVATE KEY block has no matching END line');
    throw fileProblem(file, 'no private key in file (expected a PEM "PRIVATE KEY" block, plain or encrypted)');
  }
  const encrypted = keyBlock.label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(keyBlock.pem);
  if (encrypted && passphrase === undefined) throw fileProblem(file, 'the private key is encrypted and no passphrase was given (pass --key-passphrase-env VAR)');
  try {
    return createPrivateKey(encrypted ? { key: keyBlock.pem, format: 'pem', passphrase: passphrase ?? '' } : { key: keyBlock.pem, format: 'pem' });
  } catch (err) {
    if (encrypted) throw fileProblem(file, 'cannot decrypt the private key: wrong passphrase');
    throw fileProblem(file, `malformed PEM: the ${keyBlock.label} block does not decode (${oneLine(err)})`);
  }
}

/**
 * A CA from a PEM certificate and a PEM key. The key may sit in the certificate's own file (keyFile omitted).
 * Throws a ConfigError naming the file and the problem.
 */
export function loadPemCa(certFile: string, keyFile: string | undefined, keyPassphrase?: string): CaMaterial {
  const certData = readSourceFile(certFile);
  const cert = parseCertPem(certFile, certData);
  let key: KeyObject;
  if (keyFile === undefined) {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(certData.toString('latin1'))) {
      throw fileProblem(certFile, 'certificate without a private key: pass --key FILE (or one PEM file holding both)');
    }
    key = parseKeyPem(certFile, certData, keyPassphrase);
  } else {
    key = parseKeyPem(keyFile, readSourceFile(keyFile), keyPassphrase);
  }
  return { certPem: cert.toString(), key: new SecretKey(key), certSource: certFile, keySource: keyFile ?? certFile };
}

/** A CA from a PKCS#12 file: the certificate that matches the file's private key. */
export function loadP12Ca(file: string, password: string): CaMaterial {
  const data = readSourceFile(file);
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const der = forge.asn1.fromDer(forge.util.createBuffer(data.toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(der, password);
  } catch (err) {
    const message = oneLine(err);
    if (/invalid password|wrong password|MAC could not be verified/i.test(message)) throw fileProblem(file, 'wrong PKCS#12 password (MAC verification failed)');
    throw fileProblem(file, `not a readable PKCS#12 file (${message})`);
  }
  const keys: KeyObject[] = [];
  const certs: X509Certificate[] = [];
  for (const safe of p12.safeContents) {
    for (const bag of safe.safeBags) {
      const raw = bag as typeof bag & { asn1?: forge.asn1.Asn1 };
      if (bag.type === forge.pki.oids.certBag) {
        const asn = bag.cert ? forge.pki.certificateToAsn1(bag.cert) : raw.asn1;
        if (asn) certs.push(new X509Certificate(Buffer.from(forge.asn1.toDer(asn).getBytes(), 'binary')));
      } else if (bag.type === forge.pki.oids.pkcs8ShroudedKeyBag || bag.type === forge.pki.oids.keyBag) {
        const asn = bag.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key)) : raw.asn1;
        if (asn) keys.push(createPrivateKey({ key: Buffer.from(forge.asn1.toDer(asn).getBytes(), 'binary'), format: 'der', type: 'pkcs8' }));
      }
    }
  }
  const key = keys[0];
  if (!key) throw fileProblem(file, 'PKCS#12 file holds no private key');
  if (certs.length === 0) throw fileProblem(file, 'PKCS#12 file holds no certificate');
  // Prefer the certificate that belongs to the key; otherwise keep the first so validation reports the mismatch.
  const cert = certs.find((c) => c.checkPrivateKey(key)) ?? (certs[0] as X509Certificate);
  return { certPem: cert.toString(), key: new SecretKey(key), certSource: file, keySource: file };
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
