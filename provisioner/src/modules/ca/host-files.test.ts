import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LocalTransport } from '../../transport/local-transport';
import { commandPathArgv, commandPathFrom, fileFrom, parseProbeBatch, probeAll, readFileArgv, statArgv, statFrom } from './host-files';

const work = mkdtempSync(join(tmpdir(), 'epoch-host-files-'));
after(() => rmSync(work, { recursive: true, force: true }));
const local = new LocalTransport({ hostName: 'local' });

test('probeAll runs every probe in one call and returns each one as probe() would', async () => {
  const file = join(work, 'a b.txt');
  writeFileSync(file, "it's\n\nbytes: \u00e9\n\n");
  const calls: string[] = [];
  const counting = { ...local, hostName: 'local', exec: (argv: readonly string[], o?: Parameters<LocalTransport['exec']>[1]) => {
      calls.push(argv[0]!);
      return local.exec(argv, o);
    } } as unknown as LocalTransport;
  const [content, missing, stdin, failing, stat, cmd] = await probeAll(counting, [
    { argv: readFileArgv(file) },
    { argv: readFileArgv(join(work, 'missing')) },
    { argv: ['sh', '-c', 'cat; echo "$1" >&2', 'x', "quote ' arg"], stdin: 'from stdin\n' },
    { argv: ['sh', '-c', 'exit 7'] },
    { argv: statArgv(file) },
    { argv: commandPathArgv('sh') },
  ]);
  assert.equal(calls.length, 1, 'one round trip');
  assert.equal(fileFrom(content!, file), "it's\n\nbytes: \u00e9\n\n", 'content byte for byte, trailing newlines kept');
  assert.equal(fileFrom(missing!, 'missing'), null);
  assert.deepEqual([stdin!.stdout, stdin!.stderr, stdin!.exitCode], ['from stdin\n', "quote ' arg\n", 0]);
  assert.equal(failing!.exitCode, 7);
  assert.match(statFrom(stat!, file)?.mode ?? '', /^[0-7]{3}$/);
  assert.match(commandPathFrom(cmd!) ?? '', /^\/.*\/sh$/);
});

test('a probe with no stdin reads end-of-file, not the batch script', async () => {
  const [r] = await probeAll(local, [{ argv: ['sh', '-c', 'wc -c'] }]);
  assert.equal(r!.stdout.trim(), '0');
});

test('parseProbeBatch refuses output with a missing record, naming the probe it stopped at', () => {
  const probes = [{ argv: ['true'] }, { argv: ['cat', '--', '/x'] }];
  assert.throws(() => parseProbeBatch('@@epoch-probe 0 0\n\n\n', probes), /got 1 of 2 results; stopped at `cat -- \/x`/);
  assert.throws(() => parseProbeBatch('@@epoch-probe 1 0\n\n\n@@epoch-probe end\n', probes), /unexpected record 1/);
  assert.deepEqual(
    parseProbeBatch(`@@epoch-probe 0 0\n${Buffer.from('ok').toString('base64')}\n\n@@epoch-probe 1 1\n\n${Buffer.from('nope').toString('base64')}\n@@epoch-probe end\n`, probes).map((r) => [r.exitCode, r.stdout, r.stderr]),
    [[0, 'ok', ''], [1, '', 'nope']],
  );
});
