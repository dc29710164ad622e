// epoch-agent's commands: run, check-config, ca init, ca fingerprint, --version.
import { X509Certificate } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { AgentConfig } from '../../../contracts/agent-config';
import { fingerprintSha256, generateCa } from '../certs/ca';
import { ConfigError, validateConfig } from '../config/schema';
import { loadConfigFile, parseListenFlag } from '../config/load';
import { Agent } from '../io/agent';
import { dropPrivileges, resolveAccount } from '../io/privileges';
import { Logger } from '../log/logger';
import type { ObservationSink } from '../observe/observer';
import { UsageError, parseArgs } from './args';

export const usage = `usage:
  epoch-agent run --config FILE [--listen [ADDR:]PORT] [--health [ADDR:]PORT] [--user NAME]
  epoch-agent run --listen [ADDR:]PORT --ca-cert FILE --ca-key FILE [--health [ADDR:]PORT] [--user NAME]
                  [--upstream-ca FILE] [--state-dir DIR] [--log-level debug|info|warn|error] [--no-connect-log]
  epoch-agent check-config FILE
  epoch-agent ca init --cert-out FILE --key-out FILE [--name CN] [--days N]
  epoch-agent ca fingerprint FILE
  epoch-agent --version`;

/** How long SIGTERM waits for open connections before closing them. */
export const DRAIN_MS = 10_000;

export interface CliContext {
  version: string;
  /** Supplied by main when an observation sink exists (agent/src/observe); null means relay only. */
  makeSink?: (config: AgentConfig, agent: Agent) => ObservationSink | null;
  /** Runs after the drain on SIGTERM (flushes metrics). */
  onStop?: () => Promise<void>;
  out?: (s: string) => void;
  err?: (s: string) => void;
}

export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const out = ctx.out ?? ((s) => process.stdout.write(s));
  const err = ctx.err ?? ((s) => process.stderr.write(s));
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case '--version':
      case 'version':
        out(`epoch-agent ${ctx.version} node ${process.version}\n`);
        return 0;
      case 'check-config':
        return checkConfig(rest, out, err);
      case 'ca':
        return caCommand(rest, out);
      case 'run':
        return await run(rest, ctx, err);
      default:
        err(`${command ? `unknown command ${JSON.stringify(command)}\n` : ''}${usage}\n`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`epoch-agent: ${e.message}\n${usage}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      err(`${e.message}\n`);
      return 2;
    }
    err(`epoch-agent: ${(e as Error).message}\n`);
    return 1;
  }
}

function checkConfig(argv: string[], out: (s: string) => void, err: (s: string) => void): number {
  const { positional } = parseArgs(argv, []);
  if (positional.length !== 1) throw new UsageError('check-config needs exactly one FILE');
  try {
    loadConfigFile(positional[0]!);
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
  out(`${positional[0]}: ok\n`);
  return 0;
}

/** Writes a new file that must not exist yet; `mode` applies at creation (0600 for keys). */
function writeNewFile(path: string, data: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${path} already exists; refusing to overwrite a CA file`);
    throw e;
  }
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function caCommand(argv: string[], out: (s: string) => void): number {
  const [sub, ...rest] = argv;
  if (sub === 'fingerprint') {
    const { positional } = parseArgs(rest, []);
    if (positional.length !== 1) throw new UsageError('ca fingerprint needs exactly one FILE');
    out(`${fingerprintSha256(new X509Certificate(readFileSync(positional[0]!)))}\n`);
    return 0;
  }
  if (sub !== 'init') throw new UsageError(`unknown ca subcommand ${JSON.stringify(sub ?? '')}; expected init or fingerprint`);
  const a = parseArgs(rest, ['cert-out', 'key-out', 'name', 'days']);
  const certOut = a.values.get('cert-out');
  const keyOut = a.values.get('key-out');
  if (!certOut || !keyOut) throw new UsageError('ca init needs --cert-out FILE and --key-out FILE');
  const days = Number(a.values.get('days') ?? 3650);
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new UsageError(`--days: expected 1..36500, got ${a.values.get('days')}`);
  const name = a.values.get('name') ?? 'epoch-agent interception CA';
  const ca = generateCa(name, days);
  const oldUmask = process.umask(0o077);
  try {
    writeNewFile(keyOut, ca.keyPem, 0o600);
  } finally {
    process.umask(oldUmask);
  }
  writeNewFile(certOut, ca.certPem, 0o644);
  out(`${ca.fingerprintSha256}\n`);
  return 0;
}

const runValueFlags = ['config', 'listen', 'health', 'ca-cert', 'ca-key', 'user', 'upstream-ca', 'state-dir', 'log-level'];

export function configFromRunArgs(argv: string[]): { config: AgentConfig; user: string | undefined; configFile: string | undefined } {
  const a = parseArgs(argv, runValueFlags, ['no-connect-log']);
  if (a.positional.length) throw new UsageError(`unexpected argument ${JSON.stringify(a.positional[0])}`);
  const configFile = a.values.get('config');
  const base: Record<string, unknown> = configFile ? (loadConfigFile(configFile) as unknown as Record<string, unknown>) : {};
  const merged: Record<string, unknown> = { ...base };
  const listen = a.values.get('listen');
  if (listen) merged.listen = [parseListenFlag(listen, '::')];
  const health = a.values.get('health');
  if (health) merged.health = parseListenFlag(health, '127.0.0.1');
  const caCert = a.values.get('ca-cert');
  const caKey = a.values.get('ca-key');
  if (caCert || caKey) merged.ca = { ...((base.ca as object) ?? {}), ...(caCert ? { certFile: caCert } : {}), ...(caKey ? { keyFile: caKey } : {}) };
  const upstreamCa = a.values.get('upstream-ca');
  if (upstreamCa) merged.upstream = { ...((base.upstream as object) ?? {}), caBundleFile: upstreamCa };
  const stateDir = a.values.get('state-dir');
  if (stateDir) merged.stateDir = stateDir;
  const level = a.values.get('log-level');
  if (level || a.booleans.has('no-connect-log')) {
    merged.log = { ...((base.log as object) ?? {}), ...(level ? { level } : {}), ...(a.booleans.has('no-connect-log') ? { connectLog: false } : {}) };
  }
  return { config: validateConfig(merged, configFile ?? 'command line'), user: a.values.get('user'), configFile };
}

async function run(argv: string[], ctx: CliContext, err: (s: string) => void): Promise<number> {
  const { config, user, configFile } = configFromRunArgs(argv);
  const account = user ? resolveAccount(user) : null;
  const log = new Logger(config.log.level);
  const agent = new Agent({ config, version: ctx.version, log });
  if (ctx.makeSink) agent.setSink(ctx.makeSink(config, agent));
  await agent.start();
  if (account) {
    dropPrivileges(account);
    log.info('dropped privileges', { user: account.name, uid: account.uid, gid: account.gid });
  } else if (process.getuid?.() === 0) {
    log.warn('running as root; pass --user epoch-agent (or run under systemd User=)');
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('signal received', { signal });
      agent
        .drain(DRAIN_MS)
        .then(() => ctx.onStop?.())
        .then(
          () => resolve(0),
          (e: Error) => {
            err(`epoch-agent: drain failed: ${e.message}\n`);
            resolve(1);
          },
        );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      try {
        const next = configFromRunArgs(argv).config;
        agent.reload(next);
      } catch (e) {
        // A bad edit must not take the proxy down: keep running with the previous configuration.
        log.error('reload failed; keeping the running configuration', { config: configFile, error: (e as Error).message });
      }
    });
  });
}
