// /etc/os-release → the OS family epoch-provision supports, or a clear "unsupported" verdict.

export type OsFamily = 'debian' | 'ubuntu' | 'alpine' | 'suse' | 'rhel' | 'fedora' | 'amazon' | 'arch';

export interface OsInfo {
  family: OsFamily;
  /** os-release ID, e.g. `rocky`, `opensuse-leap`. */
  id: string;
  /** ID_LIKE, lower case, in order (e.g. `rhel centos fedora`); empty when absent. */
  idLike: string[];
  /** VERSION_ID, or `rolling` where the distro has none (Arch). */
  version: string;
  /** The major version as a number where one exists (12, 22, 3, 15, 9, 2023), else null. */
  major: number | null;
  prettyName: string;
}

export type OsVerdict = { supported: true; os: OsInfo } | { supported: false; message: string };

/** Parses os-release's shell-style KEY=value lines (quotes and backslash escapes as systemd documents). */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    let value = line.slice(eq + 1);
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\([$"\\`])/g, '$1');
    }
    fields[key] = value;
  }
  return fields;
}

const familyById: Record<string, OsFamily> = {
  debian: 'debian',
  ubuntu: 'ubuntu',
  alpine: 'alpine',
  sles: 'suse',
  sled: 'suse',
  'opensuse-leap': 'suse',
  'opensuse-tumbleweed': 'suse',
  opensuse: 'suse',
  rhel: 'rhel',
  rocky: 'rhel',
  almalinux: 'rhel',
  centos: 'rhel',
  ol: 'rhel',
  fedora: 'fedora',
  amzn: 'amazon',
  arch: 'arch',
};

/** Classifies by ID only: a derivative (ID_LIKE) is not assumed to keep its parent's paths and tools. */
export function classifyOs(text: string): OsVerdict {
  const f = parseOsRelease(text);
  const id = f.ID?.toLowerCase();
  const pretty = f.PRETTY_NAME ?? f.NAME ?? id ?? 'unknown';
  if (!id) return { supported: false, message: 'os-release has no ID= line (expected /etc/os-release or /usr/lib/os-release)' };
  const family = familyById[id];
  if (!family) {
    const like = f.ID_LIKE ? ` (ID_LIKE="${f.ID_LIKE}")` : '';
    return {
      supported: false,
      message: `unsupported OS "${pretty}" (ID=${id}${like}); supported: Debian, Ubuntu, Alpine, SUSE/openSUSE, RHEL/Rocky/Alma/CentOS/Oracle, Fedora, Amazon Linux, Arch`,
    };
  }
  const version = f.VERSION_ID ?? (family === 'arch' || id === 'opensuse-tumbleweed' ? 'rolling' : '');
  if (!version) return { supported: false, message: `${pretty} (ID=${id}) has no VERSION_ID; cannot tell which release it is` };
  const majorText = version.split('.')[0] ?? '';
  const major = /^\d+$/.test(majorText) ? Number(majorText) : null;
  const idLike = (f.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  return { supported: true, os: { family, id, idLike, version, major, prettyName: pretty } };
}
