// A raw TLS upstream for the bad-input tests: records every byte it receives and every byte it sends, per
// connection, into OUTDIR/<sni>-<n>.in and .out when the connection closes, and prints `closed <sni>-<n>`.
// Behaviour by SNI: `ws.*` waits for the end of the request head (not echoed), answers with UPGRADE_HEX (a 101 plus
// bytes after it) and then echoes; `h2.*` sends H2_PREFIX_HEX (the server's SETTINGS) at once and then echoes;
// anything else is echoed from the end of the first request head on (the whole head first, as a server that reads the
// head before it answers; so the agent sees the complete request before any response byte). Usage: node recording-upstream.mjs IP CERT KEY OUTDIR UPGRADE_HEX H2_PREFIX_HEX
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';

const [ip, cert, key, outDir, upgradeHex, h2PrefixHex] = process.argv.slice(2);
const upgradeReply = Buffer.from(upgradeHex, 'hex');
const h2Prefix = Buffer.from(h2PrefixHex, 'hex');
let n = 0;
const server = tls.createServer({ cert: readFileSync(cert), key: readFileSync(key), ALPNProtocols: ['h2', 'http/1.1'] }, (s) => {
  const name = `${s.servername || 'none'}-${++n}`;
  const mode = s.servername?.startsWith('ws.') ? 'ws' : s.servername?.startsWith('h2.') ? 'h2' : 'echo';
  const received = [];
  const sent = [];
  const send = (b) => {
    sent.push(b);
    s.write(b);
  };
  if (mode === 'h2') send(h2Prefix);
  let passing = mode === 'h2';
  let head = Buffer.alloc(0);
  s.on('data', (c) => {
    received.push(c);
    if (passing) return send(c);
    head = Buffer.concat([head, c]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) return;
    passing = true;
    if (mode === 'echo') return send(head);
    send(upgradeReply);
    if (head.length > end + 4) send(head.subarray(end + 4));
  });
  s.on('error', () => {});
  s.on('close', () => {
    writeFileSync(join(outDir, `${name}.in`), Buffer.concat(received));
    writeFileSync(join(outDir, `${name}.out`), Buffer.concat(sent));
    console.log(`closed ${name} alpn=${s.alpnProtocol}`);
  });
});
server.listen(443, ip, () => console.log('recording upstream ready'));
process.on('SIGTERM', () => process.exit(0));
