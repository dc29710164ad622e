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
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

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
    const child = spawn(prometheusBin!, [
      `--config.file=${join(this.dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(this.dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${this.port}`,
      '--web.enable-remote-write-receiver',
      '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (c: Buffer) => {
      this.log = (this.log + c.toString()).slice(-4000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${this.log}`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}/-/ready`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
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
    const r = await fetch(`http://127.0.0.1:${this.port}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string };
    if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
    return body.data.result;
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
