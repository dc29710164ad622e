// SSH transport against real OpenSSH sshd processes in network namespaces of our own (see netns-sshd.ts).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isUnreachableError } from '../../provisioner/src/core/errors';
import type { CommandLogEntry } from '../../provisioner/src/transport/command-log';
import { isHostKeyError } from '../../provisioner/src/transport/host-key-error';
import { fingerprintOfBlob } from '../../provisioner/src/transport/known-hosts';
import { executeStep } from '../../provisioner/src/runner/apply-steps';
import { JumpPool, SshTransport, type SshTransportOptions } from '../../provisioner/src/transport/ssh-transport';
import { type NetnsSshLab, skipReason, startNetnsSshLab } from './netns-sshd';

const skip = skipReason();

describe('ssh transport (netns sshd)', { skip }, () => {
  let lab: NetnsSshLab;
  before(async () => {
    lab = await startNetnsSshLab();
  });
  after(async () => {
    await lab?.stop();
  });

  const optionsFor = (overrides: Partial<SshTransportOptions> = {}): SshTransportOptions => ({
    hostName: 'bastion',
    target: { address: lab.bastion.address, port: lab.bastion.port, user: 'root' },
    privateKeyFile: lab.clientKey,
    agentSocket: '',
    knownHostsFile: lab.knownHosts,
    connectTimeoutMs: 5000,
    ...overrides,
  });
  const fingerprintOf = (pub: string) => fingerprintOfBlob(Buffer.from(pub.split(' ')[1] ?? '', 'base64'));

  test('key auth, LC_ALL=C, exit codes as data, stdin, and every command on one connection', async () => {
    const log: CommandLogEntry[] = [];
    const t = await SshTransport.connect(optionsFor({ onCommand: (e) => log.push(e) }));
    try {
      const id = await t.exec(['id', '-u']);
      assert.equal(id.stdout.trim(), '0');
      assert.equal((await t.exec(['sh', '-c', 'echo "$LC_ALL"'])).stdout, 'C\n');
      const failing = await t.exec(['sh', '-c', 'echo no >&2; exit 7']);
      assert.deepEqual([failing.exitCode, failing.stderr], [7, 'no\n']);
      assert.equal((await t.exec(['cat'], { stdin: 'from stdin' })).stdout, 'from stdin');
      assert.equal((await t.exec(['echo', "it's $HOME `id`"])).stdout, "it's $HOME `id`\n");
      // 20 commands at once, more than the channel limit: all succeed over the same TCP connection.
      const results = await Promise.all(Array.from({ length: 20 }, () => t.exec(['sh', '-c', 'echo "$SSH_CONNECTION"'])));
      assert.equal(new Set(results.map((r) => r.stdout)).size, 1);
      assert.ok(log.length >= 25);
      assert.ok(log.every((e) => e.host === 'bastion' && e.command.startsWith('env LC_ALL=C')));
    } finally {
      await t.close();
    }
  });

  test('a command past its timeout is ended and reported as timed out', async () => {
    const t = await SshTransport.connect(optionsFor());
    try {
      const started = Date.now();
      const r = await t.exec(['sleep', '30'], { timeoutMs: 300 });
      assert.equal(r.timedOut, true);
      assert.equal(r.exitCode, null);
      assert.ok(Date.now() - started < 5000);
      assert.equal((await t.exec(['true'])).exitCode, 0, 'the connection survives a timed-out command');
    } finally {
      await t.close();
    }
  });

  test('writes a file (the runner\'s one-command put) with the mode, and reads files back', async () => {
    const t = await SshTransport.connect(optionsFor());
    try {
      const path = `/tmp/eprn-upload-${process.pid}`;
      await executeStep(t, { kind: 'put', path, content: 'payload\n', mode: 0o640 });
      assert.equal((await t.exec(['stat', '-c', '%a', path])).stdout.trim(), '640');
      assert.equal((await t.getFile(path)).toString(), 'payload\n');
      await t.exec(['rm', '-f', path]);
    } finally {
      await t.close();
    }
  });

  test('ssh-agent auth through SSH_AUTH_SOCK', async () => {
    const socket = join(lab.dir, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 50; i++) {
        try {
          execFileSync('ssh-add', [lab.clientKey], { env: { SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const { privateKeyFile: _unused, ...withoutKey } = optionsFor({ agentSocket: socket });
      const t = await SshTransport.connect(withoutKey);
      assert.equal((await t.exec(['id', '-u'])).stdout.trim(), '0');
      await t.close();
    } finally {
      agent.kill('SIGTERM');
    }
  });

  test('ProxyJump: the inner host is reachable only through the bastion', async () => {
    const inner = { address: lab.inner.address, port: lab.inner.port, user: 'root' };
    // From the routing tables, without sending anything (a direct attempt would leave through this machine's default
    // route): the controller's link to the bastion does not lead to the inner host, and the bastion does not forward.
    assert.doesNotMatch(execFileSync('ip', ['route', 'get', lab.inner.address]).toString(), new RegExp(`dev ${lab.bastionLink}\\b`));
    assert.match(execFileSync('ip', ['-n', lab.bastion.namespace, 'route', 'get', lab.inner.address]).toString(), /dev inner0/);
    assert.equal(execFileSync('ip', ['netns', 'exec', lab.bastion.namespace, 'sysctl', '-n', 'net.ipv4.ip_forward']).toString().trim(), '0');
    const t = await SshTransport.connect(
      optionsFor({ hostName: 'inner', target: inner, jumps: [{ address: lab.bastion.address, port: lab.bastion.port, user: 'root' }] }),
    );
    try {
      const r = await t.exec(['sh', '-c', 'echo "$SSH_CONNECTION"']);
      // SSH_CONNECTION is "client-ip client-port server-ip server-port": the client is the bastion's inner veth.
      const [clientIp, , serverIp, serverPort] = r.stdout.trim().split(' ');
      assert.deepEqual([serverIp, serverPort], [lab.inner.address, '2222']);
      assert.notEqual(clientIp, lab.bastion.address.replace(/\d+$/, (n) => String(Number(n) - 1)), 'not the controller');
      await executeStep(t, { kind: 'put', path: '/tmp/eprn-via-bastion', content: 'x', mode: 0o600 });
      assert.equal((await t.getFile('/tmp/eprn-via-bastion')).toString(), 'x');
      await t.exec(['rm', '-f', '/tmp/eprn-via-bastion']);
    } finally {
      await t.close();
    }
  });

  test('hosts behind one bastion share one connection to it (JumpPool), closed with the last host', async () => {
    const pool = new JumpPool();
    const bastionConnections = () =>
      execFileSync('ip', ['netns', 'exec', lab.bastion.namespace, 'ss', '-Htn', 'state', 'established', `( sport = :${lab.bastion.port} )`]).toString().trim().split('\n').filter(Boolean).length;
    const viaBastion = () =>
      SshTransport.connect(
        optionsFor({ hostName: 'inner', target: { address: lab.inner.address, port: lab.inner.port, user: 'root' }, jumps: [{ address: lab.bastion.address, port: lab.bastion.port, user: 'root' }], jumpPool: pool }),
      );
    const transports = await Promise.all([viaBastion(), viaBastion(), viaBastion()]);
    try {
      const outputs = await Promise.all(transports.map((t) => t.exec(['hostname'])));
      assert.ok(outputs.every((r) => r.exitCode === 0));
      assert.equal(bastionConnections(), 1);
    } finally {
      for (const t of transports) await t.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(bastionConnections(), 0, 'the shared bastion connection is closed with its last user');
  });

  test('an unknown host key is refused without --accept-new-host-keys', async () => {
    const empty = join(lab.dir, 'known_hosts_empty');
    writeFileSync(empty, '');
    await assert.rejects(SshTransport.connect(optionsFor({ knownHostsFile: empty })), (e) => isHostKeyError(e) && e.reason === 'unknown' && /--accept-new-host-keys/.test(e.message));
  });

  test('--accept-new-host-keys records the key on first contact, and the second contact trusts it', async () => {
    const file = join(lab.dir, 'known_hosts_new');
    writeFileSync(file, '');
    const first = await SshTransport.connect(optionsFor({ knownHostsFile: file, acceptNewHostKeys: true }));
    await first.close();
    const written = readFileSync(file, 'utf8');
    assert.equal(written, `${lab.bastion.address} ${lab.bastion.hostKeyPub.split(' ').slice(0, 2).join(' ')}\n`);
    const second = await SshTransport.connect(optionsFor({ knownHostsFile: file }));
    await second.close();
    assert.equal(readFileSync(file, 'utf8'), written, 'already known: nothing appended');
  });

  test('hashed known_hosts entries (ssh-keygen -H) are honoured', async () => {
    const file = join(lab.dir, 'known_hosts_hashed');
    writeFileSync(file, readFileSync(lab.knownHosts));
    execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
    const t = await SshTransport.connect(optionsFor({ knownHostsFile: file }));
    await t.close();
  });

  test('a CHANGED host key is a hard error naming host, key type and both fingerprints, even with accept-new', async () => {
    const oldFingerprint = fingerprintOf(lab.inner.hostKeyPub);
    await lab.inner.rekey();
    const newFingerprint = fingerprintOf(lab.inner.hostKeyPub);
    const before = readFileSync(lab.knownHosts, 'utf8');
    await assert.rejects(
      SshTransport.connect(
        optionsFor({
          hostName: 'inner',
          target: { address: lab.inner.address, port: lab.inner.port, user: 'root' },
          jumps: [{ address: lab.bastion.address, port: lab.bastion.port, user: 'root' }],
          acceptNewHostKeys: true,
        }),
      ),
      (e) =>
        isHostKeyError(e) &&
        e.reason === 'changed' &&
        e.message.includes(`[${lab.inner.address}]:2222`) &&
        e.message.includes('ssh-ed25519') &&
        e.message.includes(oldFingerprint) &&
        e.message.includes(newFingerprint),
    );
    assert.equal(readFileSync(lab.knownHosts, 'utf8'), before, 'known_hosts is not touched');
  });

  test('a connection lost mid-run makes later commands reject with UnreachableError', async () => {
    const t = await SshTransport.connect(optionsFor());
    try {
      // The shell's parent is this connection's sshd session process: killing it drops the connection under the
      // running command, whose outcome is then unknown: unreachable, not a failed command with no exit code.
      await assert.rejects(t.exec(['sh', '-c', 'kill -9 $PPID'], { timeoutMs: 5000 }), (e) => isUnreachableError(e) && /connection lost \(.*\) while running `env LC_ALL=C sh -c/.test(e.message));
      await assert.rejects(t.exec(['true']), (e) => isUnreachableError(e) && /connection lost/.test(e.message));
    } finally {
      await t.close();
    }
  });

  test('connection refused and failed authentication are unreachable, not failed', async () => {
    await assert.rejects(SshTransport.connect(optionsFor({ target: { address: lab.bastion.address, port: 2200, user: 'root' } })), (e) => isUnreachableError(e) && /ECONNREFUSED/.test(e.message));
    const otherKey = join(lab.dir, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    await assert.rejects(SshTransport.connect(optionsFor({ privateKeyFile: otherKey })), (e) => isUnreachableError(e) && /authentication as root failed/.test(e.message));
  });
});
