import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decryptVault, encryptVault, VaultFormatError, VaultPasswordError } from './vault';

// ansible/ansible test/integration/targets/ansible-vault/format_1_1_AES256.yml, password "test-vault-password"
const ansibleSample = `$ANSIBLE_VAULT;1.1;AES256
33613463343938323434396164663236376438313435633837336438366530666431643031333734
6463646538393331333239393363333830613039376562360a396635393636636539346332336364
35303039353164386461326439346165656463383137663932323930666632326263636266656461
3232663537653637640a643166666232633936636664376435316664656631633166323237356163
6138`;

test('decrypts the vault file from ansible/ansible’s own test suite', () => {
  assert.equal(decryptVault(ansibleSample, 'test-vault-password'), 'foobar\n');
});

test('a 1.2 header with a vault id decrypts the same body', () => {
  const v12 = ansibleSample.replace('$ANSIBLE_VAULT;1.1;AES256', '$ANSIBLE_VAULT;1.2;AES256;prod');
  assert.equal(decryptVault(v12, 'test-vault-password'), 'foobar\n');
});

test('indented envelopes (as under `!vault |`) decrypt', () => {
  const indented = ansibleSample.split('\n').map((l) => `    ${l}`).join('\n');
  assert.equal(decryptVault(indented, 'test-vault-password'), 'foobar\n');
});

test('the wrong password is a VaultPasswordError, not garbage', () => {
  assert.throws(() => decryptVault(ansibleSample, 'wrong'), VaultPasswordError);
});

test('a non-vault text is a VaultFormatError', () => {
  assert.throws(() => decryptVault('$ANSIBLE_VAULT;1.0;AES\nabcd', 'x'), VaultFormatError);
  assert.throws(() => decryptVault('$ANSIBLE_VAULT;1.1;AES256\nzz', 'x'), VaultFormatError);
});

test('encrypt then decrypt round-trips, including empty and block-sized plaintexts', () => {
  for (const text of ['', 'x', '0123456789abcdef', 'päss wörd\n'.repeat(20)]) {
    const envelope = encryptVault(text, 'pw');
    assert.ok(envelope.startsWith('$ANSIBLE_VAULT;1.1;AES256\n'));
    for (const line of envelope.split('\n').slice(1)) assert.ok(line.length <= 80);
    assert.equal(decryptVault(envelope, 'pw'), text);
  }
});

test('a fixed salt gives a fixed envelope (our own test vector)', () => {
  const salt = Buffer.alloc(32, 7);
  const envelope = encryptVault('per-host-secret', 'test-vault-password', { salt });
  assert.equal(envelope, encryptVault('per-host-secret', 'test-vault-password', { salt }));
  assert.equal(
    envelope.split('\n')[1],
    '30373037303730373037303730373037303730373037303730373037303730373037303730373037',
  );
  assert.equal(decryptVault(envelope, 'test-vault-password'), 'per-host-secret');
});
