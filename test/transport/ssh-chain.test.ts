// ProxyJump through two bastions, on real sshd hosts in a namespace chain of our own (netns-chain.ts):
// the controller reaches only b1, b1 only b2, b2 the target. Driven from an inventory's
// `ansible_ssh_common_args: -o ProxyJump=b1,b2`, through the CLI's own wiring (loadInventory → connectionSpecsFor →
// openTransport) and through the CLI itself.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openTransport } from '../../provisioner/src/cli/open-transport';
import { connectionSpecsFor, loadInventory } from '../../provisioner/src/config';
import { isUnreachableError } from '../../provisioner/src/core/errors';
import { executeStep } from '../../provisioner/src/runner/apply-steps';
import { JumpPool, SshTransport } from '../../provisioner/src/transport/ssh-transport';
import { type SshChain, startSshChain } from './netns-chain';
import { signalAll, skipReason } from './netns-sshd';

const skip = skipReason();
const repo = join(import.meta.dirname, '../..');
/** The controller-side address of the link a host sits on (the previous hop's end): one below the host's. */
const previousHop = (address: string) => address.replace(/\d+$/, (n) => String(Number(n) - 1));

describe('ProxyJump through two bastions (netns chain)', { skip }, () => {
  let chain: SshChain;
  let inventory: string;
  before(async () => {
    chain = await startSshChain(
      [
        { name: 'b1', port: 22 },
        { name: 'b2', port: 2222 },
        { name: 'target', port: 22 },
      ],
      0,
    );
    const [b1, b2, target] = chain.hosts as [(typeof chain.hosts)[number], (typeof chain.hosts)[number], (typeof chain.hosts)[number]];
    inventory = join(chain.dir, 'hosts.yml');
    writeFileSync(
      inventory,
      [
        'all:',
        '  hosts:',
        '    target:',
        `      ansible_host: ${target.address}`,
        '      ansible_user: root',
        `      ansible_ssh_private_key_file: ${chain.clientKey}`,
        `      ansible_ssh_common_args: -o ProxyJump=root@${b1.address},root@${b2.address}:${b2.port}`,
        `      epoch_known_hosts_file: ${chain.knownHosts}`,
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await chain?.stop();
  });

  const hosts = () => chain.hosts as [(typeof chain.hosts)[number], (typeof chain.hosts)[number], (typeof chain.hosts)[number]];
  const established = (host: (typeof chain.hosts)[number]) =>
    chain
      .nsExec(host, ['ss', '-Htn', 'state', 'established', `( sport = :${host.port} )`])
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.trim().split(/\s+/).at(-1)?.replace(/:\d+$/, ''));

  test('isolation: neither the controller nor bastion 1 can reach the target; bastion 2 can', async () => {
    const [b1, b2, target] = hosts();
    // Proven from the routing tables, without sending anything: a direct attempt would leave through this machine's
    // own default route, and test traffic goes only to loopback and the test's own namespaces.
    // The controller's only route into the chain is link0 (the target's address is not on it), and b1 has no route
    // to the target's link at all.
    assert.doesNotMatch(execFileSync('ip', ['route', 'get', target.address]).toString(), /dev eptc/);
    assert.throws(() => chain.nsExec(b1, ['ip', 'route', 'get', target.address]), /unreachable/i);
    assert.match(chain.nsExec(b2, ['ip', 'route', 'get', target.address]), /dev down0/);
    assert.equal(chain.nsExec(b1, ['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '0');
  });

  test('inventory ProxyJump=b1,b2 → openTransport: commands and file writes run on the target, hop by hop', async () => {
    const [b1, b2, target] = hosts();
    const inv = await loadInventory(inventory);
    const spec = connectionSpecsFor(inv, ['target']).get('target');
    assert.deepEqual(
      spec?.kind === 'ssh' ? spec.proxyJump : undefined,
      [
        { user: 'root', address: b1.address, port: 22 },
        { user: 'root', address: b2.address, port: 2222 },
      ],
    );
    const t = await openTransport('target', spec, inv.hosts.get('target')?.vars ?? {}, undefined, {
      knownHostsFile: join(chain.dir, 'unused_known_hosts'),
      acceptNewHostKeys: false,
      jumpPool: new JumpPool(),
    });
    try {
      const r = await t.exec(['sh', '-c', 'echo "$SSH_CONNECTION"; cat /proc/sys/kernel/hostname >/dev/null; ip -o -4 addr show dev up0']);
      assert.equal(r.exitCode, 0, r.stderr);
      const [connection, addrLine] = r.stdout.trim().split('\n');
      // SSH_CONNECTION = client-ip client-port server-ip server-port: served by the target, dialled from b2.
      const [clientIp, , serverIp, serverPort] = (connection ?? '').split(' ');
      assert.deepEqual([serverIp, serverPort], [target.address, '22']);
      assert.equal(clientIp, previousHop(target.address), "the target's client is bastion 2's inner link");
      assert.ok(addrLine?.includes(`${target.address}/30`), `the command ran inside the target's namespace: ${addrLine}`);
      // Each hop sees exactly the connection from the hop before it.
      assert.deepEqual(established(b1), [previousHop(b1.address)], 'b1: one connection, from the controller');
      assert.deepEqual(established(b2), [previousHop(b2.address)], 'b2: one connection, from b1');
      assert.deepEqual(established(target), [previousHop(target.address)], 'target: one connection, from b2');
      const path = join(chain.dir, 'via-two-bastions');
      await executeStep(t, { kind: 'put', path, content: 'through b1 and b2\n', mode: 0o640 });
      assert.equal((await t.getFile(path)).toString(), 'through b1 and b2\n');
      assert.equal((await t.exec(['stat', '-c', '%a', path])).stdout.trim(), '640');
    } finally {
      await t.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual([established(b1), established(b2), established(target)], [[], [], []], 'closing the host closes the whole chain');
  });

  test('the CLI runs a playbook task on the target through both bastions (exit 0, ok recap)', () => {
    const [, , target] = hosts();
    const marker = join(chain.dir, 'cli-ran-on');
    const playbook = join(chain.dir, 'play.yml');
    writeFileSync(
      playbook,
      [
        '- name: through two bastions',
        '  hosts: all',
        '  tasks:',
        '    - name: record where we run',
        '      command:',
        `        argv: [sh, -c, 'echo "$SSH_CONNECTION" > ${marker}']`,
        `        creates: ${marker}`,
        '',
      ].join('\n'),
    );
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(repo, 'provisioner/src/cli/main.ts'), playbook, '--inventory', inventory, '--yes', '--output', 'json', '--log-dir', join(chain.dir, 'logs')],
      { cwd: repo, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const recap = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type?: string; hosts?: unknown })
      .find((e) => e.type === 'recap');
    assert.ok(recap, `no recap in ${r.stdout}`);
    assert.match(JSON.stringify(recap), /"unreachable":0/);
    const [clientIp, , serverIp] = readFileSync(marker, 'utf8').trim().split(' ');
    assert.deepEqual([clientIp, serverIp], [previousHop(target.address), target.address]);
  });

  test('bastion 2 frozen (SIGSTOP) under a live chain: the target\'s running and next command fail as unreachable within keepalive interval × 4', async () => {
    const [b1, b2, target] = hosts();
    // A 1 s keepalive (SshTransportOptions.keepaliveIntervalMs; default 10 s) keeps this short; ssh2 gives up after 3 misses.
    const t = await SshTransport.connect({
      hostName: 'target',
      target: { address: target.address, port: target.port, user: 'root' },
      jumps: [
        { address: b1.address, port: b1.port, user: 'root' },
        { address: b2.address, port: b2.port, user: 'root' },
      ],
      privateKeyFile: chain.clientKey,
      agentSocket: '',
      knownHostsFile: chain.knownHosts,
      keepaliveIntervalMs: 1000,
    });
    let pids: number[] = [];
    const signal = (sig: NodeJS.Signals) => signalAll(pids, sig);
    try {
      assert.equal((await t.exec(['true'])).exitCode, 0);
      const running = t.exec(['sleep', '60']);
      await new Promise((r) => setTimeout(r, 300));
      pids = b2.pids(); // every process in b2's namespace: its sshd listener and session processes
      signal('SIGSTOP');
      const frozenAt = Date.now();
      const next = t.exec(['echo', 'hello']);
      const lost = (e: unknown) => isUnreachableError(e) && /^target: SSH connection lost \(/.test(e.message);
      await Promise.all([assert.rejects(running, lost), assert.rejects(next, lost)]);
      const elapsed = Date.now() - frozenAt;
      assert.ok(elapsed < 1000 * 4 + 2500, `detected after ${elapsed} ms`);
    } finally {
      signal('SIGCONT');
      await t.close();
    }
  });
});
