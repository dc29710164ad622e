// WebSocket echo through the agent: upgrade over HTTPS (trusting NODE_EXTRA_CA_CERTS), send one masked text
// frame, print the echoed payload. Usage: node ws-echo.mjs IP SNI MESSAGE
import { randomBytes } from 'node:crypto';
import https from 'node:https';

const [ip, sni, message] = process.argv.slice(2);
const req = https.request({
  host: ip,
  servername: sni,
  headers: { host: sni, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') },
  path: '/ws',
  timeout: 8000,
});
req.on('upgrade', (res, socket) => {
  const payload = Buffer.from(message);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
  let buf = Buffer.alloc(0);
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length >= 2 && buf.length >= 2 + (buf[1] & 0x7f)) {
      console.log(`${res.statusCode} ${buf.subarray(2, 2 + (buf[1] & 0x7f)).toString()}`);
      socket.destroy();
    }
  });
});
req.on('response', (res) => {
  console.log(`no upgrade: ${res.statusCode}`);
  process.exitCode = 1;
});
req.on('error', (e) => {
  console.log(`error: ${e.message}`);
  process.exitCode = 1;
});
req.end();
