// trust-coverage: runtimes that ignore the system trust store (Node's bundled roots, Python certifi, Java cacerts).
// gather detects which are on the host and whether each would trust the CA; `report` prints that per host before
// interception is switched on. Opt-in fixes, each with its undo:
//   fix_env  → /etc/systemd/system.conf.d/epoch-provision-ca.conf: DefaultEnvironment NODE_EXTRA_CA_CERTS and
//              REQUESTS_CA_BUNDLE pointing at the system bundle (so an old and a new CA are both covered during a
//              rotation), then `systemctl daemon-reexec`. Our own file, so add/remove never edits a shared one
//              (/etc/environment would need line edits and only affects PAM logins, not services).
//   fix_java → `keytool -importcert` of the CA into the JDK's cacerts (and any java_keystores) under our alias.
// Distro-maintained stores are reported as such: Debian's python3-certifi returns the system bundle itself, Debian's
// JDK cacerts is kept in sync with the system store by ca-certificates-java's update-ca-certificates hook, and RHEL's
// is extracted by update-ca-trust (so a keytool import there would be overwritten: fix_java refuses it).
// Private copies the system store does not reach are named through params: python_paths (a pip/venv site-packages
// with its own certifi, probed as PYTHONPATH) and java_keystores (an application JRE's cacerts or its trustStore).
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { createCa } from '../../ca/create';
import { certFingerprint } from '../../ca/material';
import type { Change, Step } from '../../core/change';
import type { ExecResult } from '../../transport/transport';
import { knownIdentities } from '../../facts/binary-identity';
import { type BatchProbe, bundleTrustsFileProbe, bundleTrustsFrom, bundleTrustsMemoKey, bundleTrustsProbe, commandPathArgv, commandPathFrom, fileFrom, probe, probeAll, readFileArgv } from '../ca/host-files';
import { certPemSource, loadCertFile, normalisePem } from '../ca/params';
import type { HostContext, ProvisionModule } from '../module';
import { type OsRelease, osReleaseFromFacts, parseOsRelease, trustFamilyOf, trustLayout } from '../trust-store/distro';
import { isJksFormat, keystoreListings, parseJks, parseKeytoolList } from './keystore-listing';
import { isNodeProbeResult, type NodeProbeResult, nodeIdentityArgv, nodeOnPathFrom, nodeOnPathIdentityArgv, nodeProbeKey, nodeProbeResults, parseNodeIdentity } from './node-probe-cache';

export const envDropInPath = '/etc/systemd/system.conf.d/epoch-provision-ca.conf';

const keytoolTimeoutMs = 180_000;

export const trustCoverageParams = z
  .object({
    ...certPemSource,
    fix_env: z.boolean().default(false),
    fix_java: z.boolean().default(false),
    /** absent: remove both fixes if present (what rollback does too, through the journal's undo steps). */
    state: z.enum(['present', 'absent']).default('present'),
    java_alias: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/).default('epoch-provision-ca'),
    java_storepass: z.string().min(6).default('changeit'),
    /** Node binaries besides the one on PATH (applications that ship their own runtime). */
    node_binaries: z.array(z.string().startsWith('/')).default([]),
    /** site-packages folders of applications that ship their own (pip) certifi; each is probed as PYTHONPATH. */
    python_paths: z.array(z.string().startsWith('/')).default([]),
    /** Java keystores besides the JDK's default cacerts (an application's own JRE, or its javax.net.ssl.trustStore). */
    java_keystores: z.array(z.string().startsWith('/')).default([]),
  })
  .strict()
  .transform(loadCertFile);

export type TrustCoverageParams = z.output<typeof trustCoverageParams>;

export interface NodeRuntime {
  path: string;
  version: string;
  /** The CA is among the roots compiled into this node. */
  bundledTrusts: boolean;
  /** Reads the OpenSSL default (system) store instead of its bundled roots: Debian's node, or --use-openssl-ca in
   * NODE_OPTIONS. Observed by the probe, not guessed from build flags. */
  usesSystemStore: boolean;
}

export interface CertifiBundle {
  /** certifi.where() */
  path: string;
  /** The PYTHONPATH it was found with (null: the host's default python3 path). */
  pythonPath: string | null;
  /** where() resolves to the system bundle (Debian/RHEL patch their certifi to it). */
  systemBundle: boolean;
  trusts: boolean;
}

/** Who regenerates a keystore from the system store, if anyone. */
export type KeystoreManager = 'ca-certificates-java' | 'update-ca-trust' | null;

export interface JavaKeystore {
  path: string;
  /** The file the path resolves to (the JDK's cacerts is a symlink on Debian and RHEL). */
  realPath: string;
  managedBy: KeystoreManager;
  trusts: boolean;
  aliasPresent: boolean;
}

export interface TrustCoverageFacts {
  host: string;
  desiredPem: string | null;
  desiredSource: string;
  bundleFile: string;
  /** Does the system bundle itself trust the CA (what OpenSSL-store users see)? */
  systemTrusts: boolean;
  nodes: NodeRuntime[];
  certifi: CertifiBundle[];
  java: { keytool: string; keystores: JavaKeystore[] } | null;
  envDropIn: string | null;
  systemdRunning: boolean;
}

// Whether a node binary reads the OpenSSL default store (Debian's node does, an official build does not) cannot be read
// from process.config, so it is observed: a child node trusts a throwaway self-signed cert only through SSL_CERT_FILE,
// which only the OpenSSL default store honours. Temp files live in a private mkdtemp folder and are removed.
const nodeStoreChild = `const tls=require('tls');let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const {cert,key}=JSON.parse(s);const srv=tls.createServer({cert,key},c=>c.end());srv.listen(0,'127.0.0.1',()=>{const c=tls.connect({port:srv.address().port,host:'127.0.0.1',checkServerIdentity:()=>undefined},()=>{console.log('trusted');c.destroy();srv.close()});c.on('error',e=>{console.log('untrusted '+e.code);srv.close()})})})`;
export const nodeProbe = `const fs=require('fs'),os=require('os'),path=require('path'),cp=require('child_process'),tls=require('tls');let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const i=JSON.parse(s);const n=x=>x.replace(/\\s+/g,'');const d=fs.mkdtempSync(path.join(os.tmpdir(),'epoch-node-probe-'));try{fs.writeFileSync(path.join(d,'ca.pem'),i.cert);fs.mkdirSync(path.join(d,'certs'));const r=cp.spawnSync(process.execPath,['-e',${JSON.stringify(nodeStoreChild)}],{input:JSON.stringify({cert:i.cert,key:i.key}),env:{...process.env,SSL_CERT_FILE:path.join(d,'ca.pem'),SSL_CERT_DIR:path.join(d,'certs')},encoding:'utf8',timeout:15000});console.log(JSON.stringify({version:process.version,bundled:i.ours!==''&&tls.rootCertificates.some(c=>n(c)===n(i.ours)),system:/^trusted/.test(r.stdout||'')}))}finally{fs.rmSync(d,{recursive:true,force:true})}})`;

// certifi.where() for one python (argv after the script), then where that path resolves to.
const certifiScript = `w=$("$@") || exit $?
printf '%s\\n' "$w"
readlink -f -- "$w" || true`;

// Args: keytool, then extra keystores. The JDK's cacerts is found beside the real keytool; for each keystore its
// content hash (the keytool listing cache key) and real path; and whether Debian's ca-certificates-java hook is there.
const keystoreScript = `kt=$1; shift
real=$(readlink -f -- "$kt")
case $real in */bin/keytool) cacerts=\${real%/bin/keytool}/lib/security/cacerts ;; *) cacerts=$real ;; esac
if [ -x /etc/ca-certificates/update.d/jks-keystore ]; then echo hook=yes; else echo hook=no; fi
for ks in "$cacerts" "$@"; do
  printf 'store=%s\\n' "$ks"
  if s=$(sha256sum -- "$ks" 2>/dev/null); then printf 'sha=%s\\n' "\${s%% *}"; else echo sha=; fi
  printf 'realpath=%s\\n' "$(readlink -f -- "$ks")"
done`;

// A keystore's bytes, base64 (exit 3 above 8 MiB: such a file is left to keytool). Args: the path.
const keystoreBytesScript = `n=$(wc -c < "$1") || exit 1
[ "$n" -le 8388608 ] || exit 3
exec base64 -- "$1"`;

// keystoreScript for the keytool on PATH (no output where there is none). Args: the extra keystores.
const keystoreOnPathScript = `kt=$(command -v keytool 2>/dev/null) || exit 0
case $kt in /*) ;; *) exit 0 ;; esac
set -- "$kt" "$@"
${keystoreScript}`;

export interface KeystoreProbe {
  debianHook: boolean;
  stores: { path: string; contentSha256: string | undefined; realPath: string }[];
}

export function parseKeystoreProbe(r: ExecResult): KeystoreProbe {
  if (r.exitCode !== 0) throw new Error(`keystore probe \`${r.command}\` exited ${r.exitCode}: ${r.stderr.trim()}`);
  const out: KeystoreProbe = { debianHook: false, stores: [] };
  for (const line of r.stdout.split('\n')) {
    const eq = line.indexOf('=');
    const [key, value] = [line.slice(0, eq), line.slice(eq + 1)];
    const last = out.stores[out.stores.length - 1];
    if (key === 'hook') out.debianHook = value === 'yes';
    else if (key === 'store') out.stores.push({ path: value, contentSha256: undefined, realPath: '' });
    else if (key === 'sha' && last) last.contentSha256 = /^[0-9a-f]{64}$/.test(value) ? value : undefined;
    else if (key === 'realpath' && last) last.realPath = value.trim();
  }
  return out;
}

export function renderEnvDropIn(bundleFile: string): string {
  return `# Managed by epoch-provision (trust-coverage): runtimes with private CA stores also trust the system bundle.
# Services pick this up after \`systemctl daemon-reexec\` when they next start.
[Manager]
DefaultEnvironment=NODE_EXTRA_CA_CERTS=${bundleFile} REQUESTS_CA_BUNDLE=${bundleFile}
`;
}

export const trustCoverageModule: ProvisionModule<TrustCoverageParams, TrustCoverageFacts> & {
  report(params: TrustCoverageParams, facts: TrustCoverageFacts): string[];
} = {
  name: 'trust_coverage',
  params: trustCoverageParams,

  async gather(host: HostContext, params: TrustCoverageParams): Promise<TrustCoverageFacts> {
    const t = host.transport;
    // Read-only probes batched. With the distro from the run's host facts, a converged host is ONE round trip: what
    // is there and what it says (node identities, certifi, keystore hashes, the system bundle check). Without facts,
    // os-release comes first and the bundle's two probes follow. Then only what the controller cache cannot answer
    // (node probes, private certifi bundles), and keytool listings (own timeout).
    const knownOs = osReleaseFromFacts(host.vars);
    const known = knownIdentities(host.memo);
    const given = params.cert_pem === undefined ? null : normalisePem(params.cert_pem);
    const first: BatchProbe[] = [];
    const add = (p: BatchProbe) => first.push(p) - 1;
    const osProbe = knownOs ? -1 : add({ argv: readFileArgv('/etc/os-release') });
    const certProbe = given === null ? add({ argv: readFileArgv(params.host_cert_file) }) : -1;
    const dropInProbe = add({ argv: readFileArgv(envDropInPath) });
    const systemdProbe = add({ argv: ['test', '-d', '/run/systemd/system'] });
    const nodeOnPathProbe = add({ argv: nodeOnPathIdentityArgv(known) });
    const extraNodeProbes = params.node_binaries.map((node) => add({ argv: nodeIdentityArgv(node, known) }));
    const pythonProbe = add({ argv: commandPathArgv('python3') });
    // certifi.where() through python3 on PATH (nothing to report where it is missing).
    const pythonPaths = [null, ...params.python_paths];
    const certifiProbes = pythonPaths.map((pythonPath) => {
      const argv = ['python3', '-c', 'import certifi; print(certifi.where())'];
      return add({ argv: ['sh', '-c', certifiScript, 'epoch-certifi', ...(pythonPath === null ? argv : ['env', `PYTHONPATH=${pythonPath}`, ...argv])] });
    });
    const keytoolProbe = add({ argv: commandPathArgv('keytool') });
    const javaProbe = add({ argv: ['sh', '-c', keystoreOnPathScript, 'epoch-keystores', ...params.java_keystores] });
    // The system bundle: where it resolves (is certifi's bundle the same file?) and whether it trusts the CA (the
    // PEM we hold, else the host's CA file, read in this same call; trust_store asked the same earlier in the run).
    const trustKey = (bundleFile: string) => bundleTrustsMemoKey(bundleFile, given !== null ? { pem: given } : { file: params.host_cert_file });
    const bundleProbes = (bundleFile: string): BatchProbe[] => [
      { argv: ['readlink', '-f', bundleFile] },
      ...(host.memo?.get<boolean>(trustKey(bundleFile)) !== undefined ? [] : [given !== null ? bundleTrustsProbe(bundleFile, given) : bundleTrustsFileProbe(bundleFile, params.host_cert_file)]),
    ];
    const bundleOf = (os: OsRelease) => trustLayout(trustFamilyOf(os)).bundleFile;
    const bundleAt = knownOs ? first.length : -1;
    if (knownOs) first.push(...bundleProbes(bundleOf(knownOs)));
    const r1 = await probeAll(t, first, keytoolTimeoutMs);
    const at = (i: number) => r1[i]!;
    const bundleFile = bundleOf(knownOs ?? parseOsRelease(fileFrom(at(osProbe), '/etc/os-release') ?? ''));
    const [realBundleR, systemVerifyR] = knownOs ? [at(bundleAt), r1[bundleAt + 1]] : await probeAll(t, bundleProbes(bundleFile));
    const realBundle = realBundleR!.stdout.trim();
    let bundleTrusts = host.memo?.get<boolean>(trustKey(bundleFile));
    if (bundleTrusts === undefined) {
      bundleTrusts = bundleTrustsFrom(systemVerifyR!);
      host.memo?.set(trustKey(bundleFile), bundleTrusts);
    }

    const raw = given ?? fileFrom(at(certProbe), params.host_cert_file);
    const desiredPem = raw === null ? null : normalisePem(raw);
    const pem = desiredPem ?? '';
    const onPath = nodeOnPathFrom(at(nodeOnPathProbe));
    const nodes = [...(onPath ? [onPath] : []), ...params.node_binaries];
    const identityResults = [...(onPath ? [at(nodeOnPathProbe)] : []), ...extraNodeProbes.map((i) => at(i))];
    const python = commandPathFrom(at(pythonProbe));
    if (!python && params.python_paths.length) {
      throw new Error(`${host.name}: python_paths given (${params.python_paths.join(', ')}) but python3 is not on PATH`);
    }
    const keytool = commandPathFrom(at(keytoolProbe));
    if (!keytool && params.java_keystores.length) {
      throw new Error(`${host.name}: java_keystores given (${params.java_keystores.join(', ')}) but keytool is not on PATH`);
    }
    const facts: TrustCoverageFacts = {
      host: host.name,
      desiredPem,
      desiredSource: params.cert_pem !== undefined ? (params.cert_file ?? 'cert_pem') : `${host.name}:${params.host_cert_file}`,
      bundleFile,
      systemTrusts: desiredPem ? bundleTrusts : false,
      nodes: [],
      certifi: [],
      java: null,
      envDropIn: fileFrom(at(dropInProbe), envDropInPath),
      systemdRunning: at(systemdProbe).exitCode === 0,
    };

    // Third round trip: node probes the cache cannot answer, and certifi bundles that are not the system bundle.
    const third: BatchProbe[] = [];
    const pending: Promise<unknown>[] = [];
    // A throwaway self-signed cert for the store probe; never installed anywhere.
    let probeInput: string | null = null;
    const nodeResults: (NodeProbeResult | null)[] = nodes.map(() => null);
    const nodeMisses: { index: number; probe: number; key: string | null }[] = [];
    for (const [i, node] of nodes.entries()) {
      const identity = parseNodeIdentity(identityResults[i]!, host.memo);
      const key = identity.lines ? nodeProbeKey(host.name, node, identity.lines, pem, nodeProbe) : null;
      const hit = key ? nodeProbeResults.peek(key) : null;
      if (hit) {
        nodeResults[i] = hit;
        continue;
      }
      if (probeInput === null) {
        const probeCa = createCa({ commonName: 'epoch-provision node store probe', days: 1 });
        probeInput = JSON.stringify({ ours: pem, cert: probeCa.certPem, key: probeCa.key.revealPkcs8Pem() });
      }
      nodeMisses.push({ index: i, probe: third.push({ argv: [node, '-e', nodeProbe], stdin: probeInput }) - 1, key });
    }
    const certifiFound: { path: string; pythonPath: string | null; real: string; verify: number }[] = [];
    for (const [j, pythonPath] of (python ? pythonPaths : []).entries()) {
      const c = at(certifiProbes[j]!);
      const [path = '', real = ''] = c.stdout.split('\n').map((l) => l.trim());
      if (c.exitCode !== 0 || !path.startsWith('/')) {
        if (pythonPath === null) continue; // no certifi installed for the host's python3
        throw new Error(`${host.name}: no certifi importable with PYTHONPATH=${pythonPath} (exit ${c.exitCode}): ${c.stderr.trim().split('\n').pop()}`);
      }
      if (certifiFound.some((f) => f.path === path)) continue;
      const systemBundle = real !== '' && real === realBundle;
      // The system bundle's answer is already known (same file); any other bundle is verified on the host.
      const verify = desiredPem && !systemBundle ? third.push(bundleTrustsProbe(path, desiredPem)) - 1 : -1;
      certifiFound.push({ path, pythonPath, real, verify });
    }
    const r3 = third.length ? await probeAll(t, third, 60_000) : [];
    for (const miss of nodeMisses) {
      const node = nodes[miss.index]!;
      const r = r3[miss.probe]!;
      if (r.exitCode !== 0) throw new Error(`${host.name}: probing ${node} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
      const out = JSON.parse(r.stdout) as NodeProbeResult;
      if (!isNodeProbeResult(out)) throw new Error(`${host.name}: probing ${node} printed an unexpected answer: ${r.stdout.trim()}`);
      nodeResults[miss.index] = out;
      if (miss.key) pending.push(nodeProbeResults.get(miss.key, async () => out));
    }
    await Promise.all(pending);
    for (const [i, node] of nodes.entries()) {
      const out = nodeResults[i];
      if (!out) throw new Error(`${host.name}: no probe result for ${node}`);
      facts.nodes.push({ path: node, version: out.version, bundledTrusts: out.bundled, usesSystemStore: out.system });
    }
    for (const c of certifiFound) {
      const trusts = desiredPem ? (c.verify >= 0 ? bundleTrustsFrom(r3[c.verify]!) : facts.systemTrusts) : false;
      facts.certifi.push({ path: c.path, pythonPath: c.pythonPath, systemBundle: c.real !== '' && c.real === realBundle, trusts });
    }

    if (keytool) {
      const k = parseKeystoreProbe(at(javaProbe));
      const fp = desiredPem ? certFingerprint(desiredPem) : '';
      const keystores: JavaKeystore[] = [];
      for (const [index, store] of k.stores.entries()) {
        const path = store.path;
        const realPath = store.realPath;
        const managedBy: KeystoreManager =
          realPath === '/etc/ssl/certs/java/cacerts' && k.debianHook ? 'ca-certificates-java' : realPath === '/etc/pki/ca-trust/extracted/java/cacerts' ? 'update-ca-trust' : null;
        // Only trust stores travel to the controller: the JDK's cacerts (the first store) and the distro-built ones.
        // An application keystore from java_keystores may also hold private keys, so keytool lists it on the host.
        const trustStoreOnly = index === 0 || managedBy !== null;
        // keytool starts a JVM: seconds each, and far more with a whole batch of hosts doing it on shared cores.
        const keytoolList = async () => {
          const r = await probe(t, [keytool, '-list', '-v', '-keystore', path, '-storepass', params.java_storepass], undefined, keytoolTimeoutMs);
          if (r.timedOut) throw new Error(`${host.name}: keytool -list ${path} timed out after ${keytoolTimeoutMs / 1000} s`);
          if (r.exitCode !== 0) throw new Error(`${host.name}: keytool -list ${path} failed (exit ${r.exitCode}): ${(r.stdout + r.stderr).trim().split('\n').pop()}`);
          return parseKeytoolList(r.stdout);
        };
        // A JKS file (every distro's cacerts) is read here instead: one base64 of ~160 KB instead of a JVM start.
        const list = async () => {
          if (!trustStoreOnly) return keytoolList();
          const r = await probe(t, ['sh', '-c', keystoreBytesScript, 'epoch-keystore', path]);
          const bytes = r.exitCode === 0 ? Buffer.from(r.stdout, 'base64') : null;
          if (!bytes || !isJksFormat(bytes)) return keytoolList();
          const sha = createHash('sha256').update(bytes).digest('hex');
          if (store.contentSha256 && sha !== store.contentSha256.toLowerCase()) {
            throw new Error(`${host.name}: ${path} changed while it was being read (sha256 ${store.contentSha256}, then ${sha}); run again`);
          }
          return parseJks(bytes, params.java_storepass, `${host.name}: ${path}`);
        };
        // So a keystore is listed once per distinct content, not once per host and run (keystore-listing.ts).
        const listing = store.contentSha256 ? await keystoreListings.get(store.contentSha256, params.java_storepass, list) : await list();
        keystores.push({
          path,
          realPath,
          managedBy,
          trusts: fp !== '' && listing.sha256.includes(fp.toUpperCase()),
          aliasPresent: listing.aliases.includes(params.java_alias),
        });
      }
      facts.java = { keytool, keystores };
    }
    return facts;
  },

  plan(params: TrustCoverageParams, facts: TrustCoverageFacts): Change[] {
    const changes: Change[] = [];
    const reexec: Step[] = facts.systemdRunning ? [{ kind: 'run', argv: ['systemctl', 'daemon-reexec'], timeoutMs: 60_000 }] : [];
    const desiredDropIn = renderEnvDropIn(facts.bundleFile);
    const putDropIn = (content: string): Step => ({ kind: 'put', path: envDropInPath, content, mode: 0o644, owner: 'root:root' });
    const removeDropIn: Step = { kind: 'run', argv: ['rm', '-f', '--', envDropInPath] };
    const java = facts.java;
    const keytoolArgs = (store: JavaKeystore) => ['-keystore', store.path, '-storepass', params.java_storepass];
    const deleteAlias = (keytool: string, store: JavaKeystore): Step[] => [{ kind: 'run', argv: [keytool, '-delete', '-noprompt', '-alias', params.java_alias, ...keytoolArgs(store)] }];
    const importCa = (keytool: string, store: JavaKeystore, pem: string): Step[] => [{ kind: 'run', argv: [keytool, '-importcert', '-noprompt', '-alias', params.java_alias, ...keytoolArgs(store)], stdin: pem }];

    if (params.state === 'absent') {
      if (facts.envDropIn !== null) {
        changes.push({ id: `env:${envDropInPath}`, summary: `remove ${envDropInPath}`, diff: { subject: envDropInPath, before: facts.envDropIn, after: '' }, steps: [removeDropIn, ...reexec], undo: [putDropIn(facts.envDropIn), ...reexec] });
      }
      for (const store of java?.keystores ?? []) {
        if (!java || !store.aliasPresent) continue;
        changes.push({
          id: `java:${store.path}`,
          summary: `remove alias ${params.java_alias} from ${store.path}`,
          steps: deleteAlias(java.keytool, store),
          // Re-importable only while the CA certificate is still known.
          undo: facts.desiredPem ? importCa(java.keytool, store, facts.desiredPem) : null,
        });
      }
      return changes;
    }

    if (params.fix_env && facts.envDropIn !== desiredDropIn) {
      changes.push({
        id: `env:${envDropInPath}`,
        summary: `${facts.envDropIn === null ? 'add' : 'update'} ${envDropInPath}: NODE_EXTRA_CA_CERTS and REQUESTS_CA_BUNDLE = ${facts.bundleFile} for every service`,
        diff: { subject: envDropInPath, before: facts.envDropIn ?? '', after: desiredDropIn },
        steps: [putDropIn(desiredDropIn), ...reexec],
        undo: facts.envDropIn === null ? [removeDropIn, ...reexec] : [putDropIn(facts.envDropIn), ...reexec],
      });
    }
    for (const store of params.fix_java && java ? java.keystores : []) {
      if (!java || store.trusts) continue;
      if (!facts.desiredPem) throw new Error(`${facts.host}: no CA certificate at ${facts.desiredSource} to import into ${store.path}`);
      if (store.managedBy === 'update-ca-trust') {
        throw new Error(`${facts.host}: ${store.path} is extracted from the system store by update-ca-trust (an import would be overwritten); install the CA with the trust-store module instead of fix_java`);
      }
      if (store.aliasPresent) throw new Error(`${facts.host}: ${store.path} already has alias ${params.java_alias} for another certificate; remove it or choose java_alias`);
      changes.push({
        id: `java:${store.path}`,
        summary: `import CA sha256 ${certFingerprint(facts.desiredPem)} into ${store.path} as ${params.java_alias}`,
        steps: importCa(java.keytool, store, facts.desiredPem),
        undo: deleteAlias(java.keytool, store),
      });
    }
    return changes;
  },

  report(params: TrustCoverageParams, facts: TrustCoverageFacts): string[] {
    return coverageReport(params, facts);
  },
};

/** Per-host lines: each private-store runtime found, and whether it would trust the CA. */
export function coverageReport(params: TrustCoverageParams, f: TrustCoverageFacts): string[] {
  if (!f.desiredPem) return [`${f.host}: trust coverage unknown: no CA certificate at ${f.desiredSource}`];
  const fp = certFingerprint(f.desiredPem);
  const env = f.envDropIn ?? '';
  const nodeEnv = env.includes('NODE_EXTRA_CA_CERTS=');
  const pyEnv = env.includes('REQUESTS_CA_BUNDLE=');
  const lines = [`${f.host}: trust coverage for CA sha256 ${fp} (system bundle ${f.bundleFile})`];
  const verdict = (ok: boolean) => (ok ? 'trusts the CA' : 'WOULD REJECT intercepted connections');
  for (const node of f.nodes) {
    const how = node.bundledTrusts
      ? ' (among its bundled roots)'
      : node.usesSystemStore && f.systemTrusts
        ? ' (it reads the system store)'
        : nodeEnv
          ? ' via NODE_EXTRA_CA_CERTS (systemd drop-in, services only)'
          : node.usesSystemStore
            ? '; it reads the system store, which does not trust the CA yet (trust-store module)'
            : '; bundled roots only: fix with fix_env (NODE_EXTRA_CA_CERTS)';
    const ok = node.bundledTrusts || (node.usesSystemStore && f.systemTrusts) || nodeEnv;
    lines.push(`  node ${node.version} (${node.path}): ${verdict(ok)}${how}`);
  }
  if (f.nodes.length === 0) lines.push('  node: not found');
  for (const c of f.certifi) {
    const ok = c.trusts || pyEnv;
    const where = `${c.path}${c.pythonPath ? `, PYTHONPATH=${c.pythonPath}` : ''}${c.systemBundle ? ', the system bundle' : ''}`;
    const how = c.trusts
      ? ''
      : pyEnv
        ? ' via REQUESTS_CA_BUNDLE (systemd drop-in, services only)'
        : c.systemBundle
          ? '; it is the system bundle, which does not trust the CA yet (trust-store module)'
          : '; own bundle: fix with fix_env (REQUESTS_CA_BUNDLE)';
    lines.push(`  python certifi (${where}): ${verdict(ok)}${how}`);
  }
  if (f.certifi.length === 0) lines.push('  python certifi: not found');
  for (const k of f.java?.keystores ?? []) {
    const managed = k.managedBy === 'ca-certificates-java' ? 'kept in sync with the system store by ca-certificates-java' : k.managedBy === 'update-ca-trust' ? 'extracted from the system store by update-ca-trust' : '';
    const how = k.trusts
      ? managed && !k.aliasPresent ? ` (${managed})` : k.aliasPresent ? ` (alias ${params.java_alias})` : ''
      : managed && f.systemTrusts
        ? `; ${managed}, but it did not get the CA the system store trusts (${k.managedBy === 'ca-certificates-java' ? 'is ca-certificates-java configured? dpkg --configure -a' : 'run update-ca-trust extract'})`
        : managed
          ? `; ${managed}, which does not trust the CA yet (trust-store module)`
        : '; fix with fix_java (keytool import)';
    lines.push(`  java keystore (${k.path}${k.realPath && k.realPath !== k.path ? ` -> ${k.realPath}` : ''}): ${verdict(k.trusts)}${how}`);
  }
  if (!f.java) lines.push('  java keytool: not found');
  return lines;
}
