// CPU profiles of two bundled agents that differ only in observe.enabled, under the same load, alternating
// (off, on, off, on), inside a private namespace (epag-prof-*) with a real nft REDIRECT and owner-match exclusion.
// Prints each agent's busy CPU per request (profiler samples, main thread) split into observer code (agent JS),
// Node's stream/TLS JS, native TLS writes (encrypt + send, including the kernel's loopback delivery), GC and the
// rest, and the functions whose self time grew most. Needs root and a built bundle.
//   npm run build && node --import tsx bench/agent-profile.ts [--seconds 8] [--conns 50] [--path /] [--same]
// --same: both agents with observation off (an A/A run: the noise floor of the comparison).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_UID, Namespaces, makePki, removePki, repo, sh, sleep } from '../test/agent/support';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const SECONDS = opt('seconds', '8');
const CONNS = opt('conns', '50');
const PATH = opt('path', '/');
const SAME = argv.includes('--same');
const NS = `epag-prof-${process.pid % 100000}`;
const SNI = 'bench.epag.test';
const modes = { off: { ip: '198.18.200.103', port: 8445 }, on: { ip: '198.18.200.104', port: 8446 } } as const;
type Mode = keyof typeof modes;
const bundle = join(repo, 'dist/agent/epoch-agent.cjs');

interface Profile { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[] }

function selfTimes(p: Profile): Map<string, number> {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const cf = byId.get(p.samples[i]!)!.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').pop()}:${cf.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  self.delete('(idle) :-1');
  return self;
}

function category(key: string): string {
  if (key.startsWith('writeBuffer ')) return 'native TLS write';
  if (key.startsWith('(garbage collector)')) return 'gc';
  if (key.includes('epoch-agent.cjs')) return 'agent JS';
  if (key.endsWith(':-1')) return 'other native';
  return 'node JS';
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespace and nft inside it)');
  const ns = new Namespaces();
  const pki = makePki();
  const profRoot = mkdtempSync('/tmp/epag-prof-');
  chmodSync(profRoot, 0o755); // the agents run as uid 65534 and write their profiles below it
  try {
    ns.add(NS);
    for (const m of Object.values(modes)) ns.execOk(NS, ['ip', 'addr', 'add', `${m.ip}/32`, 'dev', 'lo']);
    const leaf = pki.leaf(SNI, `DNS:${SNI}`, 'lab');
    const listeners = Object.values(modes).flatMap((m) => ['--listen', `${m.ip}:443`, '--cert', leaf.cert, '--key', leaf.key]);
    await ns.spawn(NS, ['node', join(repo, 'provisioner/lab/upstream-server.mjs'), ...listeners], new RegExp(`listening ${modes.on.ip.replace(/\./g, '\\.')}:443`));
    for (const [mode, m] of Object.entries(modes) as [Mode, (typeof modes)[Mode]][]) {
      const state = join(pki.dir, `state-${mode}`);
      const prof = join(profRoot, mode);
      for (const d of [state, prof]) {
        mkdirSync(d);
        sh(['chown', `${AGENT_UID}:${AGENT_UID}`, d]);
      }
      const config = join(pki.dir, `agent-${mode}.json`);
      writeFileSync(config, JSON.stringify({
        listen: [{ host: '127.0.0.1', port: m.port }], health: { host: '127.0.0.1', port: m.port + 1000 },
        ca: { certFile: pki.agentCaCert, keyFile: pki.agentCaKey }, upstream: { caBundleFile: pki.labRoot },
        limits: { maxConnections: 20000 }, log: { level: 'info', connectLog: true },
        observe: { enabled: mode === 'on' && !SAME }, stateDir: state,
      }));
      await ns.spawnListening(NS, ['sh', '-c', `ulimit -n 20000; exec node --cpu-prof --cpu-prof-dir=${prof} ${bundle} run --config ${config} --user ${AGENT_UID} > ${join(pki.dir, `agent-${mode}.log`)} 2>&1`], m.port + 1000);
    }
    ns.execOk(NS, ['nft', '-f', '-'], { input: `table ip epag_prof {
  chain out {
    type nat hook output priority -100; policy accept;
    meta skuid ${AGENT_UID} return
    ip daddr ${modes.off.ip} tcp dport 443 redirect to :${modes.off.port}
    ip daddr ${modes.on.ip} tcp dport 443 redirect to :${modes.on.port}
  }
}
` });
    const env = { BENCH_CA: `${pki.labRoot}:${pki.agentCaCert}` };
    const requests: Record<Mode, number> = { off: 0, on: 0 };
    for (const mode of ['off', 'on', 'off', 'on'] as const) {
      const r = ns.exec(NS, ['sh', '-c', `exec node ${join(repo, 'bench/agent-load.mjs')} keepalive ${modes[mode].ip} ${SNI} ${SECONDS} ${CONNS} ${PATH}`], { env, timeoutMs: 120_000 });
      const line = r.stdout.trim().split('\n').at(-1) ?? '';
      if (r.code !== 0 || !line.startsWith('{')) throw new Error(`load failed: ${r.stderr}${r.stdout}`);
      requests[mode] += JSON.parse(line).requests as number;
      console.log(mode, line);
    }
    // The profiles are written when the agents exit: SIGTERM drains them.
    for (const pid of sh(['ip', 'netns', 'pids', NS]).stdout.split(/\s+/).filter(Boolean).map(Number)) {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('epoch-agent.cjs')) process.kill(pid, 'SIGTERM');
    }
    const profiles = {} as Record<Mode, Map<string, number>>;
    for (const mode of ['off', 'on'] as const) {
      const dir = join(profRoot, mode);
      for (let i = 0; i < 300 && readdirSync(dir).length === 0; i++) await sleep(100);
      await sleep(300);
      const file = readdirSync(dir)[0];
      if (!file) throw new Error(`the ${mode} agent wrote no profile into ${dir} within 30 s of SIGTERM`);
      profiles[mode] = selfTimes(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile);
    }
    const perRequest = (mode: Mode, pick: (k: string) => boolean) =>
      ([...profiles[mode]].filter(([k]) => pick(k)).reduce((n, [, ms]) => n + ms, 0) * 1000) / requests[mode];
    const cats = ['agent JS', 'node JS', 'native TLS write', 'gc', 'other native'];
    console.log(`\nbusy CPU-µs per request (profiler samples), observation ${SAME ? 'off in both (A/A)' : 'off vs on'}:`);
    console.log('| | off | on | on − off |\n|---|---:|---:|---:|');
    for (const c of [...cats, 'total']) {
      const pick = (k: string) => c === 'total' || category(k) === c;
      const off = perRequest('off', pick);
      const on = perRequest('on', pick);
      console.log(`| ${c} | ${off.toFixed(1)} | ${on.toFixed(1)} | ${(on - off).toFixed(1)} |`);
    }
    const keys = new Set([...profiles.off.keys(), ...profiles.on.keys()]);
    const growth = [...keys].map((k) => ({ k, d: perRequest('on', (x) => x === k) - perRequest('off', (x) => x === k) })).sort((a, b) => b.d - a.d);
    console.log('\nlargest growth in self time, CPU-µs per request:');
    for (const g of growth.slice(0, 12)) console.log(`  ${g.d.toFixed(2).padStart(6)}  ${g.k}`);
  } finally {
    await ns.teardown();
    removePki(pki);
    rmSync(profRoot, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
