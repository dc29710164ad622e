import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { loadInventory } from '../../config';
import { inventoryCommand } from './inventory';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../../../..');
const fixtures = join(repo, 'test/fixtures/inventories');

async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  try {
    const code = await inventoryCommand(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

test('inventory --list prints ansible-inventory JSON', async () => {
  const r = await capture(['--list', '--inventory', join(fixtures, 'docs-style/hosts')]);
  assert.equal(r.code, 0, r.err);
  const listed = JSON.parse(r.out) as Record<string, { hosts?: string[]; children?: string[] }> & { _meta: { hostvars: Record<string, Record<string, unknown>> } };
  assert.deepEqual(listed.all, { children: ['ungrouped', 'webservers', 'dbservers', 'usa', 'targets', 'aliases'] });
  assert.deepEqual(listed.usa, { children: ['southeast', 'northeast', 'southwest', 'northwest'] });
  assert.equal(listed.northeast, undefined, 'empty groups are left out');
  assert.deepEqual(listed.raleigh, { hosts: ['host2', 'host3'] });
  assert.deepEqual(listed.ungrouped, { hosts: ['mail.example.com'] });
  assert.deepEqual(listed._meta.hostvars.host2, {
    some_server: 'foo.southeast.example.com', halon_system_timeout: 30, self_destruct_countdown: 60, escape_pods: 2,
    http_port: 303, maxRequestsPerChild: 909,
  });
  assert.deepEqual(listed._meta.hostvars.jumper, { ansible_port: 5555, ansible_host: '192.0.2.50' });
  assert.equal(listed._meta.hostvars['mail.example.com'], undefined, 'hosts without variables are left out');
});

test('inventory --host prints one host’s merged variables; --limit restricts --list', async () => {
  const host = await capture(['--host', 'host1', '-i', join(fixtures, 'docs-style/hosts')]);
  assert.equal(host.code, 0, host.err);
  assert.equal((JSON.parse(host.out) as Record<string, unknown>).http_port, 80);
  const limited = await capture(['--list', '-i', join(fixtures, 'docs-style/hosts'), '--limit', 'atlanta:!host2']);
  assert.deepEqual(Object.keys((JSON.parse(limited.out) as { _meta: { hostvars: object } })._meta.hostvars), ['host1']);
});

test('config problems exit 2 with every problem listed; usage errors exit 2', async () => {
  const r = await capture(['--list', '-i', join(fixtures, 'vaulted')]);
  assert.equal(r.code, 2);
  assert.match(r.err, /vault\.yml:1:1: the whole file is vault-encrypted/);
  assert.equal((await capture(['--list', '--host', 'x', '-i', 'y'])).code, 2);
  assert.equal((await capture(['--bogus'])).code, 2);
  assert.equal((await capture(['--list', '-i', join(fixtures, 'nope')])).code, 2);
});

test('the documented example inventory loads as documented', async () => {
  const inv = await loadInventory('examples', { cwd: repo });
  assert.deepEqual([...inv.hosts.keys()], [
    'web-01.example.internal', 'web-02.example.internal', 'web-canary.example.internal',
    'db-a.example.internal', 'db-b.example.internal', 'controller.example.internal',
  ]);
  assert.equal(inv.hosts.get('web-01.example.internal')!.vars.http_port, 9443);
  assert.deepEqual(inv.hosts.get('web-02.example.internal')!.vars.observe_ports, [443, 8443]);
  assert.equal(inv.hosts.get('db-a.example.internal')!.vars.epoch_canary, true);
  assert.equal(inv.groups.get('canary')!.priority, 10);
  assert.deepEqual(inv.warnings, []);
});
