// Upstreams that misbehave, for the agent's bad-input tests: a plain-TCP echo (non-TLS traffic on port 443)
// and a listener that accepts and never answers. Usage: node odd-upstreams.mjs ECHO_IP SILENT_IP
import net from 'node:net';

const [echoIp, silentIp] = process.argv.slice(2);
const echo = net.createServer((s) => s.pipe(s));
const held = [];
const silent = net.createServer((s) => {
  held.push(s);
  s.on('error', () => {});
});
echo.listen(443, echoIp, () => silent.listen(443, silentIp, () => console.log('odd upstreams ready')));
process.on('SIGTERM', () => process.exit(0));
