import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText, parseListenFlag } from './load';
import { ConfigError, validateConfig } from './schema';

const minimal = { ca: { certFile: '/etc/epoch-agent/ca.pem', keyFile: '/etc/epoch-agent/ca.key' } };

test('a minimal config gets safe defaults', () => {
  const c = validateConfig(minimal);
  assert.equal(c.upstream.verify, true);
  assert.equal(c.upstream.onVerifyFailure, 'refuse');
  assert.deepEqual(c.health, { host: '127.0.0.1', port: 9443 });
  assert.equal(c.passthrough.learned.enabled, true);
  assert.equal(c.limits.maxConnections, 4096);
  assert.equal(c.log.connectLog, true);
});

test('a full config round-trips unchanged (already-valid twin)', () => {
  const c = validateConfig(minimal);
  assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(c))), c);
});

test('errors name the path, what was expected and the actual value', () => {
  const bad = {
    ...minimal,
    listen: [{ host: 'localhost', port: 70000 }],
    health: { host: '0.0.0.0', port: 9443 },
    limits: { maxConnections: 'many' },
    passthrough: { static: ['10.0.0.0/40', '*.ok.example'] },
    upstream: { onVerifyFailure: 'ignore' },
    surprise: true,
  };
  const e = (() => {
    try {
      validateConfig(bad, 'agent.json');
    } catch (err) {
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  })();
  assert.ok(e instanceof ConfigError);
  const text = e.problems.join('\n');
  assert.match(text, /^listen\[0\]\.host: expected an IPv4 or IPv6 literal \(got "localhost"\)$/m);
  assert.match(text, /^listen\[0\]\.port: .*(<=|65535).* \(got 70000\)$/m);
  assert.match(text, /^health: the health endpoint must listen on loopback/m);
  assert.match(text, /^limits\.maxConnections: .*expected number.* \(got "many"\)$/m);
  assert.match(text, /^passthrough\.static\[0\]: expected a CIDR .* \(got "10\.0\.0\.0\/40"\)$/m);
  assert.match(text, /^upstream\.onVerifyFailure: .* \(got "ignore"\)$/m);
  assert.match(text, /Unrecognized key: "surprise"/);
  assert.match(e.message, /^agent\.json: invalid configuration/);
});

test('JSON syntax errors carry line:column', () => {
  assert.throws(() => parseConfigText('{\n  "ca": {\n    "certFile": "x",\n  }\n}', 'agent.json'), (e: Error) => /^agent\.json:4:\d+/.test(e.message));
});

test('--listen / --health flags: PORT, ADDR:PORT, [v6]:PORT', () => {
  assert.deepEqual(parseListenFlag('8443', '::'), { host: '::', port: 8443 });
  assert.deepEqual(parseListenFlag('127.0.0.1:9443', '::'), { host: '127.0.0.1', port: 9443 });
  assert.deepEqual(parseListenFlag('[::1]:9443', '::'), { host: '::1', port: 9443 });
  assert.throws(() => parseListenFlag('99999', '::'), /expected \[ADDR:\]PORT/);
  assert.throws(() => parseListenFlag('host:', '::'), /expected/);
});
