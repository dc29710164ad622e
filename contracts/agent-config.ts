// The agent's configuration file (/etc/epoch-agent/agent.json), shared by the agent, which validates
// it (`epoch-agent check-config`), and the provisioner, which renders it. Types only: no runtime code.

export interface ListenAddress {
  /** An IPv4 or IPv6 literal; '::' listens dual-stack. */
  host: string;
  port: number;
}

export interface AgentConfig {
  /** Where REDIRECTed outgoing connections arrive. */
  listen: ListenAddress[];
  /** Health and metrics HTTP endpoint; loopback only. */
  health: ListenAddress;
  ca: {
    certFile: string;
    keyFile: string;
  };
  upstream: {
    /** Verify the real server (default true). */
    verify: boolean;
    /** PEM bundle to verify against; default: the system bundle, minus our own CA. */
    caBundleFile?: string;
    /** What the client gets when upstream verification fails. */
    onVerifyFailure: 'refuse' | 'forge-untrusted';
    connectTimeoutMs: number;
  };
  limits: {
    maxConnections: number;
    handshakeTimeoutMs: number;
    idleTimeoutMs: number;
  };
  passthrough: {
    /** SNI globs (`*.bank.example`), IP literals and CIDRs that are never intercepted. */
    static: string[];
    learned: {
      enabled: boolean;
      maxEntries: number;
      ttlSeconds: number;
    };
  };
  /** Inbound capture: terminate TLS with the user's own certificates, chosen by SNI. */
  incoming?: {
    listen: ListenAddress[];
    certificates: { serverNames: string[]; certFile: string; keyFile: string }[];
  };
  observe: {
    enabled: boolean;
    /** Extra route templating rules, applied before the built-in ones. */
    routeRules: { match: string; replace: string }[];
    maxRoutesPerServer: number;
  };
  metrics: {
    remoteWrite?: {
      url: string;
      intervalSeconds: number;
      maxSpoolBytes: number;
      headers?: Record<string, string>;
    };
  };
  log: {
    level: 'debug' | 'info' | 'warn' | 'error';
    /** One line per connection, without payloads (like SSLsplit's -l). */
    connectLog: boolean;
  };
  /** Learned passthrough list and the remote-write spool live here. */
  stateDir: string;
}
