// The epoch-agent.service unit and its readiness probe. The firewall unit (epoch-firewall.service) BindsTo this
// one and is ordered After it, so on stop systemd removes the redirect rules first, then sends SIGTERM: new
// connections go direct while the ones in flight drain.
import { agentEntry, agentGroup, agentUser, configPath, stateDir, waitHealthyScript } from './layout';

export interface UnitOptions {
  nodePath: string;
  health: { host: string; port: number };
  /** How long the agent may drain connections after SIGTERM. */
  drainSeconds: number;
  /** Bound on the readiness wait in ExecStartPost. */
  readySeconds: number;
  memoryMax: string;
  /** Restart=on-failure gives up after this many starts within startLimitIntervalSec. */
  startLimitBurst: number;
  startLimitIntervalSec: number;
}

export function renderUnit(o: UnitOptions): string {
  return `# Managed by epoch-provision (agent_service); local edits are overwritten. Overrides go in a drop-in.
[Unit]
Description=epoch-agent transparent TLS observability proxy
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=${o.startLimitIntervalSec}
StartLimitBurst=${o.startLimitBurst}

[Service]
Type=exec
User=${agentUser}
Group=${agentGroup}
ExecStart=${o.nodePath} ${agentEntry} run --config ${configPath}
# Readiness: the unit is active only once GET /healthz says ready (bounded).
ExecStartPost=${o.nodePath} ${waitHealthyScript} ${o.health.host} ${o.health.port} ${o.readySeconds}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
TimeoutStartSec=${o.readySeconds + 15}
# SIGTERM makes the agent stop accepting and drain; this bounds the drain.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=${o.drainSeconds + 5}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# The agent listens on high ports and needs no capability at all.
CapabilityBoundingSet=
AmbientCapabilities=
ReadWritePaths=${stateDir}
MemoryMax=${o.memoryMax}
LimitNOFILE=65536
StandardOutput=journal
StandardError=journal
SyslogIdentifier=epoch-agent

[Install]
WantedBy=multi-user.target
`;
}

/** ExecStartPost readiness probe (CommonJS for the host's Node 18): exit 0 once /healthz returns ready:true. */
export const waitHealthySource = `'use strict';
// epoch-agent readiness probe, installed by epoch-provision. Usage: wait-healthy.cjs HOST PORT SECONDS
const http = require('node:http');
const [host = '127.0.0.1', port = '9443', seconds = '30'] = process.argv.slice(2);
const deadline = Date.now() + Number(seconds) * 1000;
let last = 'no answer yet';
function retry(why) {
  last = why;
  if (Date.now() >= deadline) {
    console.error('epoch-agent is not ready on http://' + host + ':' + port + '/healthz after ' + seconds + 's: ' + last);
    process.exit(1);
  }
  setTimeout(attempt, 200);
}
function attempt() {
  const req = http.get({ host, port: Number(port), path: '/healthz', timeout: 2000 }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { if (body.length < 65536) body += d; });
    res.on('end', () => {
      try {
        if (res.statusCode === 200 && JSON.parse(body).ready === true) process.exit(0);
      } catch {}
      retry('HTTP ' + res.statusCode + ' ' + body.slice(0, 200));
    });
  });
  req.on('timeout', () => req.destroy(new Error('timed out after 2s')));
  req.on('error', (err) => retry(err.message));
}
attempt();
`;
