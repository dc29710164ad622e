// What the tests must leave exactly as they found it on this machine (the root namespace): its netfilter rules, its
// trust store, its users, and no lab namespaces, bridges or mounts of ours. Read-only; run-tests.mjs compares a
// snapshot taken before the run with one taken after it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

const sh = (argv) => {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, timeout: 30_000 });
  return r.error ? `(${argv[0]} unavailable)` : r.stdout;
};
// iptables-save prints dates and packet counters, which change on their own.
const rules = (text) =>
  text.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]')).join('\n');
const sha256 = (path) => (existsSync(path) ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'absent');
const list = (dir) => {
  try {
    return readdirSync(dir).sort().join(' ');
  } catch {
    return 'absent';
  }
};

export function hostSnapshot() {
  const snapshot = {
    'nft ruleset': sh(['nft', 'list', 'ruleset']).replace(/counter packets \d+ bytes \d+/g, 'counter'),
    'trust anchors (/usr/local/share/ca-certificates)': list('/usr/local/share/ca-certificates'),
    'trust anchors (/etc/pki/ca-trust/source/anchors)': list('/etc/pki/ca-trust/source/anchors'),
    'trust bundle (/etc/ssl/certs/ca-certificates.crt)': sha256('/etc/ssl/certs/ca-certificates.crt'),
    '/etc/passwd': sha256('/etc/passwd'),
    '/etc/group': sha256('/etc/group'),
    'network namespaces': sh(['ip', 'netns', 'list']).split('\n').map((l) => l.split(' ')[0]).filter(Boolean).sort().join(' '),
    'links': sh(['ip', '-o', 'link', 'show']).split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0]).filter(Boolean).sort().join(' '),
    'routes': sh(['ip', '-o', 'route', 'show']),
    'lab mounts': readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => /epoch/.test(l)).sort().join('\n'),
  };
  for (const save of ['iptables-legacy-save', 'ip6tables-legacy-save', 'iptables-nft-save', 'ip6tables-nft-save']) {
    snapshot[save] = rules(sh([save]));
  }
  return snapshot;
}

/** The entries that differ, each as "what: before → after" (long values abbreviated). */
export function snapshotChanges(before, after) {
  const short = (v) => (v.length > 300 ? `${v.slice(0, 300)}…` : v) || '(empty)';
  return Object.keys(before)
    .filter((k) => before[k] !== after[k])
    .map((k) => `${k}:\n    before: ${short(before[k])}\n    after:  ${short(after[k])}`);
}
