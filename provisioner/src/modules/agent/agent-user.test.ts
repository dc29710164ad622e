import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentUserModule, nologin, parsePasswdLine, userChanges } from './agent-user';

test('a host without the agent user gets it created, and the undo removes it', () => {
  const [change, ...rest] = userChanges(null);
  assert.equal(rest.length, 0);
  assert.equal(change?.id, 'user:epoch-agent');
  assert.deepEqual(change?.steps[0]?.kind === 'run' && change.steps[0].argv.slice(0, 3), ['useradd', '--system', '--user-group']);
  assert.deepEqual(change?.undo, [{ kind: 'run', argv: ['userdel', 'epoch-agent'] }]);
});

test('the already-converged twin: the user exists with no login shell, nothing to do', () => {
  const user = parsePasswdLine(`epoch-agent:x:998:998:epoch-agent TLS observability proxy:/var/lib/epoch-agent:${nologin}\n`);
  assert.deepEqual(user, { uid: 998, shell: nologin, gecos: 'epoch-agent TLS observability proxy' });
  assert.deepEqual(agentUserModule.plan({}, { user }), []);
});

test('a pre-existing user with a login shell gets nologin, and the undo restores its shell', () => {
  const [change] = userChanges({ uid: 1001, shell: '/bin/bash' });
  assert.equal(change?.id, 'user:epoch-agent:shell');
  assert.deepEqual(change?.undo, [{ kind: 'run', argv: ['usermod', '--shell', '/bin/bash', 'epoch-agent'] }]);
});

test('getent lines for other users are not taken for ours', () => {
  assert.equal(parsePasswdLine('nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin'), null);
  assert.equal(parsePasswdLine(''), null);
});
