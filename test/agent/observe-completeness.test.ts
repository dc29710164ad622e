// Every request through the real agent is counted exactly once on /metrics. Regression for the lab defect where
// about 1 in 18 curl --http2 requests never reached http_client_request_duration_seconds_count: curl stops at
// content-length and closes, so the server's trailing empty END_STREAM DATA frame raced the close and the stream
// was dropped as `incomplete`. Real parts: our own namespaces (prefix `epob-`, 198.18.204.0/24), an nft REDIRECT
// with the owner-match exclusion, the agent as uid 65534, the lab upstream server and curl, one connection each.
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_UID, Namespaces, type Pki, makePki, removePki, repo, sh, shOk, skipReason, sleep, veth } from './support';

const skip = skipReason(['ip', 'nft', 'curl', 'openssl']);
const agentCommand = process.env.EPAG_AGENT_CMD?.split(' ').filter(Boolean) ?? [process.execPath, '--import', 'tsx', join(repo, 'agent/src/main.ts')];
const id = process.pid % 100000;
const PX = `epob-px-${id}`;
const UP = `epob-up-${id}`;
const SERVER = '198.18.204.10';
const LATE = '198.18.204.11';
const HOST = 'obs.epob.test';
const LATE_HOST = 'late.epob.test';
const AGENT_PORT = 8443;
const HEALTH_PORT = 9443;
/** Requests per protocol: bounded, and enough to hit the old 1-in-18 loss several times over. */
const N = 120;
const paths: [path: string, route: string, status: number][] = [
  ['/status/200', '/status/{id}', 200],
  ['/bytes/2048', '/bytes/{id}', 200],
  ['/chunked/4096', '/chunked/{id}', 200],
  ['/users/1042/orders?page=2', '/users/{id}/orders', 404],
];

/** The agent tests' namespace helper, with this file's own prefix so parallel runs never collide. */
class ObserveNamespaces extends Namespaces {
  override add(name: string): string {
    if (!name.startsWith('epob-')) throw new Error(`namespace ${name} must start with epob-`);
    sh(['ip', 'netns', 'del', name]); // a leftover from a killed run with the same pid
    shOk(['ip', 'netns', 'add', name]);
    this.names.push(name);
    shOk(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }
}

/** `route status` → count of http_client_request_duration_seconds_count for HOST and one protocol version. */
function exchangeCounts(metrics: string, version: string, host = HOST): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('http_client_request_duration_seconds_count{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (labels.server_address !== host || labels.network_protocol_version !== version) continue;
    const key = `${labels.http_request_method} ${labels.http_route} ${labels.http_response_status_code}`;
    out[key] = (out[key] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

describe('every request through the real agent is counted exactly once (one connection per request)', { skip }, () => {
  const ns = new ObserveNamespaces();
  let pki: Pki;

  const metrics = () => ns.execOk(PX, ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:${HEALTH_PORT}/metrics`]);

  before(async () => {
    pki = makePki();
    ns.add(PX);
    ns.add(UP);
    veth({ ns: PX, ifname: 'eth0', addr: '198.18.204.1/24' }, { ns: UP, ifname: 'eth0', addr: '198.18.204.2/24' });
    for (const a of [SERVER, LATE]) ns.execOk(UP, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
    const leaf = pki.leaf(HOST, `DNS:${HOST},DNS:${LATE_HOST}`, 'lab');
    await ns.spawn(UP, ['node', join(repo, 'provisioner/lab/upstream-server.mjs'), '--listen', `${SERVER}:443`, '--cert', leaf.cert, '--key', leaf.key],
      /listening 198\.18\.204\.10:443/);
    await ns.spawn(UP, ['node', join(repo, 'test/agent/clients/late-end-stream.mjs'), LATE, leaf.cert, leaf.key], /late-end-stream ready/);
    const stateDir = join(pki.dir, 'state');
    mkdirSync(stateDir);
    chownSync(stateDir, AGENT_UID, AGENT_UID);
    const configPath = join(pki.dir, 'agent.json');
    writeFileSync(configPath, JSON.stringify({
      listen: [{ host: '0.0.0.0', port: AGENT_PORT }],
      health: { host: '127.0.0.1', port: HEALTH_PORT },
      ca: { certFile: pki.agentCaCert, keyFile: pki.agentCaKey },
      upstream: { verify: true, caBundleFile: pki.upstreamBundle, onVerifyFailure: 'refuse', connectTimeoutMs: 1500 },
      limits: { maxConnections: 200, handshakeTimeoutMs: 2000, idleTimeoutMs: 20_000 },
      passthrough: { static: [], learned: { enabled: false, maxEntries: 10, ttlSeconds: 60 } },
      observe: { enabled: true, routeRules: [], maxRoutesPerServer: 50 },
      log: { level: 'info', connectLog: false },
      stateDir,
    }, null, 2));
    await ns.spawn(PX, [...agentCommand, 'run', '--config', configPath, '--user', String(AGENT_UID)], /dropped privileges/);
    ns.execOk(PX, ['nft', '-f', '-'], {
      input: `table ip epob {
  chain out { type nat hook output priority -100; policy accept; meta skuid ${AGENT_UID} return; tcp dport 443 redirect to :${AGENT_PORT}; }
}
`,
    });
  });

  after(async () => {
    await ns.teardown();
    removePki(pki);
  });

  it('h2 server that sends END_STREAM after curl has the whole content-length body and closed: every exchange counted', async () => {
    const n = 10;
    for (let i = 0; i < n; i++) {
      const r = ns.exec(PX, ['curl', '-sS', '--max-time', '8', '--http2', '--cacert', pki.agentCaCert, '--resolve', `${LATE_HOST}:443:${LATE}`,
        '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `https://${LATE_HOST}/items/${i}`]);
      assert.equal(r.code, 0, `request ${i}: ${r.stderr}`);
      assert.equal(r.stdout, '200 2', `request ${i}`);
    }
    const expected = { 'GET /items/{id} 200': n };
    let text = metrics();
    const deadline = Date.now() + 3000;
    while (!sameCounts(exchangeCounts(text, '2', LATE_HOST), expected) && Date.now() < deadline) {
      await sleep(200);
      text = metrics();
    }
    assert.deepEqual(exchangeCounts(text, '2', LATE_HOST), expected);
  });

  for (const [flag, version] of [['--http2', '2'], ['--http1.1', '1.1']] as const) {
    it(`${N} curl ${flag} requests, one connection each: /metrics counts exactly ${N} with the right route and status`, async () => {
      const errorsBefore = observeErrors(metrics());
      for (let i = 0; i < N; i++) {
        const [path, , status] = paths[i % paths.length]!;
        const r = ns.exec(PX, ['curl', '-sS', '--max-time', '8', flag, '--cacert', pki.agentCaCert, '--resolve', `${HOST}:443:${SERVER}`,
          '-o', '/dev/null', '-w', '%{http_code} %{http_version}', `https://${HOST}${path}`]);
        assert.equal(r.code, 0, `request ${i} ${path}: ${r.stderr}`);
        assert.equal(r.stdout, `${status} ${version === '2' ? '2' : '1.1'}`, `request ${i} ${path}`);
      }
      const expected: Record<string, number> = {};
      for (let i = 0; i < N; i++) {
        const [, route, status] = paths[i % paths.length]!;
        const key = `GET ${route} ${status}`;
        expected[key] = (expected[key] ?? 0) + 1;
      }
      // Exchanges are recorded as the bytes pass, so they are there at once; allow the last close a moment.
      let text = metrics();
      const deadline = Date.now() + 3000;
      while (!sameCounts(exchangeCounts(text, version), expected) && Date.now() < deadline) {
        await sleep(200);
        text = metrics();
      }
      assert.deepEqual(exchangeCounts(text, version), expected);
      assert.deepEqual(observeErrors(text), errorsBefore, 'no exchange counted as an error (incomplete, reset, ...)');
      assert.match(text, /^epoch_agent_observe_parse_errors_total 0$/m);
    });
  }
});

/** epoch_agent_http_client_errors_total for HOST, by error_type. */
function observeErrors(metrics: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of metrics.matchAll(/^epoch_agent_http_client_errors_total\{server_address="([^"]*)",error_type="([^"]*)"\} (\S+)$/gm)) {
    if (m[1] === HOST) out[m[2]!] = Number(m[3]);
  }
  return out;
}

function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => a[k] === b[k]);
}
