// trust-coverage: runtimes that ignore the system trust store (Node's bundled roots, Python certifi, Java cacerts).
// gather detects which are on the host and whether each would trust the CA; `report` prints that per host before
// interception is switched on. Opt-in fixes, each with its undo:
//   fix_env  → /etc/systemd/system.conf.d/epoch-provision-ca.conf: DefaultEnvironment NODE_EXTRA_CA_CERTS and
//              REQUESTS_CA_BUNDLE pointing at the system bundle (so an old and a new CA are both covered during a
//              rotation), then `systemctl daemon-reexec`. Our own file, so add/remove never edits a shared one
//              (/etc/environment would need line edits and only affects PAM logins, not services).
//   fix_java → `keytool -importcert` of the CA into the JDK's cacerts under our alias.
import { z } from 'zod';
import { createCa } from '../../ca/create';
import { certFingerprint } from '../../ca/material';
import type { Change, Step } from '../../core/change';
import { bundleTrusts, hostCommandPath, probe, readHostFile } from '../ca/host-files';
import { certPemSource, loadCertFile, normalisePem } from '../ca/params';
import type { HostContext, ProvisionModule } from '../module';
import { parseOsRelease, trustFamilyOf, trustLayout } from '../trust-store/distro';

export const envDropInPath = '/etc/systemd/system.conf.d/epoch-provision-ca.conf';

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

export interface TrustCoverageFacts {
  host: string;
  desiredPem: string | null;
  desiredSource: string;
  bundleFile: string;
  /** Does the system bundle itself trust the CA (what OpenSSL-store users see)? */
  systemTrusts: boolean;
  nodes: NodeRuntime[];
  certifi: { path: string; trusts: boolean } | null;
  java: { keytool: string; cacerts: string; trusts: boolean; aliasPresent: boolean } | null;
  envDropIn: string | null;
  systemdRunning: boolean;
}

// Whether a node binary reads the OpenSSL default store (Debian's node does, an official build does not) cannot be read
// from process.config, so it is observed: a child node trusts a throwaway self-signed cert only through SSL_CERT_FILE,
// which only the OpenSSL default store honours. Temp files live in a private mkdtemp folder and are removed.
const nodeStoreChild = `const tls=require('tls');let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const {cert,key}=JSON.parse(s);const srv=tls.createServer({cert,key},c=>c.end());srv.listen(0,'127.0.0.1',()=>{const c=tls.connect({port:srv.address().port,host:'127.0.0.1',checkServerIdentity:()=>undefined},()=>{console.log('trusted');c.destroy();srv.close()});c.on('error',e=>{console.log('untrusted '+e.code);srv.close()})})})`;
export const nodeProbe = `const fs=require('fs'),os=require('os'),path=require('path'),cp=require('child_process'),tls=require('tls');let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const i=JSON.parse(s);const n=x=>x.replace(/\\s+/g,'');const d=fs.mkdtempSync(path.join(os.tmpdir(),'epoch-node-probe-'));try{fs.writeFileSync(path.join(d,'ca.pem'),i.cert);fs.mkdirSync(path.join(d,'certs'));const r=cp.spawnSync(process.execPath,['-e',${JSON.stringify(nodeStoreChild)}],{input:JSON.stringify({cert:i.cert,key:i.key}),env:{...process.env,SSL_CERT_FILE:path.join(d,'ca.pem'),SSL_CERT_DIR:path.join(d,'certs')},encoding:'utf8',timeout:15000});console.log(JSON.stringify({version:process.version,bundled:i.ours!==''&&tls.rootCertificates.some(c=>n(c)===n(i.ours)),system:/^trusted/.test(r.stdout||'')}))}finally{fs.rmSync(d,{recursive:true,force:true})}})`;

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
    const os = parseOsRelease((await readHostFile(t, '/etc/os-release')) ?? '');
    const bundleFile = trustLayout(trustFamilyOf(os)).bundleFile;
    const raw = params.cert_pem ?? (await readHostFile(t, params.host_cert_file));
    const desiredPem = raw === null ? null : normalisePem(raw);
    const facts: TrustCoverageFacts = {
      host: host.name,
      desiredPem,
      desiredSource: params.cert_pem !== undefined ? (params.cert_file ?? 'cert_pem') : `${host.name}:${params.host_cert_file}`,
      bundleFile,
      systemTrusts: desiredPem ? await bundleTrusts(t, bundleFile, desiredPem) : false,
      nodes: [],
      certifi: null,
      java: null,
      envDropIn: await readHostFile(t, envDropInPath),
      systemdRunning: (await probe(t, ['test', '-d', '/run/systemd/system'])).exitCode === 0,
    };
    const pem = desiredPem ?? '';

    const onPath = await hostCommandPath(t, 'node');
    const nodes = [...(onPath ? [onPath] : []), ...params.node_binaries];
    // A throwaway self-signed cert for the store probe; never installed anywhere.
    const probeCa = nodes.length ? createCa({ commonName: 'epoch-provision node store probe', days: 1 }) : null;
    const probeInput = probeCa ? JSON.stringify({ ours: pem, cert: probeCa.certPem, key: probeCa.key.revealPkcs8Pem() }) : '';
    for (const node of nodes) {
      const r = await probe(t, [node, '-e', nodeProbe], probeInput);
      if (r.exitCode !== 0) throw new Error(`${host.name}: probing ${node} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
      const out = JSON.parse(r.stdout) as { version: string; bundled: boolean; system: boolean };
      facts.nodes.push({ path: node, version: out.version, bundledTrusts: out.bundled, usesSystemStore: out.system });
    }
    const python = await hostCommandPath(t, 'python3');
    if (python) {
      const r = await probe(t, [python, '-c', 'import certifi; print(certifi.where())']);
      const path = r.stdout.trim();
      if (r.exitCode === 0 && path.startsWith('/')) facts.certifi = { path, trusts: desiredPem ? await bundleTrusts(t, path, pem) : false };
    }
    const keytool = await hostCommandPath(t, 'keytool');
    if (keytool) {
      const real = (await probe(t, ['readlink', '-f', keytool])).stdout.trim();
      const cacerts = real.replace(/\/bin\/keytool$/, '/lib/security/cacerts');
      const r = await probe(t, [keytool, '-list', '-v', '-keystore', cacerts, '-storepass', params.java_storepass]);
      if (r.exitCode === 0) {
        const fp = desiredPem ? certFingerprint(desiredPem) : '';
        facts.java = {
          keytool,
          cacerts,
          trusts: fp !== '' && r.stdout.toUpperCase().includes(`SHA256: ${fp}`),
          aliasPresent: new RegExp(`^Alias name: ${params.java_alias}$`, 'm').test(r.stdout),
        };
      }
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
    const keytoolArgs = java ? ['-keystore', java.cacerts, '-storepass', params.java_storepass] : [];
    const deleteAlias: Step[] = java ? [{ kind: 'run', argv: [java.keytool, '-delete', '-noprompt', '-alias', params.java_alias, ...keytoolArgs] }] : [];

    if (params.state === 'absent') {
      if (facts.envDropIn !== null) {
        changes.push({ id: `env:${envDropInPath}`, summary: `remove ${envDropInPath}`, diff: { subject: envDropInPath, before: facts.envDropIn, after: '' }, steps: [removeDropIn, ...reexec], undo: [putDropIn(facts.envDropIn), ...reexec] });
      }
      if (java?.aliasPresent) {
        changes.push({
          id: `java:${java.cacerts}`,
          summary: `remove alias ${params.java_alias} from ${java.cacerts}`,
          steps: deleteAlias,
          // Re-importable only while the CA certificate is still known.
          undo: facts.desiredPem ? [{ kind: 'run', argv: [java.keytool, '-importcert', '-noprompt', '-alias', params.java_alias, ...keytoolArgs], stdin: facts.desiredPem }] : null,
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
    if (params.fix_java && java && !java.trusts) {
      if (!facts.desiredPem) throw new Error(`${facts.host}: no CA certificate at ${facts.desiredSource} to import into ${java.cacerts}`);
      if (java.aliasPresent) throw new Error(`${facts.host}: ${java.cacerts} already has alias ${params.java_alias} for another certificate; remove it or choose java_alias`);
      changes.push({
        id: `java:${java.cacerts}`,
        summary: `import CA sha256 ${certFingerprint(facts.desiredPem)} into ${java.cacerts} as ${params.java_alias}`,
        steps: [{ kind: 'run', argv: [java.keytool, '-importcert', '-noprompt', '-alias', params.java_alias, ...keytoolArgs], stdin: facts.desiredPem }],
        undo: deleteAlias,
      });
    }
    return changes;
  },

  report(params: TrustCoverageParams, facts: TrustCoverageFacts): string[] {
    return coverageReport(params, facts);
  },
};

/** Per-host lines: each private-store runtime found, and whether it would trust the CA. */
export function coverageReport(_params: TrustCoverageParams, f: TrustCoverageFacts): string[] {
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
  if (f.certifi) {
    const ok = f.certifi.trusts || pyEnv;
    lines.push(`  python certifi (${f.certifi.path}): ${verdict(ok)}${f.certifi.trusts ? '' : pyEnv ? ' via REQUESTS_CA_BUNDLE (systemd drop-in)' : '; fix with fix_env (REQUESTS_CA_BUNDLE)'}`);
  } else lines.push('  python certifi: not found');
  if (f.java) lines.push(`  java cacerts (${f.java.cacerts}): ${verdict(f.java.trusts)}${f.java.trusts ? '' : '; fix with fix_java (keytool import)'}`);
  else lines.push('  java keytool: not found');
  return lines;
}
