// The agent in front of a real nginx (Debian 12's 1.22, fetched with `apt-get download` and extracted into a cache by
// test/agent/debian-nginx.sh, never installed): real parts as in intercept.test.ts (AgentLab: our own namespaces
// epag-ngx-*, 198.18.208.0/24, a real nft REDIRECT and then an iptables REDIRECT with the owner-match exclusion, the
// agent as uid 65534). nginx serves HTTP/1.1 and h2 (ALPN) on 198.18.208.20:443 with a lab-root certificate and
// proxies /ws (HTTP/1.1 Upgrade) to the lab upstream server's WebSocket echo on 198.18.208.10:443. Every nginx
// response says which protocol and ALPN nginx itself saw (x-nginx-protocol, x-nginx-alpn) and nginx logs each request,
// so a test sees the protocol on both sides of the agent: h2 must stay h2, HTTP/1.1 stay HTTP/1.1.
// Clients: curl (--http1.1, --http2), openssl s_client, python3 ssl, node https and http2, a WebSocket client.
// If nginx cannot be obtained the suite fails (before()) with the fetch script's reason; it does not skip.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_UID, AgentLab, PYTHON, repo, sh, skipReason, sleep } from './support';

const skip = skipReason();
const HOST = 'nginx.epag.test';
const LAB_HOST = 'lab.epag.test';
const BIG = 3_000_000;

/** Debian 12's nginx binary, fetched and extracted on first use (test/agent/debian-nginx.sh), or a clear error. */
function debianNginx(): string {
  const r = sh(['sh', join(repo, 'test/agent/debian-nginx.sh')], { timeoutMs: 300_000 });
  const bin = r.stdout.trim();
  if (r.code !== 0 || !bin || !existsSync(bin)) {
    throw new Error(`nginx could not be obtained (test/agent/debian-nginx.sh: apt-get download of Debian 12's nginx, exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  const v = sh([bin, '-V']);
  if (v.code !== 0 || !/--with-http_v2_module/.test(v.stderr) || !/--with-http_ssl_module/.test(v.stderr)) {
    throw new Error(`${bin} does not run or lacks the ssl/h2 modules: ${v.stderr}`);
  }
  return bin;
}

/** The lab upstream server's /bytes pattern, which nginx serves from a file. */
function pattern(n: number): string {
  const unit = 'abcdefghijklmnopqrstuvwxyz0123456789\n';
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

describe('epoch-agent in front of a real nginx upstream (h1, h2, WebSocket)', { skip, timeout: 300_000 }, () => {
  const lab = new AgentLab({ prefix: 'epag-ngx', subnet: 208, hosts: [LAB_HOST], extraUpstreamOctets: [20], config: { log: { level: 'info', connectLog: true } } });
  const NGINX = lab.ip(20);
  let dir = '';
  let nginxOutput: () => string = () => '';

  const curl = (args: string[]) => lab.curl(HOST, NGINX, args);
  const accessLog = () => (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8') : '');
  const nodeEnv = () => ({ NODE_EXTRA_CA_CERTS: lab.pki.agentCaCert });
  /** Headers of a curl -D - dump, lower-cased names. */
  const headers = (dump: string) => Object.fromEntries(dump.split(/\r?\n/).filter((l) => /^[\w-]+: /.test(l)).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]));

  before(async () => {
    const bin = debianNginx();
    await lab.start();
    const leaf = lab.pki.leaf(HOST, `DNS:${HOST}`, 'lab');
    dir = join(lab.pki.dir, 'nginx');
    mkdirSync(join(dir, 'www/bytes'), { recursive: true });
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, `www/bytes/${BIG}`), pattern(BIG));
    writeFileSync(join(dir, 'www/index.txt'), 'epag nginx upstream\n');
    // Every path nginx would take from its build (/etc/nginx, /var/lib/nginx, /var/log/nginx, /run/nginx.pid) is
    // replaced by one under `dir`, so nothing outside it is touched. Workers run as nobody.
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, `daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  log_format epag '$remote_addr $ssl_server_name $server_protocol alpn=$ssl_alpn_protocol $ssl_protocol "$request" $status $upstream_addr';
  access_log ${dir}/access.log epag;
  default_type text/plain;
  server_tokens off;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen ${NGINX}:443 ssl http2;
    server_name ${HOST};
    ssl_certificate ${leaf.cert};
    ssl_certificate_key ${leaf.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    root ${dir}/www;
    add_header x-nginx-protocol $server_protocol always;
    add_header x-nginx-alpn $ssl_alpn_protocol always;
    location = / { try_files /index.txt =404; }
    location = /status/204 { return 204; }
    location /bytes/ { }
    location = /ws {
      proxy_pass https://${lab.upstreamIp}:443;
      proxy_http_version 1.1;
      proxy_set_header Host ${LAB_HOST};
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_ssl_server_name on;
      proxy_ssl_name ${LAB_HOST};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${lab.pki.labRoot};
      proxy_read_timeout 30s;
    }
  }
}
`);
    const t = lab.ns.exec(lab.up, [bin, '-p', `${dir}/`, '-c', conf, '-e', 'stderr', '-t']);
    assert.equal(t.code, 0, `nginx -t: ${t.stderr}`);
    const nginx = await lab.ns.spawn(lab.up, [bin, '-p', `${dir}/`, '-c', conf, '-e', 'stderr'], /start worker process/);
    nginxOutput = nginx.output;
  });

  after(async () => {
    // Namespaces.teardown: nginx (the master, exec'd by `ip netns exec`) gets SIGTERM by PID, then SIGKILL; anything
    // left in the namespaces (its worker) is killed by PID before they are deleted.
    await lab.teardown();
  });

  it('nginx itself (no agent, in its own namespace) serves h2 and HTTP/1.1 with the lab-root certificate', () => {
    for (const [flag, version, proto] of [['--http2', '2', 'HTTP/2.0'], ['--http1.1', '1.1', 'HTTP/1.1']] as const) {
      const r = lab.ns.exec(lab.up, ['curl', '-sS', '--max-time', '10', flag, '--cacert', lab.pki.labRoot, '--resolve', `${HOST}:443:${NGINX}`,
        '-D', '-', '-o', '/dev/null', '-w', 'version=%{http_version}\n', `https://${HOST}/`]);
      assert.equal(r.code, 0, `${flag}: ${r.stderr}\n${nginxOutput()}`);
      assert.match(r.stdout, new RegExp(`^version=${version.replace('.', '\\.')}$`, 'm'));
      assert.equal(headers(r.stdout)['x-nginx-protocol'], proto);
      assert.equal(headers(r.stdout)['server'], 'nginx');
    }
  });

  it('curl --http2 through the agent: forged cert from our CA, h2 on both sides of the agent', () => {
    const r = curl(['-v', '--http2', '-D', '-', '-o', '/dev/null', '-w', 'version=%{http_version}\n', `https://${HOST}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/2 200/m);
    assert.match(r.stdout, /^version=2$/m, 'the client negotiated h2 with the agent');
    const h = headers(r.stdout);
    assert.equal(h['x-nginx-protocol'], 'HTTP/2.0', 'nginx saw HTTP/2 from the agent');
    assert.equal(h['x-nginx-alpn'], 'h2', 'the agent offered and nginx chose h2');
    assert.equal(h['server'], 'nginx');
    assert.match(r.stderr, /ALPN: server accepted h2|ALPN, server accepted to use h2/);
    assert.match(r.stderr, /issuer: CN=epag agent CA/);
    assert.match(r.stderr, /subject: O=epag upstream; CN=nginx\.epag\.test/);
  });

  it('curl --http1.1 through the agent: HTTP/1.1 on both sides of the agent', () => {
    const r = curl(['-v', '--http1.1', '-D', '-', '-o', '/dev/null', '-w', 'version=%{http_version}\n', `https://${HOST}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200/m);
    assert.match(r.stdout, /^version=1\.1$/m);
    const h = headers(r.stdout);
    assert.equal(h['x-nginx-protocol'], 'HTTP/1.1');
    assert.equal(h['x-nginx-alpn'], 'http/1.1');
    assert.match(r.stderr, /issuer: CN=epag agent CA/);
  });

  it('a 3 MB file arrives byte for byte over h2 and over HTTP/1.1', () => {
    const expected = pattern(BIG);
    for (const flag of ['--http2', '--http1.1']) {
      const r = curl([flag, '-o', '-', `https://${HOST}/bytes/${BIG}`]);
      assert.equal(r.code, 0, `${flag}: ${r.stderr}`);
      assert.equal(r.stdout.length, BIG, flag);
      assert.ok(r.stdout === expected, `${flag}: the body differs from the file nginx served`);
    }
  });

  it('nginx logged the intercepted requests with the agent\'s SNI and the same protocol the client chose', () => {
    const log = accessLog();
    // The agent's connections come from the proxy namespace (198.18.208.1); the direct ones above from nginx's own.
    assert.match(log, /^198\.18\.208\.1 nginx\.epag\.test HTTP\/2\.0 alpn=h2 TLSv1\.3 "GET \/ HTTP\/2\.0" 200 -$/m, log);
    assert.match(log, /^198\.18\.208\.1 nginx\.epag\.test HTTP\/1\.1 alpn=http\/1\.1 TLSv1\.3 "GET \/ HTTP\/1\.1" 200 -$/m, log);
    assert.match(log, /^198\.18\.208\.1 nginx\.epag\.test HTTP\/2\.0 alpn=h2 .*"GET \/bytes\/3000000 HTTP\/2\.0" 200 -$/m);
    assert.match(log, /^198\.18\.208\.1 nginx\.epag\.test HTTP\/1\.1 alpn=http\/1\.1 .*"GET \/bytes\/3000000 HTTP\/1\.1" 200 -$/m);
  });

  it('openssl s_client: verify OK against our CA, ALPN h2 (TLS 1.3 and 1.2), and an HTTP/1.1 request answered by nginx', () => {
    for (const version of ['-tls1_3', '-tls1_2']) {
      const r = lab.ns.exec(lab.px, ['openssl', 's_client', version, '-connect', `${NGINX}:443`, '-servername', HOST, '-CAfile', lab.pki.agentCaCert, '-alpn', 'h2,http/1.1', '-verify_return_error'],
        { input: '', timeoutMs: 10_000 });
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/, `${version}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /ALPN protocol: h2/);
      assert.match(r.stdout, /issuer=CN ?= ?epag agent CA/);
      assert.match(r.stdout, version === '-tls1_3' ? /TLSv1\.3/ : /TLSv1\.2/);
    }
    const r = lab.ns.exec(lab.px, ['openssl', 's_client', '-connect', `${NGINX}:443`, '-servername', HOST, '-CAfile', lab.pki.agentCaCert, '-alpn', 'http/1.1', '-verify_return_error', '-ign_eof', '-quiet'],
      { input: `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, timeoutMs: 10_000 });
    assert.match(r.stdout, /^HTTP\/1\.1 200 OK\r$/m, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^Server: nginx\r$/m);
    assert.match(r.stdout, /^x-nginx-alpn: http\/1\.1\r$/m);
    assert.match(r.stdout, /epag nginx upstream/);
  });

  it('python3 ssl (no ALPN: HTTP/1.1) gets nginx\'s answer through the agent', () => {
    const r = lab.ns.exec(lab.px, [PYTHON, join(repo, 'test/agent/clients/tls-probe.py'), 'get', lab.pki.agentCaCert, NGINX, HOST, '/status/204']);
    assert.equal(r.stdout.trim(), 'HTTP/1.1 204 No Content', r.stderr);
  });

  it('node https (HTTP/1.1) and node http2 (h2) with NODE_EXTRA_CA_CERTS get nginx\'s answers through the agent', () => {
    const h1 = lab.ns.exec(lab.px, [process.execPath, '-e', `require('https').get({host:'${NGINX}',servername:'${HOST}',headers:{host:'${HOST}'},path:'/'},r=>{console.log(r.statusCode,r.headers.server,r.headers['x-nginx-protocol'],r.socket.getPeerCertificate().issuer.CN);r.resume()}).on('error',e=>{console.log(e.message);process.exitCode=1})`], { env: nodeEnv() });
    assert.equal(h1.stdout.trim(), '200 nginx HTTP/1.1 epag agent CA', h1.stderr);
    const h2 = lab.ns.exec(lab.px, [process.execPath, '-e', `
const http2 = require('http2'), tls = require('tls');
const s = http2.connect('https://${HOST}', { createConnection: () => tls.connect({ host: '${NGINX}', port: 443, servername: '${HOST}', ALPNProtocols: ['h2'] }) });
s.on('error', (e) => { console.log(e.message); process.exitCode = 1; });
const q = s.request({ ':path': '/' });
q.on('response', (h) => { console.log(h[':status'], h['x-nginx-protocol'], s.alpnProtocol, s.socket.getPeerCertificate().issuer.CN); q.resume(); q.on('end', () => s.close()); });
q.end();`], { env: nodeEnv() });
    assert.equal(h2.stdout.trim(), '200 HTTP/2.0 h2 epag agent CA', h2.stderr);
  });

  it('WebSocket: upgrade and echo through the agent and nginx (proxied to the lab server\'s echo)', async () => {
    const ws = lab.ns.exec(lab.px, [process.execPath, join(repo, 'test/agent/clients/ws-echo.mjs'), NGINX, HOST, 'hello-nginx'], { env: nodeEnv() });
    assert.equal(ws.stdout.trim(), '101 hello-nginx', `${ws.stderr}\n${nginxOutput()}`);
    // nginx logs the upgraded request once the tunnel closes: it went to the lab server's echo, not anywhere else.
    const logged = new RegExp(`^198\\.18\\.208\\.1 nginx\\.epag\\.test HTTP/1\\.1 .*"GET /ws HTTP/1\\.1" 101 ${lab.upstreamIp.replace(/\./g, '\\.')}:443$`, 'm');
    for (let i = 0; i < 50 && !logged.test(accessLog()); i++) await sleep(100);
    assert.match(accessLog(), logged);
  });

  it('the agent logged every connection so far as intercepted, with SNI nginx.epag.test and destination nginx:443', async () => {
    // Every connection through the agent in this suite went to nginx. The lines arrive on the agent's stdout pipe,
    // which this process reads only while it is not blocked in a synchronous client run: wait for all of them.
    const h = lab.health() as { connections: { active: number; total: number } };
    assert.equal(h.connections.active, 0);
    assert.ok(h.connections.total >= 11, JSON.stringify(h.connections));
    const lines = () => lab.agentOutput().split('\n').filter((l) => l.includes('"msg":"connect"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    for (let i = 0; i < 50 && lines().length < h.connections.total; i++) await sleep(100);
    assert.equal(lines().length, h.connections.total, lab.agentOutput());
    for (const l of lines()) {
      assert.equal(l.outcome, 'intercepted', JSON.stringify(l));
      assert.equal(l.sni, HOST, JSON.stringify(l));
      assert.equal(l.dst, `${NGINX}:443`, JSON.stringify(l));
    }
  });

  it('the agent observed nginx exchanges as HTTP/2 and HTTP/1.1 (metrics)', async () => {
    // (Label values may hold braces: http_route="/bytes/{id}".)
    const count = (version: string) => lab.metrics().split('\n')
      .filter((l) => l.startsWith('http_client_request_duration_seconds_count{') && l.includes(`server_address="${HOST}"`) && l.includes(`network_protocol_version="${version}"`))
      .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    for (let i = 0; i < 30 && (count('2') === 0 || count('1.1') === 0); i++) await sleep(100);
    assert.ok(count('2') >= 3, `h2 exchanges: ${count('2')}\n${lab.metrics()}`);
    assert.ok(count('1.1') >= 3, `HTTP/1.1 exchanges: ${count('1.1')}`);
  });

  it('the same with an iptables REDIRECT and owner-match exclusion instead of nft: h2 and HTTP/1.1 preserved', () => {
    lab.ns.execOk(lab.px, ['nft', 'delete', 'table', 'ip', 'epag_lab_208']);
    lab.ns.execOk(lab.px, ['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '443', '-m', 'owner', '!', '--uid-owner', String(AGENT_UID), '-j', 'REDIRECT', '--to-ports', String(lab.agentPort)]);
    const before = accessLog().length;
    for (const [flag, status, proto] of [['--http2', 'HTTP/2 200', 'HTTP/2.0'], ['--http1.1', 'HTTP/1.1 200', 'HTTP/1.1']] as const) {
      const r = curl(['-v', flag, '-D', '-', '-o', '/dev/null', `https://${HOST}/`]);
      assert.equal(r.code, 0, `${flag}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(status), r.stdout);
      assert.equal(headers(r.stdout)['x-nginx-protocol'], proto);
      assert.match(r.stderr, /issuer: CN=epag agent CA/);
    }
    assert.equal(accessLog().slice(before).split('\n').filter((l) => l.startsWith(`${lab.ip(1)} ${HOST} `)).length, 2);
  });
});
