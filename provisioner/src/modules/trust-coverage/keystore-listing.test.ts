import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isJksFormat, KeystoreListingCache, parseJks, parseKeytoolList } from './keystore-listing';

const work = mkdtempSync(join(tmpdir(), 'epoch-keystore-listing-'));
after(() => rmSync(work, { recursive: true, force: true }));

const keytoolOutput = `Keystore type: JKS
Keystore provider: SUN

Your keystore contains 2 entries

Alias name: debian:isrg_root_x1.pem
Creation date: Nov 25, 2026
Entry type: trustedCertEntry

Owner: CN=ISRG Root X1, O=Internet Security Research Group, C=US
Certificate fingerprints:
\t SHA1: CA:BD:2A:79:A1:07:6A:31:F2:1D:25:36:35:CB:03:9D:43:29:A5:E8
\t SHA256: 96:bc:ec:06:26:49:76:f3:74:60:77:9a:cf:28:c5:a7:cf:e8:a3:c0:aa:e1:1a:8f:fc:ee:05:c0:bd:df:08:c6
Signature algorithm name: SHA256withRSA

*******************************************
Alias name: epoch-provision-ca
Entry type: trustedCertEntry
Certificate fingerprints:
\t SHA1: 00:11
\t SHA256: 0A:0B:0C
`;

test('parseKeytoolList reads aliases and upper-cases SHA-256 fingerprints', () => {
  assert.deepEqual(parseKeytoolList(keytoolOutput), {
    aliases: ['debian:isrg_root_x1.pem', 'epoch-provision-ca'],
    sha256: ['96:BC:EC:06:26:49:76:F3:74:60:77:9A:CF:28:C5:A7:CF:E8:A3:C0:AA:E1:1A:8F:FC:EE:05:C0:BD:DF:08:C6', '0A:0B:0C'],
  });
  assert.deepEqual(parseKeytoolList('Your keystore contains 0 entries\n'), { aliases: [], sha256: [] });
});

const sha = (c: string) => c.repeat(64);

test('concurrent hosts with the same keystore content share one keytool call', async () => {
  const cache = new KeystoreListingCache(null);
  let calls = 0;
  const list = async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 20));
    return { aliases: ['a'], sha256: ['AA'] };
  };
  const got = await Promise.all(Array.from({ length: 10 }, () => cache.get(sha('a'), 'changeit', list)));
  assert.equal(calls, 1);
  assert.ok(got.every((g) => g.aliases[0] === 'a'));
  // Different content, or the same content with another password: listed on its own.
  await cache.get(sha('b'), 'changeit', list);
  await cache.get(sha('a'), 'other-pass', list);
  assert.equal(calls, 3);
});

test('a later run (a new cache over the same folder) skips keytool while the content is unchanged', async () => {
  const dir = join(work, 'listings');
  let calls = 0;
  const list = async () => {
    calls++;
    return { aliases: ['x'], sha256: ['01:02'] };
  };
  await new KeystoreListingCache(dir).get(sha('c'), 'changeit', list);
  const second = await new KeystoreListingCache(dir).get(sha('c'), 'changeit', list);
  assert.equal(calls, 1);
  assert.deepEqual(second, { aliases: ['x'], sha256: ['01:02'] });
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  // Changed content → a new key → keytool again.
  await new KeystoreListingCache(dir).get(sha('d'), 'changeit', list);
  assert.equal(calls, 2);
});

test('a failed listing is not remembered: the next caller runs keytool again', async () => {
  const cache = new KeystoreListingCache(join(work, 'failing'));
  let calls = 0;
  const failing = async () => {
    calls++;
    throw new Error('keytool -list timed out');
  };
  await assert.rejects(cache.get(sha('e'), 'changeit', failing), /timed out/);
  await assert.rejects(cache.get(sha('e'), 'changeit', failing), /timed out/);
  assert.equal(calls, 2);
});

test("a waiter whose shared call failed on another host lists again itself, and gets its own result", async () => {
  const cache = new KeystoreListingCache(null);
  const first = cache.get(sha('f'), 'changeit', async () => {
    await new Promise((r) => setTimeout(r, 10));
    throw new Error('deb1: keytool -list timed out');
  });
  const second = cache.get(sha('f'), 'changeit', async () => ({ aliases: ['mine'], sha256: [] }));
  await assert.rejects(first, /deb1/);
  assert.deepEqual(await second, { aliases: ['mine'], sha256: [] });
});

// A JKS keystore written by keytool 17 (Debian 12's JRE in the lab image): a trusted certificate entry and an EC
// private key entry (a throwaway test key, password changeit), with keytool's own `-list -v` of it.
const fixtures = new URL('../../../../test/fixtures/keystores/', import.meta.url);
const jks = readFileSync(new URL('key-and-trusted.jks', fixtures));
const jksKeytoolList = readFileSync(new URL('key-and-trusted.keytool-list.txt', fixtures), 'utf8');

/** A keystore body sealed with Java's keyed digest, as keytool writes it. */
function sealed(body: Buffer, storepass = 'changeit'): Buffer {
  const digest = createHash('sha1').update(Buffer.from(storepass, 'utf16le').swap16()).update('Mighty Aphrodite').update(body).digest();
  return Buffer.concat([body, digest]);
}
const unsealed = jks.subarray(0, jks.length - 20);

test('parseJks lists a keytool-written JKS exactly as keytool -list -v does (a key entry\'s chain included)', () => {
  const expected = parseKeytoolList(jksKeytoolList);
  assert.equal(expected.aliases.length, 2);
  assert.deepEqual(parseJks(jks, 'changeit', 'fixture'), expected);
  assert.equal(isJksFormat(jks), true);
});

test('parseJks fails as keytool does on a wrong password or a changed byte, naming the keystore', () => {
  assert.throws(() => parseJks(jks, 'wrong-pass', 'deb1: /etc/ssl/certs/java/cacerts'), /^Error: deb1: \/etc\/ssl\/certs\/java\/cacerts: keystore was tampered with, or password was incorrect/);
  const flipped = Buffer.from(jks);
  flipped[40] = flipped[40]! ^ 1;
  assert.throws(() => parseJks(flipped, 'changeit', 'x'), /tampered with, or password was incorrect/);
});

test('parseJks refuses malformed content even when its digest is right: short entries, unknown tags, trailing bytes', () => {
  const withCount = (n: number) => {
    const b = Buffer.from(unsealed);
    b.writeUInt32BE(n, 8);
    return sealed(b);
  };
  assert.throws(() => parseJks(withCount(3), 'changeit', 'x'), /x: not a readable JKS keystore: entry data ends at byte \d+ of \d+/);
  assert.throws(() => parseJks(withCount(1), 'changeit', 'x'), /not a readable JKS keystore: \d+ bytes after the last of 1 entries/);
  const badTag = Buffer.from(unsealed);
  badTag.writeUInt32BE(7, 12);
  assert.throws(() => parseJks(sealed(badTag), 'changeit', 'x'), /entry 1 has tag 7, expected 1 \(key\) or 2 \(trusted certificate\)/);
  const badVersion = Buffer.from(unsealed);
  badVersion.writeUInt32BE(3, 4);
  assert.throws(() => parseJks(sealed(badVersion), 'changeit', 'x'), /version 3, expected 1 or 2/);
  assert.throws(() => parseJks(Buffer.alloc(10), 'changeit', 'x'), /not a readable JKS keystore: 10 bytes/);
});

test('parseJks reads an empty keystore; isJksFormat tells JKS from PKCS12 and JCEKS (left to keytool)', () => {
  const empty = Buffer.alloc(12);
  empty.writeUInt32BE(0xfeedfeed, 0);
  empty.writeUInt32BE(2, 4);
  assert.deepEqual(parseJks(sealed(empty), 'changeit', 'x'), { aliases: [], sha256: [] });
  assert.equal(isJksFormat(Buffer.from([0x30, 0x82, 0x06, 0x10])), false);
  assert.equal(isJksFormat(Buffer.from([0xce, 0xce, 0xce, 0xce, 0, 0, 0, 2])), false);
  assert.equal(isJksFormat(Buffer.alloc(2)), false);
});
