import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AgentReleaseFacts, agentReleaseParams, parseReleaseProbe, planRelease, pruneList } from './agent-release';

const sums = { 'epoch-agent.cjs': 'a'.repeat(64), 'prebuilds/linux-x64/origdst.node': 'b'.repeat(64), 'manifest.json': 'c'.repeat(64) };
const artifact = (version: string) => ({ version, expectedSums: sums, tarballBase64: 'H4sI' });
const params = agentReleaseParams.parse({});

function facts(over: Partial<AgentReleaseFacts['remote']>, version = '0.2.0'): AgentReleaseFacts {
  return { target: version, artifact: artifact(version), remote: { current: null, previous: null, releases: [], targetSums: {}, ...over } };
}

test('fresh host: upload, then switch current; nothing to prune', () => {
  const changes = planRelease(params, facts({}));
  assert.deepEqual(changes.map((c) => c.id), ['release:0.2.0', 'link:/opt/epoch-agent/current']);
  const upload = changes[0]!;
  assert.equal(upload.steps.length, 1);
  const step = upload.steps[0]!;
  assert.ok(step.kind === 'run' && step.stdin === 'H4sI');
  assert.ok(step.kind === 'run' && step.argv.at(-1)!.includes(`${'b'.repeat(64)}  prebuilds/linux-x64/origdst.node\n`));
  // No /opt/epoch-agent before: undo removes the release, then releases/ and the home the upload created (once empty).
  const undo = upload.undo?.[0];
  assert.ok(undo?.kind === 'run' && undo.argv.slice(-3).join(' ') === '/opt/epoch-agent/releases/0.2.0 /opt/epoch-agent/releases /opt/epoch-agent', JSON.stringify(upload.undo));
  const sw = changes[1]!;
  assert.ok(sw.steps[0]!.kind === 'run' && sw.steps[0]!.argv.slice(-3).join(' ') === '/opt/epoch-agent releases/0.2.0 ');
  // Undo removes both links (there were none) and restarts a running agent.
  assert.ok(sw.undo![0]!.kind === 'run' && sw.undo![0]!.argv.slice(-2).join('|') === '|');
  assert.ok(sw.undo![1]!.kind === 'run' && sw.undo![1]!.argv.includes('epoch-agent.service'));
});

test('a new release beside others (the home exists): its undo removes only that release', () => {
  const changes = planRelease(params, facts({ home: true, current: '0.1.0', releases: ['0.1.0'] }));
  assert.deepEqual(changes[0]!.undo, [{ kind: 'run', argv: ['rm', '-rf', '--', '/opt/epoch-agent/releases/0.2.0'] }]);
});

test('already converged twin: same sums, current on it, within keep: no changes', () => {
  const remote = { current: '0.2.0', previous: '0.1.0', releases: ['0.2.0', '0.1.0'], targetSums: { ...sums } };
  assert.deepEqual(planRelease(params, facts(remote)), []);
});

test('a damaged release on the host is replaced, and its undo is a no-op', () => {
  const remote = { current: '0.2.0', previous: null, releases: ['0.2.0'], targetSums: { ...sums, 'epoch-agent.cjs': 'd'.repeat(64) } };
  const changes = planRelease(params, facts(remote));
  assert.deepEqual(changes.map((c) => c.id), ['release:0.2.0']);
  assert.deepEqual(changes[0]!.undo, []);
  assert.match(changes[0]!.summary, /files differ from the manifest/);
});

test('new version: upload, switch (previous = old current), prune beyond keep=3', () => {
  const remote = { current: '0.1.2', previous: '0.1.1', releases: ['0.1.2', '0.1.1', '0.1.0', '0.0.9', '0.1.0.tmp-AbC123'], targetSums: {} };
  const changes = planRelease(params, facts(remote));
  assert.deepEqual(changes.map((c) => c.id), ['release:0.2.0', 'link:/opt/epoch-agent/current', 'prune:/opt/epoch-agent/releases']);
  assert.equal(changes[1]!.diff!.after, 'current -> 0.2.0\nprevious -> 0.1.2\n');
  const prune = changes[2]!;
  assert.deepEqual(prune.steps, [
    { kind: 'run', argv: ['rm', '-rf', '--', '/opt/epoch-agent/releases/0.1.0.tmp-AbC123', '/opt/epoch-agent/releases/0.1.0', '/opt/epoch-agent/releases/0.0.9'], timeoutMs: 120_000 },
  ]);
  assert.equal(prune.undo, null);
});

test('prune never removes current or previous, even when they are the oldest', () => {
  assert.deepEqual(pruneList(['0.5', '0.4', '0.3', '0.2', '0.1'], '0.1', '0.2', 3), ['0.4', '0.3']);
  assert.deepEqual(pruneList(['0.5', '0.4'], '0.5', '0.4', 2), []);
});

test('pinning a release already on the host (rollback): switch only, previous becomes the old current', () => {
  const remote = { current: '0.2.0', previous: '0.1.0', releases: ['0.2.0', '0.1.0'], targetSums: {} };
  const changes = planRelease(agentReleaseParams.parse({ version: '0.1.0' }), { target: '0.1.0', artifact: null, remote });
  assert.deepEqual(changes.map((c) => c.id), ['link:/opt/epoch-agent/current']);
  assert.equal(changes[0]!.diff!.after, 'current -> 0.1.0\nprevious -> 0.2.0\n');
  // Its twin after the switch is converged.
  const after = { ...remote, current: '0.1.0', previous: '0.2.0' };
  assert.deepEqual(planRelease(agentReleaseParams.parse({ version: '0.1.0' }), { target: '0.1.0', artifact: null, remote: after }), []);
});

test('pinning a release the host does not have is a clear error', () => {
  const remote = { current: '0.2.0', previous: null, releases: ['0.2.0', '0.2.0.tmp-x1'], targetSums: {} };
  assert.throws(() => planRelease(agentReleaseParams.parse({ version: '0.0.1' }), { target: '0.0.1', artifact: null, remote }), {
    message: 'release 0.0.1 is not on the host (it has 0.2.0) and the artifact is another version',
  });
});

test('parses the release probe', () => {
  const out = [
    'current=/opt/epoch-agent/releases/0.2.0',
    'previous=',
    'release=0.2.0',
    'release=0.1.0',
    `sum=${'a'.repeat(64)}  epoch-agent.cjs`,
    `sum=${'b'.repeat(64)}  prebuilds/linux-x64/origdst.node`,
    '',
  ].join('\n');
  assert.deepEqual(parseReleaseProbe(out), {
    current: '0.2.0',
    previous: null,
    releases: ['0.2.0', '0.1.0'],
    targetSums: { 'epoch-agent.cjs': 'a'.repeat(64), 'prebuilds/linux-x64/origdst.node': 'b'.repeat(64) },
  });
  assert.equal(parseReleaseProbe('current=/usr/lib/elsewhere\n').current, null);
});

test('params: keep_releases must keep current and previous', () => {
  assert.throws(() => agentReleaseParams.parse({ keep_releases: 1 }), /keep_releases must be at least 2/);
  assert.throws(() => agentReleaseParams.parse({ version: '../x' }), /version must be a release name/);
});

test('state absent removes /opt/epoch-agent; its twin is converged', () => {
  const p = agentReleaseParams.parse({ state: 'absent' });
  const remote = { home: true, current: '0.2.0', previous: '0.1.0', releases: ['0.2.0', '0.1.0'], targetSums: {} };
  const changes = planRelease(p, { remote, target: '', artifact: null });
  assert.deepEqual(changes.map((c) => c.steps), [[{ kind: 'run', argv: ['rm', '-rf', '--', '/opt/epoch-agent'], timeoutMs: 120_000 }]]);
  assert.deepEqual(planRelease(p, { remote: { current: null, previous: null, releases: [], targetSums: {} }, target: '', artifact: null }), []);
});

test('version: previous is accepted, and registered without the plan-again check', async () => {
  assert.equal(agentReleaseParams.parse({ version: 'previous' }).version, 'previous');
  const { getModule } = await import('../registry');
  await import('./index');
  const registered = getModule('agent_release')!;
  assert.equal(registered.converges?.({ version: 'previous' }), false);
  assert.equal(registered.converges?.({}), true);
});

test('gather: a host without the release gets the tarball in its facts; the already converged twin packs nothing', async (t) => {
  const { createHash } = await import('node:crypto');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { FakeTransport } = await import('../../transport/fake-transport');
  const { agentRelease } = await import('./agent-release');
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const dir = mkdtempSync(join(tmpdir(), 'epoch-release-gather-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const agent = 'console.log("hi")\n';
  const manifest = `${JSON.stringify({ name: 'epoch-agent', version: '0.4.0', files: { 'epoch-agent.cjs': sha(agent) } })}\n`;
  writeFileSync(join(dir, 'epoch-agent.cjs'), agent);
  writeFileSync(join(dir, 'manifest.json'), manifest);
  const p = agentReleaseParams.parse({ artifact_dir: dir });
  const host = (stdout: string) => ({ name: 'h', vars: {}, transport: new FakeTransport('h').on(['sh', '-c'], { stdout }) });

  const fresh = await agentRelease.gather(host(''), p);
  assert.match(fresh.artifact?.tarballBase64 ?? '', /^H4sI/, 'gzip, base64');
  assert.deepEqual(planRelease(p, fresh).map((c) => c.id), ['release:0.4.0', 'link:/opt/epoch-agent/current']);

  const converged = await agentRelease.gather(host(`home=yes\ncurrent=releases/0.4.0\nprevious=\nrelease=0.4.0\nsum=${sha(agent)}  epoch-agent.cjs\nsum=${sha(manifest)}  manifest.json\n`), p);
  assert.equal(converged.artifact?.tarballBase64, null, 'nothing to upload: no tarball');
  assert.deepEqual(planRelease(p, converged), []);
});
