// Bad input through the live relay: real TLS clients send malformed HTTP, a 1 MB header block, a request line with no
// version, bytes after a 101 response and an HPACK table-size attack (h2) through the real running agent (AgentLab:
// our own namespaces epag-bi-*, 198.18.207.0/24, real nft REDIRECT with owner match, agent as uid 65534). A raw TLS
// upstream records every byte it receives and sends. For each case: the upstream received exactly what the client
// sent, the client received exactly what the upstream sent, the error is counted as METRICS.md says
// (epoch_agent_observe_parse_errors_total and epoch_agent_http_client_errors_total{error_type}), the agent stays
// healthy (a normal request afterwards is observed), no connection or fd is left behind, and its RSS stays bounded.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentLab, fdCount, metricValue, repo, settledFdCount, skipReason, sleep } from '../agent/support';

const skip = skipReason(['ip', 'nft', 'curl', 'openssl']);
const OK = 'ok.bad.epag.test';
const HOSTS = ['malformed', 'noversion', 'big', 'ws', 'h2'].map((c) => `${c}.bad.epag.test`);

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1), first byte OR-ed with `flags`. */
function hpackInt(value: number, prefixBits: number, flags: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [flags | value];
  const out = [flags | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function h2Frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

// The upstream's answers (passed to it in hex, so both sides use the same bytes).
const UPGRADE_REPLY = Buffer.concat([
  Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  Buffer.from('HTTP/1.1 999 this is not parsed\r\nno colon here\r\n\r\n'), // server bytes after the 101
  Buffer.from([0x81, 0x05, 0x00, 0xff, 0x0d, 0x0a, 0x7f]),
]);
/** The server's SETTINGS: SETTINGS_HEADER_TABLE_SIZE = 2^32-1, i.e. the peer allows any table size. */
const H2_PREFIX = h2Frame(0x4, 0, 0, Buffer.from([0x00, 0x01, 0xff, 0xff, 0xff, 0xff]));

function hpackAttack(): Buffer {
  // A dynamic table size update to 1 GiB (far above the agent's 64 KB bound), then entries to fill it.
  const block: number[] = [...hpackInt(1 << 30, 5, 0x20)];
  for (let i = 0; i < 4; i++) {
    const name = Buffer.from(`x-fill-${i}`);
    const value = Buffer.alloc(3000, 0x61 + i);
    block.push(0x40, ...hpackInt(name.length, 7, 0), ...name, ...hpackInt(value.length, 7, 0), ...value);
  }
  return Buffer.concat([
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
    h2Frame(0x4, 0, 0, Buffer.alloc(0)),
    h2Frame(0x1, 0x5, 1, Buffer.from(block)), // HEADERS, END_STREAM | END_HEADERS
    h2Frame(0x1, 0x5, 3, Buffer.from([...hpackInt(1 << 30, 5, 0x20), 0x82])),
  ]);
}

interface Case {
  name: string;
  sni: string;
  alpn: 'http/1.1' | 'h2';
  /** What the client sends, in order; `wait` = bytes to have received before the next part. */
  parts: { send: Buffer; waitAfter: number }[];
  /** error_type expected in epoch_agent_http_client_errors_total, or null: not an error (bytes after a 101). */
  errorTypes: string[] | null;
}

const cases: Case[] = [
  {
    name: 'malformed HTTP (a header line without a colon)',
    sni: HOSTS[0]!,
    alpn: 'http/1.1',
    parts: [{ send: Buffer.from(`GET /malformed HTTP/1.1\r\nHost: ${HOSTS[0]}\r\nthis header line has no colon\r\n\r\n`), waitAfter: 0 }],
    errorTypes: ['malformed_request'],
  },
  {
    name: 'a request line with no version',
    sni: HOSTS[1]!,
    alpn: 'http/1.1',
    parts: [{ send: Buffer.from(`GET /no-version\r\nHost: ${HOSTS[1]}\r\n\r\n`), waitAfter: 0 }],
    errorTypes: ['malformed_request'],
  },
  {
    name: 'a 1 MB header block',
    sni: HOSTS[2]!,
    alpn: 'http/1.1',
    parts: [{ send: Buffer.from(`GET /big HTTP/1.1\r\nHost: ${HOSTS[2]}\r\nX-Big: ${'b'.repeat(1 << 20)}\r\n\r\n`), waitAfter: 0 }],
    errorTypes: ['header_too_large'],
  },
  {
    name: 'bytes after a 101 response (WebSocket-style upgrade), both directions',
    sni: HOSTS[3]!,
    alpn: 'http/1.1',
    parts: [
      {
        send: Buffer.from(`GET /ws HTTP/1.1\r\nHost: ${HOSTS[3]}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`),
        waitAfter: UPGRADE_REPLY.length,
      },
      {
        send: Buffer.concat([Buffer.from([0x82, 0x7e, 0x10, 0x00]), Buffer.from('GET /not-http HTTP/1.1\r\nbroken header\r\n\r\n'), Buffer.alloc(70_000, 0xee), Buffer.from([0, 1, 2, 0xff])]),
        waitAfter: 0,
      },
    ],
    errorTypes: null,
  },
  {
    name: 'h2: an HPACK dynamic table size update to 1 GiB (the server allowed 2^32-1) with entries to fill it',
    sni: HOSTS[4]!,
    alpn: 'h2',
    parts: [{ send: hpackAttack(), waitAfter: 0 }],
    errorTypes: ['hpack'],
  },
];

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

describe('bad input through the live relay: bytes unchanged, error counted, agent healthy, memory bounded', { skip, timeout: 240_000 }, () => {
  const lab = new AgentLab({ prefix: 'epag-bi', subnet: 207, hosts: [OK, ...HOSTS], extraUpstreamOctets: [20] });
  const RECORDER = lab.ip(20);
  let recorder: { output: () => string };
  let work = '';
  let rssStart = 0;
  let fdsStart = 0;
  let seq = 0;

  /** Runs one case `repeat` times (one client process, one connection after the other): what each side sent and
   *  received on each connection, for the comparisons. */
  const runCase = async (c: Case, repeat = 1) => {
    const id = ++seq;
    const steps: string[] = [];
    let expectReceived = 0;
    const sent: Buffer[] = [];
    if (c.alpn === 'h2') {
      expectReceived = H2_PREFIX.length;
      steps.push(`wait:${expectReceived}`); // the server's SETTINGS (any table size allowed) before the attack
    }
    c.parts.forEach((p, i) => {
      const file = join(work, `send-${id}-${i}.bin`);
      writeFileSync(file, p.send);
      steps.push(`send:${file}`);
      sent.push(p.send);
      expectReceived += p.waitAfter;
      if (p.waitAfter) steps.push(`wait:${expectReceived}`);
    });
    const clientSent = Buffer.concat(sent);
    // Everything the upstream will send back: its prefix (h2 SETTINGS), or the 101 reply, then the echo.
    const upstreamWillSend = c.alpn === 'h2' ? Buffer.concat([H2_PREFIX, clientSent]) : c.errorTypes === null ? Buffer.concat([UPGRADE_REPLY, ...sent.slice(1)]) : clientSent;
    steps.push(`wait:${upstreamWillSend.length}`);
    const closedRe = new RegExp(`closed (${c.sni.replace(/\./g, '\\.')}-\\d+)`, 'g');
    const closedBefore = [...recorder.output().matchAll(closedRe)].length;
    const out = join(work, `recv-${id}.bin`);
    const r = lab.ns.exec(lab.px, [process.execPath, join(repo, 'test/metrics/clients/raw-tls-client.mjs'), RECORDER, c.sni, c.alpn, lab.pki.agentCaCert, out, ...steps],
      { timeoutMs: 30_000 * repeat, env: { REPEAT: String(repeat) } });
    const results = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { received?: number; alpn?: string; issuer?: string; error?: string });
    let names: string[] = [];
    for (let i = 0; i < 50; i++) {
      names = [...recorder.output().matchAll(closedRe)].map((m) => m[1]!).slice(closedBefore);
      if (names.length >= repeat) break;
      await sleep(100);
    }
    return Array.from({ length: repeat }, (_, i) => {
      const name = names[i];
      const outI = i === 0 ? out : `${out}.${i}`;
      return {
        result: results[i] ?? { error: `no result: ${r.stdout}${r.stderr}` },
        stderr: r.stderr,
        closed: name !== undefined,
        clientSent,
        clientReceived: existsSync(outI) ? readFileSync(outI) : Buffer.alloc(0),
        upstreamReceived: name ? readFileSync(join(work, `${name}.in`)) : Buffer.alloc(0),
        upstreamSent: name ? readFileSync(join(work, `${name}.out`)) : Buffer.alloc(0),
        upstreamWillSend,
      };
    });
  };

  before(async () => {
    await lab.start();
    work = join(lab.pki.dir, 'recordings');
    mkdirSync(work);
    recorder = await lab.ns.spawn(lab.up, ['node', join(repo, 'test/metrics/clients/recording-upstream.mjs'), RECORDER, lab.leaf.cert, lab.leaf.key, work,
      UPGRADE_REPLY.toString('hex'), H2_PREFIX.toString('hex')], /recording upstream ready/);
    // One normal request first, so the baselines below include a warmed-up agent.
    const r = lab.curl(OK, lab.upstreamIp, ['-o', '/dev/null', '-w', '%{http_code}', `https://${OK}/status/200`]);
    assert.equal(r.stdout, '200', r.stderr);
    await sleep(300);
    rssStart = rssKb(lab.agentPid);
    fdsStart = fdCount(lab.agentPid);
  });

  after(async () => {
    await lab.teardown();
  });

  for (const c of cases) {
    it(`${c.name}: relayed unchanged both ways, counted, agent healthy`, async () => {
      const m0 = lab.metrics();
      const parse0 = metricValue(m0, 'epoch_agent_observe_parse_errors_total')!;
      const [run] = await runCase(c);
      assert.ok(run);
      assert.equal(run.result.error, undefined, `client: ${JSON.stringify(run.result)} ${run.stderr}`);
      assert.equal(run.result.alpn, c.alpn);
      assert.match(run.result.issuer ?? '', /epag agent CA/, 'intercepted: the client saw a forged certificate');
      assert.ok(run.closed, 'the upstream saw the connection close');
      assert.equal(run.upstreamReceived.length, run.clientSent.length, 'bytes at the upstream');
      assert.ok(run.upstreamReceived.equals(run.clientSent), 'the upstream received exactly what the client sent');
      assert.ok(run.upstreamSent.equals(run.upstreamWillSend), 'the upstream behaved as scripted');
      assert.equal(run.clientReceived.length, run.upstreamSent.length, 'bytes at the client');
      assert.ok(run.clientReceived.equals(run.upstreamSent), 'the client received exactly what the upstream sent');

      let m1 = lab.metrics();
      for (let i = 0; i < 20 && c.errorTypes && metricValue(m1, 'epoch_agent_observe_parse_errors_total') === parse0; i++) {
        await sleep(100);
        m1 = lab.metrics();
      }
      const errors: Record<string, number> = {};
      for (const m of m1.matchAll(/^epoch_agent_http_client_errors_total\{server_address="([^"]*)",error_type="([^"]*)"\} (\S+)$/gm)) {
        if (m[1] === c.sni) errors[m[2]!] = Number(m[3]);
      }
      if (c.errorTypes) {
        assert.equal(metricValue(m1, 'epoch_agent_observe_parse_errors_total'), parse0 + 1, 'one parse error for the connection');
        assert.equal(Object.values(errors).reduce((a, b) => a + b, 0), 1, JSON.stringify(errors));
        assert.ok(c.errorTypes.includes(Object.keys(errors)[0]!), `error_type ${JSON.stringify(errors)}`);
      } else {
        // METRICS.md: bytes after a 101 are not HTTP, neither parsed nor counted as errors; the upgrade is an exchange.
        assert.equal(metricValue(m1, 'epoch_agent_observe_parse_errors_total'), parse0, 'bytes after the 101 are not a parse error');
        assert.deepEqual(errors, {});
        assert.match(m1, new RegExp(`^http_client_request_duration_seconds_count\\{server_address="${c.sni.replace(/\./g, '\\.')}",server_port="443",http_request_method="GET",http_response_status_code="101",http_route="/ws",network_protocol_version="1\\.1"\\} 1$`, 'm'));
      }
      assert.equal(lab.health().ready, true);
    });
  }

  it('24 more rounds of the 1 MB header and the HPACK attack: RSS bounded, no connection or fd left, normal traffic still observed', async () => {
    const big = cases.find((c) => c.sni === HOSTS[2])!;
    const hpack = cases.find((c) => c.sni === HOSTS[4])!;
    const parse0 = metricValue(lab.metrics(), 'epoch_agent_observe_parse_errors_total')!;
    // 24 rounds: a 40-round run showed RSS rising ~2 MB per round while V8 grows its heap, levelling off at +39 MB
    // after 17 rounds and then falling back as it collects; retaining what passed through would not level off.
    const ROUNDS = 24;
    let peak = 0;
    const perRound: number[] = [];
    for (let i = 0; i < ROUNDS / 4; i++) {
      for (const c of [big, hpack]) {
        for (const [k, run] of (await runCase(c, 4)).entries()) {
          assert.ok(run.clientReceived.equals(run.upstreamSent) && run.upstreamReceived.equals(run.clientSent) && run.upstreamSent.equals(run.upstreamWillSend),
            `${c.sni} group ${i} connection ${k}: ${JSON.stringify(run.result)}`);
        }
      }
      perRound.push(rssKb(lab.agentPid));
      peak = Math.max(peak, perRound.at(-1)!);
    }
    let m = lab.metrics();
    for (let i = 0; i < 20 && metricValue(m, 'epoch_agent_observe_parse_errors_total')! < parse0 + 2 * ROUNDS; i++) {
      await sleep(100);
      m = lab.metrics();
    }
    assert.equal(metricValue(m, 'epoch_agent_observe_parse_errors_total'), parse0 + 2 * ROUNDS);
    const r = lab.curl(OK, lab.upstreamIp, ['--http2', '-o', '/dev/null', '-w', '%{http_code}', `https://${OK}/chunked/100000`]);
    assert.equal(r.stdout, '200', r.stderr);
    m = lab.metrics();
    assert.match(m, /^http_client_request_duration_seconds_count\{server_address="ok\.bad\.epag\.test",server_port="443",http_request_method="GET",http_response_status_code="200",http_route="\/chunked\/\{id\}",network_protocol_version="2"\} 1$/m);
    const h = lab.health() as { ready: boolean; connections: { active: number } };
    assert.equal(h.ready, true);
    for (let i = 0; i < 30 && (lab.health() as { connections: { active: number } }).connections.active !== 0; i++) await sleep(100);
    assert.equal((lab.health() as { connections: { active: number } }).connections.active, 0);
    assert.equal(await settledFdCount(lab.agentPid, fdsStart), fdsStart, 'fds back to the baseline');
    const growthMb = (peak - rssStart) / 1024;
    console.log(`agent RSS: ${Math.round(rssStart / 1024)} MB before the bad input, peak ${Math.round(peak / 1024)} MB over ${ROUNDS} rounds (+${growthMb.toFixed(1)} MB); ${ROUNDS} MB of 1 MB header blocks and ${ROUNDS} HPACK attacks relayed; per 4 rounds: ${perRound.map((k) => Math.round(k / 1024)).join(' ')} MB`);
    // The framer keeps at most 64 KB of a head and 64 KB of HPACK table per direction; the rest is the relay's
    // transient TLS buffers and V8's heap growth between collections.
    assert.ok(growthMb < 64, `RSS grew by ${growthMb.toFixed(1)} MB`);
  });
});
