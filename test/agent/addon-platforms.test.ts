// The shipped origdst addons (agent/native/prebuilds/linux-{x64,arm64}/origdst.node) on the official Node builds 18,
// 20 and 22 for both architectures: linux-x64 natively, linux-arm64 under qemu user mode. The parts come from
// test/agent/fetch-node-platforms.sh (node-linux-* from the npm registry, qemu-aarch64-static and an arm64 glibc
// sysroot from Debian's mirror with `apt-get download`; cached in /var/tmp/epag-node-platforms, nothing installed,
// no binfmt); if they cannot be fetched the suite fails with the script's reason, it does not skip.
// Each combination runs a fresh build of the agent exactly as `npm run build` lays it out (epoch-agent.cjs --version)
// and a probe bundled like the agent and placed beside it (test/agent/clients/origdst-probe.ts), which loads the addon
// through the agent's own loader from prebuilds/<platform-arch>/ and calls it on real accepted TCP sockets in our own
// namespaces (loopback and 198.18.209.10 only): epag-addon-nat-* has nft REDIRECTs (IPv4, IPv4-mapped on a dual-stack
// listener, IPv6) and, because its nat chains make conntrack track every connection, plain connections too;
// epag-addon-bare-* has no netfilter at all. Every result must equal what linux-x64 Node 20 gives, except what qemu
// cannot pass through (see underQemu).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { build } from 'esbuild';
import { buildAgent } from '../deploy/support/build-agent';
import { Namespaces, type Run, repo, sh, skipReason } from './support';

const skip = skipReason(['ip', 'nft']);
const PLATFORMS = ['linux-x64', 'linux-arm64'] as const;
type Platform = (typeof PLATFORMS)[number];
const MAJORS = [18, 20, 22] as const;
const AGENT_VERSION = 'addon-platforms';

const NAT_CASES = ['redirect-v4', 'redirect-v4-mapped', 'redirect-v6', 'direct-v4', 'direct-v6', 'not-a-socket', 'closed-fd', 'bad-fd'];
const BARE_CASES = ['direct-v4', 'direct-v6'];

type Outcome = { ok: { address: string; port: number; family: number }; local?: string } | { error: { name: string; code?: string; message: string }; local?: string };
interface ProbeReport {
  node: string;
  platform: string;
  napi: string;
  loaded: string[];
  exports: string[];
  getOriginalDst: { type: string; name: string };
  cases: Record<string, Outcome>;
}

const v4Fail = 'getsockopt(SOL_IP, SO_ORIGINAL_DST)';
const v6Fail = 'getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)';
const fail = (message: string, code = 'EORIGDST') => ({ error: { name: 'Error', code, message } });

/** What linux-x64 Node 20 gives (found there first; the reference every other combination is compared with). */
const X64_NAT: Record<string, Outcome> = {
  'redirect-v4': { ok: { address: '198.18.209.10', port: 443, family: 4 }, local: '127.0.0.1:8443' },
  'redirect-v4-mapped': { ok: { address: '198.18.209.10', port: 444, family: 4 }, local: '::ffff:127.0.0.1:8444' },
  'redirect-v6': { ok: { address: '::1', port: 443, family: 6 }, local: '::1:8444' },
  // Not redirected, but tracked (the namespace has nat chains): the original destination is the socket's own.
  'direct-v4': { ok: { address: '127.0.0.1', port: 8443, family: 4 }, local: '127.0.0.1:8443' },
  'direct-v6': { ok: { address: '::1', port: 8444, family: 6 }, local: '::1:8444' },
  'not-a-socket': fail('getsockname: Socket operation on non-socket'),
  'closed-fd': fail('getsockname: Bad file descriptor'),
  'bad-fd': { error: { name: 'TypeError', message: 'getOriginalDst(fd): fd must be a non-negative integer' } },
};
/** No netfilter in the namespace, so no conntrack entry: ENOENT (the agent's "not redirected" answer). */
const X64_BARE: Record<string, Outcome> = {
  'direct-v4': { ...fail(`${v4Fail}: No such file or directory`, 'ENOENT'), local: '127.0.0.1:8443' },
  'direct-v6': { ...fail(`${v6Fail}: No such file or directory`, 'ENOENT'), local: '::1:8444' },
};

/**
 * The reference as linux-arm64 gives it under qemu-aarch64-static (Debian 12's qemu 7.2): qemu translates socket
 * options it knows and answers the others itself. getsockopt(SOL_IP, SO_ORIGINAL_DST = 80) and (SOL_IPV6,
 * IP6T_SO_ORIGINAL_DST = 80) are not among them: strace shows the probe's getsockname reaching the kernel and no
 * getsockopt at all, and the addon reports qemu's ENOPROTOOPT. So for arm64 this test proves that the addon loads
 * from prebuilds/linux-arm64 on Node 18/20/22, exports getOriginalDst, picks SOL_IP or SOL_IPV6 from the socket's
 * own address (IPv4-mapped included), passes through getsockname's real errors, and rejects a bad fd; it does not
 * (and cannot here) prove the arm64 getsockopt result itself. A qemu that passes the option through fails this
 * comparison: then the arm64 results must simply equal the x64 ones.
 */
function underQemu(reference: Record<string, Outcome>): Record<string, Outcome> {
  const out: Record<string, Outcome> = {};
  for (const [name, r] of Object.entries(reference)) {
    const reachedGetsockopt = 'ok' in r || r.error.message.startsWith('getsockopt(');
    if (!reachedGetsockopt) out[name] = r;
    else {
      const level = 'ok' in r ? (r.ok.family === 4 ? v4Fail : v6Fail) : r.error.message.slice(0, r.error.message.indexOf('): ') + 1);
      out[name] = r.local === undefined ? fail(`${level}: Protocol not available`) : { ...fail(`${level}: Protocol not available`), local: r.local };
    }
  }
  return out;
}

/** `linux-arm64 22` -> the exact version and the argv that runs that node here (arm64: qemu-aarch64-static ... node). */
type Parts = Map<string, { version: string; argv: string[] }>;

/** The fetched parts (test/agent/fetch-node-platforms.sh), or a clear error. */
function fetchParts(): Parts {
  const r = sh(['sh', join(repo, 'test/agent/fetch-node-platforms.sh')], { timeoutMs: 1_200_000 });
  if (r.code !== 0) {
    throw new Error(`the Node builds, qemu-aarch64-static or the arm64 sysroot could not be fetched (test/agent/fetch-node-platforms.sh exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  const parts: Parts = new Map();
  for (const line of r.stdout.trim().split('\n')) {
    const [kind, platform, version, ...argv] = line.split(' ');
    if (kind === 'node' && platform && version && argv.length > 0) parts.set(`${platform} ${version.split('.')[0]}`, { version, argv });
  }
  const missing = PLATFORMS.flatMap((p) => MAJORS.map((m) => `${p} ${m}`)).filter((k) => !parts.has(k));
  if (missing.length > 0) throw new Error(`test/agent/fetch-node-platforms.sh did not list ${missing.join(', ')}:\n${r.stdout}`);
  return parts;
}

describe('origdst addon: prebuilt linux-x64 and linux-arm64 on Node 18, 20 and 22', { skip, timeout: 1_500_000 }, () => {
  const ns = new Namespaces();
  const id = process.pid % 100000;
  const natNs = `epag-addon-nat-${id}`;
  const bareNs = `epag-addon-bare-${id}`;
  let parts: Parts | undefined;
  let dir = '';
  let agentDir = '';
  const probes = new Map<string, ProbeReport>();

  before(async () => {
    parts = fetchParts();
    dir = mkdtempSync(join(tmpdir(), 'epag-addon-'));
    chmodSync(dir, 0o755);
    agentDir = join(dir, 'agent');
    await buildAgent(agentDir, AGENT_VERSION);
    // Bundled as scripts/build-agent.mjs bundles the agent, beside it, so the loader's __dirname is the bundle's.
    await build({
      entryPoints: [join(repo, 'test/agent/clients/origdst-probe.ts')],
      outfile: join(agentDir, 'origdst-probe.cjs'),
      bundle: true,
      platform: 'node',
      target: 'node18',
      format: 'cjs',
      external: ['*.node'],
      logLevel: 'warning',
      logOverride: { 'empty-import-meta': 'silent' },
    });
    // The nat namespace first: its nat chains load nf_conntrack, which registers SO_ORIGINAL_DST (without it even the
    // bare namespace would answer ENOPROTOOPT instead of ENOENT).
    ns.add(natNs);
    ns.execOk(natNs, ['ip', 'addr', 'add', '198.18.209.10/32', 'dev', 'lo']);
    ns.execOk(natNs, ['nft', '-f', '-'], {
      input: `table ip epag_addon {
  chain out {
    type nat hook output priority -100; policy accept;
    ip daddr 198.18.209.10 tcp dport 443 redirect to :8443
    ip daddr 198.18.209.10 tcp dport 444 redirect to :8444
  }
}
table ip6 epag_addon {
  chain out {
    type nat hook output priority -100; policy accept;
    ip6 daddr ::1 tcp dport 443 redirect to :8444
  }
}
`,
    });
    ns.add(bareNs);
  });

  after(async () => {
    await ns.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the fetched node for platform/major (arm64 under qemu) in a namespace, without this runner's NODE_* variables. */
  function runNode(platform: Platform, major: number, nsName: string, args: string[]): Run {
    const node = parts?.get(`${platform} ${major}`);
    if (!node) throw new Error(`no ${platform} Node ${major} was fetched (see the before hook)`);
    return ns.exec(nsName, [...node.argv, ...args], { timeoutMs: 120_000, env: { NODE_OPTIONS: undefined, NODE_TEST_CONTEXT: undefined } });
  }

  function probe(platform: Platform, major: number, nsName: string, cases: string[]): ProbeReport {
    const key = `${platform} ${major} ${nsName}`;
    const known = probes.get(key);
    if (known) return known;
    const r = runNode(platform, major, nsName, [join(agentDir, 'origdst-probe.cjs'), ...cases]);
    if (r.code !== 0) throw new Error(`origdst-probe on ${platform} Node ${major} in ${nsName} exited ${r.code}: ${r.stderr}${r.stdout}`);
    const report = JSON.parse(r.stdout) as ProbeReport;
    probes.set(key, report);
    return report;
  }

  it('the prebuilt addons need no glibc newer than 2.28 (what the official Node 18-22 builds need)', () => {
    for (const platform of PLATFORMS) {
      const text = readFileSync(join(repo, 'agent/native/prebuilds', platform, 'origdst.node')).toString('latin1');
      const versions = [...new Set(text.match(/GLIBC_2\.[0-9.]+/g) ?? [])];
      assert.ok(versions.length > 0, `${platform}/origdst.node names no GLIBC_ symbol version`);
      const newest = Math.max(...versions.map((v) => Number(v.split('.')[1])));
      assert.ok(newest <= 28, `${platform}/origdst.node needs ${versions.join(', ')}`);
    }
  });

  for (const platform of PLATFORMS) {
    for (const major of MAJORS) {
      const reference = platform === 'linux-x64' && major === 20;
      it(`${platform} Node ${major}: the bundle runs, the addon loads from prebuilds/${platform} and answers ${reference ? 'as expected (the reference)' : 'as linux-x64 Node 20 does'}`, () => {
        const v = runNode(platform, major, natNs, [join(agentDir, 'epoch-agent.cjs'), '--version']);
        const version = parts!.get(`${platform} ${major}`)!.version;
        assert.equal(v.code, 0, `epoch-agent.cjs --version on ${platform} Node ${version}: ${v.stderr}`);
        assert.equal(v.stdout, `epoch-agent ${AGENT_VERSION} node v${version}\n`);

        const nat = probe(platform, major, natNs, NAT_CASES);
        const bare = probe(platform, major, bareNs, BARE_CASES);
        for (const p of [nat, bare]) {
          assert.equal(p.node, `v${version}`);
          assert.equal(p.platform, platform);
          assert.deepEqual(p.loaded, [join(agentDir, 'prebuilds', platform, 'origdst.node')]);
          assert.deepEqual(p.exports, ['getOriginalDst']);
          assert.deepEqual(p.getOriginalDst, { type: 'function', name: 'getOriginalDst' });
        }
        if (reference) {
          assert.deepEqual(nat.cases, X64_NAT);
          assert.deepEqual(bare.cases, X64_BARE);
        } else {
          const ref = { nat: probe('linux-x64', 20, natNs, NAT_CASES).cases, bare: probe('linux-x64', 20, bareNs, BARE_CASES).cases };
          if (platform === 'linux-x64') {
            assert.deepEqual(nat.cases, ref.nat);
            assert.deepEqual(bare.cases, ref.bare);
          } else {
            assert.deepEqual(nat.cases, underQemu(ref.nat));
            assert.deepEqual(bare.cases, underQemu(ref.bare));
          }
        }
      });
    }
  }
});
