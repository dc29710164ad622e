// The running agent: listeners (outgoing REDIRECT + optional incoming), the health server, drain and reload.
import { type Server, type Socket, createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { AgentConfig, ListenAddress } from '../../../contracts/agent-config';
import type { HealthPayload } from '../../../contracts/health';
import { ConnectLog, LogThrottle, Logger } from '../log/logger';
import { type OriginalDestination, originalDestination } from '../native/origdst';
import { AgentCounters, agentCounterNames } from '../observe/agent-counters';
import type { ObservationSink } from '../observe/observer';
import { LearnedPassthrough } from '../proxy/learned';
import { unmapIp } from '../proxy/passthrough';
import { type ListenerMode, handleConnection } from './connection';
import { HealthServer } from './health-server';
import { loadLearned, saveLearned } from './learned-file';
import { type ProxyRuntime, type ProxyShared, buildRuntime } from './runtime';

export interface AgentOptions {
  config: AgentConfig;
  version: string;
  sink?: ObservationSink | null;
  log?: Logger;
  connectLog?: ConnectLog;
  counters?: AgentCounters;
  /** Tests without netfilter inject a fixed destination; production uses SO_ORIGINAL_DST. */
  originalDestination?: (socket: Socket) => OriginalDestination;
}

const nonErrorCounters = new Set([
  'connections_accepted',
  'connections_intercepted',
  'connections_incoming',
  'forge_cache_hits',
  'forge_cache_misses',
  'passthrough_static',
  'passthrough_learned',
  'passthrough_not_tls',
  'passthrough_learned_added',
  'passthrough_old_tls',
]);

function localAddresses(): Set<string> {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(unmapIp(a.address));
  return out;
}

export class Agent {
  readonly counters: AgentCounters;
  readonly log: Logger;
  readonly connectLog: ConnectLog;
  readonly health: HealthServer;
  readonly learned: LearnedPassthrough;
  private runtime: ProxyRuntime;
  private readonly shared: ProxyShared;
  private readonly servers: { server: Server; mode: ListenerMode; address: ListenAddress }[] = [];
  private readonly startedAt = Date.now();
  private ready = false;
  private saveTimer: NodeJS.Timeout | null = null;
  /** Bound listener addresses (the real port when 0 was asked), for tests and logs. */
  readonly bound: { mode: ListenerMode; host: string; port: number }[] = [];
  healthAddress: { host: string; port: number } | null = null;

  constructor(private readonly options: AgentOptions) {
    const config = options.config;
    this.counters = options.counters ?? new AgentCounters();
    this.log = options.log ?? new Logger(config.log.level);
    this.connectLog = options.connectLog ?? new ConnectLog(config.log.connectLog);
    this.learned = new LearnedPassthrough(config.passthrough.learned);
    if (config.passthrough.learned.enabled) {
      try {
        const r = loadLearned(config.stateDir, this.learned);
        if (r.loaded || r.skipped) this.log.info('loaded learned passthrough', { ...r, stateDir: config.stateDir });
      } catch (e) {
        this.log.warn('ignoring unreadable learned passthrough file', { stateDir: config.stateDir, error: (e as Error).message });
      }
    }
    this.runtime = buildRuntime(config, this.learned);
    this.counters.learnedPassthroughEntries = () => (this.runtime.config.passthrough.learned.enabled ? this.learned.list(new Date()).length : 0);
    this.shared = {
      counters: this.counters,
      log: this.log,
      warnThrottle: new LogThrottle(),
      connectLog: this.connectLog,
      sink: options.sink ?? null,
      originalDestination: options.originalDestination ?? originalDestination,
      upstreamEndpoints: new Map(),
      listeners: [],
      localAddresses: localAddresses(),
      active: new Set(),
      onLearned: () => this.scheduleSave(),
      runtime: () => this.runtime,
    };
    this.health = new HealthServer(() => this.healthPayload());
  }

  /** The observation sink (agent/src/observe); set before start(). Null relays without observing. */
  setSink(sink: ObservationSink | null): void {
    this.shared.sink = sink;
  }

  get config(): AgentConfig {
    return this.runtime.config;
  }

  async start(): Promise<void> {
    const config = this.runtime.config;
    if (!this.options.originalDestination) {
      // Load the addon now so a missing or broken binary fails at startup, not on the first connection.
      const { loadOrigDst } = await import('../native/origdst');
      loadOrigDst();
    }
    const h = await this.health.listen(config.health.host, config.health.port);
    this.healthAddress = h;
    for (const a of config.listen) await this.listen('outgoing', a);
    for (const a of config.incoming?.listen ?? []) await this.listen('incoming', a);
    this.ready = true;
    this.log.info('agent ready', {
      listen: this.bound,
      health: h,
      caFingerprintSha256: this.runtime.ca.fingerprintSha256,
      upstreamTrust: this.runtime.trust ? { source: this.runtime.trust.source, roots: this.runtime.trust.certificates.length, excludedOwnCa: this.runtime.trust.excludedOwnCa } : 'verification disabled',
      learnedPassthrough: this.learned.size,
    });
  }

  private listen(mode: ListenerMode, address: ListenAddress): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (socket) => handleConnection(socket, this.shared, mode));
    server.on('error', (e) => this.log.error('listener error', { mode, address, error: e.message }));
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(new Error(`cannot listen on ${address.host}:${address.port} (${mode}): ${e.message}`));
      server.once('error', onError);
      server.listen({ host: address.host, port: address.port, ipv6Only: false }, () => {
        server.off('error', onError);
        const a = server.address();
        const port = typeof a === 'object' && a ? a.port : address.port;
        this.bound.push({ mode, host: address.host, port });
        this.shared.listeners.push({ address: address.host, port });
        this.servers.push({ server, mode, address });
        resolve();
      });
    });
  }

  /** SIGHUP: re-read CA, trust store, passthrough rules, limits and logging. Listener changes need a restart. */
  reload(config: AgentConfig): void {
    const old = this.runtime.config;
    this.runtime = buildRuntime(config, this.learned, this.runtime);
    this.log.level = config.log.level;
    this.connectLog.enabled = config.log.connectLog;
    const same = (a: ListenAddress[], b: ListenAddress[]) => JSON.stringify(a) === JSON.stringify(b);
    if (!same(old.listen, config.listen) || !same([old.health], [config.health]) || !same(old.incoming?.listen ?? [], config.incoming?.listen ?? [])) {
      this.log.warn('listen addresses changed; they take effect on restart', { running: this.bound });
    }
    this.log.info('configuration reloaded', { caFingerprintSha256: this.runtime.ca.fingerprintSha256 });
  }

  healthPayload(): HealthPayload {
    const snapshot = this.counters.snapshot();
    const errors: Record<string, number> = {};
    for (const name of agentCounterNames) if (!nonErrorCounters.has(name)) errors[name] = snapshot[name];
    return {
      ready: this.ready,
      version: this.options.version,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      connections: { active: this.counters.activeConnections, total: snapshot.connections_accepted },
      errors,
      learnedPassthrough: this.learned.list(new Date()),
      caFingerprintSha256: this.runtime.ca.fingerprintSha256,
    };
  }

  private scheduleSave(): void {
    if (this.saveTimer) return;
    // Coalesce bursts (many connections to one pinned app fail together) into one write.
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.saveLearnedNow();
    }, 200);
    this.saveTimer.unref();
  }

  private saveLearnedNow(): void {
    if (!this.runtime.config.passthrough.learned.enabled) return;
    try {
      saveLearned(this.runtime.config.stateDir, this.learned);
    } catch (e) {
      this.log.error('cannot persist learned passthrough', { stateDir: this.runtime.config.stateDir, error: (e as Error).message });
    }
  }

  /** SIGTERM: stop accepting, let connections finish for up to drainMs, then close the rest. */
  async drain(drainMs: number): Promise<void> {
    this.ready = false;
    this.log.info('draining', { active: this.counters.activeConnections, drainMs });
    await Promise.all(this.servers.map(({ server }) => new Promise<void>((r) => server.close(() => r()))));
    const deadline = Date.now() + drainMs;
    while (this.counters.activeConnections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of [...this.shared.active]) c.destroyAll();
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.saveLearnedNow();
    await this.health.close();
    this.log.info('stopped', { leftOpen: this.counters.activeConnections });
  }
}
