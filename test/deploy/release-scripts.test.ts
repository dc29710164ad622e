// The agent_release module's real scripts (probe, upload + sha256sum -c, atomic switch, prune), run with sh, tar and
// coreutils on this machine inside a scratch folder that stands in for /opt/epoch-agent. No root needed.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Change } from '../../provisioner/src/core/change';
import { type AgentReleaseParams, agentRelease, agentReleaseParams } from '../../provisioner/src/modules/agent/agent-release';
import { executeSteps } from '../../provisioner/src/runner/apply-steps';
import { LocalTransport } from '../../provisioner/src/transport/local-transport';
import { writeFakeBuild } from './support/fake-build';
import { RootedTransport } from './support/rooted-transport';

const scratch = mkdtempSync(join(tmpdir(), 'epoch-release-'));
const home = join(scratch, 'opt/epoch-agent');
const transport = new RootedTransport(new LocalTransport({ hostName: 'local' }), scratch);
const host = { name: 'local', vars: {}, transport };
const builds = join(scratch, 'builds');
const build = (v: string) => writeFakeBuild(join(builds, v), v);

async function converge(input: Partial<AgentReleaseParams>): Promise<Change[]> {
  const params = agentReleaseParams.parse(input);
  const changes = agentRelease.plan(params, await agentRelease.gather(host, params));
  for (const c of changes) await executeSteps(transport, c.steps);
  const again = agentRelease.plan(params, await agentRelease.gather(host, params));
  assert.deepEqual(again.map((c) => c.id), [], 'plan after apply must be empty');
  return changes;
}
const link = (name: string) => readlinkSync(join(home, name));

test.after(() => rmSync(scratch, { recursive: true, force: true }));

test('install, converge, upgrade, prune, rollback and undo with the real scripts', async () => {
  const first = await converge({ artifact_dir: build('0.1.0') });
  assert.deepEqual(first.map((c) => c.id), ['release:0.1.0', 'link:/opt/epoch-agent/current']);
  assert.equal(link('current'), 'releases/0.1.0');
  assert.equal(readFileSync(join(home, 'current/prebuilds/linux-x64/origdst.node'), 'utf8'), 'x64 addon 0.1.0');
  assert.ok(existsSync(join(home, 'current/manifest.json')));

  // Already converged: one probe call, no upload.
  transport.calls.length = 0;
  const params = agentReleaseParams.parse({ artifact_dir: join(builds, '0.1.0') });
  assert.deepEqual(agentRelease.plan(params, await agentRelease.gather(host, params)), []);
  assert.equal(transport.calls.length, 1);
  assert.equal(transport.calls[0]!.stdinBytes, 0);

  const second = await converge({ artifact_dir: build('0.2.0') });
  assert.deepEqual(second.map((c) => c.id), ['release:0.2.0', 'link:/opt/epoch-agent/current']);
  assert.equal(link('current'), 'releases/0.2.0');
  assert.equal(link('previous'), 'releases/0.1.0');

  await converge({ artifact_dir: build('0.3.0') });
  mkdirSync(join(home, 'releases/0.4.0.tmp-dead01')); // an interrupted upload
  const fourth = await converge({ artifact_dir: build('0.4.0') });
  assert.deepEqual(fourth.map((c) => c.id), ['release:0.4.0', 'link:/opt/epoch-agent/current', 'prune:/opt/epoch-agent/releases']);
  assert.deepEqual(readdirSync(join(home, 'releases')).sort(), ['0.2.0', '0.3.0', '0.4.0']);

  // Rollback: pin the previous release; previous becomes the one we left.
  const back = await converge({ artifact_dir: join(builds, '0.4.0'), version: '0.3.0' });
  assert.deepEqual(back.map((c) => c.id), ['link:/opt/epoch-agent/current']);
  assert.equal(link('current'), 'releases/0.3.0');
  assert.equal(link('previous'), 'releases/0.4.0');

  // The switch's undo puts both links back.
  await executeSteps(transport, back[0]!.undo!);
  assert.equal(link('current'), 'releases/0.4.0');
  assert.equal(link('previous'), 'releases/0.3.0');
});

test('a damaged file in the current release is detected and replaced atomically', async () => {
  writeFileSync(join(home, 'releases/0.4.0/epoch-agent.cjs'), 'tampered');
  const fixed = await converge({ artifact_dir: join(builds, '0.4.0') });
  assert.deepEqual(fixed.map((c) => c.id), ['release:0.4.0']);
  assert.match(readFileSync(join(home, 'current/epoch-agent.cjs'), 'utf8'), /"0\.4\.0"/);
  assert.deepEqual(readdirSync(join(home, 'releases')).filter((n) => n.includes('.tmp-') || n.includes('.old-')), []);
});

test('an upload whose bytes do not match the manifest fails and leaves nothing behind', async () => {
  const params = agentReleaseParams.parse({ artifact_dir: build('0.5.0') });
  const facts = await agentRelease.gather(host, params);
  const upload = agentRelease.plan(params, facts)[0]!;
  const step = upload.steps[0]!;
  assert.ok(step.kind === 'run');
  const corrupted = { ...step, argv: [...step.argv.slice(0, -1), step.argv.at(-1)!.replace(/^[0-9a-f]{4}/, '0000')] };
  await assert.rejects(executeSteps(transport, [corrupted]), /sha256sum/);
  assert.deepEqual(readdirSync(join(home, 'releases')).filter((n) => n.startsWith('0.5.0')), []);
  assert.equal(link('current'), 'releases/0.4.0');
});
