import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkHostKey, entryMatchesHost, fingerprintOfBlob, formatKnownHostsLine, knownHostsName, knownKeyTypes, parseKnownHosts } from './known-hosts';

const dir = mkdtempSync(join(tmpdir(), 'epoch-kh-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function newKey(name: string, type = 'ed25519'): { blob: Buffer; pub: string; fingerprint: string } {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', file]);
  const pub = readFileSync(`${file}.pub`, 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', `${file}.pub`]).toString().split(' ')[1] ?? '';
  return { blob: Buffer.from(pub.split(' ')[1] ?? '', 'base64'), pub, fingerprint };
}

const a = newKey('a');
const b = newKey('b');
const rsa = newKey('r', 'rsa');

test('fingerprints match ssh-keygen -l', () => {
  assert.equal(fingerprintOfBlob(a.blob), a.fingerprint);
  assert.equal(fingerprintOfBlob(rsa.blob), rsa.fingerprint);
});

test('knownHostsName brackets non-default ports', () => {
  assert.equal(knownHostsName('web1', 22), 'web1');
  assert.equal(knownHostsName('198.18.0.5', 2222), '[198.18.0.5]:2222');
});

test('plain, bracketed-port and wildcard entries', () => {
  const pubA = a.pub.split(' ').slice(0, 2).join(' ');
  const entries = parseKnownHosts(`# comment\n\nweb1,198.18.0.1 ${pubA}\n[db1]:2222 ${pubA}\n*.lab,!bad.lab ${pubA}\n`);
  assert.equal(entries.length, 3);
  assert.equal(checkHostKey(entries, 'web1', a.blob).kind, 'trusted');
  assert.equal(checkHostKey(entries, '198.18.0.1', a.blob).kind, 'trusted');
  assert.equal(checkHostKey(entries, '[db1]:2222', a.blob).kind, 'trusted');
  assert.equal(checkHostKey(entries, 'db1', a.blob).kind, 'unknown', 'port 22 does not match a [db1]:2222 entry');
  assert.equal(checkHostKey(entries, 'x.lab', a.blob).kind, 'trusted');
  assert.equal(checkHostKey(entries, 'bad.lab', a.blob).kind, 'unknown', '! negation excludes the host');
});

test('hashed entries written by ssh-keygen -H match', () => {
  const file = join(dir, 'known_hosts_hashed');
  const pubA = a.pub.split(' ').slice(0, 2).join(' ');
  writeFileSync(file, `web1 ${pubA}\n[198.18.201.9]:2200 ${pubA}\n`);
  execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^\|1\|/m);
  const entries = parseKnownHosts(text);
  assert.equal(entries.length, 2);
  assert.ok(entries.every((e) => e.hosts.kind === 'hashed'));
  assert.ok(entryMatchesHost(entries[0]!, 'web1'));
  assert.ok(!entryMatchesHost(entries[0]!, 'web2'));
  assert.equal(checkHostKey(entries, '[198.18.201.9]:2200', a.blob).kind, 'trusted');
});

test('a different key of the same type is reported as changed with the old fingerprint', () => {
  const entries = parseKnownHosts(`web1 ${a.pub}\n`);
  const verdict = checkHostKey(entries, 'web1', b.blob);
  assert.equal(verdict.kind, 'changed');
  assert.deepEqual(verdict.kind === 'changed' && verdict.known, [{ keyType: 'ssh-ed25519', fingerprint: a.fingerprint, line: 1 }]);
});

test('a new key type for a host known by another type counts as changed', () => {
  const verdict = checkHostKey(parseKnownHosts(`web1 ${a.pub}\n`), 'web1', rsa.blob);
  assert.equal(verdict.kind, 'changed');
  assert.deepEqual(knownKeyTypes(parseKnownHosts(`web1 ${a.pub}\nweb1 ${rsa.pub}\n`), 'web1'), ['ssh-ed25519', 'ssh-rsa']);
});

test('@revoked wins over a matching entry; @cert-authority is not a host key', () => {
  const entries = parseKnownHosts(`web1 ${a.pub}\n@revoked * ${a.pub}\n@cert-authority web2 ${b.pub}\n`);
  assert.equal(checkHostKey(entries, 'web1', a.blob).kind, 'revoked');
  assert.equal(checkHostKey(entries, 'web2', b.blob).kind, 'unknown');
});

test('formatKnownHostsLine round-trips through the parser (accept-new twin: trusted afterwards)', () => {
  const line = formatKnownHostsLine('[198.18.201.2]:22022', a.blob);
  assert.equal(checkHostKey(parseKnownHosts(line), '[198.18.201.2]:22022', a.blob).kind, 'trusted');
});
