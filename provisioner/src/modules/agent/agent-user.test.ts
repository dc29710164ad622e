import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentUserModule, nologin, parsePasswdLine, removeUserSteps, shadowBackupsDir, userChanges } from './agent-user';

test('a host without the agent user gets it created, and the undo removes it', () => {
  const [change, ...rest] = userChanges(null);
  assert.equal(rest.length, 0);
  assert.equal(change?.id, 'user:epoch-agent');
  const step = change?.steps[0];
  assert.ok(step?.kind === 'run');
  // The shadow-utils backups are saved outside /etc first, then useradd runs (exec'd by the save script).
  assert.deepEqual(step.argv.slice(0, 2), ['sh', '-c']);
  assert.deepEqual(step.argv.slice(3, 8), ['epoch-useradd', shadowBackupsDir, 'useradd', '--system', '--user-group']);
  assert.match(step.argv[2] as string, /cp -p -- "\/etc\/\$f" "\$d\/\$f"/);
  assert.match(step.argv[2] as string, /for f in passwd- group- shadow- gshadow-;/);
  assert.ok(!shadowBackupsDir.startsWith('/etc/'));
  assert.deepEqual(change?.undo, removeUserSteps());
});

test('removing the user restores the saved shadow-utils backups after userdel, and drops the saved copies', () => {
  const [step, ...rest] = removeUserSteps();
  assert.equal(rest.length, 0);
  assert.ok(step?.kind === 'run');
  assert.deepEqual(step.argv.slice(3), ['epoch-userdel', shadowBackupsDir, 'epoch-agent']);
  const script = step.argv[2] as string;
  assert.ok(script.indexOf('userdel') < script.indexOf('cp -p'), 'userdel first, then the restore');
  assert.match(script, /mv -f -- "\/etc\/\$f.epoch-restore" "\/etc\/\$f"/);
  assert.match(script, /rm -rf -- "\$d"/);
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
