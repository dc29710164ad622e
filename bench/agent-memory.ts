// Where the agent's memory goes with 1,000 open intercepted connections, and what reduces it. Needs root and a built
// bundle; everything runs in a private network namespace (epag-mem-*, 198.18.202.0/24 on its loopback) with the lab
// upstream server and a real nft REDIRECT (owner-match exclusion of the agent's uid), as in bench/agent-bench.ts.
//   npm run build && node --import tsx bench/agent-memory.ts [--conns 1000] [--settle-ms 2000] [--quiet-ms 10000]
//     [--runtimes node20,node18,node22,debian18] [--configs base,semi1,arena2,semi1+arena2] [--extra on|off]
//     [--reps 1] [--load-seconds 3] [--floor on|off] [--heaptrack on|off]
//     [--cpu-ab base,semi1|off] [--cpu-ab-runtimes node20,debian18] [--cpu-ab-rounds 5] [--cpu-ab-seconds 3]
//     [--json bench/results/agent-memory.json]
// Runtimes (each used if found): node20 = the node running this script (the controller's); node18 / node22 = the
// official linux-x64 tarballs under /var/tmp/epag-node-platforms (they bundle their OpenSSL); debian18 = Debian 12's
// own nodejs 18 (libnode108, linked to the system's libssl3) as extracted by test/agent/debian-node18.sh into
// $EPAG_NODE18_DIR (default /var/tmp/epag-node18); this script never downloads it.
// Configurations: base (no flags), semi1 (--max-semi-space-size=1), arena2 (MALLOC_ARENA_MAX=2), semi1+arena2; with
// --extra on, on the first runtime only: observe-off, mmap64k (MALLOC_MMAP_THRESHOLD_=65536), semi1+mmap64k,
// optimize-for-size (--optimize-for-size).
// Every agent run starts a FRESH agent (same config as agent-bench: observation on, connect log on) and reads
// /proc/PID/status (VmRSS, RssAnon, RssFile) and smaps_rollup (Pss):
//   idle (quiet time after start) → 500 held → 1,000 held intercepted connections (two holders of agent-load.mjs
//   `hold`; the second half gives the marginal cost per connection without one-time costs) → the same, quiet time
//   later → probes → all closed → a short load (keep-alive GETs, one 100 MB download) → 1,000 again → closed.
// Probes, at idle and held: a Node diagnostic report (the agent runs with --report-on-signal; SIGUSR2) for the V8
// heap, and glibc's malloc_stats() called through gdb (if installed) for malloc'd bytes in use and held.
// --heaptrack on (if installed): the agent (first runtime, base) under heaptrack, killed at idle and with 1,000 held:
// the malloc'd bytes live then, by allocation site.
// The agent's CPU for opening the 1,000 connections and per 1,000 keep-alive requests is recorded (noisy on a shared
// machine); --cpu-ab runs two configurations' agents side by side and loads them alternately, for a flag's CPU cost.
// Floor (--floor on): plain node:tls (and node:net) in one process on the same runtime, measured the same way: the
// server side alone (clients in another process), the client side alone (the lab upstream as server; one shared
// SecureContext, as the agent's upstream side has), and both ends in one process (what the agent holds per
// intercepted connection: one server-side and one client-side TLS socket).
// Prints tables and writes JSON (default bench/results/agent-memory.json).
import { type ChildProcess, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AGENT_UID, Namespaces, healthJson, makePki, removePki, repo, sh, sleep } from '../test/agent/support';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const CONNS = Number(opt('conns', '1000'));
const HALF = Math.floor(CONNS / 2);
const SETTLE_MS = Number(opt('settle-ms', '2000'));
/** How long a fresh agent idles before the idle reading, and how long 1,000 held connections sit before the
 * "held, settled" reading: V8's memory reducer starts its GCs about 8 s after allocation stops. */
const QUIET_MS = Number(opt('quiet-ms', '10000'));
const REPS = Number(opt('reps', '1'));
const LOAD_SECONDS = Number(opt('load-seconds', '3'));
const FLOOR = opt('floor', 'on') === 'on';
const EXTRA = opt('extra', 'on') === 'on';
const JSON_OUT = opt('json', join(repo, 'bench/results/agent-memory.json'));
const WANT_RUNTIMES = opt('runtimes', 'node20,node18,node22,debian18').split(',').filter(Boolean);
const WANT_CONFIGS = opt('configs', 'base,semi1,arena2,semi1+arena2').split(',').filter(Boolean);

/** CPU A/B: two configurations' agents side by side, loaded alternately (--cpu-ab CONFIG,CONFIG or off). */
const CPU_AB = opt('cpu-ab', 'base,semi1').split(',').filter((x) => x && x !== 'off');
const CPU_AB_ROUNDS = Number(opt('cpu-ab-rounds', '5'));
const CPU_AB_SECONDS = Number(opt('cpu-ab-seconds', '3'));
const CPU_AB_RUNTIMES = opt('cpu-ab-runtimes', '').split(',').filter(Boolean);
const NS = `epag-mem-${process.pid % 100000}`;
/** Redirected to the two A/B agents (ports 8451, 8452; health 9451, 9452). */
const AB_IPS = ['198.18.202.110', '198.18.202.111'] as const;
/** Redirected to the agent; the upstream also listens here (the agent's own connections are excluded by uid). */
const VIA_AGENT = '198.18.202.100';
/** The same upstream, not redirected: the floor's client side connects here. */
const DIRECT = '198.18.202.101';
/** Floor server (server side alone), not redirected. */
const FLOOR_IP = '198.18.202.102';
const SNI = 'mem.epag.test';
const AGENT_PORT = 8443;
const HEALTH_PORT = 9443;
const bundle = join(repo, 'dist/agent/epoch-agent.cjs');
const loadScript = join(repo, 'bench/agent-load.mjs');
const PLATFORMS = '/var/tmp/epag-node-platforms';
const NODE18_DIR = process.env.EPAG_NODE18_DIR ?? '/var/tmp/epag-node18';

// ---- runtimes and configurations ----

interface Runtime {
  id: string;
  label: string;
  /** The command that runs node (a binary, or the debian-node18.sh wrapper, which execs node in the same process). */
  cmd: string[];
  env: Record<string, string>;
  binary: string;
  version: string;
  openssl: string;
  sharedOpenssl: boolean;
}

function tarball(major: number): string | null {
  if (!existsSync(PLATFORMS)) return null;
  const dir = readdirSync(PLATFORMS).filter((d) => new RegExp(`^node-v${major}\\.\\d+\\.\\d+-linux-x64$`).test(d)).sort().at(-1);
  return dir && existsSync(join(PLATFORMS, dir, 'bin/node')) ? join(PLATFORMS, dir, 'bin/node') : null;
}

function findRuntimes(): Runtime[] {
  const candidates: Omit<Runtime, 'version' | 'openssl' | 'sharedOpenssl'>[] = [];
  const self = realpathSync(process.execPath);
  candidates.push({ id: 'node20', label: "controller's node", cmd: [self], env: {}, binary: self });
  const n18 = tarball(18);
  if (n18) candidates.push({ id: 'node18', label: 'official tarball', cmd: [n18], env: {}, binary: n18 });
  const n22 = tarball(22);
  if (n22) candidates.push({ id: 'node22', label: 'official tarball', cmd: [n22], env: {}, binary: n22 });
  const deb = join(NODE18_DIR, 'root/usr/bin/node');
  if (existsSync(deb)) {
    candidates.push({ id: 'debian18', label: 'Debian 12 nodejs (libnode108)', cmd: ['sh', join(repo, 'test/agent/debian-node18.sh')], env: { EPAG_NODE18_DIR: NODE18_DIR }, binary: deb });
  } else if (WANT_RUNTIMES.includes('debian18')) {
    console.log(`debian18: ${deb} not found (test/agent/debian-node18.sh extracts it; EPAG_NODE18_DIR=... to point elsewhere): skipped`);
  }
  const out: Runtime[] = [];
  for (const c of candidates.filter((c) => WANT_RUNTIMES.includes(c.id))) {
    const r = sh([...c.cmd, '-p', 'JSON.stringify([process.version, process.versions.openssl, process.config.variables.node_shared_openssl === true || process.config.variables.node_shared_openssl === "true"])'], { env: c.env });
    if (r.code !== 0) {
      console.log(`${c.id}: ${c.cmd.join(' ')} does not run: ${r.stderr.trim()}: skipped`);
      continue;
    }
    const [version, openssl, shared] = JSON.parse(r.stdout.trim()) as [string, string, boolean];
    out.push({ ...c, version, openssl, sharedOpenssl: shared });
  }
  return out;
}

interface Config {
  id: string;
  flags: string[];
  env: Record<string, string>;
  observe: boolean;
}

const CONFIGS: Record<string, Config> = {
  base: { id: 'base', flags: [], env: {}, observe: true },
  semi1: { id: 'semi1', flags: ['--max-semi-space-size=1'], env: {}, observe: true },
  arena2: { id: 'arena2', flags: [], env: { MALLOC_ARENA_MAX: '2' }, observe: true },
  'semi1+arena2': { id: 'semi1+arena2', flags: ['--max-semi-space-size=1'], env: { MALLOC_ARENA_MAX: '2' }, observe: true },
  // Extra configurations, on the first runtime only (--extra on): what else moves the figure, and by how much.
  'observe-off': { id: 'observe-off', flags: [], env: {}, observe: false },
  // glibc serves allocations of 64 KiB and more with their own mmap (the default threshold starts at 128 KiB and
  // grows): Node's per-TLS-socket 64 KiB read buffer (NodeBIO, sized by libuv's read suggestion) then has only its
  // touched pages resident, and goes back to the kernel when the socket closes.
  mmap64k: { id: 'mmap64k', flags: [], env: { MALLOC_MMAP_THRESHOLD_: '65536' }, observe: true },
  'semi1+mmap64k': { id: 'semi1+mmap64k', flags: ['--max-semi-space-size=1'], env: { MALLOC_MMAP_THRESHOLD_: '65536' }, observe: true },
  'optimize-for-size': { id: 'optimize-for-size', flags: ['--optimize-for-size'], env: {}, observe: true },
  // Not in the default extras (slow JS, no memory win in a trial run); --configs jitless runs it.
  jitless: { id: 'jitless', flags: ['--jitless'], env: {}, observe: true },
};
const EXTRA_CONFIGS = ['observe-off', 'mmap64k', 'semi1+mmap64k', 'optimize-for-size'];

// ---- /proc readings ----

interface Mem {
  rssKb: number;
  anonKb: number;
  fileKb: number;
  pssKb: number;
  hwmKb: number;
  threads: number;
}

function mem(pid: number): Mem {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (text: string, name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  const roll = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rssKb: kb(st, 'VmRSS'), anonKb: kb(st, 'RssAnon'), fileKb: kb(st, 'RssFile'), pssKb: kb(roll, 'Pss'), hwmKb: kb(st, 'VmHWM'), threads: kb(st, 'Threads') };
}

function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, USER_HZ = 100
  } catch {
    return Number.NaN;
  }
}

const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
const perConnKb = (a: Mem, b: Mem, k: keyof Mem, n: number) => Math.round(((b[k] - a[k]) / n) * 10) / 10;

function exited(p: ChildProcess, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    p.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  if (!(await exited(p, 15_000))) {
    p.kill('SIGKILL');
    await exited(p, 5000);
  }
}

interface MallocStats {
  /** glibc malloc_stats() "Total (incl. mmap)": bytes malloc holds from the system, and bytes in use by the program. */
  systemBytes: number;
  inUseBytes: number;
  arenas: number;
}

const HAS_GDB = sh(['sh', '-c', 'command -v gdb']).code === 0;
const HEAPTRACK = opt('heaptrack', 'on') === 'on' && sh(['sh', '-c', 'command -v heaptrack && command -v heaptrack_print']).code === 0;

function descendants(pid: number): number[] {
  let kids: number[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {}
  return [pid, ...kids.flatMap(descendants)];
}

/** Live malloc'd bytes by category and by allocation site, from heaptrack's collapsed stacks (cost: leaked). */
interface LiveBySite {
  totalBytes: number;
  categories: Record<string, number>;
  /** The first frame (from the allocation upwards) that is not a generic allocator, and its bytes. */
  sites: { site: string; bytes: number }[];
}

const CATEGORIES: [RegExp, string][] = [
  [/NodeBIO::PeekWritable/, 'Node TLSWrap read buffer (NodeBIO, sized by libuv\'s 64 KiB read suggestion)'],
  [/NodeBIO/, 'Node NodeBIO, other (write side, initial buffers)'],
  [/ssl3_setup_(read_|write_)?buffer/, 'OpenSSL record-layer buffers'],
  [/tls_process_new_session_ticket|ssl_session_dup|SSL_SESSION_new|ssl_get_new_session/, 'OpenSSL sessions (tickets received, session objects)'],
  [/SSL_new|ossl_ssl_connection_new|SSL_CTX_new|SSL_CTX_use|SecureContext/, 'OpenSSL SSL / SSL_CTX objects'],
  [/tls_process_server_certificate|tls_process_client_certificate|ssl_verify_cert_chain|X509_verify_cert|d2i_X509|X509_/, 'OpenSSL certificates and verification'],
  [/SSL_do_handshake|ossl_statem|SSL_read|SSL_write|ssl3_|tls13_|tls1_/, 'OpenSSL handshake and record state (other)'],
  [/NodeArrayBufferAllocator|BackingStore|ArrayBuffer/, 'ArrayBuffer backing stores (Buffers)'],
  [/v8::internal|v8::/, 'V8, malloc side (not the JS heap)'],
  [/node::|uv_|uv__/, 'Node C++ and libuv (wraps, handles, requests)'],
];
const GENERIC = /^(malloc|calloc|realloc|free|operator new.*|CRYPTO_(malloc|zalloc|realloc|clear_realloc|memdup|strdup|strndup|secure_.*)|OPENSSL_sk_.*|BUF_MEM_grow.*|ASN1_STRING_set|std::.*|__gnu_cxx::.*|posix_memalign|aligned_alloc|\?\?|0x[0-9a-f]+|.* in \?\?)$/;

function liveBySite(collapsed: string): LiveBySite {
  const categories: Record<string, number> = {};
  const sites = new Map<string, number>();
  let totalBytes = 0;
  for (const line of collapsed.split('\n')) {
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    const bytes = Number(line.slice(sp + 1));
    if (!Number.isFinite(bytes) || bytes <= 0) continue;
    // Root first, leaf last; a frame may carry its source file: "uv__read (stream.c)".
    const frames = line.slice(0, sp).split(';').map((f) => f.replace(/ \([^()]*\.\w+\)$/, '').trim()).filter(Boolean);
    totalBytes += bytes;
    const text = frames.join(';');
    const cat = CATEGORIES.find(([re]) => re.test(text))?.[1] ?? 'other';
    categories[cat] = (categories[cat] ?? 0) + bytes;
    const site = [...frames].reverse().find((f) => !GENERIC.test(f)) ?? frames.at(-1) ?? '?';
    sites.set(site, (sites.get(site) ?? 0) + bytes);
  }
  return { totalBytes, categories, sites: [...sites].map(([site, bytes]) => ({ site, bytes })).sort((a, b) => b.bytes - a.bytes).slice(0, 25) };
}

/** glibc's malloc_stats(), called in the process by gdb (attach, call, detach: the process pauses ~1 s); it prints
 * to the process's stderr, read back with `stderr()`. */
async function mallocStats(pid: number, stderr: () => string): Promise<MallocStats | null> {
  if (!HAS_GDB) return null;
  const before = stderr().length;
  const r = sh(['gdb', '-p', String(pid), '-batch', '-nx', '-ex', 'call (void)malloc_stats()', '-ex', 'detach'], { timeoutMs: 60_000 });
  if (r.code !== 0) return null;
  for (let i = 0; i < 40; i++) {
    const text = stderr().slice(before);
    const total = /Total \(incl\. mmap\):\s+system bytes\s+=\s+(\d+)\s+in use bytes\s+=\s+(\d+)/.exec(text);
    if (total) return { systemBytes: Number(total[1]), inUseBytes: Number(total[2]), arenas: (text.match(/^Arena \d+:/gm) ?? []).length };
    await sleep(50);
  }
  return null;
}

/** SIGUSR2 → the agent (run with --report-on-signal) writes a diagnostic report: its V8 heap and libuv handles. */
async function diagnosticReport(pid: number, dir: string): Promise<V8Heap | null> {
  const seen = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    const f = readdirSync(dir).find((x) => x.endsWith('.json') && !seen.has(x));
    if (!f) continue;
    let report: { javascriptHeap: { totalMemory: number; totalCommittedMemory: number; usedMemory: number; heapSpaces: Record<string, { committedMemory: number; used: number }> }; libuv: { type: string }[] };
    try {
      report = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    } catch {
      continue; // still being written
    }
    const heap = report.javascriptHeap;
    return {
      totalMemory: heap.totalMemory,
      totalCommittedMemory: heap.totalCommittedMemory,
      usedMemory: heap.usedMemory,
      newSpaceCommitted: heap.heapSpaces.new_space?.committedMemory ?? Number.NaN,
      newSpaceUsed: heap.heapSpaces.new_space?.used ?? Number.NaN,
      oldSpaceCommitted: heap.heapSpaces.old_space?.committedMemory ?? Number.NaN,
      oldSpaceUsed: heap.heapSpaces.old_space?.used ?? Number.NaN,
      tcpHandles: report.libuv.filter((h) => h.type === 'tcp').length,
    };
  }
  return null;
}

async function waitFor(output: () => string, re: RegExp, what: string, timeoutMs = 120_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(output());
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`${what}: no ${re} within ${timeoutMs} ms:\n${output().slice(-2000)}`);
    await sleep(50);
  }
}

interface Breakdown {
  what: string;
  runtime: string;
  held: Mem;
  v8Mb: number | null;
  mallocMb: string | null;
  otherAnonMb: number | null;
  perConn: { anonKb: number; v8UsedKb: number | null; mallocInUseKb: number | null; mallocFreeKb: number | null };
}

function breakdown(what: string, runtime: string, idle: Mem, held: Mem, v8Idle: { total: number; used: number } | null, v8Held: { total: number; used: number } | null, mIdle: MallocStats | null, mHeld: MallocStats | null): Breakdown {
  const KB = 1024;
  const perConn = (a: number, b: number) => (b - a) / KB / CONNS;
  return {
    what,
    runtime,
    held,
    v8Mb: v8Held ? mb(v8Held.total / KB) : null,
    mallocMb: mHeld ? `${mb(mHeld.systemBytes / KB)} (${mb(mHeld.inUseBytes / KB)})` : null,
    otherAnonMb: v8Held && mHeld ? mb(held.anonKb - v8Held.total / KB - mHeld.systemBytes / KB) : null,
    perConn: {
      anonKb: (held.anonKb - idle.anonKb) / CONNS,
      v8UsedKb: v8Idle && v8Held ? perConn(v8Idle.used, v8Held.used) : null,
      mallocInUseKb: mIdle && mHeld ? perConn(mIdle.inUseBytes, mHeld.inUseBytes) : null,
      mallocFreeKb: mIdle && mHeld ? perConn(mIdle.systemBytes - mIdle.inUseBytes, mHeld.systemBytes - mHeld.inUseBytes) : null,
    },
  };
}

// ---- the floor: plain node:tls / node:net in one process ----

const FLOOR_JS = String.raw`// Written by bench/agent-memory.ts: N TLS (or TCP) connections held in one process, on any node >= 18.
// node floor.mjs server tls|tcp HOST PORT               listen; each SIGUSR2 prints {"phase":"stats"}
// node floor.mjs client tls|tcp HOST PORT SNI COUNT      SIGUSR2: open COUNT/2 (one request/response each), again, then close
// node floor.mjs both   tls|tcp SNI COUNT                a server on 127.0.0.1 and COUNT clients to it, same process
// Cert/key/CA from FLOOR_CERT, FLOOR_KEY, FLOOR_CA. Every phase line carries process.memoryUsage() and V8 spaces.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import v8 from 'node:v8';
const [mode, proto, ...a] = process.argv.slice(2);
const SETTLE = Number(process.env.FLOOR_SETTLE_MS ?? 2000);
const QUIET = Number(process.env.FLOOR_QUIET_MS ?? 10000);
const cert = readFileSync(process.env.FLOOR_CERT);
const key = readFileSync(process.env.FLOOR_KEY);
const ca = readFileSync(process.env.FLOOR_CA);
// One SecureContext for every client connection, as the agent's upstream side has (rt.upstreamContext); with
// FLOOR_CLIENT_CTX=per-conn, tls.connect({ ca }) builds a new one per connection (Node's default with a ca option).
const clientContext = process.env.FLOOR_CLIENT_CTX === 'per-conn' ? undefined : tls.createSecureContext({ ca });
const noop = () => {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function phase(name, extra = {}) {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
  console.log(JSON.stringify({ phase: name, ...extra, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, newSpace: spaces.new_space, oldSpace: spaces.old_space }));
}
function serve(host, port) {
  const onConn = (s) => {
    s.on('error', noop);
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
  };
  const server = proto === 'tls' ? tls.createServer({ cert, key, ALPNProtocols: ['http/1.1'] }, onConn) : net.createServer(onConn);
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}
async function open(host, port, sni, count) {
  const sockets = [];
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => new Promise((resolve, reject) => {
      const req = 'GET /status/200 HTTP/1.1\r\nhost: ' + sni + '\r\n\r\n';
      const s = proto === 'tls'
        ? tls.connect({ host, port, servername: sni, ...(clientContext ? { secureContext: clientContext } : { ca }), ALPNProtocols: ['http/1.1'] }, () => s.write(req))
        : net.connect({ host, port }, () => s.write(req));
      s.once('data', () => resolve());
      s.on('error', reject);
      sockets.push(s);
    })));
  }
  return sockets;
}
const steps = [];
let host, port, sni, count;
if (mode === 'server') {
  [host, port] = [a[0], Number(a[1])];
  await serve(host, port);
  console.log('listening');
  for (let i = 0; i < 10; i++) steps.push(async () => phase('stats'));
} else {
  if (mode === 'client') [host, port, sni, count] = [a[0], Number(a[1]), a[2], Number(a[3])];
  else {
    [sni, count] = [a[0], Number(a[1])];
    const server = await serve('127.0.0.1', 0);
    [host, port] = ['127.0.0.1', server.address().port];
  }
  // Two halves (a phase line after each), then close.
  const sockets = [];
  const half = Math.floor(count / 2);
  for (const [name, n] of [['half', half], ['held', count - half]]) {
    steps.push(async () => {
      const t0 = Date.now();
      sockets.push(...(await open(host, port, sni, n)));
      const openMs = Date.now() - t0;
      await sleep(SETTLE);
      phase(name, { held: sockets.length, openMs });
    });
  }
  steps.push(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await sleep(SETTLE);
    phase('closed');
  });
}
let busy = Promise.resolve();
process.on('SIGUSR2', () => { busy = busy.then(() => steps.shift()?.()); });
process.on('SIGTERM', () => process.exit(0));
await sleep(QUIET);
phase('idle');
setInterval(noop, 1 << 30);
`;

// ---- the run ----

interface V8Heap {
  totalMemory: number;
  totalCommittedMemory: number;
  usedMemory: number;
  newSpaceCommitted: number;
  newSpaceUsed: number;
  oldSpaceCommitted: number;
  oldSpaceUsed: number;
  tcpHandles: number;
}

interface FloorV8 {
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  newSpaceSize: number;
  oldSpaceSize: number;
}

interface AgentRun {
  runtime: string;
  config: string;
  rep: number;
  nodeFlags: string[];
  env: Record<string, string>;
  observe: boolean;
  /** 1-, 5- and 15-minute load average at the end of the run (a shared machine). */
  loadAverage: string;
  /** RssAnon each second of the quiet time after start. */
  idleTimelineAnonKb: number[];
  /** Fresh agent, listening, nothing else done (after the quiet time). */
  idleBeforeProbes: Mem;
  /** The same after the probes (report, malloc stats): the baseline of the per-connection figures. */
  idle: Mem;
  /** CONNS/2 held. */
  half: Mem;
  /** CONNS held (round 1), settle time after the last one opened. */
  held: Mem;
  /** The same connections, quiet time later (the V8 report and malloc stats are taken then). */
  heldSettled: Mem;
  /** Right after the probes (what they added). */
  heldAfterProbes: Mem;
  closed: Mem;
  /** After the keep-alive load and the 100 MB download, no connection open. */
  afterLoad: Mem;
  /** CONNS held again (round 2, after the load). */
  held2: Mem;
  closed2: Mem;
  rssKbPerConn: number;
  anonKbPerConn: number;
  /** From the second half alone: (held − half) / (CONNS − CONNS/2). */
  marginalRssKbPerConn: number;
  marginalAnonKbPerConn: number;
  activeAtHeld: number;
  openMs: number;
  agentCpuMsPerConnOpen: number;
  keepAlive: { perSecond: number; requests: number; errors: number; agentCpuMsPer1kReq: number } | null;
  /** From Node diagnostic reports (--report-on-signal) at idle and at round 1's held state. */
  v8AtIdle: V8Heap | null;
  v8AtHeld: V8Heap | null;
  mallocAtIdle: MallocStats | null;
  mallocAtHeld: MallocStats | null;
}

interface CpuAbRound {
  round: number;
  config: string;
  workload: string;
  cpuPerUnit: number;
  rate: number;
  errors: number;
  load1: number;
}

interface CpuAb {
  runtime: string;
  configs: string[];
  rounds: number;
  table: { workload: string; unit: string; a: string; b: string; aCpuMedian: number; bCpuMedian: number; pairedCpuDeltaPct: number[]; cpuDeltaPctMedian: number; aRateMedian: number; bRateMedian: number }[];
  rssAfterMb: number[];
  load1: number[];
  detail: CpuAbRound[];
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface FloorRun {
  runtime: string;
  mode: string;
  nodeFlags: string[];
  env: Record<string, string>;
  loadAverage: string;
  idleBeforeProbes: Mem;
  idle: Mem;
  half: Mem;
  held: Mem;
  closed: Mem;
  mallocAtIdle: MallocStats | null;
  mallocAtHeld: MallocStats | null;
  rssKbPerConn: number;
  anonKbPerConn: number;
  marginalRssKbPerConn: number;
  marginalAnonKbPerConn: number;
  v8: { idle: FloorV8; held: FloorV8 };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespace and nft inside it)');
  if (!existsSync(bundle)) throw new Error(`${bundle} missing: run npm run build first`);
  const runtimes = findRuntimes();
  if (runtimes.length === 0) throw new Error('no runtime to measure');
  for (const r of runtimes) console.log(`runtime ${r.id}: ${r.binary} ${r.version}, OpenSSL ${r.openssl} (${r.sharedOpenssl ? 'system, shared' : 'bundled'})`);
  const ns = new Namespaces();
  const pki = makePki();
  const onSignal = () => {
    void ns.teardown().finally(() => {
      removePki(pki);
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const agentRuns: AgentRun[] = [];
  const heaptrack: { idle?: LiveBySite; held?: LiveBySite } = {};
  const cpuAb: CpuAb[] = [];
  const floorRuns: FloorRun[] = [];
  try {
    ns.add(NS);
    for (const ip of [VIA_AGENT, DIRECT, FLOOR_IP, ...AB_IPS]) ns.execOk(NS, ['ip', 'addr', 'add', `${ip}/32`, 'dev', 'lo']);
    const leaf = pki.leaf(SNI, `DNS:${SNI}`, 'lab');
    await ns.spawn(NS, ['node', join(repo, 'provisioner/lab/upstream-server.mjs'), ...[VIA_AGENT, DIRECT, ...AB_IPS].flatMap((ip) => ['--listen', `${ip}:443`, '--cert', leaf.cert, '--key', leaf.key])], new RegExp(`listening ${DIRECT.replace(/\./g, '\\.')}:443`));
    ns.execOk(NS, ['nft', '-f', '-'], { input: `table ip epag_mem {
  chain out { type nat hook output priority -100; policy accept; meta skuid ${AGENT_UID} return;
    ip daddr ${VIA_AGENT} tcp dport 443 redirect to :${AGENT_PORT};
    ip daddr ${AB_IPS[0]} tcp dport 443 redirect to :8451;
    ip daddr ${AB_IPS[1]} tcp dport 443 redirect to :8452;
  }
}
` });
    const loadEnv = { BENCH_CA: `${pki.labRoot}:${pki.agentCaCert}` };
    const shellEnv = (env: Record<string, string>) => Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
    const activeConnections = () => (healthJson(ns, NS, HEALTH_PORT).connections as { active: number }).active;
    const waitActive = async (n: number, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      let a = activeConnections();
      while (a !== n && Date.now() < deadline) {
        await sleep(200);
        a = activeConnections();
      }
      return a;
    };
    const load = (args: string[]) => {
      const r = ns.exec(NS, ['sh', '-c', `ulimit -n 8192; exec node ${loadScript} ${args.join(' ')}`], { env: loadEnv, timeoutMs: 120_000 });
      const line = r.stdout.trim().split('\n').at(-1) ?? '';
      if (r.code !== 0 || !line.startsWith('{')) throw new Error(`load ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
      return JSON.parse(line) as Record<string, number>;
    };
    const hold = async (ip: string, count: number) => {
      const h = await ns.spawn(NS, ['sh', '-c', `ulimit -n 8192; exec node ${loadScript} hold ${ip} ${SNI} ${count}`], new RegExp(`"held":${count}\\}`), loadEnv, 300_000);
      return h.proc;
    };

    /** A state dir, a report dir (both the agent's uid's), a config and a log path for one agent run. */
    const agentFiles = (tag: string, observe: boolean, port = AGENT_PORT, healthPort = HEALTH_PORT) => {
      const stateDir = join(pki.dir, `state-${tag}`);
      const reportDir = join(pki.dir, `report-${tag}`);
      for (const d of [stateDir, reportDir]) {
        mkdirSync(d);
        chownSync(d, AGENT_UID, AGENT_UID);
      }
      const config = join(pki.dir, `agent-${tag}.json`);
      writeFileSync(config, JSON.stringify({
        listen: [{ host: '127.0.0.1', port }],
        health: { host: '127.0.0.1', port: healthPort },
        ca: { certFile: pki.agentCaCert, keyFile: pki.agentCaKey },
        upstream: { caBundleFile: pki.labRoot },
        limits: { maxConnections: 20000 },
        log: { level: 'info', connectLog: true },
        observe: { enabled: observe },
        stateDir,
      }));
      return { config, reportDir, agentLog: join(pki.dir, `agent-${tag}.log`) };
    };

    // ---- heaptrack: which allocation sites hold the agent's malloc'd memory, idle and with CONNS held ----
    if (HEAPTRACK) {
      const rt = runtimes[0]!;
      for (const count of [0, CONNS]) {
        const tag = `heaptrack-${count}`;
        const { config, agentLog } = agentFiles(tag, true);
        const out = join(pki.dir, tag);
        const cmd = `ulimit -n 20000; exec env ${shellEnv(rt.env)} heaptrack -o ${out} ${rt.cmd.join(' ')} ${bundle} run --config ${config} --user ${AGENT_UID} > ${agentLog} 2>&1`;
        process.stdout.write(`heaptrack: agent ${rt.id}, ${count} held: `);
        const proc = await ns.spawnListening(NS, ['sh', '-c', cmd], HEALTH_PORT);
        try {
          const nodePid = descendants(proc.pid!).find((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'node');
          if (!nodePid) throw new Error('no node process under heaptrack');
          await sleep(SETTLE_MS);
          const holders: ChildProcess[] = [];
          if (count > 0) {
            holders.push(await hold(VIA_AGENT, count));
            await waitActive(count);
            await sleep(SETTLE_MS);
          }
          // SIGKILL: what heaptrack then reports as "leaked" is what was allocated and live at this moment.
          process.kill(nodePid, 'SIGKILL');
          if (!(await exited(proc, 120_000))) throw new Error('heaptrack did not finish');
          for (const h of holders) await stop(h);
          const file = readdirSync(pki.dir).find((f) => f.startsWith(`${tag}.`) && /\.(zst|gz)$/.test(f));
          if (!file) throw new Error('no heaptrack data file');
          const stacks = join(pki.dir, `${tag}.stacks`);
          sh(['heaptrack_print', '-f', join(pki.dir, file), '--print-leaks', '0', '--print-peaks', '0', '--print-allocators', '0', '--print-temporary', '0', '--flamegraph-cost-type', 'leaked', '-F', stacks], { timeoutMs: 300_000 });
          heaptrack[count === 0 ? 'idle' : 'held'] = liveBySite(readFileSync(stacks, 'utf8'));
          console.log(`${mb(heaptrack[count === 0 ? 'idle' : 'held']!.totalBytes / 1024)} MB live in malloc`);
        } finally {
          await stop(proc);
        }
      }
    }

    // ---- agent runs ----
    let n = 0;
    const plan: { rt: Runtime; cfg: Config }[] = [];
    for (const rt of runtimes) for (const id of WANT_CONFIGS) plan.push({ rt, cfg: CONFIGS[id]! });
    if (EXTRA) for (const id of EXTRA_CONFIGS) plan.push({ rt: runtimes[0]!, cfg: CONFIGS[id]! });
    const planned = plan.length * REPS;
    for (let rep = 0; rep < REPS; rep++) {
      for (const { rt, cfg } of plan) {
        n++;
        const tag = `${n}-${rt.id}-${cfg.id.replace(/\W/g, '_')}`;
        const { config, reportDir, agentLog } = agentFiles(tag, cfg.observe);
        const flags = [...cfg.flags, '--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reportDir}`];
        const env = { ...rt.env, ...cfg.env };
        const cmd = `ulimit -n 20000; exec env ${shellEnv(env)} ${rt.cmd.join(' ')} ${flags.join(' ')} ${bundle} run --config ${config} --user ${AGENT_UID} > ${agentLog} 2>&1`;
        process.stdout.write(`[${n}/${planned}] agent ${rt.id} ${cfg.id} rep ${rep}: `);
        const agent = await ns.spawnListening(NS, ['sh', '-c', cmd], HEALTH_PORT);
        const pid = agent.pid!;
        try {
          const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
          if (comm !== 'node') throw new Error(`pid ${pid} is ${comm}, not the agent's node`);
          // Idle: RssAnon every second (startup garbage goes when V8's memory reducer runs), then the reading.
          const idleTimelineAnonKb: number[] = [];
          for (let t = 0; t < QUIET_MS; t += 1000) {
            await sleep(Math.min(1000, QUIET_MS - t));
            idleTimelineAnonKb.push(mem(pid).anonKb);
          }
          const agentStderr = () => readFileSync(agentLog, 'utf8');
          // Probes at idle (V8 report, malloc stats): they leave some garbage, so the baseline is read after them.
          const idleBeforeProbes = mem(pid);
          const v8AtIdle = await diagnosticReport(pid, reportDir);
          const mallocAtIdle = await mallocStats(pid, agentStderr);
          await sleep(500);
          const idle = mem(pid);
          // Round 1: a fresh agent, nothing else has run in it. Two holders of N/2 each: the second half's cost is
          // the marginal cost per connection, without one-time costs (code paged in, first allocations, JIT).
          const holders: ChildProcess[] = [];
          const closeAll = async () => {
            for (const h of holders.splice(0)) await stop(h);
            const left = await waitActive(0);
            if (left !== 0) throw new Error(`${left} connections still active after the holders exited`);
            await sleep(SETTLE_MS);
          };
          let c0 = cpuMs(pid);
          const t0 = Date.now();
          holders.push(await hold(VIA_AGENT, HALF));
          let openCpu = cpuMs(pid) - c0;
          await waitActive(HALF);
          await sleep(SETTLE_MS);
          const half = mem(pid);
          c0 = cpuMs(pid);
          holders.push(await hold(VIA_AGENT, CONNS - HALF));
          openCpu += cpuMs(pid) - c0;
          const openMs = Date.now() - t0 - SETTLE_MS;
          const activeAtHeld = await waitActive(CONNS);
          await sleep(SETTLE_MS);
          const held = mem(pid);
          await sleep(QUIET_MS);
          const heldSettled = mem(pid);
          const v8AtHeld = await diagnosticReport(pid, reportDir);
          const mallocAtHeld = await mallocStats(pid, agentStderr);
          const heldAfterProbes = mem(pid);
          await closeAll();
          const closed = mem(pid);
          // Some load, as agent-bench runs before its memory section: keep-alive GETs, then one 100 MB download.
          let keepAlive: AgentRun['keepAlive'] = null;
          if (LOAD_SECONDS > 0) {
            const k0 = cpuMs(pid);
            const ka = load(['keepalive', VIA_AGENT, SNI, String(LOAD_SECONDS), '50']);
            keepAlive = { perSecond: ka.perSecond!, requests: ka.requests!, errors: ka.errors!, agentCpuMsPer1kReq: Math.round(((cpuMs(pid) - k0) / ka.requests!) * 1000 * 10) / 10 };
            load(['bulk', VIA_AGENT, SNI, String(100_000_000)]);
          }
          await waitActive(0);
          await sleep(SETTLE_MS);
          const afterLoad = mem(pid);
          // Round 2: 1,000 again, after that load (the state agent-bench measures in).
          holders.push(await hold(VIA_AGENT, CONNS));
          await waitActive(CONNS);
          await sleep(SETTLE_MS);
          const held2 = mem(pid);
          await closeAll();
          const closed2 = mem(pid);
          const run: AgentRun = {
            runtime: rt.id, config: cfg.id, rep, nodeFlags: cfg.flags, env: cfg.env, observe: cfg.observe,
            loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
            idleTimelineAnonKb, idleBeforeProbes, idle, half, held, heldSettled, heldAfterProbes, closed, afterLoad, held2, closed2,
            rssKbPerConn: perConnKb(idle, held, 'rssKb', CONNS), anonKbPerConn: perConnKb(idle, held, 'anonKb', CONNS),
            marginalRssKbPerConn: perConnKb(half, held, 'rssKb', CONNS - HALF), marginalAnonKbPerConn: perConnKb(half, held, 'anonKb', CONNS - HALF),
            activeAtHeld, openMs, agentCpuMsPerConnOpen: Math.round((openCpu / CONNS) * 100) / 100, keepAlive, v8AtIdle, v8AtHeld, mallocAtIdle, mallocAtHeld,
          };
          agentRuns.push(run);
          console.log(`RSS idle ${mb(idle.rssKb)} → held ${mb(held.rssKb)} MB (${run.rssKbPerConn} KB/conn, anon ${run.anonKbPerConn}; 2nd half ${run.marginalRssKbPerConn} / ${run.marginalAnonKbPerConn}), closed ${mb(closed.rssKb)}, after load ${mb(afterLoad.rssKb)}, held again ${mb(held2.rssKb)}`);
        } finally {
          await stop(agent);
        }
      }
    }

    // ---- CPU A/B: what a memory flag costs in CPU, both agents alive, loaded alternately (off/on, on/off, ...) ----
    if (CPU_AB.length === 2) {
      // Default: the first runtime, and Debian's node 18 (the production runtime) when present.
      const abRuntimes = CPU_AB_RUNTIMES.length ? runtimes.filter((r) => CPU_AB_RUNTIMES.includes(r.id)) : runtimes.filter((r, i) => i === 0 || r.id === 'debian18');
      const cfgs = CPU_AB.map((id) => CONFIGS[id]!);
      const workloads = [
        { name: `keep-alive GETs (50 conns, ${CPU_AB_SECONDS} s)`, unit: 'agent CPU ms per 1k requests', args: (ip: string) => ['keepalive', ip, SNI, String(CPU_AB_SECONDS), '50'], work: (r: Record<string, number>) => r.requests! / 1000, rate: (r: Record<string, number>) => r.perSecond! },
        { name: `new TLS connections (concurrency 8, ${CPU_AB_SECONDS} s)`, unit: 'agent CPU ms per connection', args: (ip: string) => ['newconns', ip, SNI, String(CPU_AB_SECONDS), '8'], work: (r: Record<string, number>) => r.connections!, rate: (r: Record<string, number>) => r.perSecond! },
        { name: 'bulk download (100 MB)', unit: 'agent CPU ms per GB', args: (ip: string) => ['bulk', ip, SNI, '100000000'], work: (r: Record<string, number>) => r.bytes! / 1e9, rate: (r: Record<string, number>) => r.MBps! },
      ];
      for (const rt of abRuntimes) {
        const procs: ChildProcess[] = [];
        try {
          const pids: number[] = [];
          for (const [i, cfg] of cfgs.entries()) {
            const { config, agentLog } = agentFiles(`ab-${rt.id}-${i}`, cfg.observe, 8451 + i, 9451 + i);
            const cmd = `ulimit -n 20000; exec env ${shellEnv({ ...rt.env, ...cfg.env })} ${rt.cmd.join(' ')} ${cfg.flags.join(' ')} ${bundle} run --config ${config} --user ${AGENT_UID} > ${agentLog} 2>&1`;
            const p = await ns.spawnListening(NS, ['sh', '-c', cmd], 9451 + i);
            procs.push(p);
            pids.push(p.pid!);
          }
          for (const ip of AB_IPS) load(['newconns', ip, SNI, '1', '4']); // warm up: forge cache, JIT
          const rounds: CpuAbRound[] = [];
          for (let round = 0; round < CPU_AB_ROUNDS; round++) {
            for (const [wi, w] of workloads.entries()) {
              const order = (round + wi) % 2 === 0 ? [0, 1] : [1, 0];
              for (const side of order) {
                const c0 = cpuMs(pids[side]!);
                const r = load(w.args(AB_IPS[side]!));
                rounds.push({ round, config: cfgs[side]!.id, workload: w.name, cpuPerUnit: Math.round(((cpuMs(pids[side]!) - c0) / w.work(r)) * 100) / 100, rate: w.rate(r), errors: r.errors ?? 0, load1: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) });
              }
            }
          }
          const table = workloads.map((w) => {
            const of = (cfg: string) => rounds.filter((r) => r.workload === w.name && r.config === cfg);
            const [a, b] = cfgs.map((c) => of(c.id));
            const paired = a!.map((ra, i) => Math.round(((b![i]!.cpuPerUnit - ra.cpuPerUnit) / ra.cpuPerUnit) * 1000) / 10);
            return { workload: w.name, unit: w.unit, a: cfgs[0]!.id, b: cfgs[1]!.id, aCpuMedian: round2(median(a!.map((r) => r.cpuPerUnit))), bCpuMedian: round2(median(b!.map((r) => r.cpuPerUnit))), pairedCpuDeltaPct: paired, cpuDeltaPctMedian: round2(median(paired)), aRateMedian: round2(median(a!.map((r) => r.rate))), bRateMedian: round2(median(b!.map((r) => r.rate))) };
          });
          const rss = pids.map((p) => mb(mem(p).rssKb));
          cpuAb.push({ runtime: rt.id, configs: cfgs.map((c) => c.id), rounds: CPU_AB_ROUNDS, table, rssAfterMb: rss, load1: rounds.map((r) => r.load1), detail: rounds });
          console.log(`cpu A/B ${rt.id} ${cfgs.map((c) => c.id).join(' vs ')}: ${table.map((t) => `${t.workload}: ${t.aCpuMedian} vs ${t.bCpuMedian} ${t.unit} (paired ${t.pairedCpuDeltaPct.join(', ')} %)`).join('; ')}`);
        } finally {
          for (const p of procs) await stop(p);
        }
      }
    }

    // ---- floor runs ----
    if (FLOOR) {
      const floorJs = join(pki.dir, 'floor.mjs');
      writeFileSync(floorJs, FLOOR_JS);
      const floorEnv = { FLOOR_CERT: leaf.cert, FLOOR_KEY: leaf.key, FLOOR_CA: pki.labRoot, FLOOR_SETTLE_MS: String(SETTLE_MS), FLOOR_QUIET_MS: String(QUIET_MS) };
      const modes: { mode: string; flags: string[]; env?: Record<string, string>; firstRuntimeOnly?: boolean }[] = [
        { mode: 'tls-server', flags: [] },
        { mode: 'tls-client', flags: [] },
        { mode: 'tls-both', flags: [] },
        { mode: 'tls-both', flags: ['--max-semi-space-size=1'] },
        { mode: 'tls-both', flags: [], env: { MALLOC_MMAP_THRESHOLD_: '65536' } },
        { mode: 'tcp-both', flags: [] },
        // Node's default when tls.connect() gets a ca option: a new SecureContext (SSL_CTX, X509_STORE) per connection.
        { mode: 'tls-client-ctxperconn', flags: [], firstRuntimeOnly: true },
      ];
      const v8Of = (line: string): FloorV8 => {
        const j = JSON.parse(line) as Record<string, unknown>;
        const s = (x: unknown) => (x as { size: number } | undefined)?.size ?? Number.NaN;
        return { heapTotal: j.heapTotal as number, heapUsed: j.heapUsed as number, external: j.external as number, arrayBuffers: j.arrayBuffers as number, newSpaceSize: s(j.newSpace), oldSpaceSize: s(j.oldSpace) };
      };
      for (const rt of runtimes) {
        for (const m of modes) {
          if (m.firstRuntimeOnly && rt !== runtimes[0]) continue;
          const [proto, role] = m.mode.split('-') as [string, string];
          const args = role === 'server' ? ['server', proto, FLOOR_IP, '443'] : role === 'client' ? ['client', proto, DIRECT, '443', SNI, String(CONNS)] : ['both', proto, SNI, String(CONNS)];
          const cmd = `ulimit -n 20000; exec env ${shellEnv({ ...rt.env, ...m.env })} ${rt.cmd.join(' ')} ${m.flags.join(' ')} ${floorJs} ${args.join(' ')}`;
          const flagText = [...m.flags, ...Object.entries(m.env ?? {}).map(([k, v]) => `${k}=${v}`)].join(' ');
          process.stdout.write(`floor ${rt.id} ${m.mode} ${flagText}: `);
          const env = { ...floorEnv, FLOOR_CLIENT_CTX: m.mode.endsWith('ctxperconn') ? 'per-conn' : 'shared' };
          const f = await ns.spawn(NS, ['sh', '-c', cmd], /"phase":"idle"/, env, 30_000 + QUIET_MS);
          const pid = f.proc.pid!;
          try {
            const lines = () => f.output().split('\n').filter((l) => l.startsWith('{"phase"'));
            const idleBeforeProbes = mem(pid);
            const idleLine = lines()[0]!;
            const mallocAtIdle = await mallocStats(pid, f.output);
            await sleep(500);
            const idle = mem(pid);
            let half: Mem;
            let held: Mem;
            let closed: Mem;
            let heldLine: string;
            let mallocAtHeld: MallocStats | null;
            if (role === 'server') {
              const holders = [await hold(FLOOR_IP, HALF)];
              await sleep(SETTLE_MS);
              half = mem(pid);
              holders.push(await hold(FLOOR_IP, CONNS - HALF));
              await sleep(SETTLE_MS);
              held = mem(pid);
              mallocAtHeld = await mallocStats(pid, f.output);
              process.kill(pid, 'SIGUSR2');
              await waitFor(() => lines().join('\n'), /"phase":"stats"/, 'floor stats');
              heldLine = lines()[1]!;
              for (const h of holders) await stop(h);
              await sleep(SETTLE_MS);
              closed = mem(pid);
            } else {
              process.kill(pid, 'SIGUSR2');
              await waitFor(f.output, /"phase":"half"/, 'floor half', 300_000);
              half = mem(pid);
              process.kill(pid, 'SIGUSR2');
              await waitFor(f.output, /"phase":"held"/, 'floor held', 300_000);
              held = mem(pid);
              mallocAtHeld = await mallocStats(pid, f.output);
              heldLine = lines()[2]!;
              const h = JSON.parse(heldLine) as { held: number };
              if (h.held !== CONNS) throw new Error(`floor held ${h.held}, not ${CONNS}`);
              process.kill(pid, 'SIGUSR2');
              await waitFor(f.output, /"phase":"closed"/, 'floor closed');
              closed = mem(pid);
            }
            const run: FloorRun = {
              runtime: rt.id, mode: m.mode, nodeFlags: m.flags, env: m.env ?? {}, loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
              idleBeforeProbes, idle, half, held, closed, mallocAtIdle, mallocAtHeld,
              rssKbPerConn: perConnKb(idle, held, 'rssKb', CONNS), anonKbPerConn: perConnKb(idle, held, 'anonKb', CONNS),
              marginalRssKbPerConn: perConnKb(half, held, 'rssKb', CONNS - HALF), marginalAnonKbPerConn: perConnKb(half, held, 'anonKb', CONNS - HALF),
              v8: { idle: v8Of(idleLine), held: v8Of(heldLine) },
            };
            floorRuns.push(run);
            console.log(`RSS idle ${mb(idle.rssKb)} → held ${mb(held.rssKb)} MB (${run.rssKbPerConn} KB/conn, anon ${run.anonKbPerConn}; 2nd half ${run.marginalRssKbPerConn} / ${run.marginalAnonKbPerConn}), closed ${mb(closed.rssKb)}`);
          } finally {
            await stop(f.proc);
          }
        }
      }
    }
  } finally {
    await ns.teardown();
    removePki(pki);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  // ---- report ----
  const rtOf = (id: string) => runtimes.find((r) => r.id === id)!;
  const cfgText = (r: AgentRun) => [...r.nodeFlags, ...Object.entries(r.env).map(([k, v]) => `${k}=${v}`), ...(r.observe ? [] : ['observe off'])].join(' ') || '(none)';
  const floorFlags = (f: FloorRun) => [...f.nodeFlags, ...Object.entries(f.env).map(([k, v]) => `${k}=${v}`)].join(' ');
  const floorWhat = (mode: string) =>
    ({ 'tls-server': 'TLS, server side only', 'tls-client': 'TLS, client side only', 'tls-both': 'TLS, both ends', 'tcp-both': 'TCP, both ends (no TLS)', 'tls-client-ctxperconn': 'TLS, client side only, a SecureContext per connection' })[mode] ?? mode;
  const rtText = (id: string) => {
    const rt = rtOf(id);
    return `${rt.id} ${rt.version} (OpenSSL ${rt.openssl}${rt.sharedOpenssl ? ', system' : ''})`;
  };
  console.log(`\nagent: ${CONNS} held intercepted connections, a fresh agent per row. MB = MiB; RSS = VmRSS (RssAnon + RssFile) from /proc.`);
  console.log(`idle = ${QUIET_MS / 1000} s after start; held = ${SETTLE_MS / 1000} s after the last connection opened; held, settled = ${QUIET_MS / 1000} s later. per conn = (held − idle) / ${CONNS}; 2nd half = (held − held at ${HALF}) / ${CONNS - HALF}, without one-time costs. V8 = heap committed / used (new space committed), from a diagnostic report at "held, settled".`);
  console.log('| runtime | flags / env | idle RSS (anon + file) | held RSS (anon + file) | held, settled | per conn RSS / anon KB | 2nd half RSS / anon KB | V8 at held MB | closed RSS | after load RSS | held again RSS | agent CPU ms per conn opened | CPU ms per 1k req |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of agentRuns) {
    const v = r.v8AtHeld;
    const v8 = v ? `${mb(v.totalCommittedMemory / 1024)} / ${mb(v.usedMemory / 1024)} (${mb(v.newSpaceCommitted / 1024)})` : '–';
    console.log(`| ${rtText(r.runtime)} | ${cfgText(r)} | ${mb(r.idle.rssKb)} (${mb(r.idle.anonKb)} + ${mb(r.idle.fileKb)}) | ${mb(r.held.rssKb)} (${mb(r.held.anonKb)} + ${mb(r.held.fileKb)}) | ${mb(r.heldSettled.rssKb)} | ${r.rssKbPerConn} / ${r.anonKbPerConn} | ${r.marginalRssKbPerConn} / ${r.marginalAnonKbPerConn} | ${v8} | ${mb(r.closed.rssKb)} | ${mb(r.afterLoad.rssKb)} | ${mb(r.held2.rssKb)} | ${r.agentCpuMsPerConnOpen} | ${r.keepAlive?.agentCpuMsPer1kReq ?? '–'} |`);
  }
  if (floorRuns.length) {
    console.log(`\nfloor: plain Node, ${CONNS} connections held in one process (per conn and 2nd half as above; V8 heapTotal and external from process.memoryUsage()):`);
    console.log('| runtime | what | flags | idle RSS | held RSS (anon + file) | per conn RSS / anon KB | 2nd half RSS / anon KB | closed RSS | V8 heapTotal idle → held MB | new space held MB | external held MB |');
    console.log('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const f of floorRuns) {
      console.log(`| ${rtText(f.runtime)} | ${floorWhat(f.mode)} | ${floorFlags(f) || '(none)'} | ${mb(f.idle.rssKb)} | ${mb(f.held.rssKb)} (${mb(f.held.anonKb)} + ${mb(f.held.fileKb)}) | ${f.rssKbPerConn} / ${f.anonKbPerConn} | ${f.marginalRssKbPerConn} / ${f.marginalAnonKbPerConn} | ${mb(f.closed.rssKb)} | ${mb(f.v8.idle.heapTotal / 1024)} → ${mb(f.v8.held.heapTotal / 1024)} | ${mb(f.v8.held.newSpaceSize / 1024)} | ${mb(f.v8.held.external / 1024)} |`);
    }
  }
  // Where the anonymous memory is at "held": V8's heap (committed), glibc malloc (what it holds from the system; what
  // is in use), and the rest (thread stacks, other mappings; committed-but-untouched pages make it approximate).
  const rows: Breakdown[] = [
    ...agentRuns.map((r) => breakdown(`agent ${cfgText(r)}`, r.runtime, r.idle, r.heldSettled, r.v8AtIdle && { total: r.v8AtIdle.totalCommittedMemory, used: r.v8AtIdle.usedMemory }, r.v8AtHeld && { total: r.v8AtHeld.totalCommittedMemory, used: r.v8AtHeld.usedMemory }, r.mallocAtIdle, r.mallocAtHeld)),
    ...floorRuns.map((f) => breakdown(`floor ${floorWhat(f.mode)} ${floorFlags(f)}`.trim(), f.runtime, f.idle, f.held, { total: f.v8.idle.heapTotal, used: f.v8.idle.heapUsed }, { total: f.v8.held.heapTotal, used: f.v8.held.heapUsed }, f.mallocAtIdle, f.mallocAtHeld)),
  ];
  console.log(`\nbreakdown at ${CONNS} held (MB), and per connection (KB, held − idle): V8 = heap committed (used); malloc = glibc malloc_stats() system bytes (in use); other anon = RssAnon − V8 committed − malloc system:`);
  console.log('| runtime | process | RSS | file | anon | V8 | malloc | other anon | per conn: anon | V8 used | malloc in use | malloc free-but-held |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const b of rows) {
    const k = (x: number | null) => (x === null ? '–' : String(Math.round(x * 10) / 10));
    console.log(`| ${b.runtime} | ${b.what} | ${mb(b.held.rssKb)} | ${mb(b.held.fileKb)} | ${mb(b.held.anonKb)} | ${b.v8Mb ?? '–'} | ${b.mallocMb ?? '–'} | ${b.otherAnonMb ?? '–'} | ${k(b.perConn.anonKb)} | ${k(b.perConn.v8UsedKb)} | ${k(b.perConn.mallocInUseKb)} | ${k(b.perConn.mallocFreeKb)} |`);
  }
  for (const ab of cpuAb) {
    console.log(`\nCPU A/B on ${rtText(ab.runtime)}: ${ab.configs.join(' vs ')}, both agents alive, ${ab.rounds} alternating rounds (medians; paired per-round differences in brackets; 1-min load ${Math.min(...ab.load1)}-${Math.max(...ab.load1)}):`);
    console.log(`| workload | ${ab.configs[0]} | ${ab.configs[1]} | CPU ${ab.configs[1]} vs ${ab.configs[0]} | rate ${ab.configs[0]} / ${ab.configs[1]} |`);
    console.log('|---|---:|---:|---:|---:|');
    for (const t of ab.table) console.log(`| ${t.workload} | ${t.aCpuMedian} | ${t.bCpuMedian} ${t.unit} | ${t.cpuDeltaPctMedian}% (${t.pairedCpuDeltaPct.join(', ')}) | ${t.aRateMedian} / ${t.bRateMedian} |`);
  }
  if (heaptrack.idle && heaptrack.held) {
    const { idle, held } = heaptrack;
    console.log(`\nheaptrack (agent on ${rtText(runtimes[0]!.id)}, base config): malloc'd bytes live at idle and with ${CONNS} held, by what allocated them (MB; per conn KB = (held − idle) / ${CONNS}):`);
    console.log('| category | idle MB | held MB | per conn KB |');
    console.log('|---|---:|---:|---:|');
    const cats = [...new Set([...Object.keys(held.categories), ...Object.keys(idle.categories)])].sort((a, b) => (held.categories[b] ?? 0) - (held.categories[a] ?? 0));
    for (const c of [...cats, 'total']) {
      const i = c === 'total' ? idle.totalBytes : (idle.categories[c] ?? 0);
      const h = c === 'total' ? held.totalBytes : (held.categories[c] ?? 0);
      console.log(`| ${c} | ${mb(i / 1024)} | ${mb(h / 1024)} | ${Math.round(((h - i) / 1024 / CONNS) * 10) / 10} |`);
    }
    console.log('top allocation sites with connections held (first frame that is not a generic allocator):');
    console.log('| site | held MB | per conn KB |');
    console.log('|---|---:|---:|');
    for (const x of held.sites.slice(0, 15)) {
      const i = idle.sites.find((y) => y.site === x.site)?.bytes ?? 0;
      console.log(`| \`${x.site.slice(0, 110)}\` | ${mb(x.bytes / 1024)} | ${Math.round(((x.bytes - i) / 1024 / CONNS) * 10) / 10} |`);
    }
  }
  const out = {
    date: new Date().toISOString(),
    conns: CONNS,
    settleMs: SETTLE_MS,
    quietMs: QUIET_MS,
    loadSeconds: LOAD_SECONDS,
    loadAverage: readFileSync('/proc/loadavg', 'utf8').trim(),
    kernel: spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim(),
    runtimes: runtimes.map(({ cmd: _cmd, env: _env, ...r }) => r),
    units: 'kB from /proc (VmRSS, RssAnon, RssFile, VmHWM; Pss from smaps_rollup); V8 figures in bytes',
    agentRuns,
    floorRuns,
    breakdown: rows,
    heaptrack,
    cpuAb,
  };
  mkdirSync(dirname(JSON_OUT), { recursive: true });
  writeFileSync(JSON_OUT, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${JSON_OUT}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
