// gatherHostFacts: node's version by binary identity (a converged host starts no node for its facts). Runs the fact
// script for real on this machine through LocalTransport (read-only), with PATH narrowed to a temp folder holding the
// tools it needs and a private copy of node, so touching the copy stands for an upgrade.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { nodeCopy, recordingTransport, toolBin } from './test-tool-bin';

const work = mkdtempSync(join(tmpdir(), 'epoch-facts-node-'));
after(() => rmSync(work, { recursive: true, force: true }));
process.env.XDG_CACHE_HOME = join(work, 'cache');
delete process.env.EPOCH_PROVISION_NO_CACHE;
const { gatherHostFacts } = await import('./gather-host-facts');

test('node version in the facts: probed once, then from the cache until the binary changes', async () => {
  const bin = toolBin(join(work, 'bin'), ['sh', 'cat', 'uname', 'ls', 'readlink', 'stat', 'ldd', 'sed', 'env', 'grep', 'sort', 'cksum', 'head']);
  const node = nodeCopy(join(bin, 'node'));
  const saved = process.env.PATH;
  process.env.PATH = bin;
  try {
    const { transport, calls } = recordingTransport((argv) => argv.at(-1) === '--version' ? 'node --version' : 'facts');
    const first = await gatherHostFacts(transport);
    assert.equal(first.node?.raw, process.version);
    assert.deepEqual(calls, ['facts', 'node --version']);
    calls.length = 0;
    assert.deepEqual((await gatherHostFacts(transport)).node, first.node);
    assert.deepEqual(calls, ['facts'], 'converged: no node started');
    calls.length = 0;
    const later = new Date(Date.now() + 5000);
    utimesSync(node, later, later);
    assert.deepEqual((await gatherHostFacts(transport)).node, first.node);
    assert.deepEqual(calls, ['facts', 'node --version'], 'changed binary: asked again');
  } finally {
    process.env.PATH = saved;
  }
});
