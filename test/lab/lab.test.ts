// The lab fleet itself: a mixed lab of 3 real systemd hosts (ssh, rhel trust layout, upstream h1/h2, Node 18 and
// the agent bundle), then proof that `down` leaves nothing behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { labHome } from '../../provisioner/src/lab/paths';
import { labSkipReason, type Lab, startLab } from '../support/lab';

const repo = join(import.meta.dirname, '../..');
const skip = labSkipReason();

function ssh(lab: Lab, host: string, command: string) {
  return spawnSync('ssh', ['-F', lab.sshConfigPath, host, command], { encoding: 'utf8', timeout: 30_000 });
}

function leftovers(lab: Lab, nspawnPids: number[]): string[] {
  const found: string[] = [];
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const h of lab.hosts) if (netns.includes(h.netns)) found.push(`netns ${h.netns}`);
  const slotPrefix = lab.hosts[0]?.netns.replace(/-[^-]+$/, '') ?? 'none';
  if (netns.includes(`${slotPrefix}-up`)) found.push(`netns ${slotPrefix}-up`);
  if (spawnSync('ip', ['link', 'show', 'dev', slotPrefix]).status === 0) found.push(`bridge ${slotPrefix}`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  if (mounts.includes(`/labs/${lab.name}/`)) found.push('overlay mounts');
  for (const pid of nspawnPids) if (existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) found.push(`pid ${pid}`);
  for (const h of lab.hosts) {
    if (existsSync(h.rootPath)) found.push(`root ${h.rootPath}`);
    if (existsSync(`/run/systemd/nspawn/propagate/${h.machine}`)) found.push(`propagate ${h.machine}`);
  }
  for (const f of [lab.inventoryPath, lab.sshConfigPath, lab.keyFile]) if (existsSync(f)) found.push(`file ${f}`);
  for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup']) {
    if (existsSync(`${root}/epoch-lab/${lab.name}`)) found.push(`cgroup ${root}/epoch-lab/${lab.name}`);
  }
  return found;
}

describe('lab up 3 --flavor mixed', { skip }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab({ hosts: 3, flavor: 'mixed' });
  });
  after(async () => {
    await lab?.down();
  });

  test('hosts are deb1, rhel1, deb2 on their own addresses, and inventory groups them by flavour', () => {
    assert.deepEqual(
      lab.hosts.map((h) => [h.name, h.flavor]),
      [['deb1', 'debian'], ['rhel1', 'rhel'], ['deb2', 'debian']],
    );
    assert.equal(new Set(lab.hosts.map((h) => h.address)).size, 3);
    const inv = readFileSync(lab.inventoryPath, 'utf8');
    assert.match(inv, /debian:\n\s+hosts:\n\s+deb1:\n\s+ansible_host: 198\.1[89]\./);
    assert.match(inv, /rhel:\n\s+hosts:\n\s+rhel1:/);
    assert.match(inv, /ansible_user: root/);
    assert.match(inv, /ansible_ssh_private_key_file: /);
    assert.match(inv, /UserKnownHostsFile=/);
  });

  test('ssh -F ssh_config HOST systemctl is-system-running answers running on every host', () => {
    for (const h of lab.hosts) {
      const r = ssh(lab, h.name, 'systemctl is-system-running');
      assert.equal(r.stdout.trim(), 'running', `${h.name}: ${r.stderr}`);
    }
  });

  test('each host has its own hostname and machine-id and no default route', async () => {
    const ids = new Set<string>();
    for (const h of lab.hosts) {
      assert.equal((await lab.execOk(h, ['hostname'])).trim(), h.name);
      ids.add((await lab.execOk(h, ['cat', '/etc/machine-id'])).trim());
      assert.equal((await lab.execOk(h, ['ip', 'route', 'show', 'default'])).trim(), '');
    }
    assert.equal(ids.size, lab.hosts.length);
  });

  test('the rhel host looks like Rocky Linux 9 with a working update-ca-trust and no update-ca-certificates', async () => {
    const osRelease = await lab.execOk('rhel1', ['cat', '/etc/os-release']);
    assert.match(osRelease, /^ID="rocky"$/m);
    assert.match(osRelease, /^VERSION_ID="9\.\d+"$/m);
    const which = await lab.exec('rhel1', ['sh', '-c', 'command -v update-ca-certificates']);
    assert.notEqual(which.exitCode, 0, `update-ca-certificates is present: ${which.stdout}`);
    assert.equal(which.stdout, '');
    for (const path of ['/etc/pki/ca-trust/source/anchors', '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', '/etc/pki/tls/certs/ca-bundle.crt']) {
      assert.equal((await lab.exec('rhel1', ['test', '-e', path])).exitCode, 0, `${path} is missing`);
    }
    // A new anchor reaches the extracted bundle through trust extract; removing it takes it out again.
    const pem = readFileSync(lab.labPublicCaCert, 'utf8');
    const count = async () => (await lab.execOk('rhel1', ['grep', '-c', 'BEGIN CERTIFICATE', '/etc/pki/tls/certs/ca-bundle.crt'])).trim();
    const before = Number(await count());
    await lab.execOk('rhel1', ['sh', '-c', 'cat > /etc/pki/ca-trust/source/anchors/extra.pem'], { stdin: lab.untrustedCaCertPem });
    await lab.execOk('rhel1', ['update-ca-trust', 'extract']);
    assert.equal(Number(await count()), before + 1);
    await lab.execOk('rhel1', ['rm', '/etc/pki/ca-trust/source/anchors/extra.pem']);
    await lab.execOk('rhel1', ['update-ca-trust']);
    assert.equal(Number(await count()), before);
    assert.ok((await lab.execOk('rhel1', ['cat', '/etc/pki/tls/certs/ca-bundle.crt'])).includes(pem.trim().split('\n')[1] as string));
  });

  test('the debian hosts keep Debian trust tooling', async () => {
    assert.match(await lab.execOk('deb1', ['cat', '/etc/os-release']), /^ID=debian$/m);
    assert.equal((await lab.exec('deb1', ['sh', '-c', 'command -v update-ca-certificates'])).exitCode, 0);
  });

  test('the upstream serves HTTP/1.1 and h2 with a certificate every host trusts', async () => {
    for (const h of lab.hosts) {
      for (const [flag, version] of [['--http1.1', '1.1'], ['--http2', '2']]) {
        const out = await lab.execOk(h, ['curl', '-sS', flag as string, '-o', '/dev/null', '-w', '%{http_version} %{http_code} %{ssl_verify_result}', 'https://upstream.lab.test/'], { timeoutMs: 20_000 });
        assert.equal(out, `${version} 200 0`, `${h.name} ${flag}`);
      }
    }
    const body = await lab.execOk('deb1', ['curl', '-sS', '--http2', 'https://upstream.lab.test/bytes/5']);
    assert.equal(body, 'abcde');
  });

  test('the untrusted and wrong-host listeners fail verification', async () => {
    const untrusted = await lab.exec('rhel1', ['curl', '-sS', 'https://untrusted.lab.test/'], { timeoutMs: 20_000 });
    assert.equal(untrusted.exitCode, 60, untrusted.stderr);
    const wrong = await lab.exec('deb1', ['curl', '-sS', 'https://wronghost.lab.test/'], { timeoutMs: 20_000 });
    assert.equal(wrong.exitCode, 60, wrong.stderr);
    assert.match(wrong.stderr, /no alternative certificate subject name matches/);
  });

  test("Debian's Node 18 runs the agent bundle on every host", async () => {
    const bundle = join(repo, 'dist/agent/epoch-agent.cjs');
    if (!existsSync(bundle)) {
      const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: repo, encoding: 'utf8' });
      assert.equal(build.status, 0, build.stderr);
    }
    for (const h of lab.hosts) {
      const version = (await lab.execOk(h, ['node', '--version'])).trim();
      const [major, minor] = version.slice(1).split('.').map(Number) as [number, number];
      assert.ok(major === 18 && minor >= 19, `${h.name}: node ${version}, expected 18.19 or later 18.x`);
      await lab.copyTo(h, bundle, '/root/epoch-agent.cjs');
      const out = await lab.execOk(h, ['node', '/root/epoch-agent.cjs', '--version']);
      assert.match(out, new RegExp(`node ${version.replace(/\./g, '\\.')}`));
    }
  });

  test('down leaves nothing behind', async () => {
    const state = JSON.parse(readFileSync(join(labHome, 'labs', lab.name, 'state.json'), 'utf8'));
    const pids: number[] = state.hosts.flatMap((h: { nspawn?: { pid: number }; init?: { pid: number } }) => [h.nspawn?.pid, h.init?.pid].filter(Boolean));
    pids.push(state.upstream.process.pid);
    await lab.down();
    assert.deepEqual(leftovers(lab, pids), []);
    assert.equal(existsSync(join(labHome, 'labs', lab.name)), false);
    assert.ok(!readdirSync(join(labHome, 'slots')).some((f) => readFileSync(join(labHome, 'slots', f), 'utf8').trim() === lab.name));
  });
});
