// bench/push-unchanged: what pushing an agent the hosts already have costs. Brings up N lab hosts (default 50),
// pushes a real agent build once (the full upload), then pushes the same build again and counts, per host, the
// remote commands, the bytes sent (argv + stdin) and received, and the wall time. Expected: one command per host
// (the probe that hashes the release's files) and no upload.
// Usage: node --import tsx bench/push-unchanged.ts [--hosts N] [--concurrency C]     (root; tears the lab down)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentRelease, agentReleaseParams } from '../provisioner/src/modules/agent/agent-release';
import { executeSteps } from '../provisioner/src/runner/apply-steps';
import type { Argv } from '../provisioner/src/core/change';
import type { ExecOptions, ExecResult, Transport } from '../provisioner/src/transport/transport';
import { buildAgent } from '../test/deploy/support/build-agent';
import { connectLabHost } from '../test/deploy/support/converge';
import { type Lab, labSkipReason, startLab } from '../test/support/lab';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const hosts = arg('hosts', 50);
const concurrency = arg('concurrency', 10);

/** Counts what crosses the wire per command (argv and stdin out, stdout and stderr back). */
class CountingTransport implements Transport {
  commands = 0;
  bytesOut = 0;
  bytesIn = 0;
  uploads = 0;
  constructor(private readonly inner: Transport) {}
  get hostName() {
    return this.inner.hostName;
  }
  reset() {
    this.commands = this.bytesOut = this.bytesIn = this.uploads = 0;
  }
  async exec(argv: Argv, options: ExecOptions = {}): Promise<ExecResult> {
    this.commands += 1;
    this.bytesOut += argv.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0) + (options.stdin === undefined ? 0 : Buffer.byteLength(options.stdin));
    // Content travels on a command's stdin (the release tarball, file writes).
    if (options.stdin !== undefined && Buffer.byteLength(options.stdin) > 0) this.uploads += 1;
    const r = await this.inner.exec(argv, options);
    this.bytesIn += Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr);
    return r;
  }
  getFile(path: string) {
    return this.inner.getFile(path);
  }
  close() {
    return this.inner.close();
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s.at(-1), total: s.reduce((a, b) => a + b, 0) };
};

async function push(transports: CountingTransport[], artifactDir: string, label: string) {
  const params = agentReleaseParams.parse({ artifact_dir: artifactDir });
  for (const t of transports) t.reset();
  const started = performance.now();
  const perHost = await mapLimit(transports, concurrency, async (t) => {
    const t0 = performance.now();
    const changes = agentRelease.plan(params, await agentRelease.gather({ name: t.hostName, vars: {}, transport: t }, params));
    for (const c of changes) await executeSteps(t, c.steps);
    return { host: t.hostName, changes: changes.map((c) => c.id), ms: performance.now() - t0, commands: t.commands, bytesOut: t.bytesOut, bytesIn: t.bytesIn, uploads: t.uploads };
  });
  const wallMs = performance.now() - started;
  const changed = perHost.filter((h) => h.changes.length > 0).length;
  console.log(`\n## ${label}: ${transports.length} hosts, concurrency ${concurrency}, wall ${(wallMs / 1000).toFixed(2)} s, ${changed} host(s) changed`);
  console.log('per host        min      median   max      total');
  for (const key of ['commands', 'bytesOut', 'bytesIn', 'uploads', 'ms'] as const) {
    const s = summary(perHost.map((h) => h[key]));
    const f = (n: number | undefined) => String(Math.round(n ?? 0)).padEnd(9);
    console.log(`${key.padEnd(15)} ${f(s.min)}${f(s.median)}${f(s.max)}${f(s.total)}`);
  }
  return { wallMs, perHost };
}

async function main() {
  const skip = labSkipReason();
  if (skip) {
    console.error(`push-unchanged: cannot run a lab here: ${skip}`);
    process.exit(2);
  }
  const work = mkdtempSync(join(tmpdir(), 'epoch-bench-push-'));
  let lab: Lab | undefined;
  const transports: CountingTransport[] = [];
  try {
    const artifact = await buildAgent(join(work, 'agent'), '0.1.0-bench');
    const t0 = performance.now();
    lab = await startLab({ hosts });
    console.log(`lab of ${hosts} hosts up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const l = lab;
    transports.push(...(await mapLimit(l.hosts, concurrency, async (h) => new CountingTransport(await connectLabHost(l, h)))));
    const first = await push(transports, artifact, 'first push (upload + switch)');
    const second = await push(transports, artifact, 'unchanged push (the benchmark)');
    const bad = second.perHost.filter((h) => h.commands !== 1 || h.uploads !== 0 || h.changes.length > 0);
    console.log(`\nunchanged push: ${bad.length === 0 ? 'every host: 1 command (the hash probe), 0 uploads, 0 changes' : `UNEXPECTED on ${bad.map((b) => b.host).join(', ')}`}`);
    console.log(`first push sent ${Math.round(summary(first.perHost.map((h) => h.bytesOut)).median! / 1024)} KiB per host; unchanged push sent ${summary(second.perHost.map((h) => h.bytesOut)).median} bytes per host`);
    if (bad.length > 0) process.exitCode = 1;
  } finally {
    for (const t of transports) await t.close().catch(() => {});
    await lab?.down();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
