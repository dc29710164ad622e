// `node --version` by binary identity (node-runtime.ts probeRuntime): a converged host starts no node; a changed
// binary is asked again. Runs for real on this machine through LocalTransport, read-only, with PATH narrowed to a temp
// folder holding the tools the probe uses and a private copy of node (so it can be "upgraded" by touching it).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { nodeCopy, recordingTransport, toolBin } from '../../facts/test-tool-bin';

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
    const { transport, calls } = recordingTransport((argv) => argv[3] ?? '');
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

// The run memo (facts/host-memo.ts): within one run a host's node identity is taken once (the facts script), later
// tasks get it with known=yes (no ldd) or take the whole runtime from the memo; a cleared memo (the runner changed the
// host) or a new run (a new memo) takes everything again, so a changed binary is still found.
test('probeRuntime with the run memo: identity once per run; after a change on the host, or in a new run, taken again', async () => {
  const { writeFileSync, readFileSync, chmodSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  const { HostMemo } = await import('../../facts/host-memo');
  const { gatherHostFacts } = await import('../../facts/gather-host-facts');
  const bin = toolBin(join(work, 'bin-memo'), ['sh', 'cat', 'ls', 'uname', 'getconf', 'sed', 'readlink', 'stat', 'env', 'grep', 'sort', 'cksum', 'head', 'timeout']);
  // ldd that counts its runs: each one is an identity taken on the host.
  const lddLog = join(work, 'ldd.log');
  const realLdd = execFileSync('sh', ['-c', 'command -v ldd'], { encoding: 'utf8' }).trim();
  writeFileSync(join(bin, 'ldd'), `#!/bin/sh\necho run >> '${lddLog}'\nexec '${realLdd}' "$@"\n`);
  chmodSync(join(bin, 'ldd'), 0o755);
  let base = 0;
  const ldds = () => {
    try {
      return readFileSync(lddLog, 'utf8').split('\n').filter(Boolean).length - base;
    } catch {
      return 0;
    }
  };
  const node = nodeCopy(join(bin, 'node'));
  symlinkSync(node, join(bin, 'nodejs'));
  const saved = process.env.PATH;
  process.env.PATH = bin;
  try {
    const { transport, calls } = recordingTransport((argv) => argv[3] ?? argv[0] ?? '');
    const fail = (m: string) => new Error(m);
    const expected = [{ path: node, version: process.version }, { path: join(bin, 'nodejs'), version: process.version }];

    // An earlier run (no memo) put both names' versions in the controller cache.
    await probeRuntime(transport, 'local', fail);
    base = ldds();
    calls.length = 0;

    // Run 1: the facts take node's identity (one ldd); preflight's probe answers node and nodejs (the same file) from
    // the memo: no ldd; agent_service then gets the runtime without a call at all.
    const run1 = new HostMemo();
    await gatherHostFacts(transport, 30_000, run1);
    assert.equal(ldds(), 1);
    calls.length = 0;
    assert.deepEqual((await probeRuntime(transport, 'local', fail, run1)).nodes, expected);
    assert.equal(ldds(), 1, 'known=yes: no identity taken again');
    assert.deepEqual(calls, ['epoch-runtime-probe'], 'versions from the cache: no node started');
    calls.length = 0;
    assert.deepEqual((await probeRuntime(transport, 'local', fail, run1)).nodes, expected);
    assert.deepEqual(calls, [], 'the second task of the run: from the memo');

    // The runner applied a change on the host (say, it replaced node): the memo is cleared and all is taken again.
    const later = new Date(Date.now() + 5000);
    utimesSync(node, later, later);
    run1.clear();
    assert.deepEqual((await probeRuntime(transport, 'local', fail, run1)).nodes, expected);
    assert.equal(ldds(), 3, 'identity taken again (for node and for nodejs, whose file it is)');
    assert.deepEqual(calls, ['epoch-runtime-probe', 'epoch-node-version'], 'the changed binary is asked its version again');

    // Run 2 (a new memo), the binary changed between the runs: found, not taken from run 1.
    calls.length = 0;
    const evenLater = new Date(Date.now() + 10_000);
    utimesSync(node, evenLater, evenLater);
    assert.deepEqual((await probeRuntime(transport, 'local', fail, new HostMemo())).nodes, expected);
    assert.equal(ldds(), 5);
    assert.deepEqual(calls, ['epoch-runtime-probe', 'epoch-node-version']);

    // Already converged twin of run 2: a third run, nothing changed: one identity, no node started.
    calls.length = 0;
    assert.deepEqual((await probeRuntime(transport, 'local', fail, new HostMemo())).nodes, expected);
    assert.equal(ldds(), 7);
    assert.deepEqual(calls, ['epoch-runtime-probe']);
  } finally {
    process.env.PATH = saved;
  }
});

test('agent_service gather: one round trip for the runtime and the service; with the runtime in the run memo, the service probe alone', async () => {
  const { HostMemo } = await import('../../facts/host-memo');
  const { agentService, agentServiceParams } = await import('./agent-service');
  const { transport, calls } = recordingTransport((argv) => argv[3] ?? '');
  // Read-only on this machine: the agent user, its files and unit are looked up, and /healthz on 127.0.0.1 asked.
  const p = agentServiceParams.parse({});
  await agentService.gather({ name: 'local', vars: {}, transport }, p); // warms the version cache
  calls.length = 0;
  const merged = await agentService.gather({ name: 'local', vars: {}, transport, memo: new HostMemo() }, p);
  assert.deepEqual(calls, ['epoch-probe-batch'], 'runtime and service probes in one call');
  const memo = new HostMemo();
  memo.set('node-runtime', merged.runtime);
  calls.length = 0;
  const fromMemo = await agentService.gather({ name: 'local', vars: {}, transport, memo }, p);
  assert.deepEqual(calls, ['epoch-service-probe'], 'the runtime from the memo');
  assert.deepEqual(fromMemo, merged);
});
