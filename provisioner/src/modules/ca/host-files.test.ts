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
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const tail = (sizes: number[], data: string) => `@@epoch-probe sizes\n${sizes.map((n, i) => `${n} /tmp/d/${i}`).join('\n')}\n${sizes.reduce((a, b) => a + b, 0)} total\n@@epoch-probe data\n${b64(data)}\n@@epoch-probe end\n`;
  assert.throws(() => parseProbeBatch(`@@epoch-probe 0 0\n${tail([0, 0], '')}`, probes), /got 1 of 2 results; stopped at `cat -- \/x`/);
  assert.throws(() => parseProbeBatch(`@@epoch-probe 1 0\n${tail([0, 0, 0, 0], '')}`, probes), /unexpected record 1/);
  assert.throws(() => parseProbeBatch('@@epoch-probe 0 0\n@@epoch-probe 1 1\n@@epoch-probe sizes\n2 /tmp/d/o0\n', probes), /incomplete/);
  assert.throws(() => parseProbeBatch(`@@epoch-probe 0 0\n@@epoch-probe 1 1\n${tail([2, 0, 0, 4], 'ok')}`, probes), /incomplete \(4 sizes, 2 of 6 bytes\)/);
  assert.deepEqual(
    parseProbeBatch(`@@epoch-probe 0 0\n@@epoch-probe 1 1\n${tail([2, 0, 0, 4], 'oknope')}`, probes).map((r) => [r.exitCode, r.stdout, r.stderr]),
    [[0, 'ok', ''], [1, '', 'nope']],
  );
});

test('the bundle check gives the same answer for the PEM on stdin and for the certificate file on the host', async () => {
  const { readFileSync } = await import('node:fs');
  const { resolve } = await import('node:path');
  const { bundleTrustsFileProbe, bundleTrustsFrom, bundleTrustsProbe } = await import('./host-files');
  const fixture = (name: string) => resolve(import.meta.dirname, '../../../../test/fixtures/ca', name);
  const bundle = join(work, 'bundle.pem');
  writeFileSync(bundle, readFileSync(fixture('ca-ec.crt')));
  const results = await probeAll(local, [
    bundleTrustsProbe(bundle, readFileSync(fixture('ca-ec.crt'), 'utf8')),
    bundleTrustsFileProbe(bundle, fixture('ca-ec.crt')),
    bundleTrustsProbe(bundle, readFileSync(fixture('ca-next.crt'), 'utf8')),
    bundleTrustsFileProbe(bundle, fixture('ca-next.crt')),
    bundleTrustsFileProbe(bundle, join(work, 'no-such.crt')),
  ]);
  assert.deepEqual(results.map(bundleTrustsFrom), [true, true, false, false, false]);
});
