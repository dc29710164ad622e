import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { FirewallFacts } from './facts';
import { gatherScript, managedPaths, parseGatherOutput } from './facts';
import { confPath, parkedNftPath, parkedV4Path, rulesNftPath, rulesV4Path, rulesV6Path, scriptPath, unitPath } from './host-files';
import { epochFirewallScript } from './host-scripts/epoch-firewall-sh';
import { buildDesired, parkedChains } from './model';
import { firewallParams } from './params';
import { describeIptablesOurs, iptablesConverged, normaliseRule, parseIptablesSave } from './parse-iptables';
import { nftTablesEqual, parseNftTableJson } from './parse-nft';
import { FirewallRefusedError, chooseBackend, desiredFiles, planFirewall } from './plan';
import { renderIptablesApply } from './render-iptables';
import { NFT_COMMENT, chainsForNftFamily, renderNftApply } from './render-nft';
import { representative } from './fixtures/representative';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const params = (name: keyof typeof representative, extra: object = {}) => firewallParams.parse({ ...representative[name]!.params, ...extra });
const desired = (name: keyof typeof representative) => buildDesired(params(name), representative[name]!.ids);

// ---- rendering ----

test('renders the minimal nft ruleset: our table only, declared, flushed and refilled in one file (never deleted)', () => {
  const text = renderNftApply(desired('minimal'), ['inet']);
  assert.match(text, /^table inet epoch_provision \{\n\tcomment "[^"]+"\n\tchain output \{\n\t\ttype nat hook output priority -100; policy accept;\n\t\}\n/m);
  assert.match(text, /^flush table inet epoch_provision\ndelete chain inet epoch_provision prerouting\ntable inet epoch_provision \{$/m);
  assert.doesNotMatch(text, /flush ruleset|delete table/);
  assert.match(text, /type nat hook output priority -100; policy accept;/);
  assert.match(text, /meta skuid 998 return/);
  assert.match(text, /meta skgid 997 return/);
  assert.match(text, /oifname "lo" return/);
  assert.match(text, /ip daddr \{ 127\.0\.0\.0\/8, 169\.254\.0\.0\/16, 198\.18\.202\.1 \} return/);
  assert.match(text, /ip6 daddr \{ ::1, fe80::\/10 \} return/);
  assert.match(text, /tcp dport 22 return/);
  assert.match(text, /^\t\tct state new tcp flags & \(fin\|syn\|rst\|ack\) == syn tcp dport 443 redirect to :8443$/m);
  // prerouting is declared only so that it can be deleted whether or not it exists.
  assert.equal(text.match(/chain prerouting \{\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\}/g)?.length, 1);
});

test('renders the parked nft ruleset: the same table and chains, one no-op conntrack rule each, no redirect', () => {
  const text = renderNftApply(desired('full'), ['inet'], 'parked');
  assert.doesNotMatch(text, /redirect to|delete table|delete chain/);
  assert.equal(text.match(/^\t\tct state new return$/gm)?.length, 2);
  assert.match(text, /^flush table inet epoch_provision$/m);
  const minimal = renderNftApply(desired('minimal'), ['ip', 'ip6'], 'parked');
  assert.match(minimal, /^delete chain ip epoch_provision prerouting$/m);
  assert.match(minimal, /^delete chain ip6 epoch_provision prerouting$/m);
});

test('renders prerouting for incoming mode and container bridges, after every exclusion', () => {
  const text = renderNftApply(desired('full'), ['inet']);
  const pre = text.slice(text.lastIndexOf('chain prerouting'));
  assert.match(pre, /ct state new tcp flags & \(fin\|syn\|rst\|ack\) == syn iifname \{ "br-1a2b3c", "docker0" \} tcp dport \{ 443, 8080 \} redirect to :8443/);
  assert.match(pre, /ct state new tcp flags & \(fin\|syn\|rst\|ack\) == syn tcp dport 443 redirect to :8444/);
  assert.ok(pre.indexOf('tcp dport { 22, 8443, 9000 } return') < pre.indexOf('redirect'));
  // 10.0.0.0/9 + 10.128.0.0/9 stay as given (non-overlapping); 198.18.202.1 is the controller.
  assert.match(text, /ip daddr \{ 10\.0\.0\.0\/9, 10\.128\.0\.0\/9, 127\.0\.0\.0\/8, 169\.254\.0\.0\/16, 198\.18\.202\.1, 198\.18\.203\.0\/24 \} return/);
});

test('renders ip + ip6 tables when the kernel has no inet nat; each keeps only its own addresses', () => {
  const text = renderNftApply(desired('minimal'), ['ip', 'ip6']);
  const ip = text.slice(text.indexOf('table ip epoch_provision {'), text.indexOf('table ip6 epoch_provision'));
  const ip6 = text.slice(text.indexOf('table ip6 epoch_provision {'));
  assert.match(ip, /ip daddr/);
  assert.doesNotMatch(ip, /ip6 daddr/);
  assert.match(ip6, /ip6 daddr/);
  assert.doesNotMatch(ip6, /ip daddr/);
});

test('iptables rendering equals what iptables-save prints back (legacy and nft, v4 and v6)', () => {
  const zero = { jumps: { output: 0, prerouting: 0 }, exists: { output: false, prerouting: false } };
  for (const name of ['minimal', 'full'] as const) {
    for (const [fam, file] of [['ip', 'iptables'], ['ip6', 'ip6tables']] as const) {
      const rendered = renderIptablesApply(chainsForNftFamily(desired(name), fam), zero);
      const ruleLines = rendered.split('\n').filter((l) => l.startsWith('-A '));
      for (const v of ['legacy', 'nft']) {
        const saved = fixture(`${name}.${file}-${v}-save.txt`).split('\n').filter((l) => l.startsWith('-A EPOCH_'));
        assert.deepEqual(ruleLines, saved, `${name} ${file}-${v}`);
      }
      assert.match(rendered, /^-I OUTPUT 1 -j EPOCH_OUTPUT$/m);
      assert.doesNotMatch(rendered, /^\*filter/m);
      for (const l of ruleLines.filter((x) => x.includes('REDIRECT'))) assert.match(l, / --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW /);
    }
  }
});

test('parked iptables rendering equals what iptables-save prints back: our chains and jumps kept, one RETURN each', () => {
  const zero = { jumps: { output: 0, prerouting: 0 }, exists: { output: false, prerouting: false } };
  for (const name of ['minimal', 'full'] as const) {
    for (const [fam, file] of [['ip', 'iptables'], ['ip6', 'ip6tables']] as const) {
      const rendered = renderIptablesApply(parkedChains(chainsForNftFamily(desired(name), fam)), zero);
      const ruleLines = rendered.split('\n').filter((l) => l.startsWith('-A '));
      assert.ok(ruleLines.every((l) => / -m conntrack --ctstate NEW -m comment --comment epoch-provision -j RETURN$/.test(l)), `${name} ${file}`);
      for (const v of ['legacy', 'nft']) {
        const saved = fixture(`${name}.parked.${file}-${v}-save.txt`);
        assert.deepEqual(ruleLines, saved.split('\n').filter((l) => l.startsWith('-A EPOCH_')), `${name} ${file}-${v}`);
        assert.match(saved, /^-A OUTPUT -j EPOCH_OUTPUT$/m);
        assert.doesNotMatch(saved, /REDIRECT/);
      }
    }
  }
});

test('iptables apply file removes surplus jumps and unwanted chains, nothing else', () => {
  const chains = chainsForNftFamily(desired('minimal'), 'ip');
  const text = renderIptablesApply(chains, { jumps: { output: 2, prerouting: 1 }, exists: { output: true, prerouting: true } });
  assert.equal(text.match(/^-D OUTPUT -j EPOCH_OUTPUT$/gm)?.length, 1);
  assert.doesNotMatch(text, /^-I OUTPUT/m);
  assert.match(text, /^-D PREROUTING -j EPOCH_PREROUTING$/m);
  assert.match(text, /^-X EPOCH_PREROUTING$/m);
  for (const line of text.split('\n').filter((l) => /^-[ADIFX] /.test(l))) assert.match(line, /EPOCH_/);
});

// ---- parsing real outputs, semantic comparison ----

test('nft -j output of the rendered table compares equal to the desired state (inet, ip, ip6)', () => {
  for (const name of ['minimal', 'full'] as const) {
    const d = desired(name);
    assert.ok(nftTablesEqual(parseNftTableJson(fixture(`${name}.inet.json`)), chainsForNftFamily(d, 'inet')), `${name} inet`);
    assert.ok(nftTablesEqual(parseNftTableJson(fixture(`${name}.ip.json`)), chainsForNftFamily(d, 'ip')), `${name} ip`);
    assert.ok(nftTablesEqual(parseNftTableJson(fixture(`${name}.ip6.json`)), chainsForNftFamily(d, 'ip6')), `${name} ip6`);
  }
});

test('parked nft tables compare equal to the parked state, not to the loaded one (and the reverse)', () => {
  for (const name of ['minimal', 'full'] as const) {
    const d = desired(name);
    for (const fam of ['inet', 'ip', 'ip6'] as const) {
      const parked = parseNftTableJson(fixture(`${name}.parked.${fam}.json`));
      const loaded = parseNftTableJson(fixture(`${name}.${fam}.json`));
      assert.ok(nftTablesEqual(parked, parkedChains(chainsForNftFamily(d, fam))), `${name} ${fam} parked`);
      assert.equal(nftTablesEqual(parked, chainsForNftFamily(d, fam)), false, `${name} ${fam} parked is not loaded`);
      assert.equal(nftTablesEqual(loaded, parkedChains(chainsForNftFamily(d, fam))), false, `${name} ${fam} loaded is not parked`);
    }
  }
});

test('nft rules without the SYN-only match (the old shape) are not converged', () => {
  const old = fixture('minimal.inet.json').replace(/\{"match": \{"op": "==", "left": \{"&": \[\{"payload": \{"protocol": "tcp", "field": "flags"\}\}, \["fin", "syn", "rst", "ack"\]\]\}, "right": "syn"\}\}, /, '');
  assert.notEqual(old, fixture('minimal.inet.json'));
  assert.equal(nftTablesEqual(parseNftTableJson(old), desired('minimal').chains), false);
});

test('nft merged 10.0.0.0/9 + 10.128.0.0/9 into 10.0.0.0/8 and it still compares equal', () => {
  assert.match(fixture('full.inet.nft'), /ip daddr \{ 10\.0\.0\.0\/8,/);
  assert.ok(nftTablesEqual(parseNftTableJson(fixture('full.inet.json')), desired('full').chains));
});

test('nft comparison notices a different port, a missing chain and an unknown rule', () => {
  const live = parseNftTableJson(fixture('minimal.inet.json'));
  const otherPort = buildDesired(params('minimal', { agentPort: 9443 }), representative.minimal!.ids);
  assert.equal(nftTablesEqual(live, otherPort.chains), false);
  assert.equal(nftTablesEqual(live, desired('full').chains), false);
  const tampered = fixture('minimal.inet.json').replace('{"return": null}', '{"accept": null}');
  assert.equal(nftTablesEqual(parseNftTableJson(tampered), desired('minimal').chains), false);
  assert.equal(nftTablesEqual(null, desired('minimal').chains), false);
});

test('iptables-save of the rendered chains is converged; extra jump, missing rule or stale chain is not', () => {
  for (const v of ['legacy', 'nft']) {
    const want4 = chainsForNftFamily(desired('full'), 'ip');
    const save = fixture(`full.iptables-${v}-save.txt`);
    assert.ok(iptablesConverged(parseIptablesSave(save), want4), v);
    const twoJumps = save.replace('-A OUTPUT -j EPOCH_OUTPUT', '-A OUTPUT -j EPOCH_OUTPUT\n-A OUTPUT -j EPOCH_OUTPUT');
    assert.equal(iptablesConverged(parseIptablesSave(twoJumps), want4), false);
    const missing = save.replace(/^-A EPOCH_OUTPUT -o lo .*\n/m, '');
    assert.equal(iptablesConverged(parseIptablesSave(missing), want4), false);
    // full has a prerouting chain; minimal does not want one.
    assert.equal(iptablesConverged(parseIptablesSave(save), chainsForNftFamily(desired('minimal'), 'ip')), false);
    const parked = parseIptablesSave(fixture(`full.parked.iptables-${v}-save.txt`));
    assert.ok(iptablesConverged(parked, parkedChains(want4)), `${v} parked`);
    assert.equal(iptablesConverged(parked, want4), false, `${v} parked is not loaded`);
    assert.equal(iptablesConverged(parseIptablesSave(save), parkedChains(want4)), false, `${v} loaded is not parked`);
  }
});

test('iptables-save parsing ignores foreign chains (Docker) and normalises masks', () => {
  const docker = `*nat\n:PREROUTING ACCEPT [10:600]\n:OUTPUT ACCEPT [3:180]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n`;
  const nat = parseIptablesSave(docker);
  assert.equal(nat.natTablePresent, true);
  assert.deepEqual(nat.jumps, { output: 0, prerouting: 0 });
  assert.equal(nat.ruleCount, 4);
  assert.equal(describeIptablesOurs(nat), '');
  assert.equal(normaliseRule('-A EPOCH_OUTPUT -d 10.0.0.0/255.0.0.0 -j RETURN'), '-A EPOCH_OUTPUT -d 10.0.0.0/8 -j RETURN');
});

// ---- plan ----

const emptyHost = (over: Partial<FirewallFacts> = {}): FirewallFacts => ({
  kernel: '6.1.0-18-amd64',
  systemd: true,
  tools: ['nft', 'iptables', 'iptables-nft', 'iptables-legacy', 'systemd-run', 'curl'],
  iptablesDefault: 'nft',
  nftRuleset: '',
  nftTables: { inet: { json: null, text: null }, ip: { json: null, text: null }, ip6: { json: null, text: null } },
  iptablesSave: { legacy: { v4: '', v6: '' }, nft: { v4: '', v6: '' } },
  agentUser: { name: 'epoch-agent', uid: 998, gid: 997 },
  agentGroup: { name: 'epoch-agent', gid: 997 },
  excludeUsers: [],
  controllerAddress: '198.18.202.1',
  files: Object.fromEntries(managedPaths(params('minimal')).map((p) => [p, null])),
  agent: { active: true, healthy: true },
  bindingActive: false,
  services: { firewalld: false, ufw: false, docker: false },
  ...over,
});

test('plan on a fresh host (nft): arm the revert, write files, activate — with a before/after diff', () => {
  const changes = planFirewall(params('minimal'), emptyHost());
  assert.deepEqual(changes.map((c) => c.id), ['firewall:arm-revert', 'firewall:files', 'firewall:activate']);
  const arm = changes[0]!.steps[0]!;
  assert.equal(arm.kind, 'run');
  assert.match(arm.kind === 'run' ? arm.argv.join(' ') : '', / arm "\$1" "\$2" sh [0-9a-f]{12} 60$/);
  const files = changes[1]!;
  const nftPut = files.steps.find((s) => s.kind === 'put' && s.path === rulesNftPath);
  assert.deepEqual(nftPut?.kind === 'put' && nftPut.validate, ['nft', '-c', '-f', '{}']);
  const parkedPut = files.steps.find((s) => s.kind === 'put' && s.path === parkedNftPath);
  assert.deepEqual(parkedPut?.kind === 'put' && parkedPut.validate, ['nft', '-c', '-f', '{}']);
  assert.match(parkedPut?.kind === 'put' ? parkedPut.content : '', /ct state new return/);
  assert.ok(files.steps.some((s) => s.kind === 'put' && s.path === unitPath));
  const activate = changes[2]!;
  assert.equal(activate.diff?.before, '');
  assert.match(activate.diff?.after ?? '', /redirect to :8443/);
  for (const c of changes) assert.ok(c.undo && c.undo.length > 0, `${c.id} records an undo`);
});

test('plan on a converged host (nft): no changes, no write command', () => {
  const p = params('minimal');
  const base = emptyHost();
  const files = desiredFiles(p, base, 'nft', desired('minimal'));
  const converged = emptyHost({
    files,
    bindingActive: true,
    nftRuleset: fixture('minimal.inet.nft'),
    nftTables: { inet: { json: fixture('minimal.inet.json'), text: fixture('minimal.inet.nft') }, ip: { json: null, text: null }, ip6: { json: null, text: null } },
  });
  assert.deepEqual(planFirewall(p, converged), []);
  // The same host with the watcher stopped is not converged: rules without the binding would not fail open.
  assert.deepEqual(planFirewall(p, { ...converged, bindingActive: false }).map((c) => c.id), ['firewall:arm-revert', 'firewall:activate']);
});

test('plan on a fresh iptables-legacy host writes rules.v4/v6 validated by iptables-legacy-restore --test', () => {
  const legacyHost = emptyHost({ iptablesSave: { legacy: { v4: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n', v6: '' }, nft: { v4: '', v6: '' } } });
  const changes = planFirewall(params('minimal'), legacyHost);
  const files = changes.find((c) => c.id === 'firewall:files')!;
  const v4 = files.steps.find((s) => s.kind === 'put' && s.path === rulesV4Path);
  const v6 = files.steps.find((s) => s.kind === 'put' && s.path === rulesV6Path);
  assert.deepEqual(v4?.kind === 'put' && v4.validate, ['iptables-legacy-restore', '-w', '--test', '--noflush', '{}']);
  assert.deepEqual(v6?.kind === 'put' && v6.validate, ['ip6tables-legacy-restore', '-w', '--test', '--noflush', '{}']);
  const parked4 = files.steps.find((s) => s.kind === 'put' && s.path === parkedV4Path);
  assert.deepEqual(parked4?.kind === 'put' && parked4.validate, ['iptables-legacy-restore', '-w', '--test', '--noflush', '{}']);
  assert.match(files.steps.find((s) => s.kind === 'put' && s.path === confPath)?.kind === 'put' ? (files.steps.find((s) => s.kind === 'put' && s.path === confPath) as { content: string }).content : '', /BACKEND=iptables-legacy/);
  // Neither legacy nat table is loaded: the plan says removal will leave them empty, not absent.
  const activate = changes.find((c) => c.id === 'firewall:activate')!;
  assert.match(activate.summary, /iptables-legacy: this host's v4 and v6 nat table is not loaded yet; .* removal will leave it empty/);
});

test('plan on an iptables-legacy host whose nat tables are loaded (Docker) has no note about leftover nat tables', () => {
  const nat = '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 198.18.5.0/24 -j MASQUERADE\nCOMMIT\n';
  const legacyHost = emptyHost({ iptablesSave: { legacy: { v4: nat, v6: nat.replace('198.18.5.0/24', '::1/128') }, nft: { v4: '', v6: '' } } });
  const activate = planFirewall(params('minimal'), legacyHost).find((c) => c.id === 'firewall:activate')!;
  assert.doesNotMatch(activate.summary, /nat table is not loaded/);
});

test('plan on a converged iptables-nft host: no changes', () => {
  const p = params('full');
  const ids = representative.full!.ids;
  const base = emptyHost({
    excludeUsers: [{ ref: '1001', entry: { name: 'backup', uid: 1001, gid: 1001 } }],
    controllerAddress: ids.controllerAddress,
    iptablesSave: { legacy: { v4: '', v6: '' }, nft: { v4: fixture('full.iptables-nft-save.txt'), v6: fixture('full.ip6tables-nft-save.txt') } },
    bindingActive: true,
  });
  assert.equal(chooseBackend(p, base), 'iptables-nft');
  const files = desiredFiles(p, base, 'iptables-nft', buildDesired(p, ids));
  assert.deepEqual(planFirewall(p, { ...base, files }), []);
});

test('agent not healthy: files staged, rules not loaded; already staged → converged', () => {
  const p = params('minimal');
  const down = emptyHost({ agent: { active: false, healthy: false } });
  const changes = planFirewall(p, down);
  assert.match(changes.at(-1)!.summary, /agent not running/);
  assert.doesNotMatch(changes.at(-1)!.diff?.after ?? '', /redirect to/);
  assert.deepEqual(planFirewall(p, { ...down, files: desiredFiles(p, down, 'nft', desired('minimal')) }), []);
});

const nftHost = (name: 'minimal.inet' | 'minimal.parked.inet', over: Partial<FirewallFacts> = {}) =>
  emptyHost({ nftTables: { inet: { json: fixture(`${name}.json`), text: fixture(`${name}.nft`) }, ip: { json: null, text: null }, ip6: { json: null, text: null } }, ...over });

test('agent down, rules parked (nft): converged; a still-redirecting table is not (it must be parked)', () => {
  const p = params('minimal');
  const files = desiredFiles(p, emptyHost(), 'nft', desired('minimal'));
  const agentDown = { agent: { active: false, healthy: false }, files };
  assert.deepEqual(planFirewall(p, nftHost('minimal.parked.inet', agentDown)), []);
  const stale = planFirewall(p, nftHost('minimal.inet', agentDown));
  assert.deepEqual(stale.map((c) => c.id), ['firewall:arm-revert', 'firewall:activate']);
  assert.match(stale.at(-1)!.diff?.after ?? '', /ct state new return/);
});

test('agent healthy, rules parked (nft): activate loads them; loaded → converged', () => {
  const p = params('minimal');
  const files = desiredFiles(p, emptyHost(), 'nft', desired('minimal'));
  const changes = planFirewall(p, nftHost('minimal.parked.inet', { files, bindingActive: true }));
  assert.deepEqual(changes.map((c) => c.id), ['firewall:arm-revert', 'firewall:activate']);
  assert.match(changes.at(-1)!.diff?.before ?? '', /ct state new return/);
  assert.match(changes.at(-1)!.diff?.after ?? '', /redirect to :8443/);
  assert.deepEqual(planFirewall(p, nftHost('minimal.inet', { files, bindingActive: true })), []);
});

test('agent down, chains parked (iptables-nft): converged; loaded chains are not', () => {
  const p = params('full');
  const ids = representative.full!.ids;
  const host = (state: '' | '.parked') => emptyHost({
    excludeUsers: [{ ref: '1001', entry: { name: 'backup', uid: 1001, gid: 1001 } }],
    controllerAddress: ids.controllerAddress,
    iptablesSave: { legacy: { v4: '', v6: '' }, nft: { v4: fixture(`full${state}.iptables-nft-save.txt`), v6: fixture(`full${state}.ip6tables-nft-save.txt`) } },
    agent: { active: false, healthy: false },
  });
  const files = desiredFiles(p, host('.parked'), 'iptables-nft', buildDesired(p, ids));
  assert.deepEqual(planFirewall(p, { ...host('.parked'), files }), []);
  assert.deepEqual(planFirewall(p, { ...host(''), files }).map((c) => c.id), ['firewall:arm-revert', 'firewall:activate']);
});

test('removal of a host whose rules are parked deletes them too', () => {
  const p = params('minimal', { state: 'absent' });
  const changes = planFirewall(p, nftHost('minimal.parked.inet', { files: { ...emptyHost().files, [confPath]: 'BACKEND=nft\n' } }));
  assert.deepEqual(changes.map((c) => c.id), ['firewall:snapshot', 'firewall:remove']);
  assert.match(changes[1]!.diff?.before ?? '', /ct state new return/);
});

test('docker without containerInterfaces gets a warning in the plan', () => {
  const changes = planFirewall(params('minimal'), emptyHost({ services: { firewalld: false, ufw: false, docker: true } }));
  assert.match(changes.at(-1)!.summary, /container traffic is not covered by OUTPUT/);
});

test('removal: snapshots (no auto-revert), purges and deletes; a clean host is converged', () => {
  const p = params('minimal', { state: 'absent' });
  const installed = emptyHost({
    files: { ...emptyHost().files, [scriptPath]: epochFirewallScript, [confPath]: 'BACKEND=nft\n' },
    nftTables: { inet: { json: fixture('minimal.inet.json'), text: fixture('minimal.inet.nft') }, ip: { json: null, text: null }, ip6: { json: null, text: null } },
    bindingActive: true,
  });
  const changes = planFirewall(p, installed);
  assert.deepEqual(changes.map((c) => c.id), ['firewall:snapshot', 'firewall:remove']);
  assert.match(changes[0]!.steps[0]!.kind === 'run' ? changes[0]!.steps[0]!.argv.join(' ') : '', / arm "\$1" "\$2" sh [0-9a-f]{12} 0$/);
  assert.match(changes[1]!.diff?.before ?? '', /table inet epoch_provision/);
  assert.deepEqual(planFirewall(p, emptyHost()), []);
});

test('healthUrl defaults to the agent\'s health listener (127.0.0.1:9443), and firewall.conf carries it', () => {
  const p = params('minimal');
  assert.equal(p.healthUrl, 'http://127.0.0.1:9443/healthz');
  const files = desiredFiles(p, emptyHost(), 'nft', desired('minimal'));
  assert.match(files[confPath] ?? '', /^HEALTH_URL='http:\/\/127\.0\.0\.1:9443\/healthz'$/m);
});

// ---- bad input: clear errors before anything is applied ----

test('invalid ports and CIDRs are rejected by the schema with the value', () => {
  const bad = [
    [{ ports: [0] }, /port must be 1\.\.65535/],
    [{ ports: [70000] }, /port must be 1\.\.65535/],
    [{ agentPort: 443 }, /both captured and the agent's listener/],
    [{ ports: [22] }, /SSH port/],
    [{ excludeCidrs: ['10.0.0.1/8'] }, /host bits are set \(did you mean 10\.0\.0\.0\/8\?\)/],
    [{ excludeCidrs: ['300.1.1.1'] }, /invalid address "300\.1\.1\.1"/],
    [{ excludeCidrs: ['fe80::/129'] }, /prefix length must be 0\.\.128/],
    [{ modes: ['incoming'] }, /incoming mode needs incomingPort/],
    [{ bogus: 1 }, /bogus/],
  ] as const;
  for (const [input, message] of bad) {
    const r = firewallParams.safeParse(input);
    assert.equal(r.success, false, JSON.stringify(input));
    assert.match((r.error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`).join("\n"), message, JSON.stringify(input));
  }
});

test('an unknown agent user or excluded uid is refused', () => {
  assert.throws(() => planFirewall(params('minimal'), emptyHost({ agentUser: null })), (e: unknown) => e instanceof FirewallRefusedError && /agent user "epoch-agent" does not exist/.test(e.message));
  assert.throws(
    () => planFirewall(params('minimal', { excludeUsers: [4242] }), emptyHost({ excludeUsers: [{ ref: '4242', entry: null }] })),
    /excludeUsers: unknown user\(s\) "4242"/,
  );
});

test('a foreign nft table or iptables chain with our name is refused', () => {
  const foreignText = 'table inet epoch_provision {\n\tchain x {\n\t}\n}\n';
  assert.throws(
    () => planFirewall(params('minimal'), emptyHost({ nftTables: { inet: { json: '{"nftables":[]}', text: foreignText }, ip: { json: null, text: null }, ip6: { json: null, text: null } } })),
    /nft table `inet epoch_provision` exists but was not created by epoch-provision/,
  );
  const foreignChain = '*nat\n:OUTPUT ACCEPT [0:0]\n:EPOCH_OUTPUT - [0:0]\n-A EPOCH_OUTPUT -j ACCEPT\nCOMMIT\n';
  assert.throws(() => planFirewall(params('minimal'), emptyHost({ iptablesSave: { legacy: { v4: '', v6: '' }, nft: { v4: foreignChain, v6: '' } } })), /holds rules we did not write: -A EPOCH_OUTPUT -j ACCEPT/);
  const emptyForeign = '*nat\n:OUTPUT ACCEPT [0:0]\n:EPOCH_OUTPUT - [0:0]\nCOMMIT\n';
  assert.throws(() => planFirewall(params('minimal'), emptyHost({ iptablesSave: { legacy: { v4: emptyForeign, v6: '' }, nft: { v4: '', v6: '' } } })), /already has a chain named EPOCH_OUTPUT/);
  assert.ok(NFT_COMMENT.length > 0);
});

test('ambiguous backend (legacy rules and nf_tables rules) is refused unless params say which', () => {
  const both = emptyHost({
    nftRuleset: 'table inet firewalld {\n}\n',
    iptablesSave: { legacy: { v4: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n', v6: '' }, nft: { v4: '', v6: '' } },
  });
  assert.throws(() => planFirewall(params('minimal'), both), /ambiguous firewall backend: iptables-legacy has 1 rule/);
  assert.equal(chooseBackend(params('minimal', { backend: 'nft' }), both), 'nft');
  assert.throws(() => chooseBackend(params('minimal', { backend: 'nft' }), emptyHost({ tools: ['iptables-legacy'] })), /`nft` is not installed/);
});

// ---- gather output parsing and the host script ----

test('gather output is parsed into facts (sections, base64 files, health JSON, SSH_CONNECTION)', () => {
  const p = params('minimal');
  const out = [
    '@@ kernel', '6.1.0-18-amd64', '@@ systemd', 'yes', '@@ tools', 'nft', 'curl', '@@ iptables-version', 'iptables v1.8.9 (nf_tables)',
    '@@ nft-ruleset', '', '@@ agent-user', 'epoch-agent:x:998:997::/opt/epoch-agent:/usr/sbin/nologin', '@@ agent-group', 'epoch-agent:x:997:',
    `@@ file ${confPath}`, Buffer.from('BACKEND=nft\n').toString('base64'), '@@ agent-active', 'active',
    '@@ agent-health', '{"ready":true,"version":"0.1.0"}', '@@ binding', 'inactive', '@@ services', 'docker', '',
  ].join('\n');
  const f = parseGatherOutput(p, out, '198.18.202.1 50522 198.18.202.10 22\n');
  assert.equal(f.systemd, true);
  assert.equal(f.iptablesDefault, 'nft');
  assert.deepEqual(f.agentUser, { name: 'epoch-agent', uid: 998, gid: 997 });
  assert.deepEqual(f.agentGroup, { name: 'epoch-agent', gid: 997 });
  assert.equal(f.files[confPath], 'BACKEND=nft\n');
  assert.equal(f.files[scriptPath], null);
  assert.deepEqual(f.agent, { active: true, healthy: true });
  assert.equal(f.controllerAddress, '198.18.202.1');
  assert.equal(f.services.docker, true);
  assert.match(gatherScript(p), /"\$t-save" 2>\/dev\/null/);
  assert.doesNotMatch(gatherScript(p), /-save -t nat/);
});

test('gather: SSH_CONNECTION comes from the gather script when its environment has it (one call), else from a second call without become', async () => {
  const { FakeTransport } = await import('../../transport/fake-transport');
  const { gatherFirewall } = await import('./firewall-module');
  const { sshConnectionProbe } = await import('./facts');
  const p = params('minimal');
  const out = (ssh: string) => ['@@ kernel', '6.1.0', '@@ systemd', 'yes', '@@ ssh-connection', ssh, '@@ services', ''].join('\n');
  const root = new FakeTransport('h').on(['sh', '-s'], { stdout: out('198.18.202.1 50522 198.18.202.10 22') });
  assert.equal((await gatherFirewall(root, p)).controllerAddress, '198.18.202.1');
  assert.equal(root.calls.length, 1, 'a root login: one round trip');

  // Through sudo the script's environment has no SSH_CONNECTION: asked again, without become.
  const becomes: (boolean | undefined)[] = [];
  const sudo = new FakeTransport('h')
    .on(['sh', '-s'], { stdout: out('') })
    .on([...sshConnectionProbe], (_argv, o) => {
      becomes.push(o.become);
      return { stdout: '198.18.202.7 40000 198.18.202.10 22\n' };
    });
  assert.equal((await gatherFirewall(sudo, p)).controllerAddress, '198.18.202.7');
  assert.equal(sudo.calls.length, 2);
  assert.deepEqual(becomes, [false]);
});

test('the bundled host script is in sync with host-scripts/epoch-firewall.sh (run generate.mjs after editing it)', () => {
  assert.equal(epochFirewallScript, fixture('../host-scripts/epoch-firewall.sh'));
});

test('--check on a fresh host: with the agent user and agent coming from earlier tasks, the firewall predicts its full install; alone it refuses', async () => {
  const { firewallModule, firewallConfirmModule } = await import('./firewall-module');
  const { firewallParams } = await import('./params');
  const p = firewallParams.parse({});
  const facts = emptyHost({ agentUser: null, agentGroup: null, agent: { active: false, healthy: false } });
  assert.throws(() => firewallModule.plan(p, facts), /agent user "epoch-agent" does not exist/);
  assert.equal(firewallModule.predict(p, facts, new Map()), null);
  const ids = firewallModule.predict(p, facts, new Map([['agent_user', ['user:epoch-agent']], ['agent_service', ['start:epoch-agent.service']]]))?.map((c) => c.id).sort();
  assert.deepEqual(ids, ['firewall:activate', 'firewall:arm-revert', 'firewall:files']);
  assert.deepEqual(firewallConfirmModule.predict({}, { armed: [] }, new Map([['firewall', ['firewall:files']]]))?.map((c) => c.id), ['firewall:confirm']);
  assert.equal(firewallConfirmModule.predict({}, { armed: [] }, new Map([['agent_user', ['user:epoch-agent']]])), null);
});
