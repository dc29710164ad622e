import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareVersions, nodeArchOf, parseRuntimeProbe, usableNode } from './node-runtime';

const debianProbe = `machine=x86_64
glibc=2.36
os_id=debian
os_id_like=
os_version_id=12
systemd=yes
node=/usr/bin/node v18.19.0
node=/usr/bin/nodejs v18.19.0
`;

test('parses the runtime probe of a Debian 12 host', () => {
  const facts = parseRuntimeProbe(debianProbe);
  assert.equal(facts.machine, 'x86_64');
  assert.equal(facts.glibc, '2.36');
  assert.equal(facts.osId, 'debian');
  assert.equal(facts.systemd, true);
  assert.deepEqual(facts.nodes, [
    { path: '/usr/bin/node', version: 'v18.19.0' },
    { path: '/usr/bin/nodejs', version: 'v18.19.0' },
  ]);
});

test('a node that does not run has no version and is not usable', () => {
  const facts = parseRuntimeProbe('machine=aarch64\nglibc=\nos_id=alpine\nos_id_like=\nsystemd=no\nnode=/usr/local/bin/node unrunnable\n');
  assert.equal(facts.glibc, null);
  assert.equal(facts.systemd, false);
  assert.deepEqual(facts.nodes, [{ path: '/usr/local/bin/node', version: null }]);
  assert.equal(usableNode(facts.nodes), null);
});

test('compares versions numerically', () => {
  assert.ok(compareVersions('v18.19.0', '18.19.0') === 0);
  assert.ok(compareVersions('v18.9.1', '18.19.0') < 0);
  assert.ok(compareVersions('v20.1.0', '18.19.0') > 0);
  assert.ok(compareVersions('2.36', '2.28') > 0);
});

test('picks the first new-enough node', () => {
  const nodes = [
    { path: '/usr/bin/node', version: 'v16.20.2' },
    { path: '/opt/epoch-agent/runtime/bin/node', version: 'v20.20.2' },
  ];
  assert.equal(usableNode(nodes)?.path, '/opt/epoch-agent/runtime/bin/node');
});

test('maps uname -m to node arch', () => {
  assert.equal(nodeArchOf('x86_64'), 'x64');
  assert.equal(nodeArchOf('aarch64'), 'arm64');
  assert.equal(nodeArchOf('riscv64'), null);
});
