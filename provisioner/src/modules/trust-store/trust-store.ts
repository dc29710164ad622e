// trust-store: makes the host's system trust store contain (or not contain) one CA certificate, per distro family.
// present: anchor file with exactly our PEM + the family's refresh; absent: anchor removed + refresh, which rebuilds
// the bundle byte for byte as it was. The cert comes from the controller (fleet/import) or from the host itself
// (per-host mode: the agent generated it there and it never left).
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { certFingerprint } from '../../ca/material';
import type { Change, Step } from '../../core/change';
import type { ExecResult } from '../../transport/transport';
import type { HostContext, ProvisionModule } from '../module';
import { type BatchProbe, bundleTrustsFileProbe, bundleTrustsFrom, bundleTrustsMemoKey, bundleTrustsProbe, commandPathArgv, commandPathFrom, fileFrom, probeAll, readFileArgv } from '../ca/host-files';
import { certPemSource, loadCertFile, normalisePem } from '../ca/params';
import { tryReloadStep } from '../try-restart';
import { anchorPath, type OsRelease, osReleaseFromFacts, parseOsRelease, type TrustLayout, trustFamilyOf, trustLayout, UnsupportedDistroError } from './distro';

export const defaultAnchorName = 'epoch-provision-ca';

/**
 * Debian: update-ca-certificates tells its hooks only about removed certificates listed in /etc/ca-certificates.conf,
 * never about a local anchor, so ca-certificates-java would keep trusting a removed CA. After the refresh, hand the
 * Java hook the removal line it would have got for a system certificate. Args: anchor name, then the refresh argv.
 */
const debianRemoveScript = `name=$1; shift
"$@" || exit $?
hook=/etc/ca-certificates/update.d/jks-keystore
if [ -x "$hook" ] && [ -e /etc/ssl/certs/java/cacerts ]; then printf '%s\\n' "-/etc/ssl/certs/$name.pem" | "$hook"; fi`;

/** The refresh after an anchor is removed (on Debian, with the Java hook told; see debianRemoveScript). */
export function removeRefreshStep(layout: TrustLayout, name: string): Step {
  return layout.family === 'debian'
    ? { kind: 'run', argv: ['sh', '-c', debianRemoveScript, 'epoch-trust-remove', name, ...layout.removeRefreshArgv], timeoutMs: 300_000 }
    : { kind: 'run', argv: layout.removeRefreshArgv, timeoutMs: 120_000 };
}
/** Root-only, outside /etc: the refresh output saved before our anchor went in, per anchor name. */
/**
 * One snapshot per host of what the refresh regenerates, taken by the first of our anchors to be installed and never
 * overwritten by a later one (a rotation installs a second CA beside the first): removal restores it when the trust
 * set is back to it, whichever of our anchors goes last.
 */
export const savedExtractedDir = '/var/lib/epoch-provision/saved/trust-store/pristine';

// Saves the paths that exist (tar keeps modes, owners and symlinks) before the anchor goes in.
const saveExtractedScript = `set -e
umask 077
d=$1; shift
# Another anchor of ours saved the pristine state already: keep that one.
[ -f "$d/tree.tar" ] && exit 0
rel=
for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then rel="$rel \${p#/}"; fi; done
rm -rf -- "$d"
mkdir -p -- "$d"
# shellcheck disable=SC2086 # paths from the module's layout: no spaces
tar -C / -cpf "$d/tree.tar" $rel`;

// After the anchor is gone and the refresh ran: the PEM bundles (every regular *.pem / *.crt file, both ways) equal
// the saved ones, so the trust set is back to what it was: put the saved tree back byte for byte (the regenerated
// Java keystore differs only by its timestamp). Otherwise someone changed the store meanwhile: keep the fresh one.
const restoreExtractedScript = `d=$1; shift
[ -f "$d/tree.tar" ] || { echo "no saved extraction in $d: keeping the fresh one"; exit 0; }
t=$(mktemp -d) || exit 1
trap 'rm -rf -- "$t"' EXIT
tar -C "$t" -xpf "$d/tree.tar" || exit 1
saved=$(cd "$t" && for p in "$@"; do [ -e ".$p" ] && find ".$p" -type f \\( -name '*.pem' -o -name '*.crt' \\); done | sort)
fresh=$(cd / && for p in "$@"; do [ -e ".$p" ] && find ".$p" -type f \\( -name '*.pem' -o -name '*.crt' \\); done | sort)
same=yes
[ "$saved" = "$fresh" ] || same=no
for f in $saved; do cmp -s "$t/$f" "/$f" || same=no; done
if [ "$same" = yes ]; then
  # Only what differs goes back, each file or link by a rename: a reader (curl loading the bundle as another user)
  # never meets a missing, half-written or not-yet-readable file, as tar's unlink-and-recreate would show it.
  (cd "$t" && find . -mindepth 1 \\( -type f -o -type l \\) -print) | while IFS= read -r f; do
    p=\${f#.}
    if [ -L "$t$p" ]; then
      [ -L "$p" ] && [ "$(readlink "$p")" = "$(readlink "$t$p")" ] && continue
    elif [ -f "$p" ] && [ ! -L "$p" ] && cmp -s "$t$p" "$p" && [ "$(stat -c %a:%u:%g "$t$p")" = "$(stat -c %a:%u:%g "$p")" ]; then
      continue
    fi
    mkdir -p -- "\${p%/*}" && cp -pP -- "$t$p" "$p.epoch-restore" && mv -Tf -- "$p.epoch-restore" "$p" || exit 1
  done || exit 1
  echo "trust set back to the saved one: restored the saved extraction"
  rm -rf -- "$d"
  rmdir -- "\${d%/*}" 2> /dev/null
else
  # Another of our anchors may still be installed (a rotation), or the store changed meanwhile: keep the snapshot
  # for the removal that brings the trust set back to it.
  echo "the regenerated PEM bundles differ from the saved ones (another of our anchors is still installed, or the store changed meanwhile): kept the fresh extraction"
fi
exit 0`;
/**
 * --check on a fresh host: a stand-in for the certificate the `ca` task generates on the host (its key was thrown
 * away; it is never installed, only planned with, so a prediction has the same shape as the real plan).
 */
const predictedCaPem = `-----BEGIN CERTIFICATE-----
MIIBzDCCAXKgAwIBAgIUdreEx1nLOLk7i/Vjf5Mtk7i1Vw8wCgYIKoZIzj0EAwIw
NDEyMDAGA1UEAwwpdGhlIENBIHRoZSBjYSB0YXNrIGdlbmVyYXRlcyBvbiB0aGlz
IGhvc3QwIBcNMjYxMTI1MDQwNzE1WhgPMjEyNjExMDEwNDA3MTVaMDQxMjAwBgNV
BAMMKXRoZSBDQSB0aGUgY2EgdGFzayBnZW5lcmF0ZXMgb24gdGhpcyBob3N0MFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjbXVTkwAOXHcI3HVxO+KYlDTlbuBTEIa
39YxHGrY2THKtZXXttO0F580Dz5Rxq1UtUrDZtyC516GoGDm6c7RDqNgMF4wHQYD
VR0OBBYEFOz3mQRKxTf/EnZ0a0Wuv1rAgzn9MB8GA1UdIwQYMBaAFOz3mQRKxTf/
EnZ0a0Wuv1rAgzn9MA8GA1UdEwEB/wQFMAMBAf8wCwYDVR0PBAQDAgIEMAoGCCqG
SM49BAMCA0gAMEUCIQDBrQFYZkuX0Hrl5tJR9APyzGBH57nxImWpjAYnyTcfLAIg
ZfCpKJg/i/exbGsssYq0ywQoH/2+KKVA0Q+Dku9mxAQ=
-----END CERTIFICATE-----\n`;


export const trustStoreParams = z
  .object({
    state: z.enum(['present', 'absent']).default('present'),
    /** Anchor file base name; the family decides the extension. Two names let an old and a new CA coexist. */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits and . _ - only').default(defaultAnchorName),
    /**
     * A unit to `systemctl try-reload-or-restart` after the bundle changed (and after its undo). The agent reads the
     * system bundle, which it verifies upstream servers against, at start and on reload (SIGHUP): without this, a CA
     * removed from the store (rotation step 3) stays trusted by a running agent until its next restart.
     */
    reload_unit: z.string().regex(/^[A-Za-z0-9@._:-]+\.service$/, 'must be a systemd service name').optional(),
    ...certPemSource,
  })
  .strict()
  .transform(loadCertFile);

export type TrustStoreParams = z.output<typeof trustStoreParams>;

export interface TrustStoreFacts {
  host: string;
  os: OsRelease;
  /** null when the distro is unknown; plan then fails with `unsupportedReason`. */
  layout: TrustLayout | null;
  unsupportedReason: string | null;
  /** The certificate we want trusted (PEM), or null when the host-side source file is missing. */
  desiredPem: string | null;
  /** Where desiredPem came from, for messages. */
  desiredSource: string;
  currentAnchor: string | null;
  /** Does the family's system bundle already verify desiredPem? */
  bundleTrustsDesired: boolean;
  refreshCommandPresent: boolean;
}

export const trustStoreModule: ProvisionModule<TrustStoreParams, TrustStoreFacts> & {
  report(params: TrustStoreParams, facts: TrustStoreFacts): string[];
  predict(params: TrustStoreParams, facts: TrustStoreFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null;
} = {
  name: 'trust_store',
  params: trustStoreParams,

  async gather(host: HostContext, params: TrustStoreParams): Promise<TrustStoreFacts> {
    const t = host.transport;
    const desiredSource = params.cert_pem !== undefined ? (params.cert_file ?? 'cert_pem') : `${host.name}:${params.host_cert_file}`;
    const readCert: BatchProbe = { argv: params.cert_pem === undefined ? readFileArgv(params.host_cert_file) : ['true'] };
    // The distro from the run's host facts (the same os-release files); read here only when the run has none. Then
    // one round trip: the CA (per-host mode: the file on the host), the anchor, the refresh command, the bundle check.
    let os = osReleaseFromFacts(host.vars);
    let certRead: ExecResult | undefined;
    if (!os) {
      const [etcOs, usrOs, cert] = await probeAll(t, [{ argv: readFileArgv('/etc/os-release') }, { argv: readFileArgv('/usr/lib/os-release') }, readCert]);
      os = parseOsRelease(fileFrom(etcOs!, '/etc/os-release') ?? fileFrom(usrOs!, '/usr/lib/os-release') ?? '');
      certRead = cert;
    }
    let layout: TrustLayout | null = null;
    let unsupportedReason: string | null = null;
    try {
      layout = trustLayout(trustFamilyOf(os));
    } catch (err) {
      if (!(err instanceof UnsupportedDistroError)) throw err;
      unsupportedReason = err.message;
    }
    const facts: TrustStoreFacts = {
      host: host.name,
      os,
      layout,
      unsupportedReason,
      desiredPem: null,
      desiredSource,
      currentAnchor: null,
      bundleTrustsDesired: false,
      refreshCommandPresent: false,
    };
    const given = params.cert_pem === undefined ? null : normalisePem(params.cert_pem);
    if (!layout) {
      facts.desiredPem = given ?? (certRead ? nullableNormalised(fileFrom(certRead, params.host_cert_file)) : null);
      return facts;
    }
    const path = anchorPath(layout, params.name);
    // The bundle check: of the PEM we hold, else of the host's CA file as it is now (read in this same call); the
    // answer is kept in the run's memo for trust_coverage, which asks the same.
    const verify = given !== null ? bundleTrustsProbe(layout.bundleFile, given) : bundleTrustsFileProbe(layout.bundleFile, params.host_cert_file);
    const trustKey = bundleTrustsMemoKey(layout.bundleFile, given !== null ? { pem: given } : { file: params.host_cert_file });
    let trusts = host.memo?.get<boolean>(trustKey);
    const [anchor, refresh, cert, verified] = await probeAll(t, [
      { argv: readFileArgv(path) },
      { argv: commandPathArgv(layout.refreshArgv[0] as string) },
      certRead ? { argv: ['true'] } : readCert,
      ...(trusts === undefined ? [verify] : []),
    ]);
    if (trusts === undefined) {
      trusts = bundleTrustsFrom(verified!);
      host.memo?.set(trustKey, trusts);
    }
    facts.desiredPem = given ?? nullableNormalised(fileFrom(certRead ?? cert!, params.host_cert_file));
    facts.currentAnchor = fileFrom(anchor!, path);
    facts.refreshCommandPresent = commandPathFrom(refresh!) !== null;
    facts.bundleTrustsDesired = facts.desiredPem !== null && trusts;
    return facts;
  },

  plan(params: TrustStoreParams, facts: TrustStoreFacts): Change[] {
    if (!facts.layout) throw new UnsupportedDistroError(`${facts.host}: ${facts.unsupportedReason}`);
    const layout = facts.layout;
    const path = anchorPath(layout, params.name);
    const refresh: Step = { kind: 'run', argv: layout.refreshArgv, timeoutMs: 120_000 };
    const putAnchor = (content: string): Step => ({ kind: 'put', path, content, mode: 0o644, owner: 'root:root', validate: ['openssl', 'x509', '-noout', '-in', '{}'] });
    const remove: Step = { kind: 'run', argv: ['rm', '-f', '--', path] };
    const refreshAfterRemove = removeRefreshStep(layout, params.name);
    const saved = savedExtractedDir;
    const extracted = layout.extractedPaths;
    const saveExtracted: Step[] = extracted.length ? [{ kind: 'run', argv: ['sh', '-c', saveExtractedScript, 'epoch-trust-save', saved, ...extracted], timeoutMs: 60_000 }] : [];
    const restoreExtracted: Step[] = extracted.length ? [{ kind: 'run', argv: ['sh', '-c', restoreExtractedScript, 'epoch-trust-restore', saved, ...extracted], timeoutMs: 60_000 }] : [];
    const restoreNote = extracted.length ? `, then put back the ${extracted[0]} saved at install if the regenerated PEM bundles match it (else keep the fresh one)` : '';
    const reload: Step[] = params.reload_unit ? [tryReloadStep(params.reload_unit)] : [];
    const reloadNote = params.reload_unit ? `, then reload ${params.reload_unit} if it runs` : '';
    const restore = facts.currentAnchor === null ? [remove, refreshAfterRemove, ...restoreExtracted, ...reload] : [putAnchor(facts.currentAnchor), refresh, ...reload];
    const needsRefreshTool = () => {
      if (!facts.refreshCommandPresent) {
        throw new Error(`${facts.host}: \`${layout.refreshArgv[0]}\` is not installed (${layout.family} family needs it to rebuild ${layout.bundleFile}); install the ca-certificates package`);
      }
    };

    if (params.state === 'absent') {
      if (facts.currentAnchor === null) return [];
      needsRefreshTool();
      return [
        {
          id: `trust-anchor:${path}`,
          summary: `remove CA anchor ${path}${describe(facts.currentAnchor)} and run ${layout.removeRefreshArgv.join(' ')}${restoreNote}${reloadNote}`,
          diff: { subject: path, before: facts.currentAnchor, after: '' },
          steps: [remove, refreshAfterRemove, ...restoreExtracted, ...reload],
          undo: [putAnchor(facts.currentAnchor), refresh, ...reload],
        },
      ];
    }

    if (facts.desiredPem === null) {
      throw new Error(`${facts.host}: no CA certificate at ${facts.desiredSource}; run the ca module first (per-host mode generates it there)`);
    }
    if (facts.currentAnchor !== null && normalisePem(facts.currentAnchor) === facts.desiredPem) {
      if (facts.bundleTrustsDesired) return [];
      needsRefreshTool();
      return [
        {
          id: `trust-refresh:${layout.family}`,
          summary: `anchor ${path} is in place but ${layout.bundleFile} does not trust it yet: run ${layout.refreshArgv.join(' ')}`,
          steps: [refresh, ...reload],
          undo: [],
        },
      ];
    }
    needsRefreshTool();
    return [
      {
        id: `trust-anchor:${path}`,
        summary: `${facts.currentAnchor === null ? 'install' : 'replace'} CA anchor ${path}${describe(facts.desiredPem)} and run ${layout.refreshArgv.join(' ')}${facts.currentAnchor === null && extracted.length ? ` (${extracted[0]} saved first, for removal)` : ''}${reloadNote}`,
        diff: { subject: path, before: facts.currentAnchor ?? '', after: facts.desiredPem },
        // A first install saves what the refresh regenerates, so removal can give it back byte for byte.
        steps: [...(facts.currentAnchor === null ? saveExtracted : []), putAnchor(facts.desiredPem), refresh, ...reload],
        undo: restore,
      },
    ];
  },

  /** The per-host CA does not exist yet when an earlier task of the run generates it: plan as if it did. */
  predict(params: TrustStoreParams, facts: TrustStoreFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null {
    if (params.state !== 'present' || facts.desiredPem !== null || !earlier.has('ca')) return null;
    return trustStoreModule.plan(params, { ...facts, desiredPem: predictedCaPem, bundleTrustsDesired: false });
  },

  /** One line per host for the run output: which CA the host trusts, by fingerprint. */
  report(params: TrustStoreParams, facts: TrustStoreFacts): string[] {
    if (!facts.layout) return [`${facts.host}: ${facts.unsupportedReason}`];
    if (params.state === 'absent') return [`${facts.host}: CA anchor ${anchorPath(facts.layout, params.name)} ${facts.currentAnchor === null ? 'absent' : 'present'}`];
    if (!facts.desiredPem) return [`${facts.host}: no CA certificate at ${facts.desiredSource}`];
    return [`${facts.host}: CA sha256 ${certFingerprint(facts.desiredPem)} ${facts.bundleTrustsDesired ? 'trusted by' : 'NOT trusted by'} ${facts.layout.bundleFile}`];
  },
};

const nullableNormalised = (pem: string | null) => (pem === null ? null : normalisePem(pem));

function describe(pem: string): string {
  try {
    const cert = new X509Certificate(pem);
    return ` (${cert.subject.replace(/\n/g, ', ')}, sha256 ${cert.fingerprint256})`;
  } catch {
    return '';
  }
}
