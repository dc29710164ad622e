// Helpers for the CA lab tests: a real SSH transport to each lab host, and module application without the runner
// (gather → plan → executeSteps, recording undo like the journal does), plus the verifiers run inside the hosts.
import type { Change, Step } from '../../provisioner/src/core/change';
import type { ProvisionModule } from '../../provisioner/src/modules/module';
import { executeSteps } from '../../provisioner/src/runner/apply-steps';
import { SshTransport } from '../../provisioner/src/transport/ssh-transport';
import type { Transport } from '../../provisioner/src/transport/transport';
import type { Lab } from '../support/lab';

export async function connect(lab: Lab, host: string): Promise<Transport> {
  const h = lab.host(host);
  return SshTransport.connect({
    hostName: host,
    target: { address: h.address, port: 22, user: 'root' },
    privateKeyFile: lab.keyFile,
    knownHostsFile: lab.knownHostsFile,
    agentSocket: '',
  });
}

export interface Applied {
  changes: Change[];
  /** Undo steps in the order rollback runs them (last change first). */
  undo: Step[];
  report: string[];
}

/** gather → plan → apply every change; returns what changed and its undo (as the journal would record it). */
export async function apply<P, F>(module: ProvisionModule<P, F> & { report?(params: P, facts: F): string[] }, rawParams: unknown, transport: Transport): Promise<Applied> {
  const params = module.params.parse(rawParams);
  const facts = await module.gather({ name: transport.hostName, vars: {}, transport }, params);
  const changes = module.plan(params, facts);
  const undo: Step[] = [];
  for (const change of changes) {
    undo.unshift(...(change.undo ?? []));
    await executeSteps(transport, change.steps);
  }
  const after = await module.gather({ name: transport.hostName, vars: {}, transport }, params);
  return { changes, undo, report: module.report ? module.report(params, after) : [] };
}

/** What a second run would change (must be empty after apply). */
export async function replan<P, F>(module: ProvisionModule<P, F>, rawParams: unknown, transport: Transport): Promise<Change[]> {
  const params = module.params.parse(rawParams);
  return module.plan(params, await module.gather({ name: transport.hostName, vars: {}, transport }, params));
}

/**
 * Checksums of every file that makes up the system trust (bundles, hashed links), in one stable listing.
 * p11-kit stamps each entry of the Java keystore it extracts with the extraction time, so that one file is compared by
 * size: two `update-ca-trust extract` runs with no change in between differ there too.
 */
export async function trustSnapshot(lab: Lab, host: string): Promise<string> {
  const script = [
    'for d in /etc/ssl/certs /etc/pki/ca-trust/extracted /etc/pki/tls/certs; do',
    '  [ -e "$d" ] || continue',
    '  find -L "$d" -type f ! -path "*/extracted/java/cacerts" -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum',
  '  find -L "$d" -type f -path "*/extracted/java/cacerts" -printf "%p size %s\\n" 2>/dev/null',
    '  find "$d" -type l -printf "%p -> %l\\n" 2>/dev/null | sort',
    'done',
  ].join('\n');
  return lab.execOk(host, ['sh', '-c', script], { timeoutMs: 60_000 });
}

/** Starts `openssl s_server` on 127.0.0.1:port in the host as a transient systemd unit serving the given leaf. */
export async function startTlsServer(lab: Lab, host: string, unit: string, port: number, certPath: string, keyPath: string): Promise<void> {
  await lab.execOk(host, ['systemd-run', `--unit=${unit}`, '--quiet', 'openssl', 's_server', '-quiet', '-www', '-accept', `127.0.0.1:${port}`, '-cert', certPath, '-key', keyPath]);
  for (let i = 0; i < 50; i++) {
    const r = await lab.exec(host, ['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]);
    if (r.exitCode === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`${host}: TLS test server on port ${port} did not start`);
}

export async function stopUnit(lab: Lab, host: string, unit: string): Promise<void> {
  await lab.exec(host, ['systemctl', 'stop', unit]);
  await lab.exec(host, ['systemctl', 'reset-failed', unit]);
}

/** As the unprivileged user `nobody`: openssl verify with the default store, then curl to the test server. */
export async function verifyAsNobody(lab: Lab, host: string, leafPath: string, port: number): Promise<{ ok: boolean; detail: string }> {
  const v = await lab.exec(host, ['openssl', 'verify', leafPath], { user: 'nobody' });
  const c = await lab.exec(host, ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '--resolve', `leaf.test:${port}:127.0.0.1`, `https://leaf.test:${port}/`], { user: 'nobody' });
  const ok = v.exitCode === 0 && c.exitCode === 0 && c.stdout === '200';
  return { ok, detail: `openssl verify: ${v.exitCode} ${(v.stdout + v.stderr).trim()} | curl: ${c.exitCode} ${c.stdout} ${c.stderr.trim()}` };
}
