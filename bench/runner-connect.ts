// bench/runner-connect: opens one SSH connection to each of N lab hosts (default 200) at once, runs one command on
// each, and reports errors, wall time and controller peak RSS. Goal (issue 3): 200 hosts in parallel without errors.
// Usage: node --import tsx bench/runner-connect.ts [--hosts N]     (root; tears the lab down)
import { SshTransport } from '../provisioner/src/transport/ssh-transport';
import { labSkipReason, withLab } from '../test/support/lab';

const i = process.argv.indexOf('--hosts');
const hosts = i >= 0 ? Number(process.argv[i + 1]) : 200;
const skip = labSkipReason();
if (skip) {
  console.error(`runner-connect: cannot run: ${skip}`);
  process.exit(2);
}

const labStart = performance.now();
await withLab({ hosts }, async (lab) => {
  console.log(`lab of ${hosts} host(s) up in ${Math.round(performance.now() - labStart)} ms`);
  const started = performance.now();
  const results = await Promise.allSettled(
    lab.hosts.map(async (h) => {
      const t = await SshTransport.connect({
        hostName: h.name,
        target: { address: h.address, port: 22, user: 'root' },
        privateKeyFile: lab.keyFile,
        agentSocket: '',
        knownHostsFile: lab.knownHostsFile,
        connectTimeoutMs: 60_000,
      });
      try {
        const r = await t.exec(['hostname']);
        if (r.exitCode !== 0) throw new Error(`${h.name}: hostname exited ${r.exitCode}: ${r.stderr}`);
      } finally {
        await t.close();
      }
    }),
  );
  const errors = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  console.log(
    JSON.stringify({ bench: 'runner-connect', hosts, errors: errors.length, wallMs: Math.round(performance.now() - started), maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }),
  );
  for (const e of errors.slice(0, 5)) console.log(`  ${e.reason instanceof Error ? e.reason.message : String(e.reason)}`);
});
