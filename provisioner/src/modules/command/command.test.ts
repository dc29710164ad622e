import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Argv } from '../../core/change';
import type { ExecOptions, ExecResult, Transport } from '../../transport/transport';
import { getModule, listModules } from '../registry';
import { commandModule, commandParams, planCommand } from './index';
import { ShellSplitError, shellSplit } from './shell-split';

test('shell-like splitting without a shell', () => {
  assert.deepEqual(shellSplit(`logger -t epoch "a b" 'c d' e\\ f ""`), ['logger', '-t', 'epoch', 'a b', 'c d', 'e f', '']);
  assert.deepEqual(shellSplit('a "x\\"y" b'), ['a', 'x"y', 'b']);
  assert.throws(() => shellSplit('echo $HOME', { rejectShellSyntax: true }), ShellSplitError);
  assert.throws(() => shellSplit('a && b', { rejectShellSyntax: true }), /needs a shell/);
  assert.throws(() => shellSplit('echo "$HOME"', { rejectShellSyntax: true }), /expansion inside double quotes/);
  assert.deepEqual(shellSplit("echo '$HOME | x'", { rejectShellSyntax: true }), ['echo', '$HOME | x']);
  assert.throws(() => shellSplit("echo 'open"), /unterminated single quote/);
});

test('command is registered and its params normalise to argv', () => {
  assert.equal(getModule('command'), commandModule);
  assert.ok(listModules().some((m) => m.name === 'command'));
  assert.deepEqual(commandParams.parse({ cmd: "touch '/tmp/a b'" }), { argv: ['touch', '/tmp/a b'] });
  assert.deepEqual(commandParams.parse({ argv: ['true'], creates: '/x' }).creates, '/x');
  assert.equal(commandParams.safeParse({ argv: ['a'], cmd: 'b' }).success, false);
  assert.equal(commandParams.safeParse({}).success, false);
  assert.equal(commandParams.safeParse({ argv: ['a'], creates: 'relative' }).success, false);
  assert.equal(commandModule.converges?.({ argv: ['a'] }), false);
  assert.equal(commandModule.converges?.({ argv: ['a'], creates: '/x' }), true);
});

test('plan: runs argv once with no undo', () => {
  assert.deepEqual(planCommand({ argv: ['systemctl', 'restart', 'x'] }, {}), [
    { id: 'command:systemctl restart x', summary: 'run systemctl restart x', steps: [{ kind: 'run', argv: ['systemctl', 'restart', 'x'] }], undo: null },
  ]);
});

test('plan: `creates` already there → converged; missing → one change', () => {
  const p = { argv: ['mkfile'], creates: '/done' };
  assert.deepEqual(planCommand(p, { createsExists: true }), []);
  assert.equal(planCommand(p, { createsExists: false }).length, 1);
});

test('plan: `removes` already absent → converged; present → one change', () => {
  const p = { argv: ['rm', '/old'], removes: '/old' };
  assert.deepEqual(planCommand(p, { removesExists: false }), []);
  assert.equal(planCommand(p, { removesExists: true }).length, 1);
});

function fakeTransport(existing: Set<string>, calls: Argv[]): Transport {
  return {
    hostName: 'h',
    async exec(argv: Argv, _o?: ExecOptions): Promise<ExecResult> {
      calls.push(argv);
      return { command: argv.join(' '), exitCode: existing.has(argv[2]!) ? 0 : 1, stdout: '', stderr: '', durationMs: 1, timedOut: false };
    },
    async getFile() {
      return Buffer.alloc(0);
    },
    async close() {},
  };
}

test('gather probes only the paths it needs, read-only (test -e)', async () => {
  const calls: Argv[] = [];
  const host = { name: 'h', vars: {}, transport: fakeTransport(new Set(['/done']), calls) };
  assert.deepEqual(await commandModule.gather(host, { argv: ['x'], creates: '/done', removes: '/gone' }), { createsExists: true, removesExists: false });
  assert.deepEqual(calls, [['test', '-e', '/done'], ['test', '-e', '/gone']]);
  assert.deepEqual(await commandModule.gather(host, { argv: ['x'] }), {});
});
