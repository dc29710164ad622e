import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cidrInterval, formatCidr, intervalKey, minimalCidrs, parseCidr } from './net';

test('IPv6 literals are canonicalised the way nft prints them (RFC 5952)', () => {
  assert.equal(formatCidr(parseCidr('FE80:0:0::/10')), 'fe80::/10');
  assert.equal(formatCidr(parseCidr('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
  assert.equal(formatCidr(parseCidr('::ffff:198.18.202.1')), '::ffff:c612:ca01');
  assert.equal(formatCidr(parseCidr('::1/128')), '::1');
  assert.equal(formatCidr(parseCidr('198.18.202.1/32')), '198.18.202.1');
});

test('bad addresses are refused with the value and the reason', () => {
  assert.throws(() => parseCidr('1.2.3'), /invalid address "1\.2\.3"/);
  assert.throws(() => parseCidr('01.2.3.4'), /invalid address/);
  assert.throws(() => parseCidr('1::2::3'), /invalid address/);
  assert.throws(() => parseCidr('10.0.0.0/33'), /prefix length must be 0\.\.32/);
  assert.throws(() => parseCidr('10.1.0.0/8'), /host bits are set \(did you mean 10\.0\.0\.0\/8\?\)/);
  assert.equal(formatCidr(parseCidr('10.1.0.0/8', true)), '10.0.0.0/8');
});

test('contained CIDRs are dropped (nft refuses overlapping set elements) and adjacent ones merge for comparison', () => {
  const list = ['169.254.0.0/16', '169.254.169.254/32', '10.0.0.0/8', '10.1.0.0/16'].map((c) => parseCidr(c));
  assert.deepEqual(minimalCidrs(list).map(formatCidr), ['10.0.0.0/8', '169.254.0.0/16']);
  const halves = intervalKey(['10.0.0.0/9', '10.128.0.0/9'].map((c) => cidrInterval(parseCidr(c))));
  assert.equal(halves, intervalKey([cidrInterval(parseCidr('10.0.0.0/8'))]));
});
