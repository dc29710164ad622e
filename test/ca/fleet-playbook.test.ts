// The fleet and import CA modes through the real CLI (`node bin/epoch-provision.mjs --inventory … PLAYBOOK --yes`) on
// a mixed lab (deb1 + rhel1):
//   1. a bad CA (not a CA, key mismatch, also behind a `when` on host facts) exits 2 with one `FILE: problem` line,
//      and no host sees an SSH login or a changed byte;
//   2. `ca init` a fleet CA (passphrase from env), then `mode: fleet` installs it: key 0600 owned by the agent user,
//      trusted by the system store (openssl verify + curl as nobody, with a leaf the pushed key signs on the host),
//      a second run changes nothing, and removal restores every trust file byte for byte.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { certFingerprint } from '../../provisioner/src/ca/material';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { startTlsServer, stopUnit, trustSnapshot, verifyAsNobody } from './lab-helpers';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join(repo, 'test/fixtures/ca', name);
const skip = labSkipReason();
const passVar = 'EPOCH_TEST_FLEET_CA_PASS';
const passphrase = 'fleet-test-passphrase-long-enough';
const testDir = '/opt/epoch-ca-fleet-test';

/** Logins sshd accepted so far (the controller's and the test's connections alike). */
const acceptedLogins = async (lab: Lab, host: string) =>
  (await lab.execOk(host, ['sh', '-c', 'journalctl --no-pager -o cat SYSLOG_IDENTIFIER=sshd | grep -c "^Accepted " || true'])).trim();

/** Everything a run could have touched on a host: the trust files, our folders, the journals. */
async function hostState(lab: Lab, host: string): Promise<string> {
  const ours = await lab.execOk(host, ['sh', '-c', 'find /etc/epoch-agent /var/lib/epoch-provision /usr/local/share/ca-certificates /etc/pki/ca-trust/source/anchors -printf "%p %m %U %s\\n" 2>/dev/null | sort; exit 0']);
  return `${await trustSnapshot(lab, host)}\n${ours}`;
}

describe('fleet and import CAs through epoch-provision on debian + rhel', { skip, timeout: 5 * 60_000 }, () => {
  let lab: Lab;
  let work: string;
  const hosts = ['deb1', 'rhel1'];
  const play = (name: string, tasks: string[], vars: string[] = []) => {
    const path = join(work, name);
    writeFileSync(path, ['- name: ca', '  hosts: all', ...(vars.length ? ['  vars:', ...vars] : []), '  tasks:', ...tasks, ''].join('\n'));
    return path;
  };
  const cli = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), '--inventory', lab.inventoryPath, ...args], {
      cwd: work,
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, SSH_AUTH_SOCK: '', ...env },
    });
    const events = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
    const recap = events.find((e) => e.type === 'recap') as { hosts?: { host: string; changed: number; failed: number }[] } | undefined;
    const changed = Object.fromEntries((recap?.hosts ?? []).map((h) => [h.host, [h.changed, h.failed]]));
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, changed };
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'epoch-ca-fleet-'));
    lab = await startLab({ hosts: 2, flavor: 'mixed' });
    for (const h of hosts) {
      await lab.execOk(h, ['sh', '-c', 'getent passwd epoch-agent >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin epoch-agent']);
    }
  });
  after(async () => {
    if (work) rmSync(work, { recursive: true, force: true });
    await lab?.down();
  });

  test('a bad CA in a playbook: exit 2, one `FILE: problem` line, no SSH login and not a byte changed on any host', async () => {
    const importTask = (cert: string, key: string, extra: string[] = []) => ['    - name: signing CA', '      ca:', '        mode: import', `        cert_file: ${cert}`, `        key_file: ${key}`, ...extra];
    const cases = [
      { name: 'not-a-ca.yml', tasks: importTask(fx('no-certsign-ca.crt'), fx('no-certsign-ca.key')), file: fx('no-certsign-ca.crt'), problem: /not a CA: keyUsage lacks keyCertSign/ },
      { name: 'mismatch.yml', tasks: importTask(fx('ca-ec.crt'), fx('ca-next.key')), file: fx('ca-next.key'), problem: /private key does not match the certificate in / },
      // Behind a condition only the host's facts decide, with templated paths: still refused before any connection.
      {
        name: 'mismatch-when-facts.yml',
        vars: [`    ca_dir: ${fx('')}`],
        tasks: importTask('"{{ ca_dir }}/ca-ec.crt"', '"{{ ca_dir }}/ca-next.key"', ["      when: epoch_facts.os.family == 'debian'"]),
        file: fx('ca-next.key'),
        problem: /private key does not match the certificate in /,
      },
    ];
    const statesBefore = new Map<string, string>();
    const loginsBefore = new Map<string, string>();
    for (const h of hosts) {
      statesBefore.set(h, await hostState(lab, h));
      loginsBefore.set(h, await acceptedLogins(lab, h));
    }
    for (const c of cases) {
      const path = play(c.name, c.tasks, c.vars);
      const r = cli([path, '--yes']);
      assert.equal(r.status, 2, `${c.name}: exit code\n${r.stderr}${r.stdout}`);
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.equal(lines[0], 'epoch-provision: configuration error(s); no host was touched:', c.name);
      assert.equal(lines.length, 2, `${c.name}: one problem line: ${JSON.stringify(lines)}`);
      const line = lines[1] as string;
      // file:line:column of the task (shown relative to the working folder), then the module, then `FILE: problem`.
      assert.ok(new RegExp(`^${c.name.replace('.', '\\.')}:\\d+:\\d+: ca: `).test(line) && line.includes(`: ca: ${c.file}: `), `${c.name}: names the playbook and the file: ${line}`);
      assert.match(line.slice(line.indexOf(`${c.file}: `) + c.file.length + 2), c.problem, `${c.name}: the problem`);
      assert.doesNotMatch(line, /\(got /, `${c.name}: no params echoed after the problem`);
      assert.equal(r.stdout, '', `${c.name}: no run output`);
    }
    for (const h of hosts) {
      assert.equal(await acceptedLogins(lab, h), loginsBefore.get(h), `${h}: sshd accepted no login`);
      assert.equal(await hostState(lab, h), statesBefore.get(h), `${h}: byte for byte unchanged`);
    }
    // The probe is live: a valid CA's --check run does log in (and still changes nothing).
    const good = cli([play('good-check.yml', importTask(fx('ca-ec.crt'), fx('ca-ec.key'))), '--check', '--yes', '--output', 'json']);
    assert.equal(good.status, 0, good.stderr + good.stdout.slice(-2000));
    for (const h of hosts) {
      assert.ok(Number(await acceptedLogins(lab, h)) > Number(loginsBefore.get(h)), `${h}: a valid run is seen by sshd`);
      assert.equal(await hostState(lab, h), statesBefore.get(h), `${h}: --check changed nothing`);
    }
  });

  test('fleet CA: ca init → mode fleet installs key 0600/epoch-agent, trusted as nobody, converged, removed byte for byte', async () => {
    const before = new Map<string, string>();
    for (const h of hosts) before.set(h, await trustSnapshot(lab, h));
    const env = { [passVar]: passphrase };
    const fleetDir = join(work, 'fleet-ca');
    // As a user would: on the controller, no inventory, the passphrase from the environment.
    const initRun = spawnSync(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), 'ca', 'init', '--name', 'fleet test CA', '--days', '400', '--out', fleetDir, '--passphrase-env', passVar], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    assert.equal(initRun.status, 0, initRun.stderr);
    assert.match(readFileSync(join(fleetDir, 'ca.key'), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
    const fleetCert = join(fleetDir, 'ca.crt');
    const fp = certFingerprint(readFileSync(fleetCert));
    const present = play('fleet.yml', [
      '    - name: signing CA (fleet)',
      '      ca:',
      '        mode: fleet',
      `        cert_file: ${fleetCert}`,
      `        key_file: ${join(fleetDir, 'ca.key')}`,
      `        key_passphrase_env: ${passVar}`,
      '    - name: trust the fleet CA',
      '      trust_store:',
      `        cert_file: ${fleetCert}`,
    ]);
    const absent = play('fleet-absent.yml', ['    - name: untrust', '      trust_store:', '        state: absent', '    - name: remove CA files', '      ca:', '        state: absent']);

    const first = cli([present, '--yes', '--output', 'json'], env);
    assert.equal(first.status, 0, first.stderr + first.stdout.slice(-2000));
    assert.deepEqual(first.changed, { deb1: [2, 0], rhel1: [2, 0] });
    assert.ok(first.stdout.includes(fp), 'the fleet CA fingerprint is in the run output');
    assert.doesNotMatch(first.stdout, /PRIVATE KEY-----/, 'the key never shows in the output');

    for (const h of hosts) {
      assert.equal((await lab.execOk(h, ['stat', '-c', '%a %U', '/etc/epoch-agent/ca/ca.key'])).trim(), '600 epoch-agent', `${h}: key mode and owner`);
      assert.equal((await lab.execOk(h, ['cat', '/etc/epoch-agent/ca/ca.crt'])).trim(), readFileSync(fleetCert, 'utf8').trim(), `${h}: the fleet cert`);
      // The pushed key signs a leaf on the host (as the agent would); nobody verifies it with the system store.
      await lab.execOk(h, ['mkdir', '-p', '-m', '0755', testDir]);
      await lab.execOk(h, [
        'sh', '-c',
        [
          'set -e; cd "$1"',
          'openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf.key -subj /CN=leaf.test -out leaf.csr 2>/dev/null',
          'printf "basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\nsubjectAltName=DNS:leaf.test\\n" > leaf.ext',
          'openssl x509 -req -in leaf.csr -CA /etc/epoch-agent/ca/ca.crt -CAkey /etc/epoch-agent/ca/ca.key -set_serial 0x42 -days 30 -extfile leaf.ext -out leaf.crt 2>/dev/null',
          'chmod 0644 leaf.crt',
        ].join('\n'),
        'sh', testDir,
      ]);
      await startTlsServer(lab, h, 'epoch-ca-fleet-leaf', 18453, `${testDir}/leaf.crt`, `${testDir}/leaf.key`);
      try {
        const v = await verifyAsNobody(lab, h, `${testDir}/leaf.crt`, 18453);
        assert.ok(v.ok, `${h}: ${v.detail}`);
      } finally {
        await stopUnit(lab, h, 'epoch-ca-fleet-leaf');
      }
    }

    const second = cli([present, '--yes', '--output', 'json'], env);
    assert.equal(second.status, 0, second.stderr + second.stdout.slice(-2000));
    assert.deepEqual(second.changed, { deb1: [0, 0], rhel1: [0, 0] }, 'a second run changes nothing');

    const removed = cli([absent, '--yes', '--output', 'json']);
    assert.equal(removed.status, 0, removed.stderr + removed.stdout.slice(-2000));
    assert.deepEqual(removed.changed, { deb1: [2, 0], rhel1: [2, 0] });
    for (const h of hosts) {
      assert.equal(await trustSnapshot(lab, h), before.get(h), `${h}: trust files byte-identical after removal`);
      const v = await lab.exec(h, ['openssl', 'verify', `${testDir}/leaf.crt`], { user: 'nobody' });
      assert.notEqual(v.exitCode, 0, `${h}: the leaf no longer verifies`);
      assert.equal((await lab.exec(h, ['ls', '/etc/epoch-agent/ca'])).exitCode, 2, `${h}: the CA folder is gone`);
      await lab.execOk(h, ['rm', '-rf', testDir]);
    }
    const again = cli([absent, '--yes', '--output', 'json']);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.changed, { deb1: [0, 0], rhel1: [0, 0] }, 'removal is converged too');
  });
});
