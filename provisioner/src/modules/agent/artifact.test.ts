import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { loadAgentArtifact, packTar, parseManifest } from './artifact';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

function makeBuild(version: string, tamper = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-artifact-'));
  mkdirSync(join(dir, 'prebuilds/linux-x64'), { recursive: true });
  const agent = '#!/usr/bin/env node\nconsole.log("hi")\n';
  const addon = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]);
  writeFileSync(join(dir, 'epoch-agent.cjs'), tamper ? `${agent}//x` : agent);
  writeFileSync(join(dir, 'prebuilds/linux-x64/origdst.node'), addon);
  const manifest = { name: 'epoch-agent', version, files: { 'epoch-agent.cjs': sha(agent), 'prebuilds/linux-x64/origdst.node': sha(addon) } };
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}

test('loads a build, verifies it and packs a tarball that GNU tar lists', (t) => {
  const dir = makeBuild('0.3.0');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = loadAgentArtifact(dir);
  assert.equal(a.version, '0.3.0');
  assert.deepEqual(Object.keys(a.expectedSums).sort(), ['epoch-agent.cjs', 'manifest.json', 'prebuilds/linux-x64/origdst.node']);
  const listing = spawnSync('tar', ['-tvzf', '-'], { input: a.tarball, encoding: 'utf8' });
  assert.equal(listing.status, 0, listing.stderr);
  assert.match(listing.stdout, /-rw-r--r-- root\/root +8 1970-01-01 00:00 prebuilds\/linux-x64\/origdst\.node/);
  // Deterministic: the same files give the same bytes (so hashes of the upload are stable).
  assert.deepEqual(packTar([{ path: 'a', data: Buffer.from('x') }]), packTar([{ path: 'a', data: Buffer.from('x') }]));
  assert.equal(gunzipSync(a.tarball).length % 512, 0);
});

test('a file that does not match the manifest is refused', (t) => {
  const dir = makeBuild('0.3.1', true);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.throws(() => loadAgentArtifact(dir), /epoch-agent\.cjs: sha256 is [0-9a-f]{64}, manifest says [0-9a-f]{64}; rebuild/);
});

test('a missing build says to run the build', () => {
  assert.throws(() => loadAgentArtifact('/nonexistent/dist/agent'), /cannot read \/nonexistent\/dist\/agent\/manifest\.json \(ENOENT\); run `npm run build` first/);
});

test('manifest validation names the field and the value', () => {
  assert.throws(() => parseManifest('{"name":"x"}', 'm.json'), { message: 'm.json: name is "x", expected "epoch-agent"' });
  assert.throws(() => parseManifest('{"name":"epoch-agent","version":"../1","files":{}}', 'm.json'), /version "\.\.\/1" is not a valid release name/);
  assert.throws(() => parseManifest('{"name":"epoch-agent","version":"1.0.0","files":{"../x":"00"}}', 'm.json'), /file path "\.\.\/x" must be relative/);
  assert.throws(() => parseManifest('{"name":"epoch-agent","version":"1.0.0","files":{"a":"00"}}', 'm.json'), /sha256 of a is "00", expected 64 hex digits/);
});
