// verify: proves, on the host and with real clients, that interception works end to end. It changes nothing:
// gather probes, plan returns [] when every check passes and throws VerifyFailedError naming each failed check.
//   1. as an ordinary non-root user, an HTTPS request to the probe URL succeeds with the system trust store;
//   2. the certificate served verifies against the host's own CA and nothing else (proof of interception);
//   3. the agent's metrics count the request;
//   4. optional: the firewall and trust-store modules, given the same params as the install, plan nothing
//      (the rules match the desired state, the SSH port is excluded, the CA is in the bundle).
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import type { Change } from '../../core/change';
import { ProvisionError } from '../../core/errors';
import type { HostContext, ProvisionModule } from '../module';
import { getModule } from '../registry';

export class VerifyFailedError extends ProvisionError {
  constructor(readonly failures: string[]) {
    super(`verify failed: ${failures.join('; ')}`, 'verify');
  }
}

export const verifyParams = z
  .object({
    /** An HTTPS URL whose port-443 traffic the rules redirect into the agent. */
    probe_url: z.string().url().refine((u) => u.startsWith('https://'), 'must be an https:// URL'),
    /** The host's signing CA (per-host mode: generated there). */
    ca_cert: z.string().startsWith('/').default('/etc/epoch-agent/ca/ca.crt'),
    /** The agent's health listener, which also serves /metrics. */
    metrics_url: z.string().url().default('http://127.0.0.1:9443/metrics'),
    /** An existing unprivileged account the probe runs as. */
    probe_user: z.string().regex(/^[a-z_][a-z0-9_-]*$/).default('nobody'),
    timeout_seconds: z.number().int().min(1).max(120).default(15),
    /** The firewall module's params from the install; when given, the live rules must match them. */
    firewall: z.record(z.string(), z.unknown()).optional(),
    /** The trust-store module's params from the install; when given, the CA must be in the bundle. */
    trust_store: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type VerifyParams = z.infer<typeof verifyParams>;

export interface ProbeFacts {
  /** HTTP status with the system trust store, or null when the request failed. */
  systemStatus: number | null;
  systemError: string;
  /** Whether the certificate served to the probe was issued by the host CA (signature checked), null: unknown. */
  hostCaIssued: boolean | null;
  /** How that was decided, for the failure message. */
  hostCaCheck: string;
  servedIssuer: string;
  metricsBefore: number | null;
  metricsAfter: number | null;
}

export interface VerifyFacts {
  probe: ProbeFacts;
  /** Summaries of what the firewall / trust-store modules would still change (empty: converged). */
  firewallDrift: string[] | null;
  trustStoreDrift: string[] | null;
}

// One round trip. Args: user host port url cacert metrics_url timeout.
// One real client request as the probe user, with the system trust store; curl 7.88+ also prints the chain it was
// served (%{certs}), which the controller checks against the host CA's key. Older curl has no %{certs}: then
// openssl s_client shows what is served, checked against the host CA alone (a second connection).
const probeScript = `user=$1 host=$2 port=$3 url=$4 cacert=$5 metrics=$6 timeout=$7
count() {
  curl -s --max-time 5 "$metrics" 2>/dev/null | awk -v want="server_address=\\"$host\\"" '
    index($0, "http_client_request_duration_seconds_count{") == 1 && index($0, want) { sum += $NF }
    END { if (NR == 0) print "none"; else print sum + 0 }'
}
before=$(count)
echo "metrics_before=$before"
out=$(runuser -u "$user" -- curl -sS -o /dev/null -w '\\n@@status %{http_code}\\n%{certs}\\n@@certs-end\\n' --max-time "$timeout" "$url" 2>&1)
echo "system_rc=$?"
echo '@@curl'
printf '%s\\n' "$out"
echo '@@curl-end'
case $out in
*'-----BEGIN CERTIFICATE-----'*)
  echo '@@ca'
  cat -- "$cacert"
  echo '@@ca-end' ;;
*)
  # The CA lives in a folder only root and the agent read; the probe user gets a public copy of the certificate.
  ca_copy=$(mktemp) && cat "$cacert" > "$ca_copy" && chmod 0644 "$ca_copy"
  sc=$(runuser -u "$user" -- timeout "$timeout" openssl s_client -connect "$host:$port" -servername "$host" \\
    -CAfile "$ca_copy" -no-CApath -no-CAstore -verify_return_error </dev/null 2>&1)
  rm -f "$ca_copy"
  echo "hostca_verify=$(printf %s "$sc" | sed -n 's/^ *Verify return code: \\([0-9]*\\).*/\\1/p' | head -n1)"
  echo "issuer=$(printf %s "$sc" | sed -n 's/^ *i:\\(.*\\)/\\1/p' | head -n1)" ;;
esac
i=0
# The agent counts the request once its connection is done: usually at once, so ask again soon (up to 5 s in all).
while [ $i -lt 100 ]; do
  after=$(count)
  if [ "$after" != none ] && [ "$after" != "$before" ]; then break; fi
  i=$((i + 1)); sleep 0.05
done
echo "metrics_after=$after"
`;

export function probeArgv(p: VerifyParams): string[] {
  const url = new URL(p.probe_url);
  const port = url.port || '443';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return ['sh', '-c', probeScript, 'epoch-verify', p.probe_user, host, port, p.probe_url, p.ca_cert, p.metrics_url, String(p.timeout_seconds)];
}

const between = (text: string, begin: string, end: string): string | null => {
  const m = new RegExp(`^${begin}\n([\\s\\S]*?)^${end}$`, 'm').exec(text);
  return m ? m[1]! : null;
};
const pemBlocks = (text: string): string[] => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];

/** Whether `leafPem` was signed by the key of `caPem` (issuer name and signature), with the leaf's issuer name. */
export function issuedBy(leafPem: string, caPem: string): { issued: boolean; issuer: string; why: string } {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (err) {
    return { issued: false, issuer: '', why: `the served certificate does not parse (${(err as Error).message})` };
  }
  const issuer = leaf.issuer.split('\n').join(', ');
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(caPem);
  } catch (err) {
    return { issued: false, issuer, why: `the host CA certificate does not parse (${(err as Error).message})` };
  }
  if (!leaf.checkIssued(ca)) return { issued: false, issuer, why: `issuer name is not the host CA's (${ca.subject.split('\n').join(', ')})` };
  if (!leaf.verify(ca.publicKey)) return { issued: false, issuer, why: "its signature does not verify with the host CA's key" };
  return { issued: true, issuer, why: "signature verified with the host CA's key" };
}

export function parseProbe(stdout: string): ProbeFacts {
  const field = (key: string) => stdout.match(new RegExp(`^${key}=(.*)$`, 'm'))?.[1]?.trim() ?? '';
  const num = (s: string) => (/^\d+$/.test(s) ? Number(s) : null);
  const rc = num(field('system_rc'));
  const curlOut = between(stdout, '@@curl', '@@curl-end') ?? '';
  const status = num(/^@@status (\d+)$/m.exec(curlOut)?.[1] ?? '');
  const certsText = between(curlOut, '@@status \\d+', '@@certs-end') ?? '';
  const errorText = curlOut
    .replace(/^@@status \d+\n[\s\S]*?^@@certs-end$/m, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
  const served = pemBlocks(certsText)[0];
  const caPem = between(stdout, '@@ca', '@@ca-end');
  let hostCaIssued: boolean | null;
  let hostCaCheck: string;
  let servedIssuer: string;
  if (served !== undefined) {
    const check = caPem === null ? { issued: false, issuer: '', why: 'the host CA certificate was not read' } : issuedBy(served, caPem);
    hostCaIssued = check.issued;
    hostCaCheck = check.why;
    servedIssuer = check.issuer;
  } else {
    const code = num(field('hostca_verify'));
    hostCaIssued = code === null ? null : code === 0;
    hostCaCheck = `openssl verify code ${code ?? 'none'}`;
    servedIssuer = field('issuer');
  }
  return {
    systemStatus: rc === 0 ? status : null,
    systemError: rc === 0 ? '' : `curl exited ${rc ?? '?'}: ${errorText}`,
    hostCaIssued,
    hostCaCheck,
    servedIssuer,
    metricsBefore: num(field('metrics_before').replace('none', '')),
    metricsAfter: num(field('metrics_after').replace('none', '')),
  };
}

/** The failed checks, in words a person can act on; [] when the host is verified. */
export function verifyFailures(p: VerifyParams, f: VerifyFacts): string[] {
  const failures: string[] = [];
  const { probe } = f;
  if (probe.systemStatus === null) failures.push(`HTTPS request to ${p.probe_url} as ${p.probe_user} failed (${probe.systemError})`);
  else if (probe.systemStatus >= 500 || probe.systemStatus === 0) failures.push(`HTTPS request to ${p.probe_url} returned status ${probe.systemStatus}, expected < 500`);
  if (probe.hostCaIssued !== true) {
    failures.push(`the certificate served for ${p.probe_url} is not issued by the host CA ${p.ca_cert} (issuer ${probe.servedIssuer || 'unknown'}; ${probe.hostCaCheck}): traffic is not intercepted`);
  }
  if (probe.metricsAfter === null) failures.push(`agent metrics at ${p.metrics_url} are unavailable`);
  else if ((probe.metricsBefore ?? 0) >= probe.metricsAfter) failures.push(`agent metrics did not count the probe request (count stayed at ${probe.metricsAfter})`);
  if (f.firewallDrift?.length) failures.push(`firewall rules differ from the desired state: ${f.firewallDrift.join(', ')}`);
  if (f.trustStoreDrift?.length) failures.push(`trust store differs from the desired state: ${f.trustStoreDrift.join(', ')}`);
  return failures;
}

async function driftOf(host: HostContext, moduleName: string, raw: Record<string, unknown> | undefined): Promise<string[] | null> {
  if (!raw) return null;
  const module = getModule(moduleName);
  if (!module) throw new Error(`verify: module ${moduleName} is not registered`);
  const params = module.params.parse(raw);
  // A real re-check: nothing from the run's memo (what earlier tasks read), every probe asked again.
  const fresh: HostContext = { name: host.name, vars: host.vars, transport: host.transport };
  const changes: Change[] = module.plan(params, await module.gather(fresh, params));
  return changes.map((c) => c.summary);
}

export const verifyModule: ProvisionModule<VerifyParams, VerifyFacts> & {
  predict(params: VerifyParams, facts: VerifyFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null;
} = {
  name: 'verify',
  params: verifyParams,
  async gather(host, params) {
    // Drift first: the probe itself must not be what makes the rules look different.
    const firewallDrift = await driftOf(host, 'firewall', params.firewall);
    const trustStoreDrift = await driftOf(host, 'trust_store', params.trust_store);
    const r = await host.transport.exec(probeArgv(params), { timeoutMs: (params.timeout_seconds * 2 + 15) * 1000 });
    return { probe: parseProbe(r.stdout), firewallDrift, trustStoreDrift };
  },
  plan(params, facts) {
    const failures = verifyFailures(params, facts);
    if (failures.length > 0) throw new VerifyFailedError(failures);
    return [];
  },
  /** --check after earlier changes: what is verified is the state they create, so there is nothing to probe yet. */
  predict: () => [],
};
