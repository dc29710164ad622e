import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../core/errors';
import { loadInventory, readVaultPasswordFile, resolveInventorySpec } from './inventory';
import { formatInventoryList } from './inventory-list';
import { VaultValue } from './vault';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const fixtures = join(repo, 'test/fixtures/inventories');

/** Writes files into a fresh temp folder; returns its path. */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-inv-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

async function problemsOf(promise: Promise<unknown>): Promise<string[]> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.location.replace(/^.*\//, '')}: ${p.message}`);
    throw e;
  }
  assert.fail('expected a ConfigError');
}

test('multi-env INI: groups, children, ranges (padded, alphabetic, stepped), ungrouped', async () => {
  const inv = await loadInventory(join(fixtures, 'multi-env-ini'));
  assert.deepEqual([...inv.hosts.keys()], [
    'monitor.example.com',
    'web01.prod.example.com', 'web02.prod.example.com', 'web03.prod.example.com', 'web04.prod.example.com',
    'web-canary.prod.example.com',
    'db-a.prod.example.com', 'db-b.prod.example.com', 'db-c.prod.example.com', 'db-primary.prod.example.com',
    'cache1.prod.example.com', 'cache5.prod.example.com', 'cache9.prod.example.com',
    'lb1.prod.example.com', 'lb2.prod.example.com',
    'jump.prod.example.com',
    'stg-web1.example.com', 'stg-web2.example.com',
  ]);
  assert.deepEqual(inv.groups.get('all')!.children, ['ungrouped', 'bastion', 'prod', 'staging']);
  assert.deepEqual(inv.groups.get('prod')!.children, ['web', 'db', 'cache', 'lb']);
  assert.deepEqual(inv.groups.get('ungrouped')!.hosts, ['monitor.example.com']);
  assert.equal(inv.groups.get('web')!.depth, 2);
  assert.deepEqual(inv.hosts.get('web01.prod.example.com')!.groups.sort(), ['all', 'prod', 'web']);
});

test('INI values follow Ansible: literal_eval on host lines and in :vars, strings otherwise', async () => {
  const inv = await loadInventory(join(fixtures, 'multi-env-ini'));
  const canary = inv.hosts.get('web-canary.prod.example.com')!.vars;
  assert.equal(canary.ansible_port, 2222);
  assert.equal(canary.epoch_canary, true);
  assert.equal(canary.ansible_host, '198.18.1.50');
  const primary = inv.hosts.get('db-primary.prod.example.com')!.vars;
  assert.equal(primary.ansible_port, 5522, 'host:port sets ansible_port');
  assert.equal(primary.pg_version, 15, "shlex strips the quotes of pg_version='15', then literal_eval makes it an int");
  const lb1 = inv.hosts.get('lb1.prod.example.com')!.vars;
  assert.equal(lb1.vip, '198.18.1.5 198.18.1.6');
  assert.deepEqual(inv.hosts.get('lb2.prod.example.com')!.vars.tags, ['edge', 'tls']);
  const web = inv.hosts.get('web02.prod.example.com')!.vars;
  assert.equal(web.ansible_become, true);
  assert.equal(web.ratio, 0.75);
  assert.equal(web.ansible_ssh_common_args, '-o ProxyJump=ops@jump.prod.example.com:2200 -o ServerAliveInterval=30');
});

test('precedence: inventory group vars < group_vars/all < group_vars/<group> (sorted files in a folder) < host < host_vars', async () => {
  const inv = await loadInventory(join(fixtures, 'multi-env-ini'));
  const web01 = inv.hosts.get('web01.prod.example.com')!;
  // [prod:vars] env=prod loses to group_vars/all.yml (Ansible's documented order, a classic surprise)
  assert.equal(web01.vars.env, 'unset');
  assert.equal(web01.vars.max_conns, 16384, 'group_vars/web beats group_vars/prod (child over parent)');
  assert.equal(web01.vars.http_port, 9443, 'host_vars beats group_vars');
  assert.equal(inv.hosts.get('web02.prod.example.com')!.vars.http_port, 8443, 'web/tls.yml is read after web/main.yml');
  assert.equal(inv.hosts.get('db-a.prod.example.com')!.vars.pg_port, 5432, 'group_vars/db without extension');
  assert.equal(inv.hosts.get('db-primary.prod.example.com')!.vars.backup_slot, 7, 'host_vars JSON beats the host line');
  assert.match(web01.varLocations.http_port!, /host_vars\/web01\.prod\.example\.com\.yml:1:12$/);
  assert.match(web01.varLocations.env!, /group_vars\/all\.yml:6:6$/);
});

test('nested YAML: depth, alphabetical merge at equal depth, ansible_group_priority, merge keys', async () => {
  const inv = await loadInventory(join(fixtures, 'nested-yaml/hosts.yml'));
  const v = (h: string) => inv.hosts.get(h)!.vars;
  assert.deepEqual(inv.groups.get('ungrouped')!.hosts, ['controller.example.net']);
  assert.equal(inv.groups.get('fra')!.depth, 2);
  assert.equal(inv.groups.get('ams')!.priority, 10);
  // edge-fra-01: canary, eu, zz_overrides are all depth 1 → merged by name, zz_overrides last
  assert.equal(v('edge-fra-01').tz, 'Asia/Tokyo');
  // depth 2 (fra) beats depth 1 (shared_ams_fra)
  assert.equal(v('edge-fra-02').site, 'fra');
  // fra and ams are both depth 2: ams has priority 10 so it is merged last
  assert.equal(v('edge-fra-03').site, 'ams');
  assert.equal('ansible_group_priority' in v('edge-fra-03'), false, 'consumed as the priority, not a variable');
  assert.equal(v('edge-fra-01').region, 'eu-central', 'group_vars/fra beats inventory vars of eu');
  assert.equal(v('edge-iad-a').epoch_canary, true, 'YAML 1.1: yes is a boolean');
  assert.equal(v('controller.example.net').epoch_agent_version, '1.5.0', 'group_vars/all/ files in sorted order');
  assert.deepEqual(v('edge-iad-b').anchors, { defaults: { timeout: 30, retries: 3 }, custom: { timeout: 30, retries: 5 } });
  assert.equal(v('edge-fra-02').ansible_host, '{{ site }}-02.edge.example.net', 'templates are kept for use time');
});

test('vault: inline !vault (Ansible’s own vector), whole-file vaulted group_vars, host_vars', async () => {
  const vaultPassword = readVaultPasswordFile(join(fixtures, 'vaulted.pass'));
  const inv = await loadInventory(join(fixtures, 'vaulted'), { vaultPassword });
  const app2 = inv.hosts.get('app2.example.org')!.vars;
  assert.equal(app2.ansible_become_password, 'foobar\n');
  assert.equal(app2.vault_db_password, 's3cret-db');
  assert.equal(app2.app_secret, 'per-host-secret');
  assert.equal(inv.hosts.get('app1.example.org')!.vars.app_secret, undefined);
});

test('vault without a password: every encrypted variable is named with its file:line', async () => {
  const dir = tree({
    'hosts.yml': `all:\n  hosts:\n    h1:\n      secret: !vault |\n        ${readFileSync(join(fixtures, 'vaulted/inventory.yml'), 'utf8').split('$ANSIBLE_VAULT')[1]!.split('\n').map((l, i) => (i === 0 ? `$ANSIBLE_VAULT${l}` : l.trim())).join('\n        ')}\n`,
  });
  try {
    const problems = await problemsOf(loadInventory(join(dir, 'hosts.yml')));
    assert.deepEqual(problems, [
      'hosts.yml:4:22: variable secret (host h1) is vault-encrypted; pass --vault-password-file to decrypt it',
    ]);
    const kept = await loadInventory(join(dir, 'hosts.yml'), { keepEncrypted: true });
    assert.ok(kept.hosts.get('h1')!.vars.secret instanceof VaultValue);
    const listed = JSON.parse(formatInventoryList(kept)) as { _meta: { hostvars: { h1: { secret: { __ansible_vault: string } } } } };
    assert.match(listed._meta.hostvars.h1.secret.__ansible_vault, /^\$ANSIBLE_VAULT;1\.1;AES256\n/);
    const wrong = await problemsOf(loadInventory(join(dir, 'hosts.yml'), { vaultPassword: 'nope' }));
    assert.match(wrong[0]!, /^hosts\.yml:4:22: cannot decrypt variable secret \(host h1\): HMAC mismatch/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a whole-file vault without a password names the file', async () => {
  const problems = await problemsOf(loadInventory(join(fixtures, 'vaulted')));
  assert.ok(problems.includes('vault.yml:1:1: the whole file is vault-encrypted; pass --vault-password-file to read it'), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('inventory.yml:15:41: variable ansible_become_password (group app) is vault-encrypted')), problems.join('\n'));
});

test('INI errors are all collected, with file:line:column', async () => {
  const dir = tree({
    hosts: [
      '[web]',
      'web1 notakeyvalue',
      'web[3:1:x].example.com',
      '[web:bogus]',
      '[ok]',
      'h1 x="unterminated',
      '[orphan:vars]',
      'a=1',
      '[parent:children]',
      'missing_child',
      '[spaced group]',
    ].join('\n'),
  });
  try {
    const problems = await problemsOf(loadInventory(join(dir, 'hosts')));
    assert.deepEqual(problems, [
      'hosts:2:1: expected key=value host variable assignment, got "notakeyvalue"',
      'hosts:3:1: host range step must be a positive integer, got "x" in web[3:1:x].example.com',
      'hosts:4:1: section [web:bogus] has unknown type "bogus" (expected vars or children)',
      'hosts:6:1: No closing quotation',
      'hosts:11:1: invalid section entry "[spaced group]" (expected [group], [group:vars] or [group:children], without spaces)',
      'hosts:7:1: section [orphan:vars] is for a group that is never defined: "orphan" (define [orphan] or list it under a [parent:children])',
      'hosts:10:1: section [parent:children] includes undefined group "missing_child" (expected a [missing_child] or [missing_child:children] section)',
    ]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('YAML inventory errors are all collected, with the offending value', async () => {
  const dir = tree({
    'inv.yml': ['all:', '  hosts: [a, b]', '  children:', '    web:', '      hostz: {}', '      vars: 3', '    db:', '      hosts:', '        db[01:3]:'].join('\n'),
  });
  try {
    const problems = await problemsOf(loadInventory(join(dir, 'inv.yml')));
    assert.deepEqual(problems, [
      'inv.yml:2:10: hosts of group "all" must be a mapping (host: vars or empty), got ["a","b"]',
      'inv.yml:5:7: invalid key "hostz" in group "web" (expected hosts, vars or children)',
      'inv.yml:6:13: vars of group "web" must be a mapping, got 3',
      'inv.yml:9:9: host range must specify equal-length begin and end formats, got [01:3] in db[01:3]',
    ]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('YAML syntax errors carry positions', async () => {
  const dir = tree({ 'bad.yml': 'all:\n  hosts:\n    a: {b: 1\n' });
  try {
    const problems = await problemsOf(loadInventory(join(dir, 'bad.yml')));
    assert.ok(problems.length >= 1);
    assert.match(problems[0]!, /^bad\.yml:\d+:\d+: YAML syntax error: /);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('group loops are refused', async () => {
  const dir = tree({ hosts: '[a:children]\nb\n[b:children]\na\n' });
  try {
    const problems = await problemsOf(loadInventory(join(dir, 'hosts')));
    assert.deepEqual(problems, ['hosts:4:1: adding group "a" as a child of "b" creates a loop (expected a tree of groups)']);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('--inventory NAME resolves to inventories/NAME/, else to a path; a folder loads every inventory file in it', async () => {
  const dir = tree({
    'inventories/prod/10-hosts.ini': '[web]\nw1\n',
    'inventories/prod/20-more.yml': 'all:\n  children:\n    db:\n      hosts:\n        d1:\n',
    'inventories/prod/README.md': '# ignored by extension',
    'inventories/prod/group_vars/web.yml': 'port: 1\n',
    'elsewhere.ini': 'x1\n',
  });
  try {
    assert.equal(resolveInventorySpec('prod', dir), join(dir, 'inventories/prod'));
    const inv = await loadInventory('prod', { cwd: dir });
    assert.deepEqual([...inv.hosts.keys()], ['w1', 'd1']);
    assert.equal(inv.hosts.get('w1')!.vars.port, 1);
    const other = await loadInventory('elsewhere.ini', { cwd: dir });
    assert.deepEqual([...other.hosts.keys()], ['x1']);
    const missing = await problemsOf(loadInventory('nope', { cwd: dir }));
    assert.match(missing[0]!, /inventory "nope" not found: neither .*inventories\/nope nor .*nope exists/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('Windows line endings and a BOM load like any other file', async () => {
  const dir = tree({ hosts: '\uFEFF[web]\r\nw1 port=1\r\n[db]\r\nd1\r\n' });
  try {
    const inv = await loadInventory(join(dir, 'hosts'));
    assert.deepEqual([...inv.hosts.keys()], ['w1', 'd1']);
    assert.equal(inv.hosts.get('w1')!.vars.port, 1);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a file without extension is YAML when it parses as a YAML inventory, INI otherwise', async () => {
  const dir = tree({ a: 'all:\n  hosts:\n    y1:\n', b: 'i1\ni2 k=v\n' });
  try {
    assert.deepEqual([...(await loadInventory(join(dir, 'a'))).hosts.keys()], ['y1']);
    assert.deepEqual([...(await loadInventory(join(dir, 'b'))).hosts.keys()], ['i1', 'i2']);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('dynamic inventory scripts and plugin configs are refused clearly', async () => {
  const dir = tree({ 'ec2.py': '#!/usr/bin/env python3\nprint("{}")\n', 'aws_ec2.yml': 'plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n' });
  try {
    assert.deepEqual(await problemsOf(loadInventory(join(dir, 'ec2.py'))), [
      'ec2.py:1:1: dynamic inventory scripts are not supported (expected an INI or YAML inventory file)',
    ]);
    assert.match((await problemsOf(loadInventory(join(dir, 'aws_ec2.yml'))))[0]!, /^aws_ec2\.yml:1:1: inventory plugin configuration \(plugin: amazon\.aws\.aws_ec2\) is not supported/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('group_vars for an unknown group is a warning, not an error', async () => {
  const dir = tree({ hosts: '[web]\nw1\n', 'group_vars/wbe.yml': 'x: 1\n' });
  try {
    const inv = await loadInventory(join(dir, 'hosts'));
    assert.equal(inv.warnings.length, 1);
    assert.match(inv.warnings[0]!, /group_vars\/wbe\.yml: no group or host named "wbe"/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a Kubernetes-style INI ([all] hosts with vars, empty group, umbrella group, [all:vars]) loads unchanged', async () => {
  const inv = await loadInventory(join(fixtures, 'k8s-style/inventory.ini'));
  assert.deepEqual([...inv.hosts.keys()], ['node1', 'node2', 'node3', 'node4', 'node5']);
  assert.deepEqual(inv.groups.get('all')!.children, ['ungrouped', 'etcd', 'k8s_cluster']);
  assert.deepEqual(inv.groups.get('ungrouped')!.hosts, []);
  assert.deepEqual(inv.groups.get('k8s_cluster')!.children, ['kube_control_plane', 'kube_node', 'calico_rr']);
  const node1 = inv.hosts.get('node1')!.vars;
  assert.equal(node1.etcd_member_name, 'etcd1');
  assert.equal(node1.ansible_python_interpreter, '/usr/bin/python3');
  assert.equal(node1.kube_network_plugin, 'calico', 'group_vars/k8s_cluster/ folder');
  assert.equal(node1.bin_dir, '/usr/local/bin');
  assert.equal(inv.hosts.get('node3')!.vars.kube_proxy_mode, 'ipvs', 'node3 is in k8s_cluster through kube_node');
  assert.equal(inv.hosts.get('node3')!.vars.kube_apiserver_ip, "{{ kube_service_addresses | default('10.233.0.0/18') }}");
  const listed = JSON.parse(formatInventoryList(inv)) as Record<string, unknown>;
  assert.equal(listed.calico_rr, undefined);
  assert.equal(listed.ungrouped, undefined);
});
