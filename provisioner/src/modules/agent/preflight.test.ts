import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ControllerNode } from './controller-node';
import { agentPreflight, preflightParams } from './preflight';
import { debianRuntime } from './test-fixtures';

const params = preflightParams.parse({});

test('a host with Debian 12 node 18.19 passes: empty plan', () => {
  assert.deepEqual(agentPreflight.plan(params, { runtime: debianRuntime(), controllerNode: null }), []);
});

test('a host without node gets the exact error naming the apt fix', () => {
  assert.throws(() => agentPreflight.plan(params, { runtime: debianRuntime({ nodes: [] }), controllerNode: null }), {
    name: 'PreflightError',
    message:
      "epoch-agent needs Node.js >= 18.19.0, but no node or nodejs was found in PATH. Fix: run `apt-get install nodejs` (Debian 12 ships 18.19), or set `epoch_agent_push_node: true` to push the controller's Node runtime to /opt/epoch-agent/runtime/bin/node.",
  });
});

test('a RHEL host with an old node gets the exact error naming the dnf fix', () => {
  const runtime = debianRuntime({ osId: 'rocky', osIdLike: ['rhel', 'centos', 'fedora'], nodes: [{ path: '/usr/bin/node', version: 'v16.20.2' }] });
  assert.throws(() => agentPreflight.plan(params, { runtime, controllerNode: null }), {
    message:
      "epoch-agent needs Node.js >= 18.19.0, but found /usr/bin/node v16.20.2. Fix: run `dnf module install nodejs:18`, or set `epoch_agent_push_node: true` to push the controller's Node runtime to /opt/epoch-agent/runtime/bin/node.",
  });
});

test('Debian 12 before the 18.19 point release (18.13) is too old', () => {
  const runtime = debianRuntime({ nodes: [{ path: '/usr/bin/node', version: 'v18.13.0' }] });
  assert.throws(() => agentPreflight.plan(params, { runtime, controllerNode: null }), /but found \/usr\/bin\/node v18\.13\.0\. Fix: run `apt-get install nodejs`/);
});

const controller: ControllerNode = {
  path: '/usr/bin/node',
  version: 'v20.20.2',
  arch: 'x64',
  requiredGlibc: '2.28',
  sha256: 'ab'.repeat(32),
  payloadBase64: 'AAAA',
  payloadBytes: 3,
};

test('push_node on a matching host plans one push of the controller runtime', () => {
  const p = preflightParams.parse({ push_node: true });
  const changes = agentPreflight.plan(p, { runtime: debianRuntime({ nodes: [] }), controllerNode: { ok: true, node: controller } });
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.id, 'file:/opt/epoch-agent/runtime/bin/node');
  const step = changes[0]!.steps[0]!;
  assert.equal(step.kind, 'run');
  assert.ok(step.kind === 'run' && step.argv.includes('ab'.repeat(32)) && step.stdin === 'AAAA');
  assert.deepEqual(changes[0]!.undo, [{ kind: 'run', argv: ['rm', '-f', '/opt/epoch-agent/runtime/bin/node'] }]);
});

test('push_node once the pushed runtime is there: converged', () => {
  const p = preflightParams.parse({ push_node: true });
  const runtime = debianRuntime({ nodes: [{ path: '/opt/epoch-agent/runtime/bin/node', version: 'v20.20.2' }] });
  assert.deepEqual(agentPreflight.plan(p, { runtime, controllerNode: null }), []);
});

test('push_node refuses another architecture or an older glibc, saying why', () => {
  const p = preflightParams.parse({ push_node: true });
  const ok = { ok: true as const, node: controller };
  assert.throws(() => agentPreflight.plan(p, { runtime: debianRuntime({ nodes: [], machine: 'aarch64' }), controllerNode: ok }), /push_node is set, but the host is aarch64 and the controller's node is x64\.$/);
  assert.throws(() => agentPreflight.plan(p, { runtime: debianRuntime({ nodes: [], glibc: '2.17' }), controllerNode: ok }), /the host has glibc 2\.17 and the controller's node needs glibc >= 2\.28\.$/);
  assert.throws(
    () => agentPreflight.plan(p, { runtime: debianRuntime({ nodes: [] }), controllerNode: { ok: false, reason: 'it links libnode.so' } }),
    /push_node is set, but it links libnode\.so\.$/,
  );
});

test('params: strict, with defaults', () => {
  assert.deepEqual(preflightParams.parse({}), { push_node: false, min_node_version: '18.19.0' });
  assert.throws(() => preflightParams.parse({ pushnode: true }));
  assert.throws(() => preflightParams.parse({ min_node_version: '18' }), /min_node_version must look like 18\.19\.0/);
});
