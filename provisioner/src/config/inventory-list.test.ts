import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { loadInventory } from './inventory';
import { formatInventoryList, inventoryList } from './inventory-list';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const fixtures = join(repo, 'test/fixtures/inventories');

test('ansible-inventory --list shape, compared with hand-written expected JSON', async () => {
  const inv = await loadInventory(join(fixtures, 'list-shape/hosts.ini'));
  // Byte-for-byte: sorted keys, 4-space indent, empty groups (`empty`) dropped but still listed as a child
  assert.equal(formatInventoryList(inv), readFileSync(join(fixtures, 'list-shape.expected.json'), 'utf8').trimEnd());
});

test('--limit keeps only the limited hosts; groups left empty disappear', async () => {
  const inv = await loadInventory(join(fixtures, 'list-shape/hosts.ini'));
  assert.equal(formatInventoryList(inv, 'web:!web1'), readFileSync(join(fixtures, 'list-shape.limit-web.expected.json'), 'utf8').trimEnd());
});

test('the nested YAML fixture: every group, children order, merged hostvars', async () => {
  const inv = await loadInventory(join(fixtures, 'nested-yaml/hosts.yml'));
  const out = inventoryList(inv) as Record<string, { hosts?: string[]; children?: string[] }> & {
    _meta: { hostvars: Record<string, Record<string, unknown>> };
  };
  assert.deepEqual(out.all, { children: ['ungrouped', 'eu', 'us', 'canary', 'zz_overrides', 'shared_ams_fra'] });
  assert.deepEqual(out.eu, { children: ['fra', 'ams'] });
  assert.deepEqual(out.fra, { hosts: ['edge-fra-01', 'edge-fra-02', 'edge-fra-03'] });
  assert.deepEqual(out.ams, { hosts: ['edge-ams-01', 'edge-fra-03'] });
  assert.deepEqual(out.ungrouped, { hosts: ['controller.example.net'] });
  assert.deepEqual(out._meta.hostvars['edge-ams-01'], {
    env: 'prod', site: 'ams', region: 'eu', tz: 'Europe/Berlin', ansible_host: '198.18.2.11', ansible_port: 2201,
    epoch_agent_version: '1.5.0', gdpr: true,
    anchors: { defaults: { timeout: 30, retries: 3 }, custom: { timeout: 30, retries: 5 } },
  });
});
