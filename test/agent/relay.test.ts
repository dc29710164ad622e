// The agent in-process on loopback with real TLS servers and clients (no netfilter: the original destination is
// injected), for the safety properties: connection cap, backpressure, idle timeout, upstream failure, drain,
// extra health routes, forge cache. The netfilter path is covered by intercept.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, connect as netConnect, createServer as createNetServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type TLSSocket, connect as tlsConnect, createServer as tlsServer } from 'node:tls';
import { validateConfig } from '../../agent/src/config/schema';
import { Agent } from '../../agent/src/io/agent';
import { ConnectLog, Logger } from '../../agent/src/log/logger';
import { type Pki, makePki, removePki, sleep } from './support';

const skip = (() => {
  try {
    readFileSync('/usr/bin/openssl');
    return undefined;
  } catch {
    return 'openssl is needed to make the test PKI';
  }
})();

describe('agent relay safety (in-process, loopback)', { skip }, () => {
  let pki: Pki;
  let upstream: Server;
  let upstreamPort = 0;
  let agent: Agent;
  let agentPort = 0;
  let writtenWhilePaused = 0;
  let mtls: Server;
  let mtlsPort = 0;
  let useMtls = false;
  const serverSockets = new Set<TLSSocket>();

  before(async () => {
    pki = makePki();
    const leaf = pki.leaf('relay.epag.test', 'DNS:relay.epag.test', 'lab');
    // /flood writes until backpressure says stop (counting what it got rid of); /hangup dies mid-response; anything
    // else echoes lines.
    // allowHalfOpen: after the client's FIN (close_notify) the upstream may still answer (/halfclose).
    upstream = tlsServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key), ALPNProtocols: ['http/1.1'], allowHalfOpen: true }, (s) => {
      serverSockets.add(s);
      s.on('close', () => serverSockets.delete(s));
      s.on('error', () => {});
      // Half-open only for /halfclose; everywhere else the client's FIN closes our side too, as by default.
      let halfClose = false;
      s.once('end', () => {
        if (!halfClose) s.end();
      });
      s.once('data', (d) => {
        const line = d.toString();
        halfClose = line.startsWith('halfclose');
        if (line.startsWith('flood')) {
          const chunk = Buffer.alloc(64 * 1024, 120);
          const pump = () => {
            while (s.write(chunk)) writtenWhilePaused += chunk.length;
            writtenWhilePaused += chunk.length;
          };
          s.on('drain', pump);
          pump();
        } else if (line.startsWith('halfclose')) {
          // Answers only once the client has finished sending (its half-close reached us through the agent).
          let received = d.length;
          s.on('data', (more) => (received += more.length));
          s.on('end', () => s.end(`after your FIN: ${received} bytes\n`));
        } else if (line.startsWith('hangup')) {
          s.write('partial');
          setTimeout(() => s.destroy(), 50);
        } else {
          s.write(d);
          s.on('data', (more) => s.write(more));
        }
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamPort = (upstream.address() as AddressInfo).port;
    // An upstream that insists on a client certificate (TLS 1.2, so the refusal comes inside the handshake).
    mtls = tlsServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key), requestCert: true, rejectUnauthorized: true, ca: readFileSync(pki.labRoot), maxVersion: 'TLSv1.2' }, (s) => s.end('hello client-cert holder\n'));
    mtls.on('tlsClientError', () => {});
    await new Promise<void>((r) => mtls.listen(0, '127.0.0.1', r));
    mtlsPort = (mtls.address() as AddressInfo).port;
    const config = validateConfig({
      listen: [{ host: '127.0.0.1', port: 1 }],
      health: { host: '127.0.0.1', port: 1 },
      ca: { certFile: pki.agentCaCert, keyFile: pki.agentCaKey },
      upstream: { caBundleFile: pki.upstreamBundle },
      limits: { maxConnections: 3, handshakeTimeoutMs: 1000, idleTimeoutMs: 1500 },
      passthrough: { learned: { enabled: true, maxEntries: 10, ttlSeconds: 600 } },
      stateDir: `${pki.dir}/state`,
      log: { level: 'error', connectLog: false },
    });
    // Free ports picked by the kernel (the file schema rightly rejects port 0).
    config.listen = [{ host: '127.0.0.1', port: 0 }];
    config.health = { host: '127.0.0.1', port: 0 };
    agent = new Agent({
      config,
      version: 'test',
      log: new Logger('error'),
      connectLog: new ConnectLog(false),
      originalDestination: () => ({ address: '127.0.0.1', port: useMtls ? mtlsPort : upstreamPort, family: 4 }),
    });
    agent.health.route('/metrics', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('epoch_agent_up 1\n');
    });
    await agent.start();
    agentPort = agent.bound[0]!.port;
  });

  after(async () => {
    await agent?.drain(100);
    for (const s of serverSockets) s.destroy();
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    await new Promise<void>((r) => (mtls ? mtls.close(() => r()) : r()));
    removePki(pki);
  });

  const client = (): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const c = tlsConnect({ host: '127.0.0.1', port: agentPort, servername: 'relay.epag.test', ca: readFileSync(pki.agentCaCert) }, () => resolve(c));
      c.once('error', reject);
    });
  const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

  it('echoes through the proxy; the second connection to the same upstream cert hits the forge cache', async () => {
    for (let i = 0; i < 2; i++) {
      const c = await client();
      c.write('hello\n');
      const [d] = (await Promise.race([new Promise((r) => c.once('data', (x) => r([x]))), sleep(3000).then(() => [null])])) as [Buffer | null];
      assert.equal(d?.toString(), 'hello\n');
      c.end();
      await closed(c);
    }
    const s = agent.counters.snapshot();
    assert.equal(s.forge_cache_misses, 1);
    assert.ok(s.forge_cache_hits >= 1);
  });

  it('backpressure: a client that stops reading stops the upstream too (bounded memory)', async () => {
    const c = await client();
    c.pause();
    c.write('flood\n');
    await sleep(1000);
    const stalledAt = writtenWhilePaused;
    await sleep(500);
    assert.ok(writtenWhilePaused < 16 * 1024 * 1024, `upstream wrote ${writtenWhilePaused} bytes into a paused client`);
    assert.ok(writtenWhilePaused - stalledAt <= 64 * 1024 * 4, 'the upstream kept writing');
    c.destroy();
    await sleep(100);
  });

  it('an upstream that dies mid-response closes the client cleanly', async () => {
    const c = await client();
    let got = '';
    c.on('data', (d) => (got += d));
    c.on('error', () => {});
    c.write('hangup\n');
    await closed(c);
    assert.equal(got, 'partial');
  });

  it('half-close: the client ends its side, the upstream still answers, and the answer reaches the client', async () => {
    const c = await client();
    let got = '';
    c.on('data', (d) => (got += d));
    c.on('error', () => {});
    c.write('halfclose\n');
    c.write('more bytes\n');
    c.end();
    await closed(c);
    assert.equal(got, `after your FIN: ${'halfclose\n'.length + 'more bytes\n'.length} bytes\n`);
  });

  it('a truncated ClientHello and a client gone mid-handshake are counted, and leave no socket behind', async () => {
    // A real ClientHello, captured from node's TLS client by a plain TCP listener.
    let grabbing: TLSSocket | undefined;
    const hello = await new Promise<Buffer>((resolve) => {
      const grab = createNetServer((s) => s.once('data', (d) => { resolve(d); s.destroy(); grab.close(); }));
      grab.listen(0, '127.0.0.1', () => {
        grabbing = tlsConnect({ host: '127.0.0.1', port: (grab.address() as AddressInfo).port, servername: 'relay.epag.test' });
        grabbing.on('error', () => {});
      });
    });
    grabbing?.destroy();
    if (grabbing) await closed(grabbing);
    const fdList = () => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return '?'; } });
    const fds = () => fdList().length;
    await sleep(200);
    const fdsBefore = fds();
    const listBefore = fdList();
    const before = agent.counters.snapshot();
    // Half a ClientHello, then the client closes: counted as an invalid hello.
    const truncated = netConnect(agentPort, '127.0.0.1', () => truncated.end(hello.subarray(0, Math.floor(hello.length / 2))));
    truncated.on('error', () => {});
    await closed(truncated);
    // A whole ClientHello, then the client vanishes (reset) before the agent's answer: the upstream side is dropped.
    const vanished = netConnect(agentPort, '127.0.0.1', () => {
      vanished.write(hello);
      setTimeout(() => vanished.resetAndDestroy(), 5);
    });
    vanished.on('error', () => {});
    await closed(vanished);
    // Both ends live in this process (the upstream server too): give the closes a moment to settle.
    for (let i = 0; i < 100 && fds() !== fdsBefore; i++) await sleep(100);
    const after = agent.counters.snapshot();
    assert.equal(after.client_hello_invalid, before.client_hello_invalid + 1);
    assert.equal(after.client_handshake_failed, before.client_handshake_failed + 1, 'the client gone mid-handshake is counted');
    assert.equal(agent.counters.activeConnections, 0);
    assert.equal(fds(), fdsBefore, `no socket left behind: before ${listBefore.join(' ')}; after ${fdList().join(' ')}; ss: ${execFileSync('ss', ['-tanp']).toString().split('\n').filter((l) => l.includes(`pid=${process.pid},`)).join(' | ')}`);
  });

  it('idle connections are closed and counted', async () => {
    const before = agent.counters.get('idle_timeout');
    const c = await client();
    c.on('error', () => {});
    const t0 = Date.now();
    await closed(c);
    assert.ok(Date.now() - t0 >= 1200, 'closed before the idle timeout');
    assert.equal(agent.counters.get('idle_timeout'), before + 1);
  });

  it('the connection cap refuses the extra connection and counts it; silent clients hit the handshake timeout', async () => {
    await sleep(200);
    assert.equal(agent.counters.activeConnections, 0);
    const before = agent.counters.snapshot();
    const held = await Promise.all([0, 1, 2].map(() => new Promise<Socket>((r) => { const s = netConnect(agentPort, '127.0.0.1', () => r(s)); s.on('error', () => {}); })));
    await sleep(100);
    const extra = netConnect(agentPort, '127.0.0.1');
    extra.on('error', () => {});
    await closed(extra);
    assert.equal(agent.counters.get('connections_refused_limit'), before.connections_refused_limit + 1);
    await Promise.all(held.map(closed));
    assert.equal(agent.counters.get('handshake_timeout'), before.handshake_timeout + 3);
    await sleep(100); // the agent sees its own sockets' 'close' a tick after the peers do
    assert.equal(agent.counters.activeConnections, 0);
  });

  it('an upstream that requires a client certificate is learned as passthrough; the next connection reaches it directly', async () => {
    useMtls = true;
    try {
      const before = agent.counters.get('upstream_tls_failed');
      const first = tlsConnect({ host: '127.0.0.1', port: agentPort, servername: 'mtls.epag.test', ca: readFileSync(pki.agentCaCert) });
      first.on('error', () => {});
      await closed(first);
      assert.equal(agent.counters.get('upstream_tls_failed'), before + 1);
      assert.ok(agent.learned.list(new Date()).some((e) => e.destination === 'sni:mtls.epag.test'));
      const client2 = pki.leaf('client.epag.test', 'DNS:client.epag.test', 'lab', 'clientAuth');
      // Passed through now: the client talks to the real server (whose cert names relay.epag.test) with its own cert.
      const third = tlsConnect({ host: '127.0.0.1', port: agentPort, servername: 'mtls.epag.test', ca: readFileSync(pki.labRoot), cert: readFileSync(client2.cert), key: readFileSync(client2.key), checkServerIdentity: () => undefined });
      let got3 = '';
      third.on('data', (d) => (got3 += d));
      third.on('error', () => {});
      await closed(third);
      assert.equal(got3, 'hello client-cert holder\n');
      assert.equal(agent.counters.get('passthrough_learned') >= 1, true);
    } finally {
      useMtls = false;
    }
  });

  it('the health server serves /healthz and routes added by other parts (/metrics)', async () => {
    const port = agent.healthAddress!.port;
    const h = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json() as { ready: boolean; connections: { active: number }; errors: Record<string, number> };
    assert.equal(h.ready, true);
    assert.equal(typeof h.errors.idle_timeout, 'number');
    assert.equal(h.errors.connections_accepted, undefined);
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'epoch_agent_up 1\n');
    assert.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404);
  });

  it('drain waits for open connections, then stops accepting', async () => {
    const c = await client();
    c.on('error', () => {});
    const draining = agent.drain(3000);
    await sleep(200);
    c.write('still-here\n');
    const echoed = await new Promise((r) => c.once('data', (d) => r(d.toString())));
    assert.equal(echoed, 'still-here\n');
    c.end();
    await draining;
    await assert.rejects(client());
  });
});
