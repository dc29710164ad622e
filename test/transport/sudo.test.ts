// sudo through the SSH transport, on a real lab host (non-root users exist only inside lab hosts):
// NOPASSWD with `sudo -n`, a password over stdin (`sudo -k -S -p ''`), and the refusals when it is missing or wrong.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { executeStep } from '../../provisioner/src/runner/apply-steps';
import { SshTransport, type SshTransportOptions } from '../../provisioner/src/transport/ssh-transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';

const skip = labSkipReason();
const password = 'Corr3ct-horse-eprn';

describe('sudo over ssh (lab host)', { skip }, () => {
  let lab: Lab;
  let host: string;
  before(async () => {
    lab = await startLab({ hosts: 1 });
    host = lab.hosts[0]?.name ?? '';
    const pub = execFileSync('ssh-keygen', ['-y', '-f', lab.keyFile]).toString();
    const setup = [
      'set -e',
      'for u in eprn-nopw eprn-pw; do',
      '  /usr/sbin/useradd -m -s /bin/sh "$u"',
      '  mkdir -p /home/$u/.ssh && printf "%s\\n" "$1" > /home/$u/.ssh/authorized_keys',
      '  chown -R $u:$u /home/$u/.ssh && chmod 700 /home/$u/.ssh && chmod 600 /home/$u/.ssh/authorized_keys',
      'done',
      'printf "eprn-pw:%s\\n" "$2" | /usr/sbin/chpasswd',
      'printf "eprn-nopw ALL=(ALL) NOPASSWD: ALL\\neprn-pw ALL=(ALL) ALL\\n" > /etc/sudoers.d/eprn && chmod 440 /etc/sudoers.d/eprn',
    ].join('\n');
    await lab.execOk(host, ['sh', '-c', setup, 'sh', pub.trim(), password]);
  });
  after(async () => {
    await lab?.down();
  });

  const connect = (user: string, become?: SshTransportOptions['become']) =>
    SshTransport.connect({
      hostName: host,
      target: { address: lab.host(host).address, port: 22, user },
      privateKeyFile: lab.keyFile,
      agentSocket: '',
      knownHostsFile: lab.knownHostsFile,
      ...(become && { become }),
    });

  test('NOPASSWD: sudo -n becomes root; the same call with become:false stays the user', async () => {
    const t = await connect('eprn-nopw', { user: 'root' });
    try {
      assert.equal((await t.exec(['id', '-un'])).stdout.trim(), 'root');
      assert.equal((await t.exec(['id', '-un'], { become: false })).stdout.trim(), 'eprn-nopw');
    } finally {
      await t.close();
    }
  });

  test('a password over stdin: root, stdin still reaches the command, file writes land as root', async () => {
    const t = await connect('eprn-pw', { user: 'root', password });
    try {
      assert.equal((await t.exec(['id', '-un'])).stdout.trim(), 'root');
      assert.equal((await t.exec(['cat'], { stdin: 'payload' })).stdout, 'payload', 'the password line is consumed by sudo only');
      // The runner's write: the content follows the password line on stdin, to a command run as root.
      await executeStep(t, { kind: 'put', path: '/root/eprn-upload', content: 'as root\n', mode: 0o600 });
      const stat = await t.exec(['stat', '-c', '%U %a', '/root/eprn-upload']);
      assert.equal(stat.stdout.trim(), 'root 600');
      assert.equal((await t.getFile('/root/eprn-upload')).toString(), 'as root\n');
      const leftovers = await t.exec(['sh', '-c', 'ls -a /root | grep -c epoch-tmp'], { become: true });
      assert.equal(leftovers.stdout.trim(), '0', 'no temp file is left');
    } finally {
      await t.close();
    }
  });

  test('a password-protected sudo without a password fails clearly (sudo -n), never hangs', async () => {
    const t = await connect('eprn-pw', { user: 'root' });
    try {
      const r = await t.exec(['id', '-un'], { timeoutMs: 10_000 });
      assert.equal(r.exitCode, 1);
      assert.equal(r.timedOut, false);
      assert.match(r.stderr, /password is required/);
    } finally {
      await t.close();
    }
  });

  test('a wrong password is refused', async () => {
    const t = await connect('eprn-pw', { user: 'root', password: 'wrong-password' });
    try {
      const r = await t.exec(['id', '-un'], { timeoutMs: 10_000 });
      assert.notEqual(r.exitCode, 0);
      assert.notEqual(r.stdout.trim(), 'root');
    } finally {
      await t.close();
    }
  });
});
