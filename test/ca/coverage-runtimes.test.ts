// Trust coverage for the runtimes with their own CA store, on real lab hosts (Debian's python3-certifi/requests and
// OpenJDK 17 headless with ca-certificates-java are in the lab image):
// - Debian: its certifi IS the system bundle and ca-certificates-java's hook keeps the JDK cacerts in sync, so both
//   trust the CA once the trust-store module installed it, and the report says so. The stores the system does not
//   reach are exercised as an application would have them: a pip-style certifi (certifi/cacert.pem on the PYTHONPATH
//   of a service) and an application keystore (a copy of cacerts taken before the CA was installed, named through
//   java_keystores). fix_env (REQUESTS_CA_BUNDLE drop-in) and fix_java (keytool import) are checked with real clients
//   run as systemd services (python requests, a Java TLS client), then undone through the recorded undo and through
//   state: absent.
// - rhel flavour: the JDK cacerts links to the keystore update-ca-trust extracts; the report names it, Java trusts the
//   CA after trust-store, and fix_java refuses to import into it (the next extraction would drop the import).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { caModule } from '../../provisioner/src/modules/ca/ca';
import { parseJks, parseKeytoolList } from '../../provisioner/src/modules/trust-coverage/keystore-listing';
import { trustCoverageModule } from '../../provisioner/src/modules/trust-coverage/trust-coverage';
import { trustStoreModule } from '../../provisioner/src/modules/trust-store/trust-store';
import { executeSteps } from '../../provisioner/src/runner/apply-steps';
import type { Transport } from '../../provisioner/src/transport/transport';
import { type Lab, labSkipReason, startLab } from '../support/lab';
import { apply, connect, replan, startTlsServer, stopUnit } from './lab-helpers';

const repo = resolve(import.meta.dirname, '../..');
const fx = (name: string) => join(repo, 'test/fixtures/ca', name);
const testDir = '/opt/epoch-ca-runtimes';
const pyPath = `${testDir}/pylib`;
const appKeystore = `${testDir}/app-jre/cacerts`;
const dropIn = '/etc/systemd/system.conf.d/epoch-provision-ca.conf';
const port = 18447;

// The lab JRE is headless (no compiler module, so no `java File.java`): the client is compiled here.
const javaSource = `import javax.net.ssl.*;
public final class TlsProbe {
  public static void main(String[] a) throws Exception {
    SSLSocketFactory f = (SSLSocketFactory) SSLSocketFactory.getDefault();
    try (SSLSocket s = (SSLSocket) f.createSocket(a[0], Integer.parseInt(a[1]))) {
      s.setSoTimeout(10000);
      s.startHandshake();
      System.out.println("trusted");
    } catch (SSLException e) {
      Throwable r = e;
      while (r.getCause() != null) r = r.getCause();
      System.out.println("untrusted " + r.getClass().getSimpleName());
      System.exit(3);
    }
  }
}
`;
function compileJavaProbe(): { classFile: string; dir: string } | string {
  const dir = mkdtempSync(join(tmpdir(), 'epoch-java-probe-'));
  writeFileSync(join(dir, 'TlsProbe.java'), javaSource);
  const r = spawnSync('javac', ['--release', '17', '-d', dir, join(dir, 'TlsProbe.java')], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `javac --release 17 is needed on the controller for the Java client (${r.error?.message ?? r.stderr.trim()})`;
  }
  return { classFile: join(dir, 'TlsProbe.class'), dir };
}

const javac = spawnSync('javac', ['-version'], { encoding: 'utf8' });
const skip = labSkipReason() ?? (javac.status === 0 ? undefined : 'javac (JDK 17+) is not installed on the controller; it compiles the Java TLS client');

const pyClient = `import sys, requests
try:
    r = requests.get('https://leaf.test:${port}/', timeout=10)
    print('status', r.status_code)
except requests.exceptions.SSLError as e:
    print('error SSLError', e)
    sys.exit(3)
`;

/** Lab host setup shared by both flavours: leaf + test server name, the compiled Java client, a pip-style certifi. */
async function prepareHost(lab: Lab, host: string, classFile: string): Promise<void> {
  await lab.execOk(host, ['sh', '-c', 'getent passwd epoch-agent >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin epoch-agent']);
  await lab.execOk(host, ['mkdir', '-p', '-m', '0755', testDir, `${pyPath}/certifi`, `${testDir}/app-jre`]);
  await lab.copyTo(host, fx('leaf.crt'), `${testDir}/leaf.crt`, 0o644);
  await lab.copyTo(host, fx('leaf.key'), `${testDir}/leaf.key`, 0o600);
  await lab.copyTo(host, classFile, `${testDir}/TlsProbe.class`, 0o644);
  await lab.execOk(host, ['sh', '-c', `grep -q ' leaf.test$' /etc/hosts || echo '127.0.0.1 leaf.test' >> /etc/hosts`]);
  // certifi as pip ships it: its own copy of the Mozilla roots, which never learns about the system store.
  await lab.execOk(host, ['sh', '-c', `cat /usr/share/ca-certificates/mozilla/*.crt > ${pyPath}/certifi/cacert.pem && printf '%s\\n' 'from .core import contents, where' > ${pyPath}/certifi/__init__.py && printf '%s\\n' 'import os' 'def where():' '    return os.path.join(os.path.dirname(__file__), "cacert.pem")' 'def contents():' '    return open(where(), encoding="ascii").read()' > ${pyPath}/certifi/core.py && chmod -R a+rX ${pyPath}`]);
  // An application's keystore, copied before the CA is in the system store (so it never contains it).
  await lab.execOk(host, ['sh', '-c', `cp -L "$(dirname "$(dirname "$(readlink -f "$(command -v keytool)")")")/lib/security/cacerts" ${appKeystore} && chmod 0644 ${appKeystore}`]);
}

const asService = (lab: Lab, host: string, argv: string[], env: string[] = []) =>
  lab.exec(host, ['systemd-run', '--wait', '--pipe', '--quiet', '-p', 'User=nobody', ...env.flatMap((e) => ['-E', e]), ...argv], { timeoutMs: 90_000 });
const python = (lab: Lab, host: string, withPipCertifi: boolean) =>
  asService(lab, host, ['python3', '-c', pyClient], withPipCertifi ? [`PYTHONPATH=${pyPath}`] : []);
const java = (lab: Lab, host: string, keystore?: string) =>
  asService(lab, host, [
    'java', '-Xshare:off', '-XX:TieredStopAtLevel=1',
    ...(keystore ? [`-Djavax.net.ssl.trustStore=${keystore}`, '-Djavax.net.ssl.trustStorePassword=changeit'] : []),
    '-cp', testDir, 'TlsProbe', '127.0.0.1', String(port),
  ]);
const out = (r: { stdout: string; stderr: string }) => `${r.stdout}${r.stderr}`.trim();
const line = (report: string[], needle: string) => report.find((l) => l.includes(needle)) ?? `(no line with ${needle}: ${report.join(' | ')})`;

/** The controller's JKS reader (what trust_coverage uses instead of a JVM) against keytool on the host itself. */
async function assertListedAsKeytoolDoes(lab: Lab, host: string, path: string): Promise<void> {
  const bytes = Buffer.from(await lab.execOk(host, ['base64', path]), 'base64');
  const keytool = parseKeytoolList(await lab.execOk(host, ['keytool', '-list', '-v', '-keystore', path, '-storepass', 'changeit'], { timeoutMs: 120_000 }));
  const ours = parseJks(bytes, 'changeit', `${host}: ${path}`);
  assert.ok(keytool.aliases.length > 100, `${path}: keytool lists ${keytool.aliases.length} entries`);
  // keytool prints a JKS store's entries in its hash table's order (the file keeps the writer's), and under LC_ALL=C
  // each non-ASCII character of an alias as '?' (Debian has `…_főtanúsítvány.pem`), which the reader decodes.
  const asKeytoolPrintsIt = (alias: string) => alias.replace(/[^\x00-\x7f]/gu, '?');
  assert.deepEqual(ours.aliases.map(asKeytoolPrintsIt).sort(), [...keytool.aliases].sort());
  assert.deepEqual([...ours.sha256].sort(), [...keytool.sha256].sort());
}

async function reportFor(t: Transport, host: string, raw: unknown): Promise<string[]> {
  const p = trustCoverageModule.params.parse(raw);
  const report = trustCoverageModule.report(p, await trustCoverageModule.gather({ name: host, vars: {}, transport: t }, p));
  console.log(report.map((l) => `    ${l}`).join('\n'));
  return report;
}

describe('trust coverage for python certifi and java cacerts on a debian host', { skip }, () => {
  let lab: Lab;
  let t: Transport;
  let probe: { classFile: string; dir: string };
  const host = 'deb1';
  const params = { cert_file: fx('ca-ec.crt'), python_paths: [pyPath], java_keystores: [appKeystore] };

  before(async () => {
    const compiled = compileJavaProbe();
    if (typeof compiled === 'string') throw new Error(compiled);
    probe = compiled;
    lab = await startLab({ hosts: 1, flavor: 'debian' });
    t = await connect(lab, host);
    await prepareHost(lab, host, probe.classFile);
  });
  after(async () => {
    await t?.close();
    await lab?.down();
    if (probe) rmSync(probe.dir, { recursive: true, force: true });
  });

  let jdkTrustsAfterRemoval: boolean | undefined;

  test('report is truthful before/after trust-store; fix_env + fix_java make pip certifi and an app keystore trust; undo and state: absent restore', async () => {
    await apply(caModule, { mode: 'import', cert_file: fx('ca-ec.crt'), key_file: fx('ca-ec.key') }, t);
    await startTlsServer(lab, host, 'epoch-ca-runtimes', port, `${testDir}/leaf.crt`, `${testDir}/leaf.key`);
    let trustUndo: Parameters<typeof executeSteps>[1] = [];
    try {
      const before = await reportFor(t, host, params);
      assert.match(line(before, 'python certifi (/etc/ssl/certs/ca-certificates.crt, the system bundle)'), /WOULD REJECT.*system bundle, which does not trust the CA yet/);
      assert.match(line(before, '/lib/security/cacerts -> /etc/ssl/certs/java/cacerts)'), /WOULD REJECT.*ca-certificates-java, which does not trust the CA yet/);
      assert.match((await java(lab, host)).stdout, /untrusted/, 'the JDK default store lacks the CA before trust-store');

      trustUndo = (await apply(trustStoreModule, { cert_file: params.cert_file }, t)).undo;
      const covered = await reportFor(t, host, params);
      assert.match(line(covered, 'python certifi (/etc/ssl/certs/ca-certificates.crt, the system bundle)'), /: trusts the CA$/);
      assert.match(line(covered, `PYTHONPATH=${pyPath}`), new RegExp(`certifi \\(${pyPath}/certifi/cacert.pem, PYTHONPATH=.*WOULD REJECT.*fix_env`));
      assert.match(line(covered, '-> /etc/ssl/certs/java/cacerts)'), /trusts the CA \(kept in sync with the system store by ca-certificates-java\)/);
      assert.match(line(covered, `(${appKeystore})`), /WOULD REJECT.*fix with fix_java/);
      // What the report says is what the clients do.
      const debianPy = await python(lab, host, false);
      assert.match(debianPy.stdout, /status 200/, `Debian requests/certifi follow the system bundle: ${out(debianPy)}`);
      const pipBefore = await python(lab, host, true);
      assert.match(pipBefore.stdout, /error SSLError/, `pip certifi ignores the system store: ${out(pipBefore)}`);
      const jdk = await java(lab, host);
      assert.match(jdk.stdout, /^trusted/, `the JDK cacerts got the CA through the ca-certificates-java hook: ${out(jdk)}`);
      const appBefore = await java(lab, host, appKeystore);
      assert.match(appBefore.stdout, /untrusted/, `the application keystore lacks the CA: ${out(appBefore)}`);

      const fixes = { ...params, fix_env: true, fix_java: true };
      // An application keystore may hold private keys: keytool lists it on the host, its bytes never come here
      // (fix_java's import gives it new content, which the check after the apply lists).
      const commands: (readonly string[])[] = [];
      const recording: Transport = { hostName: t.hostName, exec: (argv, o) => {
          commands.push(argv);
          return t.exec(argv, o);
        }, getFile: (p) => t.getFile(p), close: () => t.close() };
      const fixed = await apply(trustCoverageModule, fixes, recording);
      const keystoreReads = commands.filter((c) => c[3] === 'epoch-keystore').map((c) => c[4]);
      assert.ok(!keystoreReads.includes(appKeystore), `keystores whose bytes were read: ${keystoreReads.join(', ')}`);
      assert.ok(commands.some((c) => c[1] === '-list' && c.includes(appKeystore)), `keytool lists the app keystore: ${commands.map((c) => c.slice(0, 5).join(' ')).join('; ')}`);
      assert.deepEqual(fixed.changes.map((c) => c.id), [`env:${dropIn}`, `java:${appKeystore}`], 'the synced JDK store needs no import');
      assert.match(line(fixed.report, `PYTHONPATH=${pyPath}`), /trusts the CA via REQUESTS_CA_BUNDLE/);
      assert.match(line(fixed.report, `(${appKeystore})`), /trusts the CA \(alias epoch-provision-ca\)/);
      const pipFixed = await python(lab, host, true);
      assert.match(pipFixed.stdout, /status 200/, `REQUESTS_CA_BUNDLE from the drop-in: ${out(pipFixed)}`);
      assert.match(await lab.execOk(host, ['keytool', '-list', '-keystore', appKeystore, '-storepass', 'changeit', '-alias', 'epoch-provision-ca']), /epoch-provision-ca, .*trustedCertEntry/);
      const appFixed = await java(lab, host, appKeystore);
      assert.match(appFixed.stdout, /^trusted/, `the application keystore trusts the CA after fix_java: ${out(appFixed)}`);
      assert.deepEqual(await replan(trustCoverageModule, fixes, t), [], 'already converged');

      // Rollback: the undo the journal recorded.
      await executeSteps(t, fixed.undo);
      assert.equal((await lab.exec(host, ['test', '-e', dropIn])).exitCode, 1);
      assert.equal((await lab.exec(host, ['keytool', '-list', '-keystore', appKeystore, '-storepass', 'changeit', '-alias', 'epoch-provision-ca'])).exitCode, 1, 'alias removed');
      assert.match((await python(lab, host, true)).stdout, /error SSLError/, 'pip certifi rejects again after undo');
      assert.match((await java(lab, host, appKeystore)).stdout, /untrusted/, 'the application keystore rejects again after undo');
      assert.deepEqual((await replan(trustCoverageModule, fixes, t)).map((c) => c.id), [`env:${dropIn}`, `java:${appKeystore}`]);

      // state: absent removes both fixes too, and is then converged.
      await apply(trustCoverageModule, fixes, t);
      const removed = await apply(trustCoverageModule, { ...params, state: 'absent' }, t);
      assert.deepEqual(removed.changes.map((c) => c.id), [`env:${dropIn}`, `java:${appKeystore}`]);
      assert.deepEqual(await replan(trustCoverageModule, { ...params, state: 'absent' }, t), []);
      assert.match((await python(lab, host, true)).stdout, /error SSLError/, 'pip certifi rejects after state: absent');
      assert.match((await java(lab, host, appKeystore)).stdout, /untrusted/, 'the application keystore rejects after state: absent');

      // After the CA left the system store, the report still matches what Java does (see the removal test below).
      await executeSteps(t, [...trustUndo]);
      trustUndo = [];
      const removedReport = await reportFor(t, host, params);
      assert.match(line(removedReport, 'python certifi (/etc/ssl/certs/ca-certificates.crt, the system bundle)'), /WOULD REJECT/);
      const jdkAfter = await java(lab, host);
      jdkTrustsAfterRemoval = /^trusted/.test(jdkAfter.stdout);
      assert.equal(/: trusts the CA/.test(line(removedReport, '-> /etc/ssl/certs/java/cacerts)')), jdkTrustsAfterRemoval, `report vs Java client after removal: ${out(jdkAfter)}`);
    } finally {
      await stopUnit(lab, host, 'epoch-ca-runtimes');
      await executeSteps(t, trustUndo);
    }
  });

  test('the JKS reader lists the JDK cacerts and the app keystore (with our import undone) exactly as keytool does', async () => {
    await assertListedAsKeytoolDoes(lab, host, '/etc/ssl/certs/java/cacerts');
    await assertListedAsKeytoolDoes(lab, host, appKeystore);
  });

  // Known defect (trust-store module, Debian): update-ca-certificates reports removals to its hooks only for certs
  // listed in ca-certificates.conf, never for /usr/local/share/ca-certificates ones (with or without --fresh), so
  // ca-certificates-java keeps alias debian:<anchor>.pem in Java's cacerts after the CA was removed.
  test('trust-store removal also takes the CA out of Debian\'s Java cacerts', () => {
    assert.equal(jdkTrustsAfterRemoval, false);
  });
});

describe('trust coverage for java cacerts on a rhel-flavour host (update-ca-trust extracts it)', { skip }, () => {
  let lab: Lab;
  let t: Transport;
  let probe: { classFile: string; dir: string };
  const host = 'rhel1';
  const params = { cert_file: fx('ca-ec.crt'), python_paths: [pyPath] };

  before(async () => {
    const compiled = compileJavaProbe();
    if (typeof compiled === 'string') throw new Error(compiled);
    probe = compiled;
    lab = await startLab({ hosts: 1, flavor: 'rhel' });
    t = await connect(lab, host);
    await prepareHost(lab, host, probe.classFile);
  });
  after(async () => {
    await t?.close();
    await lab?.down();
    if (probe) rmSync(probe.dir, { recursive: true, force: true });
  });

  test('the extracted keystore follows the system store; fix_java refuses to import into it', async () => {
    await apply(caModule, { mode: 'import', cert_file: fx('ca-ec.crt'), key_file: fx('ca-ec.key') }, t);
    await startTlsServer(lab, host, 'epoch-ca-runtimes', port, `${testDir}/leaf.crt`, `${testDir}/leaf.key`);
    let trustUndo: Parameters<typeof executeSteps>[1] = [];
    try {
      const before = await reportFor(t, host, params);
      assert.match(line(before, '-> /etc/pki/ca-trust/extracted/java/cacerts)'), /WOULD REJECT.*extracted from the system store by update-ca-trust, which does not trust the CA yet/);
      await assert.rejects(replan(trustCoverageModule, { ...params, fix_java: true }, t), /extracted from the system store by update-ca-trust.*trust-store module/);

      trustUndo = (await apply(trustStoreModule, { cert_file: params.cert_file }, t)).undo;
      const covered = await reportFor(t, host, params);
      assert.match(line(covered, '-> /etc/pki/ca-trust/extracted/java/cacerts)'), /trusts the CA \(extracted from the system store by update-ca-trust\)/);
      assert.match(line(covered, 'python certifi (/etc/ssl/certs/ca-certificates.crt, the system bundle)'), /: trusts the CA$/);
      assert.match(line(covered, `PYTHONPATH=${pyPath}`), /WOULD REJECT.*fix_env/);
      assert.deepEqual(await replan(trustCoverageModule, { ...params, fix_java: true }, t), [], 'nothing to import once extracted');
      const jdk = await java(lab, host);
      assert.match(jdk.stdout, /^trusted/, `Java trusts the CA through the extracted keystore: ${out(jdk)}`);
      const py = await python(lab, host, false);
      assert.match(py.stdout, /status 200/, `python certifi follows the RHEL bundle: ${out(py)}`);

      await executeSteps(t, [...trustUndo]);
      trustUndo = [];
      const jdkAfter = await java(lab, host);
      assert.match(jdkAfter.stdout, /untrusted/, `removal from the system store reaches the extracted keystore: ${out(jdkAfter)}`);
    } finally {
      await stopUnit(lab, host, 'epoch-ca-runtimes');
      await executeSteps(t, trustUndo);
    }
  });

  test('the JKS reader lists the extracted cacerts exactly as keytool does', async () => {
    await assertListedAsKeytoolDoes(lab, host, '/etc/pki/ca-trust/extracted/java/cacerts');
  });
});
