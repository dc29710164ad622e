// The per-host run memo and the known=yes answer of epoch_identity (binary-identity.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { identityFrom, identityFunction, knownIdentities } from './binary-identity';
import { HostMemo, identityMemoKey } from './host-memo';
import { LocalTransport } from '../transport/local-transport';

const lines = ['real=/usr/bin/node', 'file=63:1573737:26704:1775485132:1796519720:/usr/bin/node', 'env=4294967295 0', 'complete=yes'];

test('HostMemo hands out copies, lists keys by prefix, and forgets everything on clear', () => {
  const memo = new HostMemo();
  memo.set('node-runtime', { nodes: [{ path: '/usr/bin/node', version: 'v18.19.0' }] });
  const got = memo.get<{ nodes: { version: string }[] }>('node-runtime')!;
  got.nodes[0]!.version = 'changed by a caller';
  assert.equal(memo.get<{ nodes: { version: string }[] }>('node-runtime')!.nodes[0]!.version, 'v18.19.0');
  memo.set(identityMemoKey('/usr/bin/node'), ['real=/usr/bin/node']);
  assert.deepEqual(memo.keys('identity:'), ['identity:/usr/bin/node']);
  assert.equal(knownIdentities(memo), '/usr/bin/node');
  memo.clear();
  assert.equal(memo.get('node-runtime'), undefined);
  assert.equal(knownIdentities(memo), '');
  assert.equal(knownIdentities(undefined), '');
});

test('identityFrom remembers a complete identity; known=yes is answered from the memo, else it is incomplete', () => {
  const memo = new HostMemo();
  const taken = identityFrom(lines, true, memo);
  assert.deepEqual(taken.lines, lines.slice(0, 3));
  assert.deepEqual(memo.get(identityMemoKey('/usr/bin/node')), lines.slice(0, 3));
  assert.deepEqual(identityFrom(['real=/usr/bin/node', 'known=yes'], true, memo).lines, lines.slice(0, 3));
  // A known=yes nobody can answer (no memo, or another file) is never a cache key: whatever it keys is probed again.
  assert.equal(identityFrom(['real=/usr/bin/node', 'known=yes'], true, undefined).lines, null);
  assert.equal(identityFrom(['real=/usr/bin/nodejs', 'known=yes'], true, memo).lines, null);
  assert.equal(identityFrom(['real=/usr/bin/node', 'known=yes'], false, memo).lines, null, 'a failed probe');
  // An incomplete identity is not remembered.
  const other = new HostMemo();
  identityFrom(['real=/x/node', 'why=no ldd on the host', 'complete=no'], true, other);
  assert.deepEqual(other.keys(), []);
});

test('epoch_identity skips only the real paths it is told are known (one per line)', async () => {
  const local = new LocalTransport({ hostName: 'local' });
  const run = async (known: string) =>
    (await local.exec(['sh', '-c', `epoch_known=$1\n${identityFunction}\nepoch_identity "$2"`, 'x', known, process.execPath])).stdout.split('\n').filter(Boolean);
  const real = (await local.exec(['readlink', '-f', process.execPath])).stdout.trim();
  assert.deepEqual(await run(`/elsewhere\n${real}`), [`real=${real}`, 'known=yes']);
  const full = await run(`${real}x\n/elsewhere`);
  assert.ok(full.includes('complete=yes') && !full.includes('known=yes'), full.join('\n'));
  assert.ok((await run('')).includes('complete=yes'));
});
