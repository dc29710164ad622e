// The README's main job, end to end on the built-in lab:
//   lab up (a mixed debian/rhel fleet) → staged install with interception on (serial [1, "50%", "100%"], verify as
//   the gate, commit-confirmed rules) → HTTPS traffic from every host as an ordinary user → the per-host recap and
//   the agents' aggregated metrics (requests by status and route). The lab stays up to look around.
import { parseArgs } from 'node:util';
import { execInHost, type LabHostState, labUp, preflight } from '../../lab/lab';
import { exitCodes } from '../exit-codes';
import { runCommand } from './run';

const usage = `usage: epoch-provision demo [--hosts N (default 6)] [--flavor mixed|debian|rhel] [--requests N per host (default 12)]
                           [--name LAB (default lab; its inventory is inventories/lab/)]`;

/** Routes driven through every host's agent; ids and query strings show the route templating. */
const demoPaths = ['/', '/status/200', '/status/404', '/status/503', '/users/1042/orders?page=2', '/bytes/2048', '/chunked/4096'];

export async function demoCommand(argv: string[]): Promise<number> {
  let values: { hosts?: string; flavor?: string; requests?: string; name?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { hosts: { type: 'string' }, flavor: { type: 'string' }, requests: { type: 'string' }, name: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    console.error(`epoch-provision demo: ${err instanceof Error ? err.message : String(err)}\n${usage}`);
    return exitCodes.config;
  }
  if (values.help) {
    console.log(usage);
    return exitCodes.ok;
  }
  const count = Number(values.hosts ?? 6);
  const requests = Number(values.requests ?? 12);
  const flavor = values.flavor ?? 'mixed';
  if (!Number.isInteger(count) || count < 2 || count > 50) return fail(`--hosts must be 2-50, got ${JSON.stringify(values.hosts)}`);
  if (!Number.isInteger(requests) || requests < 1 || requests > 1000) return fail(`--requests must be 1-1000, got ${JSON.stringify(values.requests)}`);
  if (!['mixed', 'debian', 'rhel'].includes(flavor)) return fail(`--flavor must be mixed, debian or rhel, got ${JSON.stringify(flavor)}`);
  try {
    preflight();
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }

  step(`1/4 bringing up the lab: ${count} hosts, ${flavor}`);
  const lab = await labUp({ count, flavor: flavor as 'mixed' | 'debian' | 'rhel', ...(values.name !== undefined && { name: values.name }), log: (m) => console.log(`    ${m}`) });

  step('2/4 staged install with interception on: serial [1, "50%", "100%"], verify gates each batch');
  const runExit = await runCommand(['--inventory', lab.inventory.dir, '--yes', '--output', 'plain', '-e', 'epoch_intercept=true']);
  if (runExit !== exitCodes.ok) {
    console.error(`\nthe install ended with exit ${runExit}; the lab is left up to look around (see below)`);
    printNextSteps(lab.name, lab.inventory, lab.hosts[0]?.name ?? 'deb1');
    return runExit;
  }

  step(`3/4 driving HTTPS traffic: ${requests} requests per host, as user nobody, through each host's agent`);
  const failures = await Promise.all(lab.hosts.map((h) => driveTraffic(h, requests)));
  const failedRequests = failures.reduce((a, b) => a + b, 0);
  console.log(`    ${requests * lab.hosts.length - failedRequests} of ${requests * lab.hosts.length} requests succeeded`);

  step('4/4 aggregated metrics from the agents (raw URIs and payloads never leave the hosts)');
  const rows = new Map<string, number>();
  for (const h of lab.hosts) {
    const r = await execInHost(h, ['curl', '-s', '--max-time', '5', 'http://127.0.0.1:9443/metrics']);
    for (const s of parseRequestCounts(r.stdout)) {
      const key = `${s.server}\t${s.method}\t${s.status}\t${s.route}`;
      rows.set(key, (rows.get(key) ?? 0) + s.count);
    }
  }
  printTable(['server', 'method', 'status', 'route', 'requests'], [...rows].sort().map(([k, n]) => [...k.split('\t'), String(n)]));
  printNextSteps(lab.name, lab.inventory, lab.hosts[0]?.name ?? 'deb1');
  return failedRequests === 0 ? exitCodes.ok : exitCodes.hostsFailed;
}

/** Runs the request loop inside the host as an unprivileged user; returns how many requests failed. */
async function driveTraffic(host: LabHostState, requests: number): Promise<number> {
  const urls = Array.from({ length: requests }, (_, i) => `https://upstream.lab.test${demoPaths[i % demoPaths.length]}`);
  const script = 'fail=0; for u in "$@"; do curl -s -o /dev/null --max-time 10 "$u" || fail=$((fail+1)); done; echo "$fail"';
  const r = await execInHost(host, ['runuser', '-u', 'nobody', '--', 'sh', '-c', script, 'demo', ...urls], { timeoutMs: 15_000 * requests });
  const failed = Number(r.stdout.trim());
  return Number.isInteger(failed) ? failed : requests;
}

export interface RequestCount {
  server: string;
  method: string;
  status: string;
  route: string;
  count: number;
}

/** The request counts in a Prometheus text body (http_client_request_duration_seconds_count series). */
export function parseRequestCounts(text: string): RequestCount[] {
  const out: RequestCount[] = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^http_client_request_duration_seconds_count\{(.*)\}\s+(\S+)$/);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    out.push({
      server: labels.server_address ?? '?',
      method: labels.http_request_method ?? '?',
      status: labels.http_response_status_code ?? '?',
      route: labels.http_route ?? '?',
      count: Number(m[2]),
    });
  }
  return out;
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `    ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`;
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));
  if (rows.length === 0) console.log('    (no requests counted)');
}

function printNextSteps(name: string, inventory: { dir: string; sshConfig: string }, firstHost: string): void {
  const lab = name === 'lab' ? '' : ` --name ${name}`;
  console.log(`
The lab is still up. Look around (epoch-provision is bin/epoch-provision.mjs):
  epoch-provision lab status${lab}
  ssh -F ${inventory.sshConfig} ${firstHost}        # then: systemctl status epoch-agent; nft list ruleset
  epoch-provision lab exec${lab} ${firstHost} -- curl -s http://127.0.0.1:9443/metrics
  epoch-provision --inventory ${inventory.dir} playbooks/verify.yml --yes
  epoch-provision rollback --inventory ${inventory.dir} --list
Tear down:
  epoch-provision uninstall --inventory ${inventory.dir} --yes   # optional: restores every host byte for byte
  epoch-provision lab down${lab}`);
}

function step(message: string): void {
  console.log(`\n== ${message}`);
}

function fail(message: string): number {
  console.error(`epoch-provision demo: ${message}\n${usage}`);
  return exitCodes.config;
}
