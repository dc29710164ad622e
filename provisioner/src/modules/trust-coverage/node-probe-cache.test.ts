// The Node trust probe's controller cache: what the key covers, and that the gather probes again when the node binary
// or the CA changes. The gather runs for real on this machine through LocalTransport, read-only, with PATH narrowed to
// a temp folder of the tools it needs (so the controller's own python3 and keytool are not probed) and a private copy
// of node as the node binary.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import type { ExecResult } from '../../transport/transport';
import { LocalTransport } from '../../transport/local-transport';
import { createCa } from '../../ca/create';
import { normalisePem } from '../ca/params';
import { controllerCacheDir, ProbeCache } from '../../facts/probe-cache';
import { nodeCopy, toolBin } from '../../facts/test-tool-bin';

const work = mkdtempSync(join(tmpdir(), 'epoch-node-probe-cache-'));
after(() => rmSync(work, { recursive: true, force: true }));
const cacheHome = join(work, 'cache');
process.env.XDG_CACHE_HOME = cacheHome;
delete process.env.EPOCH_PROVISION_NO_CACHE;
const { isNodeProbeResult, nodeProbeKey, parseNodeIdentity } = await import('./node-probe-cache');
const { nodeProbe, trustCoverageModule, trustCoverageParams } = await import('./trust-coverage');

const result = (stdout: string, exitCode = 0): ExecResult => ({ command: 'x', exitCode, stdout, stderr: '', durationMs: 0, timedOut: false });
const identityOut = 'real=/usr/bin/node\nfile=63:1573737:26704:1775485132:1796519720:/usr/bin/node\nfile=63:1574127:47448864:1775485132:1796519720:/lib/x86_64-linux-gnu/libnode.so.108\nenv=4294967295 0\ncomplete=yes\n';

test('parseNodeIdentity keeps the identity lines, and refuses an incomplete identity', () => {
  assert.deepEqual(parseNodeIdentity(result(identityOut)).lines, identityOut.split('\n').filter((l) => /^(real|file|env)=/.test(l)));
  const noLdd = parseNodeIdentity(result('real=/usr/bin/node\nwhy=no ldd on the host\nfile=1:2:3:4:5:/usr/bin/node\nenv=1 0\ncomplete=no\n'));
  assert.equal(noLdd.lines, null);
  assert.equal(noLdd.why, 'no ldd on the host');
  assert.equal(parseNodeIdentity(result('complete=no\nwhy=/x does not resolve to a file\n')).lines, null);
  assert.equal(parseNodeIdentity(result(identityOut, 1)).lines, null, 'a failed identity probe is never a key');
});

test('the key changes with the binary, a library, the environment, the CA, the probe source and the host', () => {
  const lines = parseNodeIdentity(result(identityOut)).lines!;
  const key = (over: { host?: string; lines?: string[]; ca?: string; probe?: string } = {}) => nodeProbeKey(over.host ?? 'h1', '/usr/bin/node', over.lines ?? lines, over.ca ?? 'CA1', over.probe ?? nodeProbe);
  const base = key();
  assert.equal(key(), base, 'stable');
  const swap = (from: string, to: string) => lines.map((l) => l.replace(from, to));
  for (const changed of [
    key({ lines: swap(':1796519720:/usr/bin/node', ':1796519999:/usr/bin/node') }), // binary ctime (rewritten)
    key({ lines: swap('63:1573737:', '63:1999999:') }), // binary replaced (new inode)
    key({ lines: swap(':47448864:', ':47448865:') }), // libnode upgraded
    key({ lines: swap('env=4294967295 0', 'env=123 45') }), // NODE_OPTIONS and friends
    key({ ca: 'CA2' }),
    key({ ca: '' }),
    key({ probe: `${nodeProbe};` }),
    key({ host: 'h2' }),
  ]) {
    assert.notEqual(changed, base);
  }
});

test('isNodeProbeResult checks what is read back from the cache', () => {
  assert.ok(isNodeProbeResult({ version: 'v18.19.0', bundled: false, system: true }));
  for (const bad of [null, {}, { version: '18', bundled: false, system: true }, { version: 'v18.19.0', bundled: 'no', system: true }]) assert.ok(!isNodeProbeResult(bad));
});

test('ProbeCache: a torn file is probed again; EPOCH_PROVISION_NO_CACHE=1 turns the files off', async () => {
  const dir = join(work, 'torn');
  const cache = new ProbeCache(dir, isNodeProbeResult);
  const value = { version: 'v20.0.0', bundled: true, system: false };
  const key = 'ab'.repeat(32);
  let calls = 0;
  await cache.get(key, async () => {
    calls++;
    return value;
  });
  assert.deepEqual(cache.peek(key), value);
  await import('node:fs').then((fs) => fs.writeFileSync(join(dir, `${key}.json`), '{"version":'));
  assert.equal(cache.peek(key), null);
  await cache.get(key, async () => {
    calls++;
    return value;
  });
  assert.equal(calls, 2);
  assert.equal(controllerCacheDir('node-probes', { EPOCH_PROVISION_NO_CACHE: '1', XDG_CACHE_HOME: '/x' }), null);
  assert.equal(controllerCacheDir('node-probes', { XDG_CACHE_HOME: '/x' }), '/x/epoch-provision/node-probes');
  assert.throws(() => cache.get('../etc/passwd', async () => value), /key must be hex/);
});

test('gather: a converged host skips the node probe; a changed binary or CA probes again, with the same answer', async () => {
  // Tools the gather's scripts use; no python3, no keytool, no node on PATH (the copy is given as node_binaries).
  const bin = toolBin(join(work, 'bin'), ['sh', 'cat', 'test', 'true', 'readlink', 'stat', 'ldd', 'sed', 'env', 'grep', 'sort', 'cksum', 'base64', 'mktemp', 'rm', 'head', 'openssl', 'wc']);
  const node = nodeCopy(join(work, 'node'));
  const savedPath = process.env.PATH;
  process.env.PATH = bin;
  try {
    const local = new LocalTransport({ hostName: 'local' });
    let probes = 0;
    const transport = {
      hostName: 'local',
      exec: (argv: readonly string[], o?: Parameters<LocalTransport['exec']>[1]) => {
        if (argv.some((a) => a.includes('tls.rootCertificates'))) probes++;
        return local.exec(argv, o);
      },
      getFile: () => Promise.reject(new Error('gather must not read files this way')),
      close: async () => {},
    };
    const ca1 = normalisePem(readFileSync(resolve(import.meta.dirname, '../../../../test/fixtures/ca/ca-ec.crt'), 'utf8'));
    const ca2 = createCa({ commonName: 'another CA', days: 2 }).certPem;
    const gather = (pem: string) => trustCoverageModule.gather({ name: 'local', vars: {}, transport }, trustCoverageParams.parse({ cert_pem: pem, node_binaries: [node] }));

    const first = await gather(ca1);
    assert.equal(probes, 1, 'first run probes');
    assert.equal(first.nodes.length, 1);
    assert.equal(first.nodes[0]!.version, process.version);
    assert.equal(readdirSync(join(cacheHome, 'epoch-provision', 'node-probes')).filter((f) => f.endsWith('.json')).length, 1);

    const second = await gather(ca1);
    assert.equal(probes, 1, 'a converged host answers from the cache');
    assert.deepEqual(second.nodes, first.nodes);

    await gather(ca2);
    assert.equal(probes, 2, 'another CA: probed again');

    const later = new Date(Date.now() + 5000);
    utimesSync(node, later, later); // a rewritten binary: mtime and ctime change
    const third = await gather(ca1);
    assert.equal(probes, 3, 'changed binary: probed again');
    assert.deepEqual(third.nodes, first.nodes);
    await gather(ca1);
    assert.equal(probes, 3);
  } finally {
    process.env.PATH = savedPath;
  }
});

test('gather: with the distro from the run\'s host facts and a warm cache, a converged host is one round trip (same facts as without)', async (t) => {
  const { classifyOs } = await import('../../facts/os-release');
  const { HostMemo } = await import('../../facts/host-memo');
  const osText = readFileSync('/etc/os-release', 'utf8');
  const verdict = classifyOs(osText);
  if (!verdict.supported) return t.skip('this machine has no supported os-release');
  const bin = toolBin(join(work, 'bin-facts'), ['sh', 'cat', 'test', 'true', 'readlink', 'stat', 'ldd', 'sed', 'env', 'grep', 'sort', 'cksum', 'base64', 'mktemp', 'rm', 'head', 'openssl', 'wc']);
  const node = nodeCopy(join(bin, 'node')); // the node on PATH this time
  const savedPath = process.env.PATH;
  process.env.PATH = bin;
  try {
    const local = new LocalTransport({ hostName: 'local' });
    const calls: string[] = [];
    const transport = {
      hostName: 'local',
      exec: (argv: readonly string[], o?: Parameters<LocalTransport['exec']>[1]) => {
        calls.push(argv.some((a) => a.includes('tls.rootCertificates')) ? 'node probe' : 'batch');
        return local.exec(argv, o);
      },
      getFile: () => Promise.reject(new Error('gather must not read files this way')),
      close: async () => {},
    };
    const ca = normalisePem(readFileSync(resolve(import.meta.dirname, '../../../../test/fixtures/ca/ca-ec.crt'), 'utf8'));
    const p = trustCoverageParams.parse({ cert_pem: ca });
    const without = await trustCoverageModule.gather({ name: 'local', vars: {}, transport }, p);
    assert.deepEqual(calls.filter((c) => c === 'batch').length, 2, 'no facts: os-release first, then the bundle');
    assert.equal(without.nodes[0]?.path, node);
    calls.length = 0;
    const memo = new HostMemo();
    const vars = { epoch_facts: { os: verdict } };
    const withFacts = await trustCoverageModule.gather({ name: 'local', vars, transport, memo }, p);
    assert.deepEqual(calls, ['batch'], 'one round trip; the node probe answered from the cache');
    assert.deepEqual(withFacts, without);
    // The same run's next task asks again: node's identity is known (no ldd), the bundle check is memoised.
    assert.deepEqual(await trustCoverageModule.gather({ name: 'local', vars, transport, memo }, p), without);
    // A new binary in a new run: its identity is taken again, and the node probe runs again.
    calls.length = 0;
    const later = new Date(Date.now() + 5000);
    utimesSync(node, later, later);
    assert.deepEqual(await trustCoverageModule.gather({ name: 'local', vars, transport, memo: new HostMemo() }, p), without);
    assert.deepEqual(calls, ['batch', 'node probe']);
  } finally {
    process.env.PATH = savedPath;
  }
});
