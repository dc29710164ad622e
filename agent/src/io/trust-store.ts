// The CAs upstream servers are verified against: the system bundle (or upstream.caBundleFile) minus our own CA.
// Our CA is in the system store once the provisioner installs it; trusting it upstream would let a forged cert
// (ours, replayed through a loop or another agent) pass as a real server.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';

/** Debian/Ubuntu, RHEL/Fedora, SUSE, Alpine/Arch. */
export const systemBundles = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

const pemRe = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

export interface UpstreamTrust {
  source: string;
  certificates: string[];
  excludedOwnCa: number;
}

export function loadUpstreamTrust(bundleFile: string | undefined, ownCaFingerprints: readonly string[]): UpstreamTrust {
  const source = bundleFile ?? systemBundles.find((p) => existsSync(p));
  if (!source) throw new Error(`no system CA bundle found (looked in ${systemBundles.join(', ')}); set upstream.caBundleFile`);
  const text = readFileSync(source, 'utf8');
  const own = new Set(ownCaFingerprints.map((f) => f.toLowerCase()));
  const certificates: string[] = [];
  let excludedOwnCa = 0;
  for (const pem of text.match(pemRe) ?? []) {
    let fp: string;
    try {
      fp = new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
    } catch {
      continue; // one unparsable entry in a distro bundle must not disable verification for the rest
    }
    if (own.has(fp)) excludedOwnCa++;
    else certificates.push(pem);
  }
  if (certificates.length === 0) throw new Error(`${source}: no usable CA certificates (after excluding our own CA)`);
  return { source, certificates, excludedOwnCa };
}
