// The SSH transport's keepalive against real sshd hosts in namespaces of our own (netns-chain.ts), three at once:
//  - a long idle connection survives a stateful firewall that forgets idle flows, thanks to the default 10 s keepalive
//    (and, as a control, the same idle connection without keepalive is dead);
//  - a frozen sshd (SIGSTOP by PID) or a cut link (ip link set down inside the host's namespace) makes the running
//    command and the next one fail as unreachable within keepalive interval × (count + 1), not hang. These use a
//    1 s interval (SshTransportOptions.keepaliveIntervalMs; the count is the transport's fixed 3) to stay short.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isUnreachableError } from '../../provisioner/src/core/errors';
import { SshTransport, type SshTransportOptions } from '../../provisioner/src/transport/ssh-transport';
import { type SshChain, startSshChain } from './netns-chain';
import { signalAll, skipReason } from './netns-sshd';

const skip = skipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** ssh2 gives up after keepaliveCountMax (3) unanswered pings: at most interval × 4 after the last answer. */
const keepaliveCount = 3;
const shortInterval = 1000;
const detectionBound = shortInterval * (keepaliveCount + 1);
/** Scheduling slack on a busy 2-core machine. */
const slack = 2500;

describe('ssh keepalive (netns sshd)', { skip, concurrency: true }, () => {
  const chains: SshChain[] = [];
  let idle: SshChain;
  let frozen: SshChain;
  let cut: SshChain;
  before(async () => {
    idle = await startSshChain([{ name: 'idle', port: 22 }], 0);
    chains.push(idle);
    frozen = await startSshChain([{ name: 'frozen', port: 22 }], 1);
    chains.push(frozen);
    cut = await startSshChain([{ name: 'cut', port: 22 }], 2);
    chains.push(cut);
  });
  after(async () => {
    for (const c of chains) await c.stop();
  });

  const optionsFor = (chain: SshChain, overrides: Partial<SshTransportOptions> = {}): SshTransportOptions => {
    const host = chain.hosts[0] as SshChain['hosts'][number];
    return {
      hostName: host.name,
      target: { address: host.address, port: host.port, user: 'root' },
      privateKeyFile: chain.clientKey,
      agentSocket: '',
      knownHostsFile: chain.knownHosts,
      connectTimeoutMs: 5000,
      ...overrides,
    };
  };

  test('22 s idle behind a firewall that forgets flows idle for 15 s: the default 10 s keepalive keeps the connection usable; without keepalive it is dead', async () => {
    const host = idle.hosts[0] as SshChain['hosts'][number];
    // Inside the host's own namespace: conntrack forgets an established flow after 15 s without packets, and a packet
    // of a forgotten flow is invalid (no loose pick-up) and dropped, like a NAT gateway or cloud firewall does.
    idle.nsExec(host, ['nft', '-f', '-'], 'table inet eptc_idle {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    ct state invalid counter drop\n  }\n}\n');
    idle.nsExec(host, ['sysctl', '-q', '-w', 'net.netfilter.nf_conntrack_tcp_loose=0', 'net.netfilter.nf_conntrack_tcp_timeout_established=15']);
    const kept = await SshTransport.connect(optionsFor(idle)); // default keepalive: every 10 s
    const bare = await SshTransport.connect(optionsFor(idle, { keepaliveIntervalMs: 0 }));
    try {
      assert.equal((await kept.exec(['true'])).exitCode, 0);
      assert.equal((await bare.exec(['true'])).exitCode, 0);
      await sleep(22_000);
      const r = await kept.exec(['echo', 'still here']);
      assert.deepEqual([r.exitCode, r.stdout], [0, 'still here\n'], 'the keepalive connection is usable after 22 s idle');
      // The control: no keepalive, so the firewall forgot the flow and drops it. The command's timeout covers
      // opening the channel, so this ends after 3 s as unreachable instead of hanging.
      const started = Date.now();
      await assert.rejects(bare.exec(['true'], { timeoutMs: 3000 }), (e) => isUnreachableError(e) && /opened no SSH channel within 3000 ms/.test(e.message));
      assert.ok(Date.now() - started < 3000 + slack);
      const dropped = Number(/packets (\d+)/.exec(idle.nsExec(host, ['nft', 'list', 'table', 'inet', 'eptc_idle']))?.[1] ?? 0);
      assert.ok(dropped > 0, 'the firewall dropped the idle flow without keepalive');
    } finally {
      await kept.close();
      await bare.close();
    }
  });

  test('a frozen sshd (SIGSTOP): the running and the next command fail as unreachable (keepalive timeout) within interval × (count + 1)', async () => {
    const t = await SshTransport.connect(optionsFor(frozen, { keepaliveIntervalMs: shortInterval }));
    let pids: number[] = [];
    const signal = (sig: NodeJS.Signals) => signalAll(pids, sig);
    try {
      assert.equal((await t.exec(['true'])).exitCode, 0);
      const running = t.exec(['sleep', '60']);
      await sleep(300);
      // Every process in the host's namespace (all ours): the listener, this connection's session processes, sleep.
      pids = (frozen.hosts[0] as SshChain['hosts'][number]).pids();
      assert.ok(pids.length >= 3, `the listener and this connection's session processes: ${pids.join(' ')}`);
      signal('SIGSTOP');
      const frozenAt = Date.now();
      const isKeepaliveLoss = (e: unknown) => isUnreachableError(e) && /^frozen: SSH connection lost \(Keepalive timeout\)/.test(e.message);
      const next = t.exec(['echo', 'hello']); // default 120 s timeout: only the keepalive can end it this early
      await Promise.all([assert.rejects(running, isKeepaliveLoss), assert.rejects(next, isKeepaliveLoss)]);
      const elapsed = Date.now() - frozenAt;
      assert.ok(elapsed < detectionBound + slack, `detected after ${elapsed} ms`);
      const later = Date.now();
      await assert.rejects(t.exec(['true']), isKeepaliveLoss);
      assert.ok(Date.now() - later < 100, 'once lost, commands fail at once');
      // A reconnect to the frozen host is unreachable too (its kernel accepts TCP, sshd never answers).
      await assert.rejects(SshTransport.connect(optionsFor(frozen, { connectTimeoutMs: 1500 })), (e) => isUnreachableError(e) && /Timed out while waiting for handshake/.test(e.message));
    } finally {
      signal('SIGCONT');
      await t.close();
    }
  });

  test('a cut link (ip link set down in the host namespace): the running and the next command fail as unreachable within interval × (count + 1)', async () => {
    const host = cut.hosts[0] as SshChain['hosts'][number];
    const t = await SshTransport.connect(optionsFor(cut, { keepaliveIntervalMs: shortInterval }));
    try {
      assert.equal((await t.exec(['true'])).exitCode, 0);
      const running = t.exec(['sleep', '60']);
      await sleep(300);
      cut.nsExec(host, ['ip', 'link', 'set', host.uplink, 'down']);
      const cutAt = Date.now();
      const isKeepaliveLoss = (e: unknown) => isUnreachableError(e) && /^cut: SSH connection lost \(Keepalive timeout\)/.test(e.message);
      const next = t.exec(['echo', 'hello']);
      await Promise.all([assert.rejects(running, isKeepaliveLoss), assert.rejects(next, isKeepaliveLoss)]);
      const elapsed = Date.now() - cutAt;
      assert.ok(elapsed < detectionBound + slack, `detected after ${elapsed} ms`);
    } finally {
      await t.close();
    }
  });
});
