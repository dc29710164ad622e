// CA rotation with the real epoch-agent signing, through the real CLI, on a mixed lab (deb1 + rhel1): the agent
// (built like `npm run build`) is installed by a site.yml-like playbook with an imported CA and interception on, a
// client loop runs as `nobody` with the system trust store the whole time, and the CA rotates in three playbook runs
// (trust the new beside the old, switch signing with rotate_from + restart, remove the old). Not one request fails,
// and once signing switched every forged leaf the clients get chains to the new CA, never the old.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { certFingerprint } from '../../provisioner/src/ca/material';
import { buildAgent } from '../deploy/support/build-agent';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { stopUnit, trustSnapshot } from './lab-helpers';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join(repo, 'test/fixtures/ca', name);
const skip = labSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const loopDir = '/var/lib/epoch-rotation-client';
const loopUnit = 'epoch-rotation-client';

// One new curl connection after another, as the unit's user, with the system trust store (no --cacert): each line
// is `ok <time> <status> <issuer of the leaf served>` or `fail <time> <curl error>`.
const loopScript = `out=$1/out stop=$1/stop
: > "$out"
while [ ! -e "$stop" ]; do
  t=$(date +%s.%N)
  if r=$(curl -sS -o /dev/null --max-time 10 -w '%{http_code} %{certs}' https://upstream.lab.test/ 2>"$1/err"); then
    echo "ok $t \${r%% *} $(printf '%s\\n' "$r" | sed -n 's/^Issuer://p' | head -n 1)" >> "$out"
  else
    echo "fail $t $(tr '\\n' ' ' < "$1/err")" >> "$out"
  fi
done
echo done >> "$out"
`;

interface Sample {
  ok: boolean;
  time: number;
  /** old / new: forged by the agent with that CA; direct: the real server's cert (the agent restarting). */
  signer: 'old' | 'new' | 'direct' | 'other';
  line: string;
}

const signerOf = (issuer: string): Sample['signer'] =>
  /epoch-provision test ca-next/.test(issuer) ? 'new' : /epoch-provision test ca-ec/.test(issuer) ? 'old' : /epoch lab public CA/.test(issuer) ? 'direct' : 'other';

describe('CA rotation while the real agent intercepts a client running as nobody (deb1 + rhel1, through the CLI)', { skip, timeout: 8 * 60_000 }, () => {
  let lab: Lab;
  let work: string;
  let artifact: string;
  const hosts = ['deb1', 'rhel1'];
  const fpOld = certFingerprint(readFileSync(fx('ca-ec.crt')));
  const fpNew = certFingerprint(readFileSync(fx('ca-next.crt')));
  const trustBefore = new Map<string, string>();

  const play = (name: string, tasks: string[]) => {
    const path = join(work, name);
    writeFileSync(path, ['- name: epoch agent', '  hosts: all', '  vars:', '    epoch_probe_url: https://upstream.lab.test/', '  tasks:', ...tasks, ''].join('\n'));
    return path;
  };
  /** Asynchronous, so the event loop (and the lab's exec) keeps running while a playbook runs. */
  const cli = (args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string; changed: Record<string, number[]> }>((done) => {
      const child = spawn(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), '--inventory', lab.inventoryPath, '--output', 'json', '--log-dir', join(work, 'logs'), ...args], {
        cwd: work,
        env: { ...process.env, SSH_AUTH_SOCK: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGTERM'), 240_000);
      child.on('close', (status) => {
        clearTimeout(timer);
        const events = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
        const recap = events.find((e) => e.type === 'recap') as { hosts?: { host: string; changed: number; failed: number }[] } | undefined;
        done({ status, stdout, stderr, changed: Object.fromEntries((recap?.hosts ?? []).map((h) => [h.host, [h.changed, h.failed]])) });
      });
    });
  const ok = (r: { status: number | null; stdout: string; stderr: string }, what: string) =>
    assert.equal(r.status, 0, `${what}: exit ${r.status}\n${r.stderr}\n${r.stdout.split('\n').filter((l) => /"failed"|error|fail/i.test(l)).join('\n').slice(-3000)}`);

  /**
   * Whether the leaf a `nobody` client gets for upstream.lab.test chains to `caFile` alone. The leaf is fetched with a
   * real request (curl, system store) and checked offline: a client that rejects the forged cert, or a quiet
   * `openssl s_client </dev/null`, would count against the destination in the agent's learned passthrough.
   */
  const servedChainsTo = async (host: string, caFile: string) => {
    const script = [
      'leaf=$(mktemp)',
      "curl -sS -o /dev/null --max-time 10 -w '%{certs}' https://upstream.lab.test/ | awk '/-----BEGIN CERTIFICATE-----/{n++} n==1{print} n==1 && /-----END CERTIFICATE-----/{exit}' > \"$leaf\"",
      'openssl verify -no-CApath -no-CAstore -CAfile "$1" "$leaf"; rc=$?; rm -f "$leaf"; exit $rc',
    ].join('\n');
    return (await lab.exec(host, ['sh', '-c', script, 'sh', caFile], { user: 'nobody' })).exitCode === 0;
  };
  const readSamples = async (host: string): Promise<{ samples: Sample[]; done: boolean }> => {
    const text = (await lab.execOk(host, ['cat', `${loopDir}/out`])).split('\n').filter(Boolean);
    const samples = text
      .filter((l) => l !== 'done')
      .map((line) => {
        const [status = '', time = '0', code = '', ...issuer] = line.split(' ');
        return { ok: status === 'ok' && code === '200', time: Number(time), signer: status === 'ok' ? signerOf(issuer.join(' ')) : 'other', line } satisfies Sample;
      });
    return { samples, done: text.at(-1) === 'done' };
  };
  const hostTime = async (host: string) => Number((await lab.execOk(host, ['date', '+%s.%N'])).trim());

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'epoch-ca-rot-agent-'));
    artifact = await buildAgent(join(work, 'agent'), '0.1.0-rotation');
    lab = await startLab({ hosts: 2, flavor: 'mixed' });
    for (const h of hosts) {
      await lab.execOk(h, ['install', '-d', '-o', 'nobody', '-m', '0755', loopDir]);
      trustBefore.set(h, await trustSnapshot(lab, h));
    }
  });
  after(async () => {
    for (const h of lab ? hosts : []) await stopUnit(lab, h, loopUnit);
    await lab?.down();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('install with the old CA → trust both → switch signing (agent restarts) → remove old: 0 failed requests, new leaves chain to the new CA', async () => {
    const caTask = (cert: string, key: string, extra: string[] = []) => ['    - name: signing CA', '      ca:', '        mode: import', `        cert_file: ${fx(cert)}`, `        key_file: ${fx(key)}`, ...extra];
    const install = play('install.yml', [
      '    - name: preflight',
      '      agent_preflight: {}',
      '    - name: push the agent release',
      '      agent_release:',
      `        artifact_dir: ${artifact}`,
      "    - name: the agent's system user",
      '      agent_user: {}',
      ...caTask('ca-ec.crt', 'ca-ec.key'),
      '    - name: trust the CA',
      '      trust_store:',
      `        cert_file: ${fx('ca-ec.crt')}`,
      '    - name: start the agent',
      '      agent_service: {}',
      '    - name: redirect port 443 into the agent',
      '      firewall: {}',
      '    - name: verify interception',
      '      verify:',
      '        probe_url: "{{ epoch_probe_url }}"',
      '    - name: confirm the firewall change',
      '      firewall_confirm: {}',
    ]);
    const installed = await cli([install, '--yes']);
    ok(installed, 'install');
    for (const h of hosts) {
      // Copies nobody can read (the agent's /etc/epoch-agent is not world-readable).
      await lab.copyTo(h, fx('ca-next.crt'), '/tmp/epoch-ca-new.crt');
      await lab.copyTo(h, fx('ca-ec.crt'), '/tmp/epoch-ca-old.crt');
      assert.ok(await servedChainsTo(h, '/tmp/epoch-ca-old.crt'), `${h}: intercepted, the leaf chains to the old CA`);
    }
    for (const h of hosts) assert.equal((await lab.execOk(h, ['cat', '/etc/epoch-agent/ca/ca.crt'])).trim(), readFileSync(fx('ca-ec.crt'), 'utf8').trim());

    const step1 = play('rotate-1-trust-both.yml', ['    - name: trust the next CA beside the current one', '      trust_store:', '        name: epoch-provision-ca-next', `        cert_file: ${fx('ca-next.crt')}`]);
    const step2 = play('rotate-2-switch.yml', [...caTask('ca-next.crt', 'ca-next.key', [`        rotate_from: "${fpOld}"`, '        restart_unit: epoch-agent.service'])]);
    // The agent verifies upstream servers against the system bundle it read at start: it reloads, so the old CA stops
    // being trusted there too.
    const step3 = play('rotate-3-remove-old.yml', ['    - name: remove the old CA', '      trust_store:', '        name: epoch-provision-ca', '        state: absent', '        reload_unit: epoch-agent.service']);

    for (const h of hosts) {
      // From a file: systemd would expand the script's ${...} itself.
      await lab.execOk(h, ['sh', '-c', 'cat > "$1"', 'sh', `${loopDir}/loop.sh`], { stdin: loopScript });
      await lab.execOk(h, ['systemd-run', `--unit=${loopUnit}`, '--quiet', '--uid=nobody', 'sh', `${loopDir}/loop.sh`, loopDir]);
    }
    const switched = new Map<string, number>();
    try {
      await sleep(1500);
      const r1 = await cli([step1, '--yes']);
      ok(r1, 'rotation step 1 (trust both)');
      assert.deepEqual(r1.changed, { deb1: [1, 0], rhel1: [1, 0] });
      await sleep(1000);
      const r2 = await cli([step2, '--yes']);
      ok(r2, 'rotation step 2 (switch signing)');
      assert.deepEqual(r2.changed, { deb1: [1, 0], rhel1: [1, 0] });
      assert.ok(r2.stdout.includes(fpNew), 'the new CA fingerprint is in the run output');
      for (const h of hosts) switched.set(h, await hostTime(h));
      // The restarted agent is back in the path once its health check passed and the rules reloaded.
      for (const h of hosts) {
        let intercepted = false;
        for (let i = 0; i < 75 && !intercepted; i++) {
          const s = (await readSamples(h)).samples;
          intercepted = s.some((x) => x.time > (switched.get(h) ?? 0) && x.signer === 'new');
          if (!intercepted) await sleep(200);
        }
        if (!intercepted) {
          const tail = (await readSamples(h)).samples.slice(-8).map((x) => x.line).join('\n');
          const journal = (await lab.exec(h, ['journalctl', '-u', 'epoch-agent.service', '-u', 'epoch-firewall.service', '-o', 'short-unix', '--no-pager', '-n', '30'])).stdout;
          assert.fail(`${h}: the client's requests are not intercepted again after the switch; last requests:\n${tail}\njournal:\n${journal}`);
        }
      }
      const r3 = await cli([step3, '--yes']);
      ok(r3, 'rotation step 3 (remove the old CA)');
      assert.deepEqual(r3.changed, { deb1: [1, 0], rhel1: [1, 0] });
      await sleep(1500);
    } finally {
      for (const h of hosts) await lab.exec(h, ['touch', `${loopDir}/stop`]);
      for (const h of hosts) for (let i = 0; i < 150 && !(await readSamples(h)).done; i++) await sleep(100);
    }

    const failures: string[] = [];
    for (const h of hosts) {
      const { samples, done } = await readSamples(h);
      assert.ok(done, `${h}: the client loop finished`);
      const count = (signer: Sample['signer'], from = 0, to = Infinity) => samples.filter((s) => s.ok && s.signer === signer && s.time >= from && s.time < to).length;
      const at = switched.get(h) ?? 0;
      console.log(`  ${h}: ${samples.length} requests as nobody: ${count('old')} forged by the old CA, ${count('new')} by the new, ${count('direct')} direct (agent restarting), ${samples.filter((s) => !s.ok).length} failed`);
      failures.push(...samples.filter((s) => !s.ok || s.signer === 'other').map((s) => `${h}: ${s.line}`));
      assert.ok(count('old') >= 3, `${h}: requests were forged by the old CA before the switch`);
      assert.ok(count('new', at) >= 3, `${h}: requests were forged by the new CA after the switch`);
      assert.equal(count('old', at), 0, `${h}: no leaf forged by the old CA after the switch`);
    }
    assert.deepEqual(failures, [], 'no request failed during the rotation');

    // The retired CA is trusted nowhere any more, the agent's upstream verification included: a server presenting a
    // leaf of the old CA (leaf.test, served from rhel1) must fail for deb1's client, not be re-signed with the new CA.
    await lab.copyTo('rhel1', fx('leaf.crt'), '/tmp/epoch-old-leaf.crt');
    await lab.copyTo('rhel1', fx('leaf.key'), '/tmp/epoch-old-leaf.key', 0o600);
    await lab.execOk('rhel1', ['systemd-run', '--unit=epoch-old-ca-server', '--quiet', 'openssl', 's_server', '-quiet', '-www', '-accept', '443', '-cert', '/tmp/epoch-old-leaf.crt', '-key', '/tmp/epoch-old-leaf.key']);
    for (let i = 0; i < 50 && !/:443 /.test((await lab.exec('rhel1', ['ss', '-Hltn'])).stdout); i++) await sleep(100);
    // Control: the server is up and its leaf verifies against the old CA (checked on rhel1 over loopback, not redirected).
    await lab.execOk('rhel1', ['curl', '-sS', '-o', '/dev/null', '--max-time', '10', '--cacert', '/tmp/epoch-ca-old.crt', '--resolve', 'leaf.test:443:127.0.0.1', 'https://leaf.test/']);
    await lab.execOk('deb1', ['sh', '-c', 'echo "$1 leaf.test" >> /etc/hosts', 'sh', lab.host('rhel1').address]);
    const oldServer = await lab.exec('deb1', ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', 'https://leaf.test/'], { user: 'nobody' });
    await stopUnit(lab, 'rhel1', 'epoch-old-ca-server');
    assert.notEqual(oldServer.exitCode, 0, `deb1: a server with a leaf of the removed CA must not verify through the agent: curl ${oldServer.exitCode} ${oldServer.stdout} ${oldServer.stderr}`);

    // After the switch: the served leaf chains to the new CA alone, no longer to the old one.
    for (const h of hosts) {
      assert.equal(await servedChainsTo(h, '/tmp/epoch-ca-new.crt'), true, `${h}: the served leaf chains to the new CA`);
      assert.equal(await servedChainsTo(h, '/tmp/epoch-ca-old.crt'), false, `${h}: and not to the old CA`);
    }

    // Already converged: each rotation step again changes nothing; verify still passes with the new CA.
    const verify = play('verify.yml', ['    - name: verify interception', '      verify:', '        probe_url: "{{ epoch_probe_url }}"']);
    for (const [path, what] of [[step1, 'step 1'], [step2, 'step 2'], [step3, 'step 3'], [verify, 'verify']] as const) {
      const again = await cli([path, '--yes']);
      ok(again, `${what} again`);
      assert.deepEqual(again.changed, { deb1: [0, 0], rhel1: [0, 0] }, `${what} again changes nothing`);
    }
    for (const h of hosts) assert.notEqual(await trustSnapshot(lab, h), trustBefore.get(h), `${h}: the new CA is in the trust files`);
  });
});
