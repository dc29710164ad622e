// Where each distro family keeps its CA anchors and how it rebuilds the system bundle (anchors.md §4).
// Pure: os-release text in, layout out. Unknown distros are an error, never a guess.
import { ProvisionError } from '../../core/errors';
import type { HostFacts } from '../../facts/host-facts';

export type TrustFamily = 'debian' | 'rhel' | 'suse' | 'arch';

export interface TrustLayout {
  family: TrustFamily;
  anchorDir: string;
  /** update-ca-certificates only picks up `.crt`; p11-kit anchors take `.pem`. */
  fileExt: '.crt' | '.pem';
  refreshArgv: string[];
  /** After removing an anchor. Debian's update-ca-certificates leaves the removed cert's links in /etc/ssl/certs
   * dangling unless --fresh, which deletes only links into the ca-certificates folders and dangling ones. */
  removeRefreshArgv: string[];
  /** The PEM bundle OpenSSL-based clients read after a refresh (the one we checksum and verify against). */
  bundleFile: string;
  /**
   * What the refresh regenerates under /etc. Not all of it is a pure function of the anchors (p11-kit stamps the
   * Java keystore with the time), so install saves it and removal puts it back once the PEM bundles prove the trust
   * set is the one saved. Empty: the family's refresh output is not saved.
   */
  extractedPaths: string[];
}

export interface OsRelease {
  id: string;
  idLike: string[];
  prettyName: string;
}

const layouts: Record<TrustFamily, Omit<TrustLayout, 'family'>> = {
  debian: { anchorDir: '/usr/local/share/ca-certificates', fileExt: '.crt', refreshArgv: ['update-ca-certificates'], removeRefreshArgv: ['update-ca-certificates', '--fresh'], bundleFile: '/etc/ssl/certs/ca-certificates.crt', extractedPaths: ['/etc/ssl/certs'] },
  rhel: { anchorDir: '/etc/pki/ca-trust/source/anchors', fileExt: '.pem', refreshArgv: ['update-ca-trust', 'extract'], removeRefreshArgv: ['update-ca-trust', 'extract'], bundleFile: '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', extractedPaths: ['/etc/pki/ca-trust/extracted', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/pki/tls/certs/ca-bundle.trust.crt'] },
  suse: { anchorDir: '/etc/pki/trust/anchors', fileExt: '.pem', refreshArgv: ['update-ca-certificates'], removeRefreshArgv: ['update-ca-certificates'], bundleFile: '/var/lib/ca-certificates/ca-bundle.pem', extractedPaths: [] },
  arch: { anchorDir: '/etc/ca-certificates/trust-source/anchors', fileExt: '.crt', refreshArgv: ['trust', 'extract-compat'], removeRefreshArgv: ['trust', 'extract-compat'], bundleFile: '/etc/ca-certificates/extracted/tls-ca-bundle.pem', extractedPaths: [] },
};

const familyById: Record<string, TrustFamily> = {
  debian: 'debian', ubuntu: 'debian', alpine: 'debian', linuxmint: 'debian', raspbian: 'debian',
  rhel: 'rhel', centos: 'rhel', rocky: 'rhel', almalinux: 'rhel', fedora: 'rhel', amzn: 'rhel', ol: 'rhel',
  sles: 'suse', sled: 'suse', 'opensuse-leap': 'suse', 'opensuse-tumbleweed': 'suse', opensuse: 'suse', suse: 'suse',
  arch: 'arch', manjaro: 'arch', endeavouros: 'arch',
};

/** Parses /etc/os-release (shell-style KEY=value, optionally quoted). */
export function parseOsRelease(text: string): OsRelease {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2] as string;
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    fields[m[1] as string] = value;
  }
  return {
    id: (fields.ID ?? '').toLowerCase(),
    idLike: (fields.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean),
    prettyName: fields.PRETTY_NAME ?? fields.NAME ?? '',
  };
}

/**
 * The distro as this run's host facts read it (`vars.epoch_facts`, from the same os-release files), so a module
 * need not read it again; null when the run gathered no facts (then the module reads os-release itself).
 */
export function osReleaseFromFacts(vars: Readonly<Record<string, unknown>>): OsRelease | null {
  const verdict = (vars.epoch_facts as Partial<HostFacts> | undefined)?.os;
  if (!verdict?.supported) return null;
  const { id, idLike, prettyName } = verdict.os;
  if (typeof id !== 'string' || !Array.isArray(idLike) || typeof prettyName !== 'string') return null;
  return { id, idLike: [...idLike], prettyName };
}

export class UnsupportedDistroError extends ProvisionError {
  constructor(message: string) {
    super(message, 'unsupported-distro');
  }
}

/** The distro's trust family: exact ID first, then ID_LIKE in order. Throws for an unknown distro. */
export function trustFamilyOf(os: OsRelease): TrustFamily {
  for (const id of [os.id, ...os.idLike]) {
    const family = familyById[id];
    if (family) return family;
  }
  throw new UnsupportedDistroError(
    `unsupported distro for the CA trust store: ID=${os.id || '(none)'} ID_LIKE=${os.idLike.join(' ') || '(none)'} (${os.prettyName || 'no PRETTY_NAME'}); ` +
      'supported: Debian/Ubuntu/Alpine, RHEL/CentOS/Rocky/Alma/Fedora/Amazon Linux, SUSE, Arch',
  );
}

export function trustLayout(family: TrustFamily): TrustLayout {
  return { family, ...layouts[family] };
}

export function anchorPath(layout: TrustLayout, name: string): string {
  return `${layout.anchorDir}/${name}${layout.fileExt}`;
}
