// The firewall lab tests' fixture: a STAND-IN agent (test/firewall/tcp-tools.mjs run as user epoch-agent under a
// unit named epoch-agent.service, Restart=on-failure like the real unit), answering "agent" on 8443 and
// {"ready":true} on 127.0.0.1:9443/healthz, and an "internet" target: a second lab host answering "target" on 443.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { firewallConfirmModule } from '../../provisioner/src/modules/firewall/firewall-module';
import { connectLabHost, converge } from '../deploy/support/converge';
import { type Lab, type LabHost, startLab } from '../support/lab';

const tools = new URL('./tcp-tools.mjs', import.meta.url).pathname;

const agentUnit = `[Unit]
Description=epoch-agent STAND-IN for the firewall lab tests
[Service]
User=epoch-agent
Group=epoch-agent
ExecStart=/usr/bin/node /opt/epfw/tcp-tools.mjs serve agent 8443 9443
Restart=on-failure
RestartSec=3
[Install]
WantedBy=multi-user.target
`;

export async function waitFor(what: string, limitMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - start;
}

const norm = (s: string) =>
  s.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/^(:\S+ \S+) \[\d+:\d+\]$/, '$1 [0:0]').replace(/counter packets \d+ bytes \d+/g, 'counter')).join('\n');

export class StandIn {
  constructor(
    readonly lab: Lab,
    readonly host: LabHost,
    readonly target: LabHost,
  ) {}

  /** Installs the stand-in agent on `host` and the target service on `target`. */
  async setUp(): Promise<void> {
    const { lab, host, target } = this;
    for (const h of [host, target]) {
      await lab.execOk(h, ['mkdir', '-p', '/opt/epfw']);
      await lab.copyTo(h, tools, '/opt/epfw/tcp-tools.mjs', 0o755);
    }
    await lab.execOk(target, ['systemd-run', '--unit=epfw-target', '/usr/bin/node', '/opt/epfw/tcp-tools.mjs', 'serve', 'target', '443']);
    await lab.execOk(host, ['sh', '-c', 'getent passwd epoch-agent >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin epoch-agent']);
    await lab.execOk(host, ['sh', '-c', 'cat > /etc/systemd/system/epoch-agent.service && systemctl daemon-reload && systemctl start epoch-agent.service'], { stdin: agentUnit });
    await this.waitHealthy();
    await waitFor('target listening', 10_000, async () => (await this.probe('root')) === 'target');
  }

  async waitHealthy(): Promise<void> {
    await waitFor('stand-in agent healthy', 10_000, async () => (await this.lab.exec(this.host, ['curl', '-fsS', 'http://127.0.0.1:9443/healthz'])).stdout.includes('"ready":true'));
  }

  /** Where a connection to the target's 443 lands: "agent" (redirected), "target" (direct) or "error ...". */
  async probe(user: string): Promise<string> {
    const r = await this.lab.exec(this.host, ['/usr/bin/node', '/opt/epfw/tcp-tools.mjs', 'connect', this.target.address, '443'], { user, timeoutMs: 10_000 });
    return r.stdout.trim();
  }

  /** Every view of the host's ruleset: nft, both iptables variants, both families (counters and dates removed). */
  async ruleset(): Promise<string> {
    const parts: string[] = [];
    for (const argv of [['nft', 'list', 'ruleset'], ['iptables-nft-save'], ['ip6tables-nft-save'], ['iptables-legacy-save'], ['ip6tables-legacy-save']]) {
      parts.push(`== ${argv[0]}\n${norm(await this.lab.execOk(this.host, argv))}`);
    }
    return parts.join('\n');
  }

  /** A NEW SSH connection that runs a command: the controller can still reach the host. */
  async sshStillWorks(): Promise<void> {
    const t = await connectLabHost(this.lab, this.host);
    try {
      const r = await t.exec(['true']);
      assert.equal(r.exitCode, 0);
    } finally {
      await t.close();
    }
  }

  async confirmOverNewConnection(): Promise<void> {
    const t = await connectLabHost(this.lab, this.host);
    try {
      const changes = await converge(t, firewallConfirmModule, {});
      assert.equal(changes.length, 1, 'one armed revert to confirm');
    } finally {
      await t.close();
    }
  }

  /** Whatever an earlier (failed) test left: our unit, timers, rules and files; the stand-in agent running again. */
  async resetHost(): Promise<void> {
    await this.lab.execOk(this.host, ['sh', '-c', [
      'systemctl stop "epoch-fw-revert-*" 2>/dev/null',
      's=/var/lib/epoch-provision/firewall/epoch-firewall.stage; if [ -x "$s" ]; then "$s" purge; fi',
      'rm -rf /etc/epoch-provision /var/lib/epoch-provision /usr/local/lib/epoch-provision /etc/systemd/system/epoch-firewall.service /etc/systemd/system/epoch-agent.service.d',
      'systemctl daemon-reload && systemctl reset-failed && systemctl restart epoch-agent.service',
    ].join('; ')]);
    await this.waitHealthy();
  }
}

export interface StandInLab {
  lab: Lab;
  host: LabHost;
  standIn: StandIn;
}

/**
 * Registers before/after hooks (in the current suite or file) unless `skip`: a 2-host lab, the stand-in agent on the first host,
 * the target on the second, torn down afterwards. The returned object is filled in by the before hook, which then
 * calls onReady (for files that keep module-level variables).
 */
export function useStandInLab(skip: string | undefined, onReady: (fixture: StandInLab) => void = () => {}): StandInLab {
  const fixture = {} as StandInLab;
  if (skip) return fixture;
  before(async () => {
    fixture.lab = await startLab({ hosts: 2 });
    fixture.host = fixture.lab.hosts[0]!;
    fixture.standIn = new StandIn(fixture.lab, fixture.host, fixture.lab.hosts[1]!);
    await fixture.standIn.setUp();
    onReady(fixture);
  }, { timeout: 600_000 });
  after(async () => {
    if (fixture.lab) await fixture.lab.down();
  });
  return fixture;
}
