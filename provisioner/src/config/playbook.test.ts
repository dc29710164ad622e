import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError } from '../core/errors';
import { loadInventory } from './inventory';
import { hostRunVars, loadPlaybook, loadRun, resolveTaskParams } from './playbook';
import { filterTasksByTags } from './tags';
import { encryptVault } from './vault';
import { evaluateWhen } from './when';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const inv = await loadInventory(join(repo, 'test/fixtures/inventories/multi-env-ini'));
const dir = mkdtempSync(join(tmpdir(), 'epoch-play-'));
after(() => rmSync(dir, { recursive: true }));

let n = 0;
function playbook(text: string): string {
  const path = join(dir, `site${++n}.yml`);
  writeFileSync(path, text);
  return path;
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

const good = `
- name: Observe TLS on the web tier
  hosts: web:&prod
  serial: [1, "10%", "50%"]
  max_fail_percentage: 20
  tags: [epoch]
  vars:
    marker: /var/lib/epoch/{{ inventory_hostname_short }}.done
    observe_ports: "{{ epoch_observe_ports | default([443]) }}"
  tasks:
    - name: Record the rollout
      command:
        argv: [touch, "{{ marker }}"]
        creates: "{{ marker }}"
      tags: record
    - name: Free-form command
      command: logger -t epoch "rollout on {{ inventory_hostname }}"
      when: env == 'unset'
    - command:
        cmd: echo {{ http_port }}
      when:
        - epoch_canary | default(false) | bool
      tags: [canary, never]
- hosts: [staging, monitor.example.com]
  serial: 2
  tasks: []
`;

test('a playbook loads into plays with normalised serial, tags and unresolved params', async () => {
  const plays = await loadPlaybook(playbook(good), { inventory: inv });
  assert.equal(plays.length, 2);
  const [p1, p2] = plays as [(typeof plays)[0], (typeof plays)[0]];
  assert.equal(p1.name, 'Observe TLS on the web tier');
  assert.deepEqual(p1.serial, [1, '10%', '50%']);
  assert.equal(p1.maxFailPercentage, 20);
  assert.deepEqual(p2.serial, [2]);
  assert.equal(p2.hosts, 'staging,monitor.example.com');
  assert.deepEqual(p1.tasks.map((t) => t.tags), [['epoch', 'record'], ['epoch'], ['epoch', 'canary', 'never']]);
  assert.deepEqual(p1.tasks[0]!.params, { argv: ['touch', '{{ marker }}'], creates: '{{ marker }}' });
  assert.deepEqual(p1.tasks[1]!.params, { cmd: 'logger -t epoch "rollout on {{ inventory_hostname }}"' });
  assert.equal(p1.tasks[2]!.name, 'command');
  assert.match(p1.tasks[0]!.paramLocations['argv.1']!, /site1\.yml:13:23$/);
  assert.match(p1.tasks[0]!.location, /site1\.yml:11:7$/);
});

test('per host: vars precedence, resolveTaskParams keeps types and returns the module’s parsed params', async () => {
  const [play] = await loadPlaybook(playbook(good), { inventory: inv });
  const { vars, varLocations } = hostRunVars(inv, 'web01.prod.example.com', play!, { http_port: 1 });
  assert.equal(vars.http_port, 1, 'extra vars win');
  assert.equal(vars.env, 'unset');
  const record = resolveTaskParams(play!.tasks[0]!, vars, varLocations);
  assert.deepEqual(record, { argv: ['touch', '/var/lib/epoch/web01.done'], creates: '/var/lib/epoch/web01.done' });
  const freeForm = resolveTaskParams(play!.tasks[1]!, vars);
  assert.deepEqual(freeForm.argv, ['logger', '-t', 'epoch', 'rollout on web01.prod.example.com']);
  assert.equal(evaluateWhen(play!.tasks[2]!.when, vars), false);
  const canaryVars = hostRunVars(inv, 'web-canary.prod.example.com', play!).vars;
  assert.equal(evaluateWhen(play!.tasks[2]!.when, canaryVars), true);
  assert.deepEqual(resolveTaskParams(play!.tasks[2]!, canaryVars).argv, ['echo', '8443']);
  assert.deepEqual(filterTasksByTags(play!.tasks, { tags: ['canary'] }).map((t) => t.name), ['command']);
});

test('structural errors are all collected with file:line:column and the value', async () => {
  const bad = `
- name: broken
  hosts: ""
  serial: [0, "ten%"]
  max_fail_percentage: 120
  gather_facts: false
  tasks:
    - name: two modules
      command: {argv: [true]}
      shell: echo hi
    - name: unknown module
      apt: {name: nginx}
    - name: loop
      command: {argv: [echo]}
      loop: [1, 2]
    - name: bad params
      command: {argv: [], creates: relative/path, extra: 1}
    - name: shell syntax in cmd
      command: "echo hi | tee /tmp/x"
    - name: bad when
      command: {argv: ["true"]}
      when: a or b
    - name: jinja
      command: {argv: ["{{ x | upper }}"]}
- hosts: all
  tasks:
    - command: {argv: ["true"]}
      tags: {a: 1}
- just a string
`;
  const problems = await problemsOf(loadPlaybook(playbook(bad)));
  assert.deepEqual(problems, [
    'site3.yml:3:3: hosts: hosts must name a host pattern (got "")',
    'site3.yml:4:12: serial.0: Too small: expected number to be >=1 (got 0)',
    'site3.yml:4:15: serial.1: a percentage looks like "25%" (got "ten%")',
    'site3.yml:5:3: max_fail_percentage: Too big: expected number to be <=100 (got 120)',
    'site3.yml:6:3: play key "gather_facts" is not supported (supported: name, hosts, serial, max_fail_percentage, vars, tags, tasks)',
    'site3.yml:28:13: tags must be a string or a list of strings, got {"a":1}',
    'site3.yml:29:3: play 3 must be a mapping, got "just a string"',
  ]);
});

test('task errors are all collected too (a valid play shape with bad tasks)', async () => {
  const bad = `
- hosts: all
  tasks:
    - name: two modules
      command: {argv: ["true"]}
      shell: echo hi
    - name: unknown module
      apt: {name: nginx}
    - name: loop
      command: {argv: [echo]}
      loop: [1, 2]
    - name: bad params
      command: {argv: [], creates: relative/path, extra: 1}
    - name: shell syntax in cmd
      command: "echo hi | tee /tmp/x"
    - name: bad when
      command: {argv: ["true"]}
      when: a or b
    - name: jinja
      command: {argv: ["{{ x | upper }}"]}
`;
  const problems = await problemsOf(loadPlaybook(playbook(bad)));
  assert.equal(problems[0], 'site4.yml:4:7: task has 2 module keys "command", "shell" (expected exactly one of: command)');
  assert.equal(problems[1], 'site4.yml:8:7: unknown module "apt" (registered modules: command)');
  assert.equal(problems[2], 'site4.yml:11:7: task keyword "loop" is not supported (a task is name, one module, when, tags)');
  assert.deepEqual(problems.slice(3, 6).sort(), [
    'site4.yml:13:23: command: argv: argv needs at least the program (got [])',
    'site4.yml:13:36: command: creates: must be an absolute path (got "relative/path")',
    'site4.yml:13:58: command: unknown parameter "extra" (got 1)',
  ]);
  assert.deepEqual(problems.slice(6), [
    'site4.yml:15:16: command: cmd: "|" at character 9 needs a shell, in "echo hi | tee /tmp/x"; use argv: [\'sh\', \'-c\', \'...\'] if you mean it (got "echo hi | tee /tmp/x")',
    'site4.yml:18:13: unsupported when: "a or b": unexpected "or b" (supported: var, not var, var == \'x\', var != \'x\', var | bool, var | default(x), var is defined, var is not defined, joined by and)',
    'site4.yml:20:24: unsupported expression {{ x | upper }}: filter "upper" is not supported (only {{ var }}, {{ var.sub }} and {{ var | default(...) }} are resolved)',
  ]);
});

test('command params: argv/cmd exclusivity, absolute creates/removes', async () => {
  const bad = `
- hosts: all
  tasks:
    - command: {argv: [a], cmd: b}
    - command: {argv: [], creates: rel}
    - command: {}
`;
  const problems = await problemsOf(loadPlaybook(playbook(bad)));
  assert.deepEqual(problems, [
    'site5.yml:4:16: command: give exactly one of argv (a list) or cmd (a string) (got {"argv":["a"],"cmd":"b"})',
    'site5.yml:5:23: command: argv: argv needs at least the program (got [])',
    'site5.yml:5:36: command: creates: must be an absolute path (got "rel")',
    'site5.yml:6:16: command: give exactly one of argv (a list) or cmd (a string) (got {})',
  ]);
});

test('preflight with the inventory: undefined variables and bad resolved params, grouped across hosts', async () => {
  const text = `
- hosts: web
  vars:
    port: "{{ http_port }}"
  tasks:
    - name: needs a var only some hosts lack
      command: {argv: [echo, "{{ only_on_web01 }}"]}
    - name: resolved value fails the schema
      command: {argv: [echo], creates: "{{ http_port }}"}
    - name: skipped where when is false, so no error there
      command: {argv: [echo, "{{ nope }}"]}
      when: inventory_hostname == 'nowhere'
`;
  const problems = await problemsOf(loadPlaybook(playbook(text), { inventory: inv }));
  assert.deepEqual(problems, [
    'site6.yml:7:30: undefined variable only_on_web01 in {{ only_on_web01 }} (hosts web01.prod.example.com, web02.prod.example.com, web03.prod.example.com and 2 more)',
    'site6.yml:9:40: command: creates: Invalid input: expected string, received number (got 9443) (host web01.prod.example.com)',
    'site6.yml:9:40: command: creates: Invalid input: expected string, received number (got 8443) (hosts web02.prod.example.com, web03.prod.example.com, web04.prod.example.com and 1 more)',
  ]);
  const limited = await problemsOf(loadPlaybook(playbook(text), { inventory: inv, limit: 'web02*', tags: { skipTags: [] } }));
  assert.equal(limited.length, 2);
});

test('preflight leaves run-time variables (facts, run id) to run time', async () => {
  const text = `
- hosts: web
  tasks:
    - command: {argv: [echo, "{{ epoch_facts.os.family }}", "{{ epoch_run_id }}"]}
      when: epoch_facts.os.family == 'debian'
    - command: {argv: [echo, "{{ epoch_facts.os.family }}"]}
`;
  const plays = await loadPlaybook(playbook(text), { inventory: inv });
  assert.equal(plays[0]!.tasks.length, 2);
  assert.deepEqual(await problemsOf(loadPlaybook(playbook(text), { inventory: inv, runtimeVars: [] })), [
    'site9.yml:5:13: when: "epoch_facts.os.family == \'debian\'": epoch_facts.os.family is undefined (hosts web01.prod.example.com, web02.prod.example.com, web03.prod.example.com and 2 more)',
    'site9.yml:6:30: undefined variable epoch_facts.os.family in {{ epoch_facts.os.family }} (hosts web01.prod.example.com, web02.prod.example.com, web03.prod.example.com and 2 more)',
  ]);
});

test('play vars with !vault need the password; with it they decrypt', async () => {
  const envelope = encryptVault('hunter2', 'pw').split('\n').join('\n        ');
  const text = `
- hosts: web
  vars:
    token: !vault |
        ${envelope}
  tasks:
    - command: {argv: [echo, "{{ token }}"]}
`;
  const path = playbook(text);
  assert.deepEqual(await problemsOf(loadPlaybook(path)), [
    'site10.yml:4:19: variable token is vault-encrypted; pass --vault-password-file to decrypt it',
  ]);
  const [play] = await loadPlaybook(path, { vaultPassword: 'pw', inventory: inv });
  assert.equal(play!.vars.token, 'hunter2');
});

test('hosts: may be templated with play vars and extra vars', async () => {
  const path = playbook(`
- hosts: "{{ target | default('web') }}"
  tasks: []
`);
  assert.equal((await loadPlaybook(path))[0]!.hosts, 'web');
  assert.equal((await loadPlaybook(path, { extraVars: { target: 'db:!db-a*' } }))[0]!.hosts, 'db:!db-a*');
  assert.deepEqual(await problemsOf(loadPlaybook(playbook('- hosts: "{{ nope }}"\n  tasks: []\n'))), [
    'site12.yml:1:10: undefined variable nope in {{ nope }}',
  ]);
});

test('not a list of plays', async () => {
  assert.deepEqual(await problemsOf(loadPlaybook(playbook('hosts: all\n'))), [
    'site13.yml:1:1: a playbook must be a list of plays, got {"hosts":"all"}',
  ]);
});

test('loadRun reports inventory and playbook problems together', async () => {
  const badInventory = join(dir, 'bad-inv.ini');
  writeFileSync(badInventory, '[web]\nw1 novalue\n');
  const problems = await problemsOf(loadRun(badInventory, playbook('- hosts: web\n  tasks:\n    - nosuchmodule: {}\n')));
  assert.deepEqual(problems, [
    'bad-inv.ini:2:1: expected key=value host variable assignment, got "novalue"',
    'site14.yml:3:7: unknown module "nosuchmodule" (registered modules: command)',
  ]);
  const ok = await loadRun(join(repo, 'test/fixtures/inventories/multi-env-ini'), playbook('- hosts: web\n  tasks: []\n'));
  assert.equal(ok.plays.length, 1);
  assert.equal(ok.inventory.hosts.size, 18);
});

test('loadRun reads group_vars/ and host_vars/ beside the playbook above the inventory’s', async () => {
  const root = mkdtempSync(join(tmpdir(), 'epoch-layout-'));
  try {
    const files: Record<string, string> = {
      'inventories/prod/hosts': '[web]\nw1\nw2\n',
      'inventories/prod/group_vars/web.yml': 'port: 1\nfrom_inventory: true\n',
      'group_vars/web.yml': 'port: 2\n',
      'host_vars/w2.yml': 'port: 3\n',
      'site.yml': '- hosts: web\n  tasks: []\n',
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    const { inventory } = await loadRun('prod', join(root, 'site.yml'), { cwd: root });
    assert.equal(inventory.hosts.get('w1')!.vars.port, 2);
    assert.equal(inventory.hosts.get('w1')!.vars.from_inventory, true);
    assert.equal(inventory.hosts.get('w2')!.vars.port, 3);
  } finally {
    rmSync(root, { recursive: true });
  }
});

test('error messages never echo a decrypted vault value', async () => {
  const envelope = encryptVault('very-secret-token', 'pw').split('\n').join('\n        ');
  const path = playbook(`
- hosts: web
  vars:
    token: !vault |
        ${envelope}
  tasks:
    - command: {argv: [echo], creates: "{{ token }}x"}
`);
  const problems = await problemsOf(loadPlaybook(path, { vaultPassword: 'pw', inventory: inv }));
  assert.ok(problems.length > 0);
  for (const p of problems) assert.ok(!p.includes('very-secret-token'), p);
  assert.match(problems[0]!, /got "<secret>x"/);
});

test('preflight still validates params behind a when on run-time variables (nothing may reach a host first)', async () => {
  const text = `
- hosts: web
  tasks:
    - name: bad resolved params behind a facts condition
      command: {argv: [echo], creates: "{{ http_port }}"}
      when: epoch_facts.os.family == 'debian'
    - name: a variable the condition may guard against is left alone
      command: {argv: [echo, "{{ nope }}"]}
      when: epoch_facts.os.family == 'debian'
`;
  const problems = await problemsOf(loadPlaybook(playbook(text), { inventory: inv }));
  assert.equal(problems.length, 2, problems.join('\n'));
  for (const p of problems) assert.match(p, /^site\d+\.yml:5:40: command: creates: Invalid input: expected string, received number/);
  const fine = `
- hosts: web
  tasks:
    - command: {argv: [echo, "{{ nope | default('x') }}", "{{ epoch_facts.os.family }}"], creates: /x}
      when: epoch_facts.os.family == 'debian'
`;
  assert.equal((await loadPlaybook(playbook(fine), { inventory: inv }))[0]!.tasks.length, 1);
});
