// The agent with real parts: network namespaces, a real nft REDIRECT (and then iptables REDIRECT) with an
// owner-match exclusion, the SO_ORIGINAL_DST addon, the lab upstream server (h1, h2, WebSocket), and real clients
// (curl, openssl s_client, python3, node with NODE_EXTRA_CA_CERTS). The agent drops to uid 65534.
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_UID, Namespaces, PYTHON, type Pki, fdCount, settledFdCount, healthJson, makePki, removePki, repo, skipReason, sleep, veth } from './support';

const skip = skipReason();
// EPAG_AGENT_CMD runs another build of the agent, e.g. the bundle on Debian 12's Node 18:
//   EPAG_AGENT_CMD="test/agent/debian-node18.sh dist/agent/epoch-agent.cjs" node --import tsx --test test/agent/intercept.test.ts
const agentCommand = process.env.EPAG_AGENT_CMD?.split(' ').filter(Boolean) ?? [process.execPath, '--import', 'tsx', join(repo, 'agent/src/main.ts')];
const id = process.pid % 100000;
const PX = `epag-px-${id}`;
const UP = `epag-up-${id}`;
const GOOD = '198.18.200.10';
const UNTRUSTED = '198.18.200.11';
const WRONG = '198.18.200.12';
const ECHO = '198.18.200.14';
const SILENT = '198.18.200.15';
const NOWHERE = '198.18.200.16';
const PX_ADDR = '198.18.200.1';
const AGENT_PORT = 8443;
const INCOMING_PORT = 8444;
const HEALTH_PORT = 9443;

describe('epoch-agent intercepts REDIRECTed TLS in a network namespace', { skip }, () => {
  const ns = new Namespaces();
  let pki: Pki;
  let agentPid = 0;
  let agentOutput: () => string = () => '';
  let configPath = '';
  let config: Record<string, unknown> = {};
  let stateDir = '';
  let svc: { cert: string; key: string };

  const curl = (args: string[]) =>
    ns.exec(PX, ['curl', '-sS', '--max-time', '8', '--cacert', pki.agentCaCert, ...args]);
  const health = () => healthJson(ns, PX, HEALTH_PORT);
  const errors = () => health().errors as Record<string, number>;
  const nft = (rules: string) => ns.execOk(PX, ['nft', '-f', '-'], { input: rules });

  before(async () => {
    pki = makePki();
    ns.add(PX);
    ns.add(UP);
    veth({ ns: PX, ifname: 'eth0', addr: '198.18.200.1/24' }, { ns: UP, ifname: 'eth0', addr: '198.18.200.2/24' });
    for (const a of [GOOD, UNTRUSTED, WRONG, ECHO, SILENT]) ns.execOk(UP, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'eth0']);

    const good = pki.leaf('good.epag.test', `DNS:good.epag.test,DNS:pin.epag.test,DNS:static.epag.test,DNS:v6.epag.test,DNS:quiet.epag.test,IP:${GOOD},IP:::1`, 'lab');
    const untrusted = pki.leaf('untrusted.epag.test', 'DNS:untrusted.epag.test', 'self');
    const wrong = pki.leaf('other.epag.test', 'DNS:other.epag.test', 'lab');
    const server = join(repo, 'provisioner/lab/upstream-server.mjs');
    await ns.spawn(UP, ['node', server,
      '--listen', `${GOOD}:443`, '--cert', good.cert, '--key', good.key,
      '--listen', `${UNTRUSTED}:443`, '--cert', untrusted.cert, '--key', untrusted.key,
      '--listen', `${WRONG}:443`, '--cert', wrong.cert, '--key', wrong.key,
    ], /listening 198\.18\.200\.12:443/);
    await ns.spawn(UP, ['node', join(repo, 'test/agent/clients/odd-upstreams.mjs'), ECHO, SILENT], /odd upstreams ready/);
    // An IPv6 upstream inside the proxy namespace itself (::1), reached through the ip6 REDIRECT.
    await ns.spawn(PX, ['node', server, '--listen', '[::1]:443', '--cert', good.cert, '--key', good.key], /listening/);
    // A local TLS service for incoming mode: clients in the other namespace reach it through a PREROUTING REDIRECT.
    svc = pki.leaf('svc.epag.test', 'DNS:svc.epag.test', 'lab');
    await ns.spawn(PX, ['node', server, '--listen', `${PX_ADDR}:443`, '--cert', svc.cert, '--key', svc.key], /listening/);

    stateDir = join(pki.dir, 'state');
    mkdirSync(stateDir);
    chownSync(stateDir, AGENT_UID, AGENT_UID);
    config = {
      listen: [{ host: '::', port: AGENT_PORT }],
      health: { host: '127.0.0.1', port: HEALTH_PORT },
      ca: { certFile: pki.agentCaCert, keyFile: pki.agentCaKey },
      upstream: { verify: true, caBundleFile: pki.upstreamBundle, onVerifyFailure: 'refuse', connectTimeoutMs: 1500 },
      limits: { maxConnections: 200, handshakeTimeoutMs: 2000, idleTimeoutMs: 20_000 },
      passthrough: { static: ['static.epag.test'], learned: { enabled: true, maxEntries: 100, ttlSeconds: 3600 } },
      log: { level: 'info', connectLog: true },
      incoming: { listen: [{ host: '::', port: INCOMING_PORT }], certificates: [{ serverNames: ['svc.epag.test'], certFile: svc.cert, keyFile: svc.key }] },
      stateDir,
    };
    chownSync(svc.key, AGENT_UID, AGENT_UID);
    configPath = join(pki.dir, 'agent.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));

    const agent = await ns.spawn(PX, [...agentCommand, 'run', '--config', configPath, '--user', String(AGENT_UID)], /dropped privileges/);
    agentPid = agent.proc.pid!;
    agentOutput = agent.output;

    nft(`table ip epag {
  chain out { type nat hook output priority -100; policy accept; meta skuid ${AGENT_UID} return; tcp dport 443 redirect to :${AGENT_PORT}; }
}
table ip6 epag {
  chain out { type nat hook output priority -100; policy accept; meta skuid ${AGENT_UID} return; tcp dport 443 redirect to :${AGENT_PORT}; }
}
`);
  });

  after(async () => {
    await ns.teardown();
    removePki(pki);
  });

  it('runs as the unprivileged uid and reports healthy with our CA fingerprint', () => {
    const status = readFileSync(`/proc/${agentPid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${AGENT_UID}\\s+${AGENT_UID}\\s+${AGENT_UID}`, 'm'));
    const h = health();
    assert.equal(h.ready, true);
    const fp = ns.execOk(PX, [process.execPath, '--import', 'tsx', join(repo, 'agent/src/main.ts'), 'ca', 'fingerprint', pki.agentCaCert]).trim();
    assert.equal(h.caFingerprintSha256, fp);
    // Our own CA was in the upstream bundle and must have been excluded from upstream verification.
    assert.match(agentOutput(), /"excludedOwnCa":1/);
  });

  it('curl over h2 and http/1.1: forged cert from our CA, ALPN mirrored from the upstream', () => {
    const h2 = curl(['-v', '--http2', '--resolve', `good.epag.test:443:${GOOD}`, '-D', '-', '-o', '/dev/null', 'https://good.epag.test/status/200']);
    assert.equal(h2.code, 0, h2.stderr);
    assert.match(h2.stdout, /^HTTP\/2 200/m);
    assert.match(h2.stdout, /x-upstream-alpn: h2/);
    assert.match(h2.stderr, /issuer: CN=epag agent CA/);
    assert.match(h2.stderr, /subject: O=epag upstream; CN=good\.epag\.test/);
    const h1 = curl(['--http1.1', '--resolve', `good.epag.test:443:${GOOD}`, '-D', '-', '-o', '/dev/null', 'https://good.epag.test/bytes/100000']);
    assert.equal(h1.code, 0, h1.stderr);
    assert.match(h1.stdout, /^HTTP\/1\.1 200/m);
    assert.match(h1.stdout, /x-upstream-alpn: http\/1\.1/);
    assert.match(h1.stdout, /content-length: 100000/);
  });

  it('bulk and chunked bodies arrive byte for byte', () => {
    const r = curl(['--resolve', `good.epag.test:443:${GOOD}`, '-o', '-', 'https://good.epag.test/chunked/3000000']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, 3_000_000);
    assert.ok(r.stdout.startsWith('abcdefghijklmnopqrstuvwxyz0123456789\n'));
  });

  it('openssl s_client: verify OK against our CA, ALPN h2, TLS 1.3 and TLS 1.2', () => {
    for (const version of ['-tls1_3', '-tls1_2']) {
      const r = ns.exec(PX, ['openssl', 's_client', version, '-connect', `${GOOD}:443`, '-servername', 'good.epag.test', '-CAfile', pki.agentCaCert, '-alpn', 'h2,http/1.1', '-verify_return_error', '-ign_eof'], { input: 'GET / HTTP/1.1\r\nHost: good.epag.test\r\n\r\n', timeoutMs: 10_000 });
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/, `${version}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /ALPN protocol: h2/);
      assert.match(r.stdout, /issuer=CN ?= ?epag agent CA/);
      assert.match(r.stdout, version === '-tls1_3' ? /TLSv1\.3/ : /TLSv1\.2/);
    }
  });

  it('python3 ssl and node (NODE_EXTRA_CA_CERTS) clients, and a WebSocket echo through the proxy', () => {
    const py = ns.exec(PX, [PYTHON, join(repo, 'test/agent/clients/tls-probe.py'), 'get', pki.agentCaCert, GOOD, 'good.epag.test', '/status/204']);
    assert.equal(py.stdout.trim(), 'HTTP/1.1 204 No Content', py.stderr);
    const env = { NODE_EXTRA_CA_CERTS: pki.agentCaCert };
    const node = ns.exec(PX, [process.execPath, '-e', `require('https').get({host:'${GOOD}',servername:'good.epag.test',headers:{host:'good.epag.test'},path:'/status/201'},r=>{console.log(r.statusCode,r.socket.getPeerCertificate().issuer.CN);r.resume()}).on('error',e=>{console.log(e.message);process.exitCode=1})`], { env });
    assert.equal(node.stdout.trim(), '201 epag agent CA', node.stderr);
    const ws = ns.exec(PX, [process.execPath, join(repo, 'test/agent/clients/ws-echo.mjs'), GOOD, 'good.epag.test', 'hello-epag'], { env });
    assert.equal(ws.stdout.trim(), '101 hello-epag', ws.stderr);
  });

  it('IPv6: the ip6 REDIRECT original destination [::1]:443 is read and intercepted', () => {
    const r = curl(['-v', '--resolve', 'v6.epag.test:443:[::1]', '-o', '/dev/null', '-w', '%{http_code}', 'https://v6.epag.test/status/200']);
    assert.equal(r.stdout, '200', r.stderr);
    assert.match(r.stderr, /issuer: CN=epag agent CA/);
  });

  it('a client without SNI (IP literal) still works: the IP is in the forged SAN', () => {
    const r = curl(['-o', '/dev/null', '-w', '%{http_code}', `https://${GOOD}/status/200`]);
    assert.equal(r.stdout, '200', r.stderr);
  });

  it('untrusted and wrong-host upstreams: refused (client never gets a trusted cert), counted', () => {
    const before = errors().upstream_verify_failed!;
    const u = curl(['--resolve', `untrusted.epag.test:443:${UNTRUSTED}`, 'https://untrusted.epag.test/']);
    assert.notEqual(u.code, 0);
    const w = curl(['--resolve', `wronghost.epag.test:443:${WRONG}`, 'https://wronghost.epag.test/']);
    assert.notEqual(w.code, 0);
    assert.equal(errors().upstream_verify_failed, before + 2);
  });

  it('SIGHUP reload to forge-untrusted: the client gets a cert from the untrusted issuer and fails as it would without us', async () => {
    writeFileSync(configPath, JSON.stringify({ ...config, upstream: { ...(config.upstream as object), onVerifyFailure: 'forge-untrusted' } }));
    process.kill(agentPid, 'SIGHUP');
    for (let i = 0; i < 50 && !/configuration reloaded/.test(agentOutput()); i++) await sleep(100);
    assert.match(agentOutput(), /configuration reloaded/);
    const r = curl(['-v', '--resolve', `untrusted.epag.test:443:${UNTRUSTED}`, 'https://untrusted.epag.test/']);
    assert.equal(r.code, 60, r.stderr); // curl: peer certificate cannot be authenticated
    const k = ns.exec(PX, ['curl', '-sS', '-k', '-v', '--max-time', '8', '--resolve', `untrusted.epag.test:443:${UNTRUSTED}`, '-o', '/dev/null', '-w', '%{http_code}', 'https://untrusted.epag.test/status/200']);
    assert.equal(k.stdout, '200', k.stderr);
    assert.match(k.stderr, /issuer: CN=epoch-agent upstream-invalid/);
    writeFileSync(configPath, JSON.stringify(config));
    process.kill(agentPid, 'SIGHUP');
    await sleep(300);
  });

  it('static passthrough: the real upstream cert reaches the client', () => {
    const r = ns.exec(PX, ['curl', '-sS', '-v', '--max-time', '8', '--cacert', pki.labRoot, '--resolve', `static.epag.test:443:${GOOD}`, '-o', '/dev/null', '-w', '%{http_code}', 'https://static.epag.test/status/200']);
    assert.equal(r.stdout, '200', r.stderr);
    assert.match(r.stderr, /issuer: CN=epag lab root/);
    assert.ok((health() as { errors: Record<string, number> }).errors !== undefined);
  });

  it('a pinning client rejects our cert once, then is passed through (learned, persisted, in health)', async () => {
    const probe = (sni: string) => ns.exec(PX, [PYTHON, join(repo, 'test/agent/clients/tls-probe.py'), 'get', pki.labRoot, GOOD, sni, '/status/200']);
    const first = probe('pin.epag.test');
    assert.match(first.stdout, /ssl-error: .*CERTIFICATE_VERIFY_FAILED/);
    await sleep(400);
    const second = probe('pin.epag.test');
    assert.equal(second.stdout.trim(), 'HTTP/1.1 200 OK', second.stderr);
    const learned = health().learnedPassthrough as { destination: string; reason: string }[];
    assert.ok(learned.some((e) => e.destination === 'sni:pin.epag.test'), JSON.stringify(learned));
    const file = JSON.parse(readFileSync(join(stateDir, 'learned-passthrough.json'), 'utf8'));
    assert.ok(file.entries.some((e: { destination: string }) => e.destination === 'sni:pin.epag.test'));
    // good.epag.test (same upstream) is still intercepted.
    const still = curl(['-v', '--resolve', `good.epag.test:443:${GOOD}`, '-o', '/dev/null', 'https://good.epag.test/status/200']);
    assert.match(still.stderr, /issuer: CN=epag agent CA/);
  });

  it('a client that completes the handshake and hangs up twice (no data) is learned as passthrough', async () => {
    const quietClose = () => ns.exec(PX, ['openssl', 's_client', '-connect', `${GOOD}:443`, '-servername', 'quiet.epag.test'], { input: '', timeoutMs: 10_000 });
    quietClose();
    await sleep(200);
    assert.ok(!(health().learnedPassthrough as { destination: string }[]).some((e) => e.destination === 'sni:quiet.epag.test'));
    quietClose();
    await sleep(400);
    assert.ok((health().learnedPassthrough as { destination: string }[]).some((e) => e.destination === 'sni:quiet.epag.test'));
    const r = ns.exec(PX, ['curl', '-sS', '-v', '--max-time', '8', '--cacert', pki.labRoot, '--resolve', `quiet.epag.test:443:${GOOD}`, '-o', '/dev/null', '-w', '%{http_code}', 'https://quiet.epag.test/status/200']);
    assert.equal(r.stdout, '200', r.stderr);
    assert.match(r.stderr, /issuer: CN=epag lab root/);
  });

  it('non-TLS traffic on port 443 passes through untouched', () => {
    const r = ns.exec(PX, [PYTHON, join(repo, 'test/agent/clients/tls-probe.py'), 'raw', ECHO, Buffer.from('PING epag\r\n').toString('hex')]);
    assert.equal(r.stdout.trim(), "b'PING epag\\r\\n'", r.stderr);
  });

  it('bad input: garbage, oversized records, truncated hellos, vanishing clients, silent and missing upstreams', async () => {
    const probe = (...args: string[]) => ns.exec(PX, [PYTHON, join(repo, 'test/agent/clients/tls-probe.py'), ...args], { timeoutMs: 15_000 });
    await sleep(300);
    const fdsBefore = fdCount(agentPid);
    const e0 = errors();
    for (let i = 0; i < 20; i++) probe('raw', GOOD, `1603010028${'00'.repeat(40)}`); // handshake type 0, not a ClientHello
    probe('raw', GOOD, `16030140ff${'aa'.repeat(64)}`); // oversized record (0x40ff > 16384)
    probe('raw', GOOD, `160301000502000001ff`); // a ServerHello where a ClientHello belongs
    probe('raw', GOOD, '474554202f'); // "GET /" is not TLS: passed through to the real server, which drops it
    for (let i = 0; i < 10; i++) probe('vanish', GOOD);
    const silent = curl(['--resolve', `silent.epag.test:443:${SILENT}`, 'https://silent.epag.test/']);
    assert.notEqual(silent.code, 0);
    const nowhere = curl(['--resolve', `nowhere.epag.test:443:${NOWHERE}`, 'https://nowhere.epag.test/']);
    assert.notEqual(nowhere.code, 0);
    await sleep(2500);
    const e1 = errors();
    assert.ok(e1.client_hello_invalid! >= e0.client_hello_invalid! + 22, JSON.stringify(e1));
    assert.ok(e1.client_closed_early! >= e0.client_closed_early! + 10, JSON.stringify(e1));
    assert.ok(e1.handshake_timeout! >= e0.handshake_timeout! + 1, JSON.stringify(e1));
    assert.ok(e1.upstream_connect_failed! >= e0.upstream_connect_failed! + 1, JSON.stringify(e1));
    const h = health() as { connections: { active: number } };
    assert.equal(h.connections.active, 0);
    assert.equal(await settledFdCount(agentPid, fdsBefore), fdsBefore);
    assert.equal(existsSync(`/proc/${agentPid}`), true);
  });

  it('connect log: one JSON line per connection, without payloads', () => {
    const lines = agentOutput().split('\n').filter((l) => l.includes('"msg":"connect"'));
    assert.ok(lines.length > 10);
    const intercepted = lines.map((l) => JSON.parse(l)).find((l) => l.outcome === 'intercepted' && l.sni === 'good.epag.test');
    assert.ok(intercepted);
    assert.equal(intercepted.dst, `${GOOD}:443`);
    assert.ok(!agentOutput().includes('PING epag'));
  });

  it('GET /metrics on the health server (added by the metrics exporter) reports intercepted traffic', () => {
    const r = ns.exec(PX, ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:${HEALTH_PORT}/metrics`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /connections_intercepted/);
    // The learned list (pin and quiet-close destinations from the tests above) is a gauge, equal to /healthz's list.
    const learnedNow = (health().learnedPassthrough as unknown[]).length;
    assert.ok(learnedNow >= 2, `learned entries: ${learnedNow}`);
    assert.match(r.stdout, new RegExp(`^epoch_agent_passthrough_learned_entries ${learnedNow}$`, 'm'));
  });

  it('incoming mode: inbound TLS is terminated with the user certificate chosen by SNI and forwarded to the local service', async () => {
    nft(`table ip epag_in {
  chain pre { type nat hook prerouting priority -100; policy accept; tcp dport 443 redirect to :${INCOMING_PORT}; }
}
`);
    const before = health() as { connections: { total: number } };
    const r = ns.exec(UP, ['curl', '-sS', '-v', '--max-time', '8', '--cacert', pki.labRoot, '--resolve', `svc.epag.test:443:${PX_ADDR}`, '-D', '-', '-o', '/dev/null', 'https://svc.epag.test/status/200']);
    assert.match(r.stdout, /^HTTP\/2 200/m, r.stderr);
    assert.match(r.stdout, new RegExp(`x-upstream-listener: ${PX_ADDR.replace(/\./g, '\\.')}:443`));
    assert.match(r.stderr, /subject: O=epag upstream; CN=svc\.epag\.test/);
    const after = health() as { connections: { total: number } };
    assert.equal(after.connections.total, before.connections.total + 1);
    const logged = () => agentOutput().split('\n').some((l) => l.includes('"mode":"incoming"') && l.includes('"outcome":"intercepted"'));
    for (let i = 0; i < 30 && !logged(); i++) await sleep(100);
    assert.ok(logged());
    ns.execOk(PX, ['nft', 'delete', 'table', 'ip', 'epag_in']);
  });

  it('the same interception works with an iptables REDIRECT and owner-match exclusion', () => {
    ns.execOk(PX, ['nft', 'delete', 'table', 'ip', 'epag']);
    ns.execOk(PX, ['nft', 'delete', 'table', 'ip6', 'epag']);
    for (const ipt of ['iptables', 'ip6tables']) {
      ns.execOk(PX, [ipt, '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '443', '-m', 'owner', '!', '--uid-owner', String(AGENT_UID), '-j', 'REDIRECT', '--to-ports', String(AGENT_PORT)]);
    }
    const r = curl(['-v', '--http2', '--resolve', `good.epag.test:443:${GOOD}`, '-D', '-', '-o', '/dev/null', 'https://good.epag.test/status/200']);
    assert.match(r.stdout, /^HTTP\/2 200/m, r.stderr);
    assert.match(r.stderr, /issuer: CN=epag agent CA/);
    const v6 = curl(['-v', '--resolve', 'v6.epag.test:443:[::1]', '-o', '/dev/null', '-w', '%{http_code}', 'https://v6.epag.test/status/200']);
    assert.equal(v6.stdout, '200', v6.stderr);
  });

  it('loop guard: without the owner exclusion the agent refuses its own looped connections and keeps its fds', async () => {
    const fdsBefore = fdCount(agentPid);
    const before = errors().loop_refused!;
    ns.execOk(PX, ['iptables', '-t', 'nat', '-F', 'OUTPUT']);
    ns.execOk(PX, ['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '443', '-j', 'REDIRECT', '--to-ports', String(AGENT_PORT)]);
    const r = curl(['--resolve', `good.epag.test:443:${GOOD}`, 'https://good.epag.test/']);
    assert.notEqual(r.code, 0);
    // A direct connection to the listener is refused too (its original destination is the listener itself).
    ns.exec(PX, ['curl', '-sS', '--max-time', '3', '-k', `https://127.0.0.1:${AGENT_PORT}/`]);
    await sleep(1000);
    assert.ok(errors().loop_refused! >= before + 2, JSON.stringify(errors()));
    assert.equal(await settledFdCount(agentPid, fdsBefore), fdsBefore);
    ns.execOk(PX, ['iptables', '-t', 'nat', '-F', 'OUTPUT']);
  });

  it('SIGTERM drains and exits 0', async () => {
    const proc = `/proc/${agentPid}`;
    process.kill(agentPid, 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(proc); i++) await sleep(100);
    assert.equal(existsSync(proc), false);
    assert.match(agentOutput(), /"msg":"stopped"/);
  });
});
