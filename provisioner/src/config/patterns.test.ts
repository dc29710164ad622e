import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { loadInventory } from './inventory';
import { globToRegExp, matchPattern, selectHosts, splitPattern } from './patterns';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const inv = await loadInventory(join(repo, 'test/fixtures/inventories/multi-env-ini'));
const web = ['web01.prod.example.com', 'web02.prod.example.com', 'web03.prod.example.com', 'web04.prod.example.com', 'web-canary.prod.example.com'];

test('splitting: commas, or colons outside brackets', () => {
  assert.deepEqual(splitPattern('web:&prod:!db1'), ['web', '&prod', '!db1']);
  assert.deepEqual(splitPattern('web, db'), ['web', 'db']);
  assert.deepEqual(splitPattern('web[1:3]:db'), ['web[1:3]', 'db']);
  assert.deepEqual(splitPattern('~web\\d+'), ['~web\\d+']);
});

test('groups, intersection and exclusion', () => {
  assert.deepEqual(selectHosts(inv, 'web'), web);
  assert.deepEqual(selectHosts(inv, 'web:&prod'), web);
  assert.deepEqual(selectHosts(inv, 'web:&staging'), []);
  assert.equal(selectHosts(inv, 'all').length, 18);
  assert.deepEqual(selectHosts(inv, 'all:!prod:!staging'), ['monitor.example.com', 'jump.prod.example.com']);
  assert.deepEqual(selectHosts(inv, 'prod:!web:!db:!cache'), ['lb1.prod.example.com', 'lb2.prod.example.com']);
});

test('unions first, then &, then ! — whatever order they are written in', () => {
  assert.deepEqual(selectHosts(inv, '!web-canary.prod.example.com:&prod:web'), web.slice(0, 4));
  assert.deepEqual(selectHosts(inv, '!lb'), selectHosts(inv, 'all:!lb'), 'only exclusions start from all');
});

test('comma lists, hosts by name, results in inventory order', () => {
  assert.deepEqual(selectHosts(inv, 'lb2.prod.example.com,bastion,lb1.prod.example.com'), [
    'lb1.prod.example.com', 'lb2.prod.example.com', 'jump.prod.example.com',
  ]);
});

test('globs and regexes match groups and hosts', () => {
  assert.deepEqual(selectHosts(inv, 'web0*'), web.slice(0, 4));
  assert.deepEqual(selectHosts(inv, 'staging*'), ['stg-web1.example.com', 'stg-web2.example.com'], 'matches the groups staging and staging_web');
  assert.deepEqual(selectHosts(inv, '~web0[13]'), ['web01.prod.example.com', 'web03.prod.example.com']);
  assert.deepEqual(selectHosts(inv, '~(web|db)-'), ['web-canary.prod.example.com', 'db-a.prod.example.com', 'db-b.prod.example.com', 'db-c.prod.example.com', 'db-primary.prod.example.com']);
  assert.deepEqual(selectHosts(inv, 'cache?.prod.example.com'), ['cache1.prod.example.com', 'cache5.prod.example.com', 'cache9.prod.example.com']);
  assert.ok(globToRegExp('db-[!ab].*').test('db-c.x'));
  assert.ok(!globToRegExp('db-[!ab].*').test('db-a.x'));
});

test('subscripts pick by position within the group (end inclusive, negatives from the end)', () => {
  assert.deepEqual(selectHosts(inv, 'web[0]'), [web[0]]);
  assert.deepEqual(selectHosts(inv, 'web[-1]'), [web[4]]);
  assert.deepEqual(selectHosts(inv, 'web[1:2]'), [web[1], web[2]]);
  assert.deepEqual(selectHosts(inv, 'web[3:]'), [web[3], web[4]]);
});

test('@file reads one pattern per line, like a .retry file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-pat-'));
  try {
    writeFileSync(join(dir, 'site.retry'), 'web02.prod.example.com\n\nlb1.prod.example.com\n');
    assert.deepEqual(selectHosts(inv, `@${join(dir, 'site.retry')}`), ['web02.prod.example.com', 'lb1.prod.example.com']);
    assert.deepEqual(selectHosts(inv, 'prod', `@${join(dir, 'site.retry')}`), ['web02.prod.example.com', 'lb1.prod.example.com']);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('--limit intersects with the play’s pattern; unmatched terms are reported', () => {
  assert.deepEqual(selectHosts(inv, 'prod', 'web:!web-canary*'), web.slice(0, 4));
  assert.deepEqual(matchPattern(inv, 'web:wbe:!nosuch').unmatched, ['wbe', '!nosuch']);
});
