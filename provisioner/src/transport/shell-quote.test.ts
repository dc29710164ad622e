import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { quoteArgv, quoteWord, remoteCommandLine } from './shell-quote';

const tricky = ['plain', '', 'with space', "it's", '$HOME', '`id`', 'a"b', 'semi;colon', 'new\nline', '*', '~', '-n', 'ünï', "''", '\\'];

test('quoteWord leaves safe words bare and quotes everything else', () => {
  assert.equal(quoteWord('nft'), 'nft');
  assert.equal(quoteWord('/usr/sbin/iptables-save'), '/usr/sbin/iptables-save');
  assert.equal(quoteWord(''), "''");
  assert.equal(quoteWord('a b'), "'a b'");
  assert.equal(quoteWord("it's"), `'it'\\''s'`);
});

test('a real shell splits the quoted line back into the same argv', () => {
  const line = quoteArgv(['printf', '%s\\0', ...tricky]);
  const out = execFileSync('/bin/sh', ['-c', line]).toString();
  assert.deepEqual(out.split('\0').slice(0, -1), tricky);
});

test('quoteArgv refuses an empty argv', () => {
  assert.throws(() => quoteArgv([]), /empty argv/);
});

test('remoteCommandLine sets LC_ALL=C and wraps sudo', () => {
  assert.equal(remoteCommandLine(['id', '-u']), 'env LC_ALL=C id -u');
  assert.equal(remoteCommandLine(['id'], { become: { user: 'root', withPassword: false } }), 'sudo -k -n -u root -- env LC_ALL=C id');
  assert.equal(remoteCommandLine(['id'], { become: { user: 'root', withPassword: true } }), "sudo -k -S -p '' -u root -- env LC_ALL=C id");
});
