// `node --version` by binary identity (node-runtime.ts probeRuntime): a converged host starts no node; a changed
// binary is asked again. Runs for real on this machine through LocalTransport, read-only, with PATH narrowed to a temp
// folder holding the tools the probe uses and a private copy of node (so it can be "upgraded" by touching it).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LocalTransport } from '../../transport/local-transport';
import { nodeCopy, toolBin } from '../../facts/test-tool-bin';

const work = mkdtempSync(join(tmpdir(), 'epoch-node-runtime-cache-'));
after(() => rmSync(work, { recursive: true, force: true }));
process.env.XDG_CACHE_HOME = join(work, 'cache');
delete process.env.EPOCH_PROVISION_NO_CACHE;
const { parseRuntimeIdentities, probeRuntime } = await import('./node-runtime');

test('parseRuntimeIdentities groups nodeid lines under their node', () => {
  const ids = parseRuntimeIdentities('machine=x\nnode=/usr/bin/node\nnodeid=real=/usr/bin/node\nnodeid=complete=yes\nnode=/usr/bin/nodejs\nnodeid=real=/usr/bin/node\nnode=/x/node v1.2.3\n');
  assert.deepEqual([...ids], [['/usr/bin/node', ['real=/usr/bin/node', 'complete=yes']], ['/usr/bin/nodejs', ['real=/usr/bin/node']]]);
});

test('probeRuntime: versions from the cache while the binary is unchanged; a changed binary runs again', async () => {
  const bin = toolBin(join(work, 'bin'), ['sh', 'uname', 'getconf', 'sed', 'readlink', 'stat', 'ldd', 'env', 'grep', 'sort', 'cksum', 'head', 'timeout']);
  const node = nodeCopy(join(bin, 'node'));
  symlinkSync(node, join(bin, 'nodejs')); // as on Debian: the same binary under two names
  const saved = process.env.PATH;
  process.env.PATH = bin;
  try {
    const local = new LocalTransport({ hostName: 'local' });
    const calls: string[] = [];
    const transport = { hostName: 'local', exec: (argv: readonly string[], o?: Parameters<LocalTransport['exec']>[1]) => {
        calls.push(argv[3] ?? '');
        return local.exec(argv, o);
      }, putFile: async () => {}, getFile: async () => Buffer.from(''), close: async () => {} };
    const fail = (m: string) => new Error(m);
    const first = await probeRuntime(transport, 'local', fail);
    assert.deepEqual(first.nodes, [{ path: node, version: process.version }, { path: join(bin, 'nodejs'), version: process.version }]);
    assert.deepEqual(calls, ['epoch-runtime-probe', 'epoch-node-version'], 'first run: the probe, then --version');
    calls.length = 0;
    assert.deepEqual((await probeRuntime(transport, 'local', fail)).nodes, first.nodes);
    assert.deepEqual(calls, ['epoch-runtime-probe'], 'converged: no node started');
    calls.length = 0;
    const later = new Date(Date.now() + 5000);
    utimesSync(node, later, later);
    assert.deepEqual((await probeRuntime(transport, 'local', fail)).nodes, first.nodes);
    assert.deepEqual(calls, ['epoch-runtime-probe', 'epoch-node-version'], 'changed binary: --version again');
  } finally {
    process.env.PATH = saved;
  }
});
