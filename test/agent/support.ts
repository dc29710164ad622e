// Real-part test support for the agent: our own network namespaces (prefix `epag-`, addresses 198.18.200.0/24 and
// loopback only), test PKI made with openssl, and background processes that are always killed by PID.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const repo = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
/** The distro's python3 (a pyenv shim on PATH costs ~1 s per start). */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** An existing unprivileged uid: the agent drops to it, and the owner-match exclusion names it. */
export const AGENT_UID = 65534;

export function skipReason(tools: string[] = ['ip', 'nft', 'iptables', 'curl', 'openssl', 'python3']): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, netfilter inside them)';
  for (const t of tools) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) return `${t} is not installed`;
  }
  return undefined;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function sh(argv: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Run {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    input: opts.input,
    timeout: opts.timeoutMs ?? 20_000,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, LC_ALL: 'C', ...opts.env },
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

export function shOk(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  const r = sh(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export class Namespaces {
  readonly names: string[] = [];
  private readonly procs: ChildProcess[] = [];

  add(name: string): string {
    if (!name.startsWith('epag-')) throw new Error(`namespace ${name} must start with epag-`);
    sh(['ip', 'netns', 'del', name]); // a leftover from a killed run with the same pid
    shOk(['ip', 'netns', 'add', name]);
    this.names.push(name);
    shOk(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  exec(ns: string, argv: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Run {
    return sh(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  execOk(ns: string, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
    return shOk(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  /** Starts a silent long-running process in `ns` and resolves once something listens on `port` there. */
  async spawnListening(ns: string, argv: string[], port: number): Promise<ChildProcess> {
    const proc = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'ignore'] });
    this.procs.push(proc);
    for (let i = 0; i < 100; i++) {
      if (this.exec(ns, ['ss', '-Hltn', `sport = :${port}`]).stdout.trim()) return proc;
      if (proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${argv.join(' ')} is not listening on port ${port}`);
  }

  /** Starts a long-running process in `ns`; resolves once `ready` matches its stdout or stderr. */
  spawn(ns: string, argv: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}, readyTimeoutMs = 20_000): Promise<{ proc: ChildProcess; output: () => string }> {
    const proc = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    this.procs.push(proc);
    let out = '';
    return new Promise((resolveP, reject) => {
      const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} not ready within ${readyTimeoutMs} ms:\n${out}`)), readyTimeoutMs);
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.length > 4_000_000) out = out.slice(-2_000_000);
        if (ready.test(out)) {
          clearTimeout(timer);
          resolveP({ proc, output: () => out });
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${argv.join(' ')} exited ${code} before ready:\n${out}`));
      });
    });
  }

  /** Kills our processes by PID (SIGTERM, then SIGKILL) and deletes our namespaces. */
  async teardown(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.pid) p.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (this.procs.some((p) => p.exitCode === null && p.signalCode === null) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const ns of this.names.reverse()) {
      // Anything still inside (a grandchild) is killed by PID before the namespace goes away.
      const pids = sh(['ip', 'netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
      }
      sh(['ip', 'netns', 'del', ns]);
    }
    this.names.length = 0;
  }
}

/** Joins two namespaces with a veth pair and assigns addresses (no default routes anywhere). */
export function veth(a: { ns: string; ifname: string; addr: string }, b: { ns: string; ifname: string; addr: string }): void {
  const tmp = `epag${process.pid % 100000}`;
  shOk(['ip', 'link', 'add', `${tmp}a`, 'type', 'veth', 'peer', 'name', `${tmp}b`]);
  shOk(['ip', 'link', 'set', `${tmp}a`, 'netns', a.ns]);
  shOk(['ip', 'link', 'set', `${tmp}b`, 'netns', b.ns]);
  for (const [side, name] of [[a, `${tmp}a`], [b, `${tmp}b`]] as const) {
    shOk(['ip', '-n', side.ns, 'link', 'set', name, 'name', side.ifname]);
    shOk(['ip', '-n', side.ns, 'addr', 'add', side.addr, 'dev', side.ifname]);
    shOk(['ip', '-n', side.ns, 'link', 'set', side.ifname, 'up']);
  }
}

export interface Pki {
  dir: string;
  labRoot: string;
  agentCaCert: string;
  agentCaKey: string;
  /** Bundle the agent verifies upstreams with: the lab root plus our own CA (which the agent must exclude). */
  upstreamBundle: string;
  leaf(name: string, sans: string, issuer: 'lab' | 'self', extendedKeyUsage?: 'serverAuth' | 'clientAuth'): { cert: string; key: string };
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'epag-pki-'));
  chmodSync(dir, 0o755);
  const o = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const labRoot = join(dir, 'lab-root.pem');
  const labKey = join(dir, 'lab-root.key');
  o('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', labKey, '-out', labRoot,
    '-days', '30', '-subj', '/CN=epag lab root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const agentCaCert = join(dir, 'agent-ca.pem');
  const agentCaKey = join(dir, 'agent-ca.key');
  execFileSync(process.execPath, ['--import', 'tsx', join(repo, 'agent/src/main.ts'), 'ca', 'init', '--cert-out', agentCaCert, '--key-out', agentCaKey, '--name', 'epag agent CA', '--days', '30'], { cwd: repo, stdio: 'pipe' });
  // The agent drops to AGENT_UID and re-reads the CA on SIGHUP.
  chownSync(agentCaKey, AGENT_UID, AGENT_UID);
  const upstreamBundle = join(dir, 'upstream-bundle.pem');
  execFileSync('sh', ['-c', `cat "${labRoot}" "${agentCaCert}" > "${upstreamBundle}"`]);
  let n = 0;
  return {
    dir,
    labRoot,
    agentCaCert,
    agentCaKey,
    upstreamBundle,
    leaf(name, sans, issuer, extendedKeyUsage = 'serverAuth') {
      n++;
      const key = join(dir, `leaf${n}.key`);
      const cert = join(dir, `leaf${n}.pem`);
      if (issuer === 'self') {
        o('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${sans}`);
      } else {
        const csr = join(dir, `leaf${n}.csr`);
        const ext = join(dir, `leaf${n}.ext`);
        writeFileSync(ext, `subjectAltName=${sans}\nextendedKeyUsage=${extendedKeyUsage}\nbasicConstraints=CA:FALSE\n`);
        o('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=epag upstream/CN=${name}`);
        o('x509', '-req', '-in', csr, '-CA', labRoot, '-CAkey', labKey, '-CAcreateserial', '-out', cert, '-days', '30', '-extfile', ext);
      }
      return { cert, key };
    },
  };
}

export function removePki(p: Pki | undefined): void {
  if (p) rmSync(p.dir, { recursive: true, force: true });
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The fd count once it settles back to `expected` (closing sockets take a moment on a loaded machine), or the last seen. */
export async function settledFdCount(pid: number, expected: number, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let n = fdCount(pid);
  while (n !== expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    n = fdCount(pid);
  }
  return n;
}

/** The pid of the agent itself (the `node` process under `ip netns exec`, which execs it). */
export function healthJson(ns: Namespaces, nsName: string, port: number): Record<string, unknown> {
  const r = ns.exec(nsName, ['curl', '-s', '--max-time', '5', `http://127.0.0.1:${port}/healthz`]);
  if (!r.stdout) throw new Error(`health endpoint did not answer: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface AgentLabOptions {
  /** Namespace prefix (must start with `epag-`): namespaces `<prefix>-px-<pid>` (clients + agent) and `<prefix>-up-<pid>`. */
  prefix: string;
  /** Addresses come from 198.18.<subnet>.0/24: .1 proxy side, .2 upstream side, .10 the lab upstream server. */
  subnet: number;
  /** DNS names on the lab upstream's leaf (issued by the lab root), also used by extra upstreams a test starts. */
  hosts: string[];
  /** More addresses on the upstream side (last octets), for upstreams the test starts itself with `ns.spawn(up, ...)`. */
  extraUpstreamOctets?: number[];
  /** Merged over the default agent config (shallow, per top-level key). */
  config?: Record<string, unknown>;
  /** Another build of the agent (default: the TypeScript source with tsx; EPAG_AGENT_CMD overrides both). */
  agentCommand?: string[];
}

/**
 * The agent as the namespace tests run it: a proxy namespace (clients and the agent, which drops to AGENT_UID) and
 * an upstream namespace joined by a veth pair, the lab upstream server (h1 + h2) on 198.18.<subnet>.10, and a real
 * nft REDIRECT of port 443 to the agent with the owner-match exclusion. `teardown()` is safe after a failed `start()`.
 */
export class AgentLab {
  readonly ns = new Namespaces();
  readonly px: string;
  readonly up: string;
  readonly upstreamIp: string;
  readonly agentPort = 8443;
  readonly healthPort = 9443;
  pki!: Pki;
  leaf!: { cert: string; key: string };
  stateDir = '';
  configPath = '';
  agentPid = 0;
  agentOutput: () => string = () => '';

  constructor(readonly options: AgentLabOptions) {
    if (!options.prefix.startsWith('epag-')) throw new Error(`prefix ${options.prefix} must start with epag-`);
    const id = process.pid % 100000;
    this.px = `${options.prefix}-px-${id}`;
    this.up = `${options.prefix}-up-${id}`;
    this.upstreamIp = this.ip(10);
  }

  ip(octet: number): string {
    return `198.18.${this.options.subnet}.${octet}`;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.pki = makePki();
    this.ns.add(this.px);
    this.ns.add(this.up);
    veth({ ns: this.px, ifname: 'eth0', addr: `${this.ip(1)}/24` }, { ns: this.up, ifname: 'eth0', addr: `${this.ip(2)}/24` });
    for (const octet of [10, ...(o.extraUpstreamOctets ?? [])]) this.ns.execOk(this.up, ['ip', 'addr', 'add', `${this.ip(octet)}/24`, 'dev', 'eth0']);
    this.leaf = this.pki.leaf(o.hosts[0]!, o.hosts.map((h) => `DNS:${h}`).join(','), 'lab');
    await this.ns.spawn(this.up, ['node', join(repo, 'provisioner/lab/upstream-server.mjs'), '--listen', `${this.upstreamIp}:443`, '--cert', this.leaf.cert, '--key', this.leaf.key],
      new RegExp(`listening ${this.upstreamIp.replace(/\./g, '\\.')}:443`));
    this.stateDir = join(this.pki.dir, 'state');
    mkdirSync(this.stateDir);
    chownSync(this.stateDir, AGENT_UID, AGENT_UID);
    this.configPath = join(this.pki.dir, 'agent.json');
    writeFileSync(this.configPath, JSON.stringify({
      listen: [{ host: '0.0.0.0', port: this.agentPort }],
      health: { host: '127.0.0.1', port: this.healthPort },
      ca: { certFile: this.pki.agentCaCert, keyFile: this.pki.agentCaKey },
      upstream: { verify: true, caBundleFile: this.pki.upstreamBundle, onVerifyFailure: 'refuse', connectTimeoutMs: 3000 },
      limits: { maxConnections: 200, handshakeTimeoutMs: 5000, idleTimeoutMs: 30_000 },
      passthrough: { static: [], learned: { enabled: false, maxEntries: 10, ttlSeconds: 60 } },
      observe: { enabled: true, routeRules: [], maxRoutesPerServer: 50 },
      log: { level: 'info', connectLog: false },
      stateDir: this.stateDir,
      ...o.config,
    }, null, 2));
    const command = process.env.EPAG_AGENT_CMD?.split(' ').filter(Boolean) ?? o.agentCommand ?? [process.execPath, '--import', 'tsx', join(repo, 'agent/src/main.ts')];
    const agent = await this.ns.spawn(this.px, [...command, 'run', '--config', this.configPath, '--user', String(AGENT_UID)], /dropped privileges/);
    this.agentPid = agent.proc.pid!;
    this.agentOutput = agent.output;
    const table = `epag_lab_${this.options.subnet}`;
    this.ns.execOk(this.px, ['nft', '-f', '-'], {
      input: `table ip ${table} {
  chain out { type nat hook output priority -100; policy accept; meta skuid ${AGENT_UID} return; tcp dport 443 redirect to :${this.agentPort}; }
}
`,
    });
  }

  /** curl in the proxy namespace, trusting the agent's CA, with `host` resolved to `ip`. */
  curl(host: string, ip: string, args: string[], timeoutMs = 15_000): Run {
    return this.ns.exec(this.px, ['curl', '-sS', '--max-time', '10', '--cacert', this.pki.agentCaCert, '--resolve', `${host}:443:${ip}`, ...args], { timeoutMs });
  }

  /** The agent's /metrics text (Prometheus format). */
  metrics(): string {
    return this.ns.execOk(this.px, ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:${this.healthPort}/metrics`]);
  }

  health(): Record<string, unknown> {
    return healthJson(this.ns, this.px, this.healthPort);
  }

  async teardown(): Promise<void> {
    await this.ns.teardown();
    removePki(this.pki);
  }
}

/** The value of one unlabelled or exactly-labelled sample in Prometheus text, or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}
