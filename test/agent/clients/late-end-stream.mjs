// An h2 upstream that makes the lab's rare ordering certain: it sends the response HEADERS (with content-length)
// and the whole body at once, and the stream's END_STREAM (an empty DATA frame) only LATE_MS later. curl stops
// at content-length and closes before that frame, so an observer that waits for END_STREAM loses the exchange.
// Usage: node late-end-stream.mjs ADDR CERT KEY   (listens on ADDR:443, prints "late-end-stream ready")
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';

const LATE_MS = 300;
const [addr, cert, key] = process.argv.slice(2);
const server = http2.createSecureServer({ cert: readFileSync(cert), key: readFileSync(key) });
server.on('stream', (stream, headers) => {
  const body = Buffer.from(`late end for ${headers[':path']}\n`);
  stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': body.length });
  stream.write(body);
  const timer = setTimeout(() => stream.end(), LATE_MS);
  stream.on('close', () => clearTimeout(timer));
  stream.on('error', () => {});
});
server.on('sessionError', () => {});
server.on('tlsClientError', () => {});
server.listen(443, addr, () => console.log('late-end-stream ready'));
process.on('SIGTERM', () => process.exit(0));
