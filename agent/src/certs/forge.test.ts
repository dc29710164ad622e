import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateCa, loadCa } from './ca';
import { ForgedContextCache } from './context-cache';
import { Forger, LEAF_MAX_DAYS, ipBytes } from './forge';
import { Lru } from './lru';

const DAY = 86400_000;
const root = (() => {
  const g = generateCa('Test Root', 3650);
  return loadCa(g.certPem, g.keyPem);
})();

/** An "upstream" leaf with CN, DNS and IP SANs, made with openssl so the mirror source is independent of our encoder. */
function opensslLeaf(dir: string, cn: string, sans: string): Buffer {
  const key = join(dir, 'up.key');
  const crt = join(dir, 'up.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt,
    '-days', '30', '-subj', `/C=DE/O=Upstream Org/CN=${cn}`, '-addext', `subjectAltName=${sans}`,
  ], { stdio: 'ignore' });
  return new X509Certificate(execFileSync('openssl', ['x509', '-in', crt, '-outform', 'DER'])).raw;
}

test('ca init output is a self-signed P-256 CA that openssl accepts', () => {
  const g = generateCa('Epoch Test CA', 365);
  const cert = new X509Certificate(g.certPem);
  assert.equal(cert.ca, true);
  assert.equal(cert.verify(cert.publicKey), true);
  assert.equal(cert.checkIssued(cert), true);
  assert.equal(cert.subject, 'CN=Epoch Test CA');
  assert.match(g.fingerprintSha256, /^[0-9a-f]{64}$/);
  const dir = mkdtempSync(join(tmpdir(), 'epag-ca-'));
  try {
    writeFileSync(join(dir, 'ca.pem'), g.certPem);
    const text = execFileSync('openssl', ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, /CA:TRUE/);
    assert.match(text, /Certificate Sign, CRL Sign/);
    assert.match(text, /Subject Key Identifier/);
    const verify = execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'ca.pem')], { encoding: 'utf8' });
    assert.match(verify, /OK/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forged leaf mirrors subject and SAN, adds a missing SNI, verifies with openssl against the CA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epag-forge-'));
  try {
    const upstream = opensslLeaf(dir, 'www.example.test', 'DNS:www.example.test,DNS:*.cdn.example.test,IP:198.18.200.9');
    const forger = new Forger(root);
    const leaf = forger.forge({ upstream, sni: 'other.example.test', destinationIp: '198.18.200.9' });
    const cert = new X509Certificate(leaf.certPem);
    assert.equal(cert.subject, 'C=DE\nO=Upstream Org\nCN=www.example.test');
    assert.equal(cert.subjectAltName, 'DNS:www.example.test, DNS:*.cdn.example.test, IP Address:198.18.200.9, DNS:other.example.test');
    assert.equal(leaf.addedName, 'other.example.test');
    assert.equal(cert.verify(root.cert.publicKey), true);
    assert.equal(cert.checkIssued(root.cert), true);
    assert.equal(cert.checkHost('a.cdn.example.test'), '*.cdn.example.test');
    assert.equal(cert.ca, false);
    const days = (new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()) / DAY;
    assert.ok(days <= LEAF_MAX_DAYS + 2 + 1e-6, `validity ${days} days`);
    writeFileSync(join(dir, 'ca.pem'), root.certPem);
    writeFileSync(join(dir, 'leaf.pem'), leaf.certPem);
    const out = execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
    assert.match(out, /leaf.pem: OK/);
    const text = execFileSync('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, /TLS Web Server Authentication/);
    assert.match(text, /Digital Signature/);
    // A covered SNI adds nothing; a second forge gets a different random serial.
    const again = forger.forge({ upstream, sni: 'x.cdn.example.test', destinationIp: '198.18.200.9' });
    assert.equal(again.addedName, null);
    assert.notEqual(new X509Certificate(again.certPem).serialNumber, cert.serialNumber);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no SNI: the destination IP is added as an IP SAN when missing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epag-forge-'));
  try {
    const upstream = opensslLeaf(dir, 'ip.example.test', 'DNS:ip.example.test');
    const leaf = new Forger(root).forge({ upstream, sni: null, destinationIp: '198.18.200.7' });
    assert.equal(new X509Certificate(leaf.certPem).checkIP('198.18.200.7'), '198.18.200.7');
    const v6 = new Forger(root).forge({ upstream, sni: null, destinationIp: 'fd00::7' });
    assert.equal(new X509Certificate(v6.certPem).checkIP('fd00::7'), 'fd00::7');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('leaf validity is clamped to the CA validity', () => {
  const now = new Date();
  const short = generateCa('Short CA', 10, now);
  const ca = loadCa(short.certPem, short.keyPem);
  const [notBefore, notAfter] = new Forger(ca).validity(now);
  assert.ok(notAfter.getTime() <= ca.notAfter.getTime());
  assert.ok(notBefore.getTime() >= ca.notBefore.getTime());
  assert.throws(() => new Forger(ca).validity(new Date(now.getTime() + 20 * DAY)), /CA expired/);
});

test('ipBytes handles v4, v6 and v4-mapped', () => {
  assert.deepEqual([...ipBytes('198.18.200.1')!], [198, 18, 200, 1]);
  assert.deepEqual([...ipBytes('::ffff:198.18.200.1')!], [198, 18, 200, 1]);
  assert.equal(ipBytes('fd00::1:2')!.toString('hex'), 'fd000000000000000000000000010002');
  assert.equal(ipBytes('::1')!.toString('hex'), '00000000000000000000000000000001');
  assert.equal(ipBytes('not-an-ip'), null);
});

test('LRU evicts the least recently used entry', () => {
  const lru = new Lru<string, number>(2);
  lru.set('a', 1);
  lru.set('b', 2);
  assert.equal(lru.get('a'), 1);
  lru.set('c', 3);
  assert.equal(lru.get('b'), undefined);
  assert.equal(lru.get('a'), 1);
  assert.equal(lru.size, 2);
  assert.throws(() => new Lru(0), /positive integer/);
});

test('context cache: hit on the same upstream cert and SNI, miss on a new added name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epag-forge-'));
  try {
    const upstream = opensslLeaf(dir, 'c.example.test', 'DNS:c.example.test');
    const cache = new ForgedContextCache(root, 8);
    assert.equal(cache.lookup(upstream, 'c.example.test', '198.18.200.1').cacheHit, false);
    assert.equal(cache.lookup(upstream, 'c.example.test', '198.18.200.2').cacheHit, true);
    assert.equal(cache.lookup(upstream, 'd.example.test', '198.18.200.1').cacheHit, false);
    assert.equal(cache.size, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
