import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expandHostRange, HostRangeError } from './host-range';
import { shlexSplit, splitHostPort } from './inventory-ini';
import { literalEval, parseIniValue } from './python-literal';

test('host ranges: zero padding, letters, steps, nesting, empty start', () => {
  assert.deepEqual(expandHostRange('web[01:03].example.com'), ['web01.example.com', 'web02.example.com', 'web03.example.com']);
  assert.deepEqual(expandHostRange('db-[a:c]'), ['db-a', 'db-b', 'db-c']);
  assert.deepEqual(expandHostRange('n[1:10:3]'), ['n1', 'n4', 'n7', 'n10']);
  assert.deepEqual(expandHostRange('n[01:20:5]'), ['n01', 'n06', 'n11', 'n16']);
  assert.deepEqual(expandHostRange('r[1:2]-[a:b]'), ['r1-a', 'r1-b', 'r2-a', 'r2-b']);
  assert.deepEqual(expandHostRange('x[:2]'), ['x0', 'x1', 'x2']);
  assert.deepEqual(expandHostRange('x[5:3]'), [], 'a numeric start past the end yields nothing, as in Ansible');
  assert.deepEqual(expandHostRange('plain.example.com'), ['plain.example.com']);
  assert.throws(() => expandHostRange('x[01:100]'), HostRangeError);
  assert.throws(() => expandHostRange('x[c:a]'), /begin <= end/);
  assert.throws(() => expandHostRange('x[1:]'), /end value/);
  assert.throws(() => expandHostRange('x[1:a]'), /both be numbers or both single letters/);
});

test('host:port splitting, IPv6 aware', () => {
  assert.deepEqual(splitHostPort('h:2222'), { pattern: 'h', port: 2222 });
  assert.deepEqual(splitHostPort('web[01:05]:22'), { pattern: 'web[01:05]', port: 22 });
  assert.deepEqual(splitHostPort('web[01:05]'), { pattern: 'web[01:05]' });
  assert.deepEqual(splitHostPort('2001:db8::1'), { pattern: '2001:db8::1' });
  assert.deepEqual(splitHostPort('[2001:db8::1]:2200'), { pattern: '2001:db8::1', port: 2200 });
});

test('INI host lines split like Python shlex with comments', () => {
  assert.deepEqual(shlexSplit(`h1 a=1 b="x y" c='z # not a comment' # trailing`), ['h1', 'a=1', 'b=x y', 'c=z # not a comment']);
  assert.deepEqual(shlexSplit('h1 pass=abc#def'), ['h1', 'pass=abc'], 'shlex starts a comment even mid-word');
  assert.deepEqual(shlexSplit('h1 p=a\\ b q="say \\"hi\\""'), ['h1', 'p=a b', 'q=say "hi"']);
  assert.throws(() => shlexSplit('h1 a="open'), /No closing quotation/);
});

test('INI values: Python literal_eval, else the raw string', () => {
  assert.equal(parseIniValue('22'), 22);
  assert.equal(parseIniValue('-3'), -3);
  assert.equal(parseIniValue('0x1F'), 31);
  assert.equal(parseIniValue('1_000'), 1000);
  assert.equal(parseIniValue('1.5e3'), 1500);
  assert.equal(parseIniValue('True'), true);
  assert.equal(parseIniValue('None'), null);
  assert.equal(parseIniValue('true'), 'true', 'lower-case true is not a Python literal');
  assert.equal(parseIniValue('yes'), 'yes');
  assert.equal(parseIniValue('010'), '010', 'Python 3 rejects leading zeros');
  assert.equal(parseIniValue('10.0.0.1'), '10.0.0.1');
  assert.equal(parseIniValue('web-01'), 'web-01');
  assert.equal(parseIniValue("'quoted'"), 'quoted');
  assert.equal(parseIniValue("'a' \"b\""), 'ab');
  assert.equal(parseIniValue(String.raw`'tab\there'`), 'tab\there');
  assert.equal(parseIniValue(String.raw`r'raw\t'`), String.raw`raw\t`);
  assert.deepEqual(parseIniValue("[1, 'two', [3]]"), [1, 'two', [3]]);
  assert.deepEqual(parseIniValue("{'a': 1, 'b': [True, None]}"), { a: 1, b: [true, null] });
  assert.deepEqual(parseIniValue('(1, 2)'), [1, 2]);
  assert.deepEqual(parseIniValue('1, 2'), [1, 2], 'a bare tuple');
  assert.equal(parseIniValue('(5)'), 5);
  assert.equal(parseIniValue('5 # comment'), 5, 'literal_eval ignores a Python comment');
  assert.equal(parseIniValue('-o ProxyJump=x'), '-o ProxyJump=x');
  assert.equal(parseIniValue(''), '');
  assert.throws(() => literalEval('os.system("x")'));
});
