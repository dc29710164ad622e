import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { CommandLogEntry } from '../transport/command-log';
import { LocalTransport } from '../transport/local-transport';
import { executeStep, putFailure } from './apply-steps';

// The put script runs for real under /bin/sh in a scratch folder (a local transport: the same script the SSH
// transport sends).
const scratch = mkdtempSync(join(tmpdir(), 'epoch-put-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const log: CommandLogEntry[] = [];
const local = new LocalTransport({ hostName: 'local', onCommand: (e) => log.push(e) });

test('put: one round trip creates the folder, writes the bytes, sets mode and owner, then renames', async () => {
  const path = join(scratch, 'new/dir/app.conf');
  const content = 'line one\nzweite Zeile äöü\n$HOME `x` \'q\' "d"\nno final newline';
  const before = log.length;
  await executeStep(local, { kind: 'put', path, content, mode: 0o640, owner: '65534:65534' });
  assert.equal(readFileSync(path, 'utf8'), content);
  const st = statSync(path);
  assert.equal(st.mode & 0o7777, 0o640);
  assert.equal(st.uid, 65534);
  assert.equal(st.gid, 65534);
  assert.equal(log.length - before, 1, 'one command');
  assert.deepEqual(readdirSync(join(scratch, 'new/dir')), ['app.conf'], 'no temp file left');
});

test('put over an existing file replaces it; a validation that passes sees the temp file', async () => {
  const path = join(scratch, 'replace.conf');
  writeFileSync(path, 'old\n', { mode: 0o600 });
  await executeStep(local, { kind: 'put', path, content: 'new\n', mode: 0o644, validate: ['grep', '-qx', 'new', '{}'] });
  assert.equal(readFileSync(path, 'utf8'), 'new\n');
  assert.equal(statSync(path).mode & 0o7777, 0o644);
});

test('a failing validation leaves the old file and no temp file, and names the validation', async () => {
  const path = join(scratch, 'kept.conf');
  writeFileSync(path, 'good\n');
  await assert.rejects(
    executeStep(local, { kind: 'put', path, content: 'broken\n', mode: 0o644, validate: ['sh', '-c', 'echo "bad syntax in $1" >&2; exit 3', 'check', '{}'] }),
    (e: Error) => /^put .*kept\.conf: validation `sh -c .*` exited 3: bad syntax in .*\.epoch-tmp-.*kept\.conf$/.test(e.message),
  );
  assert.equal(readFileSync(path, 'utf8'), 'good\n');
  assert.deepEqual(readdirSync(scratch).filter((f) => f.includes('epoch-tmp')), []);
});

test('a folder that cannot be made fails the put at mkdir with its error', async () => {
  writeFileSync(join(scratch, 'a-file'), '');
  await assert.rejects(executeStep(local, { kind: 'put', path: join(scratch, 'a-file/sub/x.conf'), content: 'x', mode: 0o644 }), (e: Error) =>
    /^put .*a-file\/sub\/x\.conf: mkdir exited 1: mkdir: .*Not a directory$/.test(e.message),
  );
});

test('a secret put sends its content on stdin only: the run log says secret and never holds it', async () => {
  const before = log.length;
  await executeStep(local, { kind: 'put', path: join(scratch, 'key.pem'), content: 'PRIVATE-KEY-BYTES', mode: 0o600, secret: true });
  const entries = log.slice(before);
  assert.deepEqual(entries.map((e) => e.stdin), ['secret']);
  assert.ok(!JSON.stringify(entries).includes('PRIVATE-KEY-BYTES'));
  assert.equal(statSync(join(scratch, 'key.pem')).mode & 0o7777, 0o600);
});

test('putFailure reads the failed step from the last stderr line; other output is kept as detail', () => {
  assert.deepEqual(putFailure('chmod: nope\n@@epoch-put chmod 1\n'), { step: 'chmod', exitCode: 1, detail: 'chmod: nope' });
  assert.deepEqual(putFailure('sh: killed\n'), { step: 'put', exitCode: null, detail: 'sh: killed' });
});
