// A raw TLS client for the bad-input tests: connects (SNI, one ALPN protocol, trusting CAFILE), runs the steps in
// order (`send:FILE` writes the file's bytes, `wait:N` waits until N bytes in all have been received), then ends its
// side, waits for the close, writes everything it received to OUTFILE and prints one JSON line. With REPEAT=n in the
// environment it does that n times, one connection after the other, writing OUTFILE, OUTFILE.1, ... OUTFILE.<n-1>.
// Usage: node raw-tls-client.mjs IP SNI ALPN CAFILE OUTFILE STEP...
import { readFileSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';

const [ip, sni, alpn, caFile, outFile, ...steps] = process.argv.slice(2);
const ca = readFileSync(caFile);
const repeat = Number(process.env.REPEAT ?? '1');

function once(out) {
  return new Promise((resolve) => {
    const received = [];
    let total = 0;
    let wake = () => {};
    let issuer;
    let done = false;
    const s = tls.connect({ host: ip, port: 443, servername: sni, ca, ALPNProtocols: [alpn] });
    const finish = (error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      writeFileSync(out, Buffer.concat(received));
      resolve({ received: total, alpn: s.alpnProtocol, issuer, error });
      s.destroy();
    };
    const timer = setTimeout(() => finish(`timeout after ${total} bytes`), 20_000);
    s.on('data', (c) => {
      received.push(c);
      total += c.length;
      wake();
    });
    s.on('error', (e) => finish(e.message));
    s.once('secureConnect', async () => {
      issuer = s.getPeerCertificate().issuer?.CN;
      for (const step of steps) {
        const i = step.indexOf(':');
        const [kind, arg] = [step.slice(0, i), step.slice(i + 1)];
        if (kind === 'send') s.write(readFileSync(arg));
        else if (kind === 'wait') {
          const want = Number(arg);
          await new Promise((r) => {
            wake = () => total >= want && r();
            wake();
          });
        } else return finish(`unknown step ${step}`);
      }
      s.once('close', () => finish());
      s.end();
    });
  });
}

let failed = false;
for (let i = 0; i < repeat; i++) {
  const result = await once(i === 0 ? outFile : `${outFile}.${i}`);
  console.log(JSON.stringify(result));
  if (result.error) {
    failed = true;
    break;
  }
}
process.exit(failed ? 1 : 0);
