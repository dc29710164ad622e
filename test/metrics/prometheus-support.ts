// Runs Debian's prometheus binary as a child process for tests: temp config and storage dir, loopback listener,
// remote-write receiver on, killed by PID (never the system service, never by name).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

export const prometheusBin = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => spawnSync(p, ['--version']).status === 0);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

export type Counts = Record<string, number>;

export function sortKeys(c: Counts): Counts {
  return Object.fromEntries(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Polls until ok(value) or the timeout; returns the last value read (the caller asserts on it). */
export async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  while (!ok(last) && Date.now() < deadline) {
    await sleep(500);
    last = await read();
  }
  return last;
}

export class PrometheusProcess {
  child: ChildProcess | null = null;
  log = '';
  /** With `netns`, Prometheus runs inside that network namespace (`ip netns exec` execs it: the PID is Prometheus's)
   *  and the HTTP API is reached with curl inside it. */
  constructor(
    readonly dir: string,
    readonly port: number,
    readonly netns?: string,
  ) {}

  /** GET on the HTTP API: status and body (status 0 when nothing answers). */
  private async get(path: string): Promise<{ status: number; body: string }> {
    const url = `http://127.0.0.1:${this.port}${path}`;
    if (!this.netns) {
      try {
        const r = await fetch(url);
        return { status: r.status, body: await r.text() };
      } catch {
        return { status: 0, body: '' };
      }
    }
    const r = spawnSync('ip', ['netns', 'exec', this.netns, 'curl', '-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}', url], { encoding: 'utf8', timeout: 15_000 });
    const out = r.stdout ?? '';
    const nl = out.lastIndexOf('\n');
    return { status: Number(out.slice(nl + 1)) || 0, body: out.slice(0, Math.max(0, nl)) };
  }

  /** Scrapes `target` (host:port, path /metrics) every second as job `epoch-scrape`. */
  writeConfig(target: string): void {
    writeFileSync(join(this.dir, 'prometheus.yml'), [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: epoch-scrape',
      '    static_configs:',
      `      - targets: ['${target}']`,
      '',
    ].join('\n'));
  }

  async start(): Promise<void> {
    const args = [
      `--config.file=${join(this.dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(this.dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${this.port}`,
      '--web.enable-remote-write-receiver',
      '--log.level=warn',
    ];
    const child = this.netns
      ? spawn('ip', ['netns', 'exec', this.netns, prometheusBin!, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(prometheusBin!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (c: Buffer) => {
      this.log = (this.log + c.toString()).slice(-4000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${this.log}`);
      if ((await this.get('/-/ready')).status === 200) return;
      await sleep(200);
    }
    throw new Error(`prometheus not ready on 127.0.0.1:${this.port} within 30 s: ${this.log}`);
  }

  /** SIGKILL by PID: no clean shutdown, as in a crash. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
    this.child = null;
  }

  async query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    return (await this.queryAny(promql)) as { metric: Record<string, string>; value: [number, string] }[];
  }

  /** A range-vector selector (`foo{...}[10m]`): every raw sample, as [unix seconds, value]. */
  async queryRaw(promql: string): Promise<{ metric: Record<string, string>; values: [number, string][] }[]> {
    return (await this.queryAny(promql)) as { metric: Record<string, string>; values: [number, string][] }[];
  }

  private async queryAny(promql: string): Promise<unknown[]> {
    const r = await this.get(`/api/v1/query?query=${encodeURIComponent(promql)}`);
    let body: { status: string; data: { result: unknown[] }; error?: string };
    try {
      body = JSON.parse(r.body);
    } catch {
      throw new Error(`query ${promql}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
    }
    if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
    return body.data.result;
  }

  /** The PID (to kill by PID from outside), or undefined when not running. */
  get pid(): number | undefined {
    return this.child && this.child.exitCode === null ? this.child.pid : undefined;
  }

  /** `server method route status version` → request count, from the duration histogram's _count. */
  async exchangeCounts(job: string): Promise<Counts> {
    const rows = await this.query(
      `sum by (server_address, http_request_method, http_route, http_response_status_code, network_protocol_version) (http_client_request_duration_seconds_count{job="${job}"})`);
    const out: Counts = {};
    for (const { metric: m, value } of rows) {
      out[`${m.server_address} ${m.http_request_method} ${m.http_route} ${m.http_response_status_code} ${m.network_protocol_version}`] = Number(value[1]);
    }
    return out;
  }
}
