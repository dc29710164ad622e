import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../core/errors';
import { connectionSpecFor, connectionSpecsFor, parseJumpHost, parseSshArgs } from './connection';
import { loadInventory, readVaultPasswordFile } from './inventory';
import type { Inventory, InventoryGroup, InventoryHost } from './types';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const fixtures = join(repo, 'test/fixtures/inventories');
const host = (vars: Record<string, unknown>, name = 'h1'): InventoryHost => ({ name, groups: ['all'], vars, varLocations: {} });

test('defaults: ssh to the host name on 22 as the given default user, no become', () => {
  assert.deepEqual(connectionSpecFor(host({}), { defaultUser: 'me' }), {
    kind: 'ssh', address: 'h1', port: 22, user: 'me', proxyJump: [], become: false, becomeUser: 'root',
  });
});

test('INI fixture: ansible_host/port/user, ProxyJump with user and port, become', async () => {
  const inv = await loadInventory(join(fixtures, 'multi-env-ini'));
  const spec = connectionSpecFor(inv.hosts.get('web-canary.prod.example.com')!);
  assert.deepEqual(spec, {
    kind: 'ssh', address: '198.18.1.50', port: 2222, user: 'deploy',
    proxyJump: [{ user: 'ops', address: 'jump.prod.example.com', port: 2200 }],
    become: true, becomeUser: 'root',
  });
  assert.equal(connectionSpecFor(inv.hosts.get('monitor.example.com')!).kind, 'local');
  assert.equal(connectionSpecFor(inv.hosts.get('jump.prod.example.com')!).user, 'ops');
});

test('templated connection vars are resolved against the host’s variables', async () => {
  const inv = await loadInventory(join(fixtures, 'nested-yaml/hosts.yml'));
  assert.equal(connectionSpecFor(inv.hosts.get('edge-fra-02')!).address, 'fra-02.edge.example.net');
});

test('ProxyJump forms: -J a,b, -o ProxyJump=..., ssh:// URLs, ProxyCommand ssh -W', () => {
  assert.deepEqual(parseSshArgs('-J ops@b1:2222,b2').proxyJump, [
    { user: 'ops', address: 'b1', port: 2222 },
    { address: 'b2', port: 22 },
  ]);
  assert.deepEqual(parseSshArgs("-o 'ProxyJump ssh://u@b3:2022' -o UserKnownHostsFile=/tmp/kh"), {
    proxyJump: [{ user: 'u', address: 'b3', port: 2022 }],
    knownHostsFile: '/tmp/kh',
  });
  assert.deepEqual(parseSshArgs('-oProxyJump=b4').proxyJump, [{ address: 'b4', port: 22 }]);
  assert.deepEqual(parseSshArgs('-o ProxyCommand="ssh -W %h:%p -q -p 2201 admin@198.18.0.9"').proxyJump, [
    { user: 'admin', address: '198.18.0.9', port: 2201 },
  ]);
  assert.throws(() => parseSshArgs('-o ProxyCommand="nc -X connect -x proxy:3128 %h %p"'), /ProxyCommand .* is not supported/);
  assert.deepEqual(parseJumpHost('[2001:db8::1]:2200'), { address: '2001:db8::1', port: 2200 });
});

test('become password: from the inventory (vault) it is attached non-enumerably; otherwise the env var name', async () => {
  const inv = await loadInventory(join(fixtures, 'vaulted'), { vaultPassword: readVaultPasswordFile(join(fixtures, 'vaulted.pass')) });
  const spec = connectionSpecFor(inv.hosts.get('app1.example.org')!, { becomePasswordEnv: 'EPOCH_BECOME_PASSWORD' });
  assert.equal(spec.becomePassword, 'foobar\n');
  assert.equal(spec.becomePasswordEnv, 'EPOCH_BECOME_PASSWORD');
  assert.ok(!JSON.stringify(spec).includes('foobar'), 'never serialised');
  assert.ok(!Object.keys(spec).includes('becomePassword'));
  const plain = connectionSpecFor(host({ ansible_become: 'yes' }), { becomePasswordEnv: 'X' });
  assert.equal(plain.become, true);
  assert.equal(plain.becomePassword, undefined);
});

test('bad connection variables are all reported, for every host', () => {
  const inv: Inventory = {
    source: 'x',
    groups: new Map<string, InventoryGroup>(),
    warnings: [],
    hosts: new Map<string, InventoryHost>([
      ['a', { ...host({ ansible_port: 'ssh', ansible_connection: 'winrm' }, 'a'), varLocations: { ansible_port: 'hosts:1:3', ansible_connection: 'hosts:1:20' } }],
      ['b', { ...host({ ansible_become_method: 'su', ansible_ssh_common_args: "-o 'ProxyJump=b" }, 'b'), varLocations: { ansible_become_method: 'hosts:2:3', ansible_ssh_common_args: 'hosts:2:30' } }],
    ]),
  };
  assert.throws(
    () => connectionSpecsFor(inv, ['a', 'b']),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems, [
        { location: 'hosts:1:20', message: 'ansible_connection of host a is "winrm" (expected ssh or local)' },
        { location: 'hosts:1:3', message: 'ansible_port of host a is "ssh" (expected a port number 1-65535)' },
        { location: 'hosts:2:30', message: `ansible_ssh_common_args of host b: unterminated single quote at character 4 in "-o 'ProxyJump=b"` },
        { location: 'hosts:2:3', message: 'ansible_become_method of host b is "su" (only sudo is supported)' },
      ]);
      return true;
    },
  );
});
