import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { CommandLogEntry } from './command-log';
import { LocalTransport } from './local-transport';

const dir = mkdtempSync(join(tmpdir(), 'epoch-local-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const log: CommandLogEntry[] = [];
const t = new LocalTransport({ hostName: 'localhost', onCommand: (e) => log.push(e) });

test('runs argv without a shell, with LC_ALL=C, exit code as data', async () => {
  const r = await t.exec(['sh', '-c', 'echo "$LC_ALL"; echo err >&2; exit 3']);
  assert.equal(r.stdout, 'C\n');
  assert.equal(r.stderr, 'err\n');
  assert.equal(r.exitCode, 3);
  const literal = await t.exec(['echo', '$HOME;', '`id`']);
  assert.equal(literal.stdout, '$HOME; `id`\n');
});

test('stdin is passed and the log marks secret stdin without its content', async () => {
  const r = await t.exec(['cat'], { stdin: 's3cret', secret: true });
  assert.equal(r.stdout, 's3cret');
  const entry = log.at(-1);
  assert.equal(entry?.stdin, 'secret');
  assert.ok(!JSON.stringify(entry).includes('s3cret'));
});

test('a command past its timeout is killed and reported as timed out', async () => {
  const r = await t.exec(['sleep', '5'], { timeoutMs: 200 });
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, null);
});

test('getFile reads a file back', async () => {
  const path = join(dir, 'f');
  writeFileSync(path, 'hello');
  assert.equal((await t.getFile(path)).toString(), 'hello');
});
