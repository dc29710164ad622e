import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderAgentConfig } from './agent-config';
import { type AgentServiceFacts, agentServiceParams, parseServiceProbe, planService, renderSupervisorEnv } from './agent-service';
import { removeUserSteps } from './agent-user';
import { supervisorSource } from './supervisor-script';
import { renderUnit, waitHealthySource } from './systemd-unit';
import { debianRuntime } from './test-fixtures';

const params = agentServiceParams.parse({});

function freshFacts(over: Partial<AgentServiceFacts> = {}): AgentServiceFacts {
  return {
    runtime: debianRuntime(),
    user: null,
    groupExists: false,
    paths: {},
    files: {},
    systemd: { activeState: 'inactive', unitFileState: '', loadState: 'not-found' },
    systemdAnalyze: true,
    supervisorRunning: false,
    currentVersion: '0.1.0',
    runningVersion: null,
    ...over,
  };
}

const unitText = renderUnit({ nodePath: '/usr/bin/node', health: { host: '127.0.0.1', port: 9443 }, drainSeconds: 15, readySeconds: 30, memoryMax: '256M', startLimitBurst: 5, startLimitIntervalSec: 300 });
const configText = `${JSON.stringify(renderAgentConfig(params), null, 2)}\n`;

function convergedFacts(over: Partial<AgentServiceFacts> = {}): AgentServiceFacts {
  return freshFacts({
    user: { uid: 999, shell: '/usr/sbin/nologin' },
    groupExists: true,
    paths: {
      '/etc/epoch-agent': { owner: 'root', group: 'epoch-agent', mode: '750', type: 'directory' },
      '/var/lib/epoch-agent': { owner: 'epoch-agent', group: 'epoch-agent', mode: '750', type: 'directory' },
      '/opt/epoch-agent/libexec': { owner: 'root', group: 'root', mode: '755', type: 'directory' },
      '/etc/epoch-agent/ca/ca.key': { owner: 'epoch-agent', group: 'epoch-agent', mode: '600', type: 'file' },
    },
    files: { '/etc/epoch-agent/agent.json': configText, '/etc/systemd/system/epoch-agent.service': unitText, '/opt/epoch-agent/libexec/wait-healthy.cjs': waitHealthySource },
    systemd: { activeState: 'active', unitFileState: 'enabled', loadState: 'loaded' },
    runningVersion: '0.1.0',
    ...over,
  });
}

test('fresh systemd host: user, folders, files, enable, start', () => {
  const changes = planService(params, freshFacts());
  assert.deepEqual(changes.map((c) => c.id), [
    'user:epoch-agent',
    'dir:/etc/epoch-agent',
    'dir:/var/lib/epoch-agent',
    'dir:/opt/epoch-agent/libexec',
    'file:/opt/epoch-agent/libexec/wait-healthy.cjs',
    'file:/etc/epoch-agent/agent.json',
    'file:/etc/systemd/system/epoch-agent.service',
    'enable:epoch-agent.service',
    'start:epoch-agent.service',
  ]);
  const user = changes[0]!;
  const useradd = user.steps[0]!;
  assert.ok(useradd.kind === 'run');
  assert.deepEqual(useradd.argv.slice(-11), ['useradd', '--system', '--user-group', '--home-dir', '/var/lib/epoch-agent', '--no-create-home', '--shell', '/usr/sbin/nologin', '--comment', 'epoch-agent TLS observability proxy', 'epoch-agent']);
  assert.deepEqual(user.undo, removeUserSteps());
  const config = changes[5]!.steps[0]!;
  assert.ok(config.kind === 'put');
  assert.deepEqual(config.validate, ['/usr/bin/node', '/opt/epoch-agent/current/epoch-agent.cjs', 'check-config', '{}']);
  assert.equal(config.mode, 0o640);
  assert.equal(config.owner, 'root:epoch-agent');
  assert.equal(JSON.parse(config.content).stateDir, '/var/lib/epoch-agent');
  const unit = changes[6]!;
  assert.ok(unit.steps[0]!.kind === 'put' && unit.steps[0]!.validate?.join(' ').includes('systemd-analyze verify'));
  assert.deepEqual(unit.steps[1], { kind: 'run', argv: ['systemctl', 'daemon-reload'], timeoutMs: 60_000 });
  assert.deepEqual(unit.undo, [{ kind: 'run', argv: ['rm', '-f', '/etc/systemd/system/epoch-agent.service'] }, { kind: 'run', argv: ['systemctl', 'daemon-reload'], timeoutMs: 60_000 }]);
  assert.deepEqual(changes[8]!.undo, [{ kind: 'run', argv: ['systemctl', 'stop', 'epoch-agent.service'], timeoutMs: 75_000 }]);
});

test('already converged twin: empty plan', () => {
  assert.deepEqual(planService(params, convergedFacts()), []);
});

test('new release behind current: only a restart', () => {
  const changes = planService(params, convergedFacts({ currentVersion: '0.2.0', runningVersion: '0.1.0' }));
  assert.deepEqual(changes.map((c) => [c.id, c.summary]), [
    ['restart:epoch-agent.service', 'restart epoch-agent.service (drains in-flight connections; release 0.1.0 -> 0.2.0)'],
  ]);
});

test('a changed setting rewrites the config (undo restores it) and restarts', () => {
  const p = agentServiceParams.parse({ log_level: 'debug' });
  const changes = planService(p, convergedFacts());
  assert.deepEqual(changes.map((c) => c.id), ['file:/etc/epoch-agent/agent.json', 'restart:epoch-agent.service']);
  assert.ok(changes[0]!.undo![0]!.kind === 'put' && changes[0]!.undo![0]!.content === configText);
  assert.match(changes[0]!.diff!.after, /"level": "debug"/);
});

test('a failed unit (start limit hit) is reset before start', () => {
  const changes = planService(params, convergedFacts({ systemd: { activeState: 'failed', unitFileState: 'enabled', loadState: 'loaded' } }));
  assert.deepEqual(changes.map((c) => c.steps.map((s) => (s.kind === 'run' ? s.argv.join(' ') : s.path))), [
    ['systemctl reset-failed epoch-agent.service', 'systemctl start epoch-agent.service'],
  ]);
});

test('a pre-existing user with a login shell gets nologin, and is never deleted', () => {
  const changes = planService(params, convergedFacts({ user: { uid: 1001, shell: '/bin/bash' } }));
  assert.deepEqual(changes.map((c) => c.id), ['user:epoch-agent:shell']);
  assert.deepEqual(changes[0]!.undo, [{ kind: 'run', argv: ['usermod', '--shell', '/bin/bash', 'epoch-agent'] }]);
});

test('key material is made 0600 and owned by the agent user', () => {
  const facts = convergedFacts();
  facts.paths['/etc/epoch-agent/ca/ca.key'] = { owner: 'root', group: 'root', mode: '644', type: 'file' };
  const changes = planService(params, facts);
  assert.deepEqual(changes.map((c) => c.id), ['mode:/etc/epoch-agent/ca/ca.key']);
  assert.deepEqual(changes[0]!.steps, [
    { kind: 'run', argv: ['chown', 'epoch-agent:root', '/etc/epoch-agent/ca/ca.key'] },
    { kind: 'run', argv: ['chmod', '0600', '/etc/epoch-agent/ca/ca.key'] },
  ]);
});

test('a config with remote-write headers is secret: no diff, redacted put', () => {
  const p = agentServiceParams.parse({ remote_write: { url: 'https://198.18.0.9/api/v1/write', headers: { Authorization: 'Bearer s3cret' } } });
  const change = planService(p, convergedFacts()).find((c) => c.id === 'file:/etc/epoch-agent/agent.json')!;
  assert.equal(change.diff, undefined);
  assert.ok(change.steps[0]!.kind === 'put' && change.steps[0]!.secret === true);
  assert.ok(change.undo![0]!.kind === 'put' && change.undo![0]!.secret === true);
});

test('host without systemd: the sh supervisor instead of a unit', () => {
  const facts = freshFacts({ runtime: debianRuntime({ systemd: false }), systemd: null });
  const changes = planService(params, facts);
  assert.deepEqual(changes.map((c) => c.id).slice(-4), [
    'file:/etc/epoch-agent/agent.json',
    'file:/opt/epoch-agent/libexec/epoch-agent-supervise.sh',
    'file:/etc/epoch-agent/supervise.env',
    'start:supervisor',
  ]);
  const env = changes.at(-2)!.steps[0]!;
  assert.ok(env.kind === 'put' && env.content.includes("EPOCH_NODE=/usr/bin/node\nEPOCH_HEALTH_HOST=127.0.0.1\nEPOCH_HEALTH_PORT=9443\n"));
  assert.deepEqual(changes.at(-1)!.steps, [{ kind: 'run', argv: ['/opt/epoch-agent/libexec/epoch-agent-supervise.sh', 'start'], timeoutMs: 75_000 }]);
  // Converged twin.
  const converged = convergedFacts({ runtime: debianRuntime({ systemd: false }), systemd: null, supervisorRunning: true });
  converged.files['/opt/epoch-agent/libexec/epoch-agent-supervise.sh'] = supervisorSource;
  converged.files['/etc/epoch-agent/supervise.env'] = renderSupervisorEnv('/usr/bin/node', params);
  assert.deepEqual(planService(params, converged), []);
});

test('no usable node: the preflight error, not a broken unit', () => {
  assert.throws(() => planService(params, freshFacts({ runtime: debianRuntime({ nodes: [] }) })), { name: 'PreflightError', message: /^epoch-agent needs Node.js >= 18.19.0, but no node or nodejs was found in PATH/ });
  assert.throws(() => planService(agentServiceParams.parse({ init: 'systemd' }), freshFacts({ runtime: debianRuntime({ systemd: false }) })), /host does not run systemd/);
});

test('the unit carries the hardening and lifecycle settings', () => {
  for (const line of [
    'User=epoch-agent',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'CapabilityBoundingSet=',
    'MemoryMax=256M',
    'ReadWritePaths=/var/lib/epoch-agent',
    'Restart=on-failure',
    'StartLimitIntervalSec=300',
    'StartLimitBurst=5',
    'TimeoutStopSec=20',
    'ExecStartPost=/usr/bin/node /opt/epoch-agent/libexec/wait-healthy.cjs 127.0.0.1 9443 30',
    'ExecStart=/usr/bin/node /opt/epoch-agent/current/epoch-agent.cjs run --config /etc/epoch-agent/agent.json',
    'StandardOutput=journal',
  ]) {
    assert.ok(unitText.split('\n').includes(line), `unit lacks ${line}`);
  }
});

test('the embedded supervisor is the documented asset, byte for byte', () => {
  const asset = readFileSync(new URL('../../../assets/agent/epoch-agent-supervise.sh', import.meta.url), 'utf8');
  assert.equal(supervisorSource, asset);
});

test('parses the service probe', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const out = [
    'passwd=epoch-agent:x:998:998:epoch-agent:/var/lib/epoch-agent:/usr/sbin/nologin',
    'group=epoch-agent:x:998:',
    'stat=root epoch-agent 750 directory|/etc/epoch-agent',
    'stat=-|/var/lib/epoch-agent',
    'stat=epoch-agent epoch-agent 600 regular file|/etc/epoch-agent/ca/ca.key',
    `file=/etc/epoch-agent/agent.json ${b64('{"a":1}\n')}`,
    'file=/etc/systemd/system/epoch-agent.service -',
    'systemd.ActiveState=active',
    'systemd.UnitFileState=enabled',
    'systemd.LoadState=loaded',
    'systemd_analyze=yes',
    `current_manifest=${b64('{"name":"epoch-agent","version":"0.2.0","files":{}}')}`,
    `health=${b64('{"ready":true,"version":"0.1.0"}')}`,
  ].join('\n');
  const facts = parseServiceProbe(out, debianRuntime());
  assert.deepEqual(facts.user, { uid: 998, shell: '/usr/sbin/nologin', gecos: 'epoch-agent' });
  assert.equal(facts.groupExists, true);
  assert.deepEqual(facts.paths['/etc/epoch-agent'], { owner: 'root', group: 'epoch-agent', mode: '750', type: 'directory' });
  assert.equal(facts.paths['/var/lib/epoch-agent'], null);
  assert.equal(facts.paths['/etc/epoch-agent/ca/ca.key']!.type, 'file');
  assert.equal(facts.files['/etc/epoch-agent/agent.json'], '{"a":1}\n');
  assert.equal(facts.files['/etc/systemd/system/epoch-agent.service'], null);
  assert.deepEqual(facts.systemd, { activeState: 'active', unitFileState: 'enabled', loadState: 'loaded' });
  assert.equal(facts.systemdAnalyze, true);
  assert.equal(facts.currentVersion, '0.2.0');
  assert.equal(facts.runningVersion, '0.1.0');
});

test('state absent on an installed host: stop, unit, files, then the user this module created', () => {
  const facts = convergedFacts({ user: { uid: 999, shell: '/usr/sbin/nologin', gecos: 'epoch-agent TLS observability proxy' } });
  const changes = planService(agentServiceParams.parse({ state: 'absent' }), facts);
  assert.deepEqual(changes.map((c) => c.id), [
    'stop:epoch-agent.service',
    'absent:/etc/systemd/system/epoch-agent.service',
    'absent:files',
    'absent:/etc/epoch-agent',
    'absent:user:epoch-agent',
  ]);
  assert.deepEqual(changes[2]!.steps, [{ kind: 'run', argv: ['rm', '-rf', '--', '/etc/epoch-agent/agent.json', '/opt/epoch-agent/libexec', '/var/lib/epoch-agent'] }]);
  // userdel goes with the restore of /etc/passwd- and friends saved at useradd.
  assert.deepEqual(changes[4]!.steps, removeUserSteps());
});

test('state absent twin: nothing left (a user we did not create stays), and no Node needed', () => {
  const facts = freshFacts({
    runtime: debianRuntime({ nodes: [] }),
    user: { uid: 1001, shell: '/bin/sh', gecos: 'someone else' },
    systemd: { activeState: 'inactive', unitFileState: '', loadState: 'not-found' },
    currentVersion: null,
  });
  assert.deepEqual(planService(agentServiceParams.parse({ state: 'absent' }), facts), []);
});
