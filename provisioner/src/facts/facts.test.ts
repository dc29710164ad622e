import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseEpochState } from './epoch-state';
import { countSaveRules, decideFirewallBackend, parseIptablesMode } from './firewall-backend';
import { parseHostFacts } from './host-facts';
import { detectManagers } from './managers';
import { parseNodeVersion } from './node-version';
import { classifyOs, parseOsRelease } from './os-release';
import { splitSections } from './sections';

const fixtures = join(import.meta.dirname, 'fixtures');
const fixture = (distro: string, file: string) => readFileSync(join(fixtures, distro, file), 'utf8');

const expected: Record<string, { family: string; id: string; version: string; major: number | null }> = {
  'debian-12': { family: 'debian', id: 'debian', version: '12', major: 12 },
  'ubuntu-22.04': { family: 'ubuntu', id: 'ubuntu', version: '22.04', major: 22 },
  'ubuntu-24.04': { family: 'ubuntu', id: 'ubuntu', version: '24.04', major: 24 },
  'alpine-3.19': { family: 'alpine', id: 'alpine', version: '3.19.1', major: 3 },
  'sles-15': { family: 'suse', id: 'sles', version: '15.5', major: 15 },
  'opensuse-leap-15.5': { family: 'suse', id: 'opensuse-leap', version: '15.5', major: 15 },
  'rocky-9': { family: 'rhel', id: 'rocky', version: '9.3', major: 9 },
  'rhel-8': { family: 'rhel', id: 'rhel', version: '8.9', major: 8 },
  'fedora-40': { family: 'fedora', id: 'fedora', version: '40', major: 40 },
  'amazon-2023': { family: 'amazon', id: 'amzn', version: '2023', major: 2023 },
  arch: { family: 'arch', id: 'arch', version: 'rolling', major: null },
};

for (const [distro, want] of Object.entries(expected)) {
  test(`os-release of ${distro} is classified as ${want.family} ${want.version}`, () => {
    const verdict = classifyOs(fixture(distro, 'os-release'));
    assert.ok(verdict.supported, verdict.supported ? '' : verdict.message);
    const { family, id, version, major } = verdict.os;
    assert.deepEqual({ family, id, version, major }, want);
  });
}

test('an unknown distro is unsupported with a message naming it and the supported list', () => {
  const verdict = classifyOs(fixture('void', 'os-release'));
  assert.equal(verdict.supported, false);
  assert.match(!verdict.supported ? verdict.message : '', /unsupported OS "Void Linux" \(ID=void\).*supported: Debian/);
});

test('a derivative is not assumed to be its parent (ID_LIKE is only reported)', () => {
  const verdict = classifyOs('ID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\nPRETTY_NAME="Linux Mint 21.3"\n');
  assert.match(!verdict.supported ? verdict.message : '', /ID_LIKE="ubuntu debian"/);
  assert.match((classifyOs('NAME=x\n') as { message: string }).message, /no ID=/);
});

test('parseOsRelease unquotes and unescapes', () => {
  assert.deepEqual(parseOsRelease(`A="x \\"y\\""\nB='z'\n# c\nC=plain\n`), { A: 'x "y"', B: 'z', C: 'plain' });
});

test('iptables -V modes', () => {
  assert.equal(parseIptablesMode('iptables v1.8.9 (nf_tables)'), 'nf_tables');
  assert.equal(parseIptablesMode('iptables v1.8.7 (legacy)'), 'legacy');
  assert.equal(parseIptablesMode('iptables v1.6.1'), 'legacy');
  assert.equal(parseIptablesMode(null), null);
});

const legacyDocker = '*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -j DOCKER\nCOMMIT\n';
const nftSsh = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n';

test('firewall backend: nf_tables iptables with no legacy rules → iptables-nft, clean', () => {
  const f = decideFirewallBackend({ iptablesVersion: 'iptables v1.8.9 (nf_tables)', nftVersion: 'nftables v1.0.6', legacySave: '', nftSave: nftSsh });
  assert.deepEqual([f.backend, f.ambiguous, f.nftRules], ['iptables-nft', null, 1]);
});

test('firewall backend: legacy iptables → iptables-legacy', () => {
  const f = decideFirewallBackend({ iptablesVersion: 'iptables v1.8.7 (legacy)', nftVersion: null, legacySave: legacyDocker, nftSave: null });
  assert.deepEqual([f.backend, f.ambiguous], ['iptables-legacy', null]);
});

test('firewall backend: nft only (no iptables installed) → nft; nothing at all → null', () => {
  assert.equal(decideFirewallBackend({ iptablesVersion: null, nftVersion: 'nftables v1.0.9', legacySave: null, nftSave: null }).backend, 'nft');
  assert.equal(decideFirewallBackend({ iptablesVersion: null, nftVersion: null, legacySave: null, nftSave: null }).backend, null);
});

test('firewall backend: nf_tables front end but more legacy rules → legacy, flagged (iptables-wrappers rule)', () => {
  const f = decideFirewallBackend({ iptablesVersion: 'iptables v1.8.9 (nf_tables)', nftVersion: 'x', legacySave: legacyDocker, nftSave: '' });
  assert.equal(f.backend, 'iptables-legacy');
  assert.match(f.ambiguous ?? '', /1 rule\(s\) live in iptables-legacy/);
});

test('firewall backend: rules in both is ambiguous', () => {
  const f = decideFirewallBackend({ iptablesVersion: 'iptables v1.8.9 (nf_tables)', nftVersion: 'x', legacySave: legacyDocker, nftSave: nftSsh });
  assert.match(f.ambiguous ?? '', /both iptables-legacy \(1\) and iptables-nft \(1\)/);
  assert.equal(countSaveRules(null), 0);
});

test('managers: firewalld, ufw, docker and kube-proxy, and none on a clean host', () => {
  assert.deepEqual(detectManagers({ processes: 'systemd\nsshd\n', ufwConf: null, saves: '', nftTables: '' }), []);
  assert.deepEqual(detectManagers({ processes: 'firewalld\n', ufwConf: 'ENABLED=no\n', saves: '', nftTables: null }), ['firewalld']);
  assert.deepEqual(detectManagers({ processes: '', ufwConf: '# comment\nENABLED=yes\nLOGLEVEL=low\n', saves: '', nftTables: null }), ['ufw']);
  assert.deepEqual(detectManagers({ processes: 'dockerd\nkube-proxy\n', ufwConf: null, saves: '', nftTables: null }), ['docker', 'kube-proxy']);
  assert.deepEqual(detectManagers({ processes: '', ufwConf: null, saves: ':KUBE-SERVICES - [0:0]\n:DOCKER-USER - [0:0]\n', nftTables: 'table inet firewalld\n' }), ['firewalld', 'docker', 'kube-proxy']);
});

test('node version', () => {
  assert.deepEqual(parseNodeVersion('v18.19.0\n'), { raw: 'v18.19.0', major: 18, minor: 19, patch: 0 });
  assert.equal(parseNodeVersion('bash: node: not found'), null);
  assert.equal(parseNodeVersion(null), null);
});

test('epoch state: fresh host and a host with two generations', () => {
  assert.deepEqual(parseEpochState(null, null), { agentRelease: null, generations: [], lastGeneration: null });
  assert.deepEqual(parseEpochState('/opt/epoch-agent/releases/0.3.1\n', '20261125T020000Z-ab12.jsonl\n20261125T030000Z-cd34.jsonl\n.tmp\n'), {
    agentRelease: '0.3.1',
    generations: ['20261125T020000Z-ab12', '20261125T030000Z-cd34'],
    lastGeneration: '20261125T030000Z-cd34',
  });
});

test('sections: absent markers are null, missing end is detected', () => {
  const s = splitSections('@@epoch:a@@\n1\n2\n@@epoch:b:absent@@\n@@epoch:c@@\n@@epoch:end@@\n');
  assert.deepEqual([...s.entries()], [['a', '1\n2'], ['b', null], ['c', ''], ['end', '']]);
  assert.throws(() => parseHostFacts('@@epoch:os-release@@\nID=debian\n'), /ended early/);
});

test('captured fact script output from a clean Debian 12 network namespace', () => {
  const f = parseHostFacts(fixture('debian-12', 'host-facts-netns-empty.txt'));
  assert.ok(f.os.supported && f.os.os.family === 'debian');
  assert.equal(f.architecture, 'x86_64');
  assert.equal(f.initSystem, 'other');
  assert.deepEqual([f.firewall.backend, f.firewall.ambiguous, f.firewall.nftAvailable], ['iptables-nft', null, true]);
  assert.deepEqual(f.managers, []);
  assert.equal(f.node?.major, 20);
  assert.deepEqual(f.epoch, { agentRelease: null, generations: [], lastGeneration: null });
});

test('captured output with a legacy DOCKER chain beside iptables-nft rules: ambiguous, docker detected', () => {
  const f = parseHostFacts(fixture('debian-12', 'host-facts-netns-mixed.txt'));
  assert.equal(f.firewall.legacyRules, 1);
  assert.equal(f.firewall.nftRules, 1);
  assert.match(f.firewall.ambiguous ?? '', /both/);
  assert.deepEqual(f.managers, ['docker']);
});
