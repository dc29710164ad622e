// epoch-agent vs a direct connection (and Debian's sslsplit when installed), in one run, inside a private network
// namespace (epag-bench-*) with a real nft REDIRECT and owner-match exclusion. Needs root and a built bundle.
//   npm run build && node --import tsx bench/agent-bench.ts [--seconds 5] [--json bench/results/agent-bench.json]
//     [--bulk-bytes N] [--observe on|off|both] [--node-flags '--max-semi-space-size=1']
//     [--reps 3] [--compare-bulk-bytes 100000000]   (with --observe both)
// Reported per target: keep-alive req/s at 50 connections (+p50 latency), new TLS connections/s (warm forge cache,
// no client session reuse), bulk MB/s for one download, and the proxy's CPU-ms per unit of work (the stable figure
// on a noisy 2-core machine). Also: forge-path cost (agent's forgeMs, and first vs second contact latency over 20
// upstream certs) and agent RSS with 1,000 open connections.
// --observe both: two more bundled agents, started together, identical but for observation on / off (own listeners,
// own REDIRECT target addresses, fresh state), and after the run above both are measured
// alternately (off/on, then on/off, ... for --reps rounds) on the same workloads: small keep-alive GETs, small chunked
// keep-alive responses (4 KB), new TLS connections, one chunked and one content-length bulk download. Printed as a
// table and recorded in the JSON under `observeComparison` (medians over the rounds, and every round). Then, for the
// same workloads, simultaneous rounds: both agents loaded at the same time (half the connections each; the downloads
// run for a fixed time), which cancels the machine's drift between back-to-back runs (`observeComparison.simultaneous`).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AGENT_UID, Namespaces, makePki, removePki, repo, sh, sleep } from '../test/agent/support';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const SECONDS = Number(opt('seconds', '5'));
const JSON_OUT = opt('json', join(repo, 'bench/results/agent-bench.json'));
const BULK_BYTES = Number(opt('bulk-bytes', String(400_000_000)));
const OBSERVE_MODE = opt('observe', 'on');
if (!['on', 'off', 'both'].includes(OBSERVE_MODE)) throw new Error(`--observe on|off|both, got ${OBSERVE_MODE}`);
const OBSERVE = OBSERVE_MODE !== 'off';
const COMPARE = OBSERVE_MODE === 'both';
const REPS = Number(opt('reps', '3'));
const COMPARE_BULK_BYTES = Number(opt('compare-bulk-bytes', String(100_000_000)));
const NODE_FLAGS = opt('node-flags', '');
const NS = `epag-bench-${process.pid % 100000}`;
const VIA_AGENT = '198.18.200.100';
const DIRECT = '198.18.200.101';
const VIA_SSLSPLIT = '198.18.200.102';
const VIA_AGENT_OFF = '198.18.200.103';
const VIA_AGENT_CMP_ON = '198.18.200.104';
const FORGE_IPS = Array.from({ length: 20 }, (_, i) => `198.18.200.${110 + i}`);
const SNI = 'bench.epag.test';
const bundle = join(repo, 'dist/agent/epoch-agent.cjs');

function cpuTicks(pids: number[]): number {
  let t = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      t += Number(fields[11]) + Number(fields[12]); // utime + stime
    } catch {}
  }
  return t;
}
const TICK_MS = 10; // USER_HZ = 100 on Linux

/** Anonymous memory only: RSS also counts the shared node binary's pages (~40 MB). */
function anonKb(pid: number): number {
  return Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1]) / 1024);
}

const LOAD_AT_START = readFileSync('/proc/loadavg', 'utf8').trim();
const loadAvg1 = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round2 = (x: number) => Math.round(x * 100) / 100;

type Load = (args: string[], timeoutMs?: number) => Record<string, number>;
type LoadPair = (a: string[], b: string[]) => [Record<string, number>, Record<string, number>];

/** Observation on vs off, same bundle, same run: alternating rounds (off/on, on/off, ...) over the same workloads. */
function compareObservation(load: Load, loadPair: LoadPair, onPid: number, offPid: number) {
  const workloads: { name: string; unit: string; cpuUnit: string; args: (ip: string) => string[]; rate: (r: Record<string, number>) => number; work: (r: Record<string, number>) => number }[] = [
    { name: 'small keep-alive GETs (50 conns)', unit: 'req/s', cpuUnit: 'CPU-ms per 1k req', args: (ip) => ['keepalive', ip, SNI, String(SECONDS), '50'], rate: (r) => r.perSecond!, work: (r) => r.requests! / 1000 },
    { name: 'chunked 4 KB keep-alive responses (50 conns)', unit: 'req/s', cpuUnit: 'CPU-ms per 1k req', args: (ip) => ['keepalive', ip, SNI, String(SECONDS), '50', '/chunked/4096'], rate: (r) => r.perSecond!, work: (r) => r.requests! / 1000 },
    { name: 'new TLS connections (concurrency 8)', unit: 'conn/s', cpuUnit: 'CPU-ms per conn', args: (ip) => ['newconns', ip, SNI, String(SECONDS), '8'], rate: (r) => r.perSecond!, work: (r) => r.connections! },
    { name: `bulk chunked download (${COMPARE_BULK_BYTES / 1e6} MB)`, unit: 'MB/s', cpuUnit: 'CPU-s per GB', args: (ip) => ['bulk', ip, SNI, String(COMPARE_BULK_BYTES)], rate: (r) => r.MBps!, work: (r) => (r.bytes! / 1e9) * 1000 },
    { name: `bulk content-length download (${COMPARE_BULK_BYTES / 1e6} MB)`, unit: 'MB/s', cpuUnit: 'CPU-s per GB', args: (ip) => ['bulkcl', ip, SNI, String(COMPARE_BULK_BYTES)], rate: (r) => r.MBps!, work: (r) => (r.bytes! / 1e9) * 1000 },
  ];
  const modes = { off: { ip: VIA_AGENT_OFF, pid: offPid }, on: { ip: VIA_AGENT_CMP_ON, pid: onPid } };
  for (const m of Object.values(modes)) load(['newconns', m.ip, SNI, '1', '4']); // warm up: forge cache, JIT
  const rounds: { rep: number; mode: string; workload: string; rate: number; cpuPerUnit: number; errors: number; load1: number }[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    for (const w of workloads) {
      const order = (rep + workloads.indexOf(w)) % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
      for (const mode of order) {
        const m = modes[mode];
        const c0 = cpuTicks([m.pid]);
        const r = load(w.args(m.ip));
        const cpuMs = (cpuTicks([m.pid]) - c0) * TICK_MS;
        rounds.push({ rep, mode, workload: w.name, rate: w.rate(r), cpuPerUnit: round2(cpuMs / w.work(r)), errors: r.errors ?? 0, load1: loadAvg1() });
      }
    }
  }
  const table = workloads.map((w) => {
    const pick = (mode: string, k: 'rate' | 'cpuPerUnit') => median(rounds.filter((r) => r.mode === mode && r.workload === w.name).map((r) => r[k]));
    const offRate = pick('off', 'rate');
    const onRate = pick('on', 'rate');
    const offCpu = pick('off', 'cpuPerUnit');
    const onCpu = pick('on', 'cpuPerUnit');
    // Each round measures off and on back to back: the spread of those paired differences shows the noise.
    const paired = (k: 'rate' | 'cpuPerUnit') => Array.from({ length: REPS }, (_, rep) => {
      const get = (mode: string) => rounds.find((r) => r.rep === rep && r.mode === mode && r.workload === w.name)![k];
      return round2(((get('on') - get('off')) / get('off')) * 100);
    });
    return {
      workload: w.name, unit: w.unit, cpuUnit: w.cpuUnit,
      pairedThroughputDeltaPct: paired('rate'), pairedCpuDeltaPct: paired('cpuPerUnit'),
      off: round2(offRate), on: round2(onRate), throughputDeltaPct: round2(((onRate - offRate) / offRate) * 100),
      offCpuPerUnit: round2(offCpu), onCpuPerUnit: round2(onCpu), cpuDeltaPct: round2(((onCpu - offCpu) / offCpu) * 100),
    };
  });
  // Simultaneous rounds: both agents loaded at the same time (25 connections each), so whatever else slows this
  // shared machine down in a given second slows both alike; the per-round ratio on/off cancels that drift.
  // Fixed-time variants of the bulk downloads, so that both run for the whole round.
  const bulkFor = (kind: string, label: string) => ({ ...workloads[3]!, name: `bulk ${label} download (${SECONDS} s each)`, args: (ip: string) => ['bulkfor', ip, SNI, String(SECONDS), kind] });
  const simultaneousWorkloads = [workloads[0]!, workloads[1]!, { ...workloads[2]!, args: (ip: string) => ['newconns', ip, SNI, String(SECONDS), '4'] }, bulkFor('chunked', 'chunked'), bulkFor('bytes', 'content-length')];
  const simultaneous = simultaneousWorkloads.map((w) => {
    const pairs: { onVsOff: number; cpuOnVsOff: number }[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const c0 = { on: cpuTicks([modes.on.pid]), off: cpuTicks([modes.off.pid]) };
      const args = (ip: string) => w.args(ip).map((a, i) => (i === 4 && a === '50' ? '25' : a));
      const [off, on] = loadPair(args(modes.off.ip), args(modes.on.ip));
      const cpu = { on: (cpuTicks([modes.on.pid]) - c0.on) * TICK_MS / w.work(on), off: (cpuTicks([modes.off.pid]) - c0.off) * TICK_MS / w.work(off) };
      pairs.push({ onVsOff: round2(((w.rate(on) - w.rate(off)) / w.rate(off)) * 100), cpuOnVsOff: round2(((cpu.on - cpu.off) / cpu.off) * 100) });
    }
    return { workload: w.name.replace('(50 conns)', '(25 + 25 conns)').replace('(concurrency 8)', '(4 + 4 at once)'), throughputDeltaPct: median(pairs.map((p) => p.onVsOff)), cpuDeltaPct: median(pairs.map((p) => p.cpuOnVsOff)), pairs };
  });
  const loads = rounds.map((r) => r.load1);
  const summary = { reps: REPS, seconds: SECONDS, bulkBytes: COMPARE_BULK_BYTES, load1Min: Math.min(...loads), load1Max: Math.max(...loads), table, simultaneous, rounds };
  console.log(`observation on vs off (medians of ${REPS} alternating rounds; 1-min load average ${summary.load1Min}-${summary.load1Max}):`);
  const pct = (x: number) => `${x > 0 ? '+' : ''}${x}%`;
  const range = (xs: number[]) => `${pct(Math.min(...xs))} … ${pct(Math.max(...xs))}`;
  console.log('| workload | off | on | throughput on vs off (paired rounds) | agent CPU off | on | CPU on vs off (paired rounds) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const t of table) {
    console.log(`| ${t.workload} | ${t.off} ${t.unit} | ${t.on} ${t.unit} | ${pct(t.throughputDeltaPct)} (${range(t.pairedThroughputDeltaPct)}) | ${t.offCpuPerUnit} | ${t.onCpuPerUnit} ${t.cpuUnit} | ${pct(t.cpuDeltaPct)} (${range(t.pairedCpuDeltaPct)}) |`);
  }
  console.log(`simultaneous rounds (both agents loaded at once; medians of ${REPS} rounds, range of the rounds in brackets):`);
  console.log('| workload | throughput on vs off | agent CPU per request on vs off |');
  console.log('|---|---:|---:|');
  for (const t of simultaneous) {
    console.log(`| ${t.workload} | ${pct(t.throughputDeltaPct)} (${range(t.pairs.map((p) => p.onVsOff))}) | ${pct(t.cpuDeltaPct)} (${range(t.pairs.map((p) => p.cpuOnVsOff))}) |`);
  }
  return summary;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespace and nft inside it)');
  if (!existsSync(bundle)) throw new Error(`${bundle} missing: run npm run build first`);
  const hasSslsplit = sh(['sh', '-c', 'command -v sslsplit']).code === 0;
  const ns = new Namespaces();
  const pki = makePki();
  try {
    ns.add(NS);
    for (const ip of [VIA_AGENT, DIRECT, VIA_SSLSPLIT, VIA_AGENT_OFF, VIA_AGENT_CMP_ON, ...FORGE_IPS]) ns.execOk(NS, ['ip', 'addr', 'add', `${ip}/32`, 'dev', 'lo']);
    const leaf = pki.leaf(SNI, `DNS:${SNI}`, 'lab');
    const listeners = [VIA_AGENT, DIRECT, VIA_SSLSPLIT, VIA_AGENT_OFF, VIA_AGENT_CMP_ON].flatMap((ip) => ['--listen', `${ip}:443`, '--cert', leaf.cert, '--key', leaf.key]);
    for (const ip of FORGE_IPS) {
      const l = pki.leaf(SNI, `DNS:${SNI}`, 'lab'); // same names, distinct certs: each is a forge-cache miss
      listeners.push('--listen', `${ip}:443`, '--cert', l.cert, '--key', l.key);
    }
    await ns.spawn(NS, ['node', join(repo, 'provisioner/lab/upstream-server.mjs'), ...listeners], new RegExp(`listening ${FORGE_IPS.at(-1)!.replace(/\./g, '\\.')}:443`));

    const stateDir = join(pki.dir, 'state');
    mkdirSync(stateDir);
    sh(['chown', `${AGENT_UID}:${AGENT_UID}`, stateDir]);
    const config = join(pki.dir, 'agent.json');
    writeFileSync(config, JSON.stringify({
      listen: [{ host: '127.0.0.1', port: 8443 }],
      health: { host: '127.0.0.1', port: 9443 },
      ca: { certFile: pki.agentCaCert, keyFile: pki.agentCaKey },
      upstream: { caBundleFile: pki.labRoot },
      limits: { maxConnections: 20000 },
      log: { level: 'info', connectLog: true },
      observe: { enabled: OBSERVE },
      stateDir,
    }));
    // The agent's logs go to a file: this script blocks in spawnSync while the load runs, and a pipe nobody drains
    // would stall the agent's (synchronous) stdout writes.
    const agentLog = join(pki.dir, 'agent.log');
    const agentProc = await ns.spawnListening(NS, ['sh', '-c', `ulimit -n 20000; exec node ${NODE_FLAGS} ${bundle} run --config ${config} --user ${AGENT_UID} > ${agentLog} 2>&1`], 9443);
    const agentPid = agentProc.pid!;
    const agent = { output: () => readFileSync(agentLog, 'utf8') };
    // --observe both: two more bundled agents, started together and used only by the comparison, identical but for
    // observation (on / off): neither carries state from the sections above (1,000 held connections, forge runs).
    const cmpPids = { on: 0, off: 0 };
    if (COMPARE) {
      const on = JSON.parse(readFileSync(config, 'utf8'));
      for (const [mode, port] of [['off', 8445], ['on', 8446]] as const) {
        const dir = join(pki.dir, `state-${mode}`);
        mkdirSync(dir);
        sh(['chown', `${AGENT_UID}:${AGENT_UID}`, dir]);
        const file = join(pki.dir, `agent-${mode}.json`);
        writeFileSync(file, JSON.stringify({ ...on, listen: [{ host: '127.0.0.1', port }], health: { host: '127.0.0.1', port: port + 1000 }, observe: { enabled: mode === 'on' }, stateDir: dir }));
        const proc = await ns.spawnListening(NS, ['sh', '-c', `ulimit -n 20000; exec node ${NODE_FLAGS} ${bundle} run --config ${file} --user ${AGENT_UID} > ${join(pki.dir, `agent-${mode}.log`)} 2>&1`], port + 1000);
        cmpPids[mode] = proc.pid!;
      }
    }
    let sslsplitPids: number[] = [];
    if (hasSslsplit) {
      await ns.spawnListening(NS, ['sslsplit', '-k', pki.agentCaKey, '-c', pki.agentCaCert, '-l', join(pki.dir, 'sslsplit-connect.log'), 'ssl', '127.0.0.1', '8444'], 8444);
      sslsplitPids = sh(['ip', 'netns', 'pids', NS]).stdout.split(/\s+/).filter(Boolean).map(Number)
        .filter((pid) => { try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sslsplit'; } catch { return false; } });
    }
    const redirect = (ips: string[], port: number) => `ip daddr { ${ips.join(', ')} } tcp dport 443 redirect to :${port};`;
    ns.execOk(NS, ['nft', '-f', '-'], { input: `table ip epag_bench {
  chain out { type nat hook output priority -100; policy accept; meta skuid ${AGENT_UID} return;
    ${redirect([VIA_AGENT, ...FORGE_IPS], 8443)}
    ${redirect([VIA_SSLSPLIT], 8444)}
    ${redirect([VIA_AGENT_OFF], 8445)}
    ${redirect([VIA_AGENT_CMP_ON], 8446)}
  }
}
` });

    const env = { BENCH_CA: `${pki.labRoot}:${pki.agentCaCert}` };
    const load = (args: string[], timeoutMs = 120_000) => {
      const r = ns.exec(NS, ['sh', '-c', `ulimit -n 8192; exec node ${join(repo, 'bench/agent-load.mjs')} ${args.join(' ')}`], { env, timeoutMs });
      const line = r.stdout.trim().split('\n').at(-1) ?? '';
      if (r.code !== 0 || !line.startsWith('{')) throw new Error(`load ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
      return JSON.parse(line) as Record<string, number>;
    };
    // Two loads at once (each writes its result line to a file; both end before this returns).
    const loadPair: LoadPair = (a, b) => {
      const out = [join(pki.dir, 'pair-a.json'), join(pki.dir, 'pair-b.json')];
      const cmd = (args: string[], file: string) => `node ${join(repo, 'bench/agent-load.mjs')} ${args.join(' ')} > ${file}`;
      const r = ns.exec(NS, ['sh', '-c', `ulimit -n 8192; ${cmd(a, out[0]!)} & A=$!; ${cmd(b, out[1]!)} & B=$!; wait $A && wait $B`], { env, timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`paired load failed: ${r.stderr}`);
      return out.map((f) => JSON.parse(readFileSync(f, 'utf8').trim().split('\n').at(-1)!)) as [Record<string, number>, Record<string, number>];
    };
    const targets: { name: string; ip: string; pids: number[] }[] = [
      { name: 'direct', ip: DIRECT, pids: [] },
      { name: 'epoch-agent', ip: VIA_AGENT, pids: [agentPid] },
      ...(hasSslsplit ? [{ name: 'sslsplit 0.5.5', ip: VIA_SSLSPLIT, pids: sslsplitPids }] : []),
    ];
    // Warm up: forge caches and JITs.
    for (const t of targets) load(['newconns', t.ip, SNI, '1', '4']);
    const results: Record<string, Record<string, unknown>> = {};
    for (const t of targets) {
      type Measured = Record<string, number> & { proxyCpuMs: number; requests: number; connections: number; bytes: number };
      const measure = (args: string[]): Measured => {
        const c0 = cpuTicks(t.pids);
        const r = load(args);
        return { ...r, proxyCpuMs: (cpuTicks(t.pids) - c0) * TICK_MS } as Measured;
      };
      const ka = measure(['keepalive', t.ip, SNI, String(SECONDS), '50']);
      const nc = measure(['newconns', t.ip, SNI, String(SECONDS), '8']);
      const bk = measure(['bulk', t.ip, SNI, String(BULK_BYTES)]);
      results[t.name] = {
        keepAliveReqPerSec: ka.perSecond,
        keepAliveP50Ms: ka.p50ms,
        keepAliveErrors: ka.errors,
        proxyCpuMsPer1kRequests: t.pids.length ? Math.round((ka.proxyCpuMs / ka.requests) * 1000 * 10) / 10 : null,
        newConnsPerSec: nc.perSecond,
        newConnP50Ms: nc.p50ms,
        newConnErrors: nc.errors,
        proxyCpuMsPerConn: t.pids.length ? Math.round((nc.proxyCpuMs / nc.connections) * 100) / 100 : null,
        bulkMBps: bk.MBps,
        proxyCpuSecPerGB: t.pids.length ? Math.round((bk.proxyCpuMs / 1000 / (bk.bytes / 1e9)) * 100) / 100 : null,
      };
      console.log(t.name, JSON.stringify(results[t.name]));
    }

    // Forge path: 20 upstream certs the agent has never seen, then the same 20 again (forge cache warm).
    const agentFirst = load(['first', SNI, FORGE_IPS.join(',')]);
    await sleep(500); // load() is synchronous: let the agent's connect-log lines arrive
    const forgeMs = agent.output().split('\n').filter((l) => l.includes('"forgeMs"')).map((l) => JSON.parse(l).forgeMs as number).slice(-20);
    const forge = {
      forgeMsP50: forgeMs.sort((a, b) => a - b)[Math.floor(forgeMs.length / 2)] ?? null,
      forgeMsMax: forgeMs.at(-1) ?? null,
      firstContactP50Ms: agentFirst.firstP50,
      secondContactP50Ms: agentFirst.secondP50,
    };
    console.log('forge', JSON.stringify(forge));

    // RSS with 1,000 open intercepted connections.
    const rssIdle = rssMb(agentPid);
    const anonIdle = anonKb(agentPid);
    const holder = await ns.spawn(NS, ['sh', '-c', `ulimit -n 8192; exec node ${join(repo, 'bench/agent-load.mjs')} hold ${VIA_AGENT} ${SNI} 1000`], /"held":1000/, env, 300_000);
    await sleep(1000);
    const rss1000 = rssMb(agentPid);
    const anonPerConn = Math.round((anonKb(agentPid) - anonIdle) / 1000);
    const active = JSON.parse(ns.exec(NS, ['curl', '-s', 'http://127.0.0.1:9443/healthz']).stdout).connections.active;
    holder.proc.kill('SIGTERM');
    let sslsplitMemory: Record<string, number> | null = null;
    if (hasSslsplit) {
      const before = sslsplitPids.reduce((t, p) => t + rssMb(p), 0);
      const h = await ns.spawn(NS, ['sh', '-c', `ulimit -n 8192; exec node ${join(repo, 'bench/agent-load.mjs')} hold ${VIA_SSLSPLIT} ${SNI} 1000`], /"held":1000/, env, 300_000);
      await sleep(1000);
      sslsplitMemory = { rssIdleMb: before, rssWith1000ConnsMb: sslsplitPids.reduce((t, p) => t + rssMb(p), 0) };
      h.proc.kill('SIGTERM');
    }
    const memory = { rssIdleMb: rssIdle, rssWith1000ConnsMb: rss1000, activeConnections: active, anonKbPerConn: anonPerConn, sslsplit: sslsplitMemory };
    console.log('memory', JSON.stringify(memory));

    const direct = results.direct as Record<string, number>;
    const viaAgent = results['epoch-agent'] as Record<string, number>;
    const ratios = {
      keepAlive: Math.round((viaAgent.keepAliveReqPerSec! / direct.keepAliveReqPerSec!) * 100) / 100,
      addedP50Ms: Math.round((viaAgent.keepAliveP50Ms! - direct.keepAliveP50Ms!) * 1000) / 1000,
      newConns: Math.round((viaAgent.newConnsPerSec! / direct.newConnsPerSec!) * 100) / 100,
      bulk: Math.round((viaAgent.bulkMBps! / direct.bulkMBps!) * 100) / 100,
      ...(results['sslsplit 0.5.5'] ? { sslsplitNewConns: Math.round(((results['sslsplit 0.5.5'] as Record<string, number>).newConnsPerSec! / direct.newConnsPerSec!) * 100) / 100 } : {}),
    };
    console.log('ratios vs direct', JSON.stringify(ratios));
    const observeComparison = COMPARE ? compareObservation(load, loadPair, cmpPids.on, cmpPids.off) : null;
    const out = { date: new Date().toISOString(), node: process.version, loadAverage: readFileSync('/proc/loadavg', 'utf8').trim(), loadAverageAtStart: LOAD_AT_START, observe: OBSERVE_MODE, agentNodeFlags: NODE_FLAGS, seconds: SECONDS, bulkBytes: BULK_BYTES, results, forge, memory, ratios, observeComparison };
    mkdirSync(dirname(JSON_OUT), { recursive: true });
    writeFileSync(JSON_OUT, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`wrote ${JSON_OUT}`);
  } finally {
    await ns.teardown();
    removePki(pki);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
