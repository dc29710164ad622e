// Pure parts of the lab: host naming, addressing and the generated inventory files.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderHostsYml, renderSshConfig } from './inventory';
import { type LabState, hostPlan } from './lab';
import { hostAddress, slotAddresses } from './network';

test('mixed labs alternate flavours with per-flavour names', () => {
  assert.deepEqual(
    hostPlan(5, 'mixed').map((h) => `${h.index}:${h.name}:${h.flavor}`),
    ['1:deb1:debian', '2:rhel1:rhel', '3:deb2:debian', '4:rhel2:rhel', '5:deb3:debian'],
  );
  assert.deepEqual(hostPlan(2, 'rhel').map((h) => h.name), ['rhel1', 'rhel2']);
  assert.throws(() => hostPlan(0, 'debian'), /host count 0: expected 1\.\.1000/);
});

test('each slot owns a /20 inside 198.18.0.0/15; hosts start at the second /24', () => {
  assert.deepEqual(slotAddresses(0), {
    subnet: '198.18.0.0/20',
    bridge: 'eplab0',
    controller: '198.18.0.1',
    upstreamNetns: 'eplab0-up',
    upstreamVeth: 'eplab0-up',
    upstream: { valid: '198.18.0.2', untrusted: '198.18.0.3', wrongHost: '198.18.0.4' },
  });
  assert.equal(slotAddresses(31).subnet, '198.19.240.0/20');
  assert.equal(hostAddress(0, 1), '198.18.1.1');
  assert.equal(hostAddress(0, 250), '198.18.1.250');
  assert.equal(hostAddress(0, 251), '198.18.2.1');
  assert.equal(hostAddress(31, 3750), '198.19.255.250');
  assert.throws(() => slotAddresses(32), /lab slot 32: expected 0\.\.31/);
});

const lab = {
  name: 'lab',
  controllerAddress: '198.18.0.1',
  upstream: { addresses: { valid: '198.18.0.2', untrusted: '198.18.0.3', wrongHost: '198.18.0.4' } },
  inventory: { dir: '/i', hostsFile: '/i/hosts.yml', sshConfig: '/i/ssh_config', knownHosts: '/i/known_hosts', keyFile: '/i/id_ed25519' },
  hosts: [
    { name: 'deb1', flavor: 'debian', address: '198.18.1.1' },
    { name: 'deb2', flavor: 'debian', address: '198.18.1.2' },
  ],
} as unknown as LabState;

test('hosts.yml groups hosts by flavour and names the key and known_hosts', () => {
  const yml = renderHostsYml(lab);
  assert.match(yml, /\n {4}debian:\n {6}hosts:\n {8}deb1:\n {10}ansible_host: 198\.18\.1\.1\n {8}deb2:\n/);
  assert.match(yml, /\n {4}rhel:\n {6}hosts: \{\}\n/);
  assert.match(yml, /ansible_ssh_private_key_file: "\/i\/id_ed25519"/);
  assert.match(yml, /ansible_ssh_common_args: "-o UserKnownHostsFile=\/i\/known_hosts /);
  assert.match(yml, /epoch_known_hosts_file: "\/i\/known_hosts"/);
});

test('ssh_config maps host names to addresses with strict host key checking', () => {
  const cfg = renderSshConfig(lab);
  assert.match(cfg, /^Host deb1\n {2}HostName 198\.18\.1\.1$/m);
  assert.match(cfg, /^ {2}StrictHostKeyChecking yes$/m);
  assert.match(cfg, /^ {2}IdentityFile \/i\/id_ed25519$/m);
  assert.match(cfg, /^ {2}UserKnownHostsFile \/i\/known_hosts$/m);
});
