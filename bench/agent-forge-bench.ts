// The forge path in isolation (one thread): hand-written DER + crypto.sign with the P-256 CA, the SecureContext
// build that follows it, and a warm cache lookup. CPU time per operation, so the figures hold on a noisy machine.
//   node --import tsx bench/agent-forge-bench.ts [--seconds 2]
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCa, loadCa } from '../agent/src/certs/ca';
import { ForgedContextCache } from '../agent/src/certs/context-cache';
import { Forger } from '../agent/src/certs/forge';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1] ?? 2) || 2;
const dir = mkdtempSync(join(tmpdir(), 'epag-forge-bench-'));
try {
  const key = join(dir, 'k.pem');
  const crt = join(dir, 'c.pem');
  const sans = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((x) => `DNS:${x}.bench.example`).join(',');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '30', '-subj', '/O=Bench/CN=a.bench.example', '-addext', `subjectAltName=${sans},IP:198.18.200.1`], { stdio: 'ignore' });
  const upstream = new X509Certificate(execFileSync('openssl', ['x509', '-in', crt, '-outform', 'DER'])).raw;
  const g = generateCa('bench CA', 365);
  const ca = loadCa(g.certPem, g.keyPem);

  const measure = (name: string, fn: () => void) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < seconds * 1000) {
      fn();
      n++;
    }
    const cpu = process.cpuUsage(c0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(`${name.padEnd(48)} ${String(Math.round(n / seconds)).padStart(7)} ops/s  ${(cpuMs / n).toFixed(4)} CPU-ms/op`);
  };
  const forger = new Forger(ca);
  measure('forge leaf (parse upstream, DER TBS, P-256 sign)', () => forger.forge({ upstream, sni: 'x.bench.example', destinationIp: '198.18.200.1' }));
  let i = 0;
  const cold = new ForgedContextCache(ca, 1);
  measure('cache miss: forge + createSecureContext', () => cold.lookup(upstream, `n${i++}.other.example`, '198.18.200.1'));
  const warm = new ForgedContextCache(ca, 16);
  warm.lookup(upstream, 'a.bench.example', '198.18.200.1');
  measure('cache hit (fingerprint + SAN check)', () => warm.lookup(upstream, 'a.bench.example', '198.18.200.1'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
