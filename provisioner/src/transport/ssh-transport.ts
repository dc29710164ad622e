// The SSH transport on ssh2: one connection per host (through any ProxyJump bastions), reused for every
// command over multiplexed channels, strict host-key checking, sudo, a timeout on every command.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { Argv } from '../core/change';
import { RemoteCommandError, UnreachableError } from '../core/errors';
import type { CommandLogger } from './command-log';
import { HostKeyError } from './host-key-error';
import { checkHostKey, fingerprintOfBlob, formatKnownHostsLine, keyTypeOfBlob, knownHostsName, knownKeyTypes, parseKnownHosts } from './known-hosts';
import { Semaphore } from './semaphore';
import { remoteCommandLine } from './shell-quote';
import type { ExecOptions, ExecResult, Transport } from './transport';

export interface SshHop {
  address: string;
  port: number;
  user: string;
}

export interface SshTransportOptions {
  /** Inventory name, used in messages and the run log. */
  hostName: string;
  target: SshHop;
  /** ProxyJump bastions, outermost first. Each is verified against the same known_hosts. */
  jumps?: SshHop[];
  /** Private key file (ansible_ssh_private_key_file). The ssh-agent (SSH_AUTH_SOCK) is tried as well. */
  privateKeyFile?: string;
  /** Defaults to process.env.SSH_AUTH_SOCK. */
  agentSocket?: string;
  knownHostsFile: string;
  /** Like OpenSSH StrictHostKeyChecking=accept-new: record unknown keys. A changed key is refused regardless. */
  acceptNewHostKeys?: boolean;
  connectTimeoutMs?: number;
  /** Default timeout of each command. */
  commandTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  /** Concurrent channels on the connection; OpenSSH's MaxSessions defaults to 10. */
  maxChannels?: number;
  /** Run commands through sudo unless a call says otherwise (ansible_become). */
  become?: { user: string; password?: string };
  onCommand?: CommandLogger;
  /** Shares bastion connections between the hosts behind them (one per run); without it each host opens its own. */
  jumpPool?: JumpPool;
}

const defaults = { connectTimeoutMs: 15_000, commandTimeoutMs: 120_000, keepaliveIntervalMs: 10_000, maxChannels: 8 };

interface RawResult {
  command: string;
  exitCode: number | null;
  stdout: Buffer;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export class SshTransport implements Transport {
  readonly hostName: string;
  private readonly channels: Semaphore;
  private sudoNeedsPassword: Promise<boolean> | undefined;
  private lostReason: string | undefined;

  private constructor(
    private readonly options: SshTransportOptions,
    private readonly client: Client,
    private readonly jumpChain: JumpChain | undefined,
  ) {
    this.hostName = options.hostName;
    this.channels = new Semaphore(options.maxChannels ?? defaults.maxChannels);
    client.on('close', () => {
      this.lostReason ??= 'connection closed';
    });
    client.on('error', (err: Error) => {
      this.lostReason = err.message;
    });
  }

  /** Connects through every hop. Connection, host-key and authentication failures reject with UnreachableError. */
  static async connect(options: SshTransportOptions): Promise<SshTransport> {
    const jumps = options.jumps ?? [];
    let chain: JumpChain | undefined;
    try {
      let sock: Duplex | undefined;
      if (jumps.length > 0) {
        chain = await (options.jumpPool ?? new JumpPool()).acquire(options, jumps);
        sock = await forwardTo(chain.last, options.target, `${options.hostName} (via bastion ${chain.label})`, options.hostName);
      }
      const client = await connectHop(options, options.target, options.hostName, sock);
      return new SshTransport(options, client, chain);
    } catch (err) {
      chain?.release();
      throw err;
    }
  }

  async exec(argv: Argv, options: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.execRaw(argv, options);
    return { ...r, stdout: r.stdout.toString('utf8') };
  }

  async getFile(path: string): Promise<Buffer> {
    const r = await this.execRaw(['cat', path], {});
    if (r.exitCode !== 0) throw commandError(r, `cannot read ${path}`);
    return r.stdout;
  }

  async close(): Promise<void> {
    endClient(this.client);
    this.jumpChain?.release();
  }

  private becomeApplies(requested: boolean | undefined): boolean {
    const become = this.options.become;
    if (!become) return false;
    if (requested === false) return false;
    // Already that user: sudo would add nothing but a dependency on sudo being installed.
    return become.user !== this.options.target.user;
  }

  private async execRaw(argv: Argv, options: ExecOptions): Promise<RawResult> {
    const become = this.becomeApplies(options.become);
    let withPassword = false;
    if (become) withPassword = await this.sudoPasswordNeeded();
    const command = remoteCommandLine(argv, become ? { become: { user: this.options.become?.user ?? 'root', withPassword } } : {});
    let stdin = options.stdin;
    if (withPassword) stdin = Buffer.concat([Buffer.from(`${this.options.become?.password ?? ''}\n`), Buffer.from(stdin ?? '')]);
    const r = await this.channels.run(() => this.runChannel(command, stdin, options.timeoutMs ?? this.options.commandTimeoutMs ?? defaults.commandTimeoutMs));
    this.options.onCommand?.({
      host: this.hostName,
      command,
      exitCode: r.exitCode,
      durationMs: r.durationMs,
      timedOut: r.timedOut,
      stdin: options.secret || withPassword ? 'secret' : options.stdin !== undefined ? 'sent' : 'none',
    });
    return r;
  }

  /** Probed once per connection: `sudo -n true` succeeding means NOPASSWD, so no password goes to stdin. */
  private sudoPasswordNeeded(): Promise<boolean> {
    const password = this.options.become?.password;
    if (password === undefined) return Promise.resolve(false);
    this.sudoNeedsPassword ??= this.channels
      .run(() => this.runChannel(remoteCommandLine(['true'], { become: { user: this.options.become?.user ?? 'root', withPassword: false } }), undefined, 30_000))
      .then((r) => r.exitCode !== 0);
    return this.sudoNeedsPassword;
  }

  private runChannel(command: string, stdin: string | Buffer | undefined, timeoutMs: number): Promise<RawResult> {
    const client = this.client;
    if (this.lostReason) return Promise.reject(new UnreachableError(`${this.hostName}: SSH connection lost (${this.lostReason})`, this.hostName));
    const started = performance.now();
    return new Promise((resolve, reject) => {
      let settled = false;
      let stream: ClientChannel | undefined;
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let exitCode: number | null = null;
      let sawExit = false;
      let timedOut = false;
      const lost = (cause?: unknown) =>
        new UnreachableError(`${this.hostName}: SSH connection lost (${this.lostReason})${stream ? ` while running \`${command}\`` : ''}`, this.hostName, { cause });
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // The connection died under a running command (keepalive timeout, reset): its outcome is unknown, so the
        // host is unreachable rather than the command failed.
        if (!timedOut && !sawExit && this.lostReason) {
          reject(lost());
          return;
        }
        resolve({
          command,
          exitCode: timedOut ? null : exitCode,
          stdout: Buffer.concat(out),
          stderr: Buffer.concat(errOut).toString('utf8'),
          durationMs: Math.round(performance.now() - started),
          timedOut,
        });
      };
      // The timeout covers opening the channel too: a peer that stopped answering (before keepalive notices) must
      // not hold a command past its timeout.
      const timer = setTimeout(() => {
        if (!stream) {
          settled = true;
          reject(new UnreachableError(`${this.hostName}: the server opened no SSH channel within ${timeoutMs} ms for \`${command}\``, this.hostName));
          return;
        }
        timedOut = true;
        try {
          stream.signal('KILL');
        } catch {
          // Not every server accepts signals.
        }
        // Without a pty sshd does not kill the command when we close the channel; we stop waiting regardless,
        // so a hung remote command can never hang the run.
        stream.close();
        finish();
      }, timeoutMs);
      const onChannel = (err: Error | undefined, channel: ClientChannel) => {
        if (err) {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          const why = this.lostReason ? `SSH connection lost (${this.lostReason})` : `cannot open an SSH channel: ${err.message}`;
          reject(new UnreachableError(`${this.hostName}: ${why}`, this.hostName, { cause: err }));
          return;
        }
        if (settled) {
          // Timed out before the server opened it: nobody waits for this command any more.
          channel.close();
          return;
        }
        stream = channel;
        channel.on('data', (d: Buffer) => out.push(d));
        channel.stderr.on('data', (d: Buffer) => errOut.push(d));
        channel.on('exit', (code: number | null) => {
          sawExit = true;
          exitCode = typeof code === 'number' ? code : null;
        });
        channel.on('close', finish);
        if (stdin !== undefined) channel.end(stdin);
        else channel.end();
      };
      try {
        client.exec(command, onChannel);
      } catch (err) {
        // ssh2 throws synchronously when the connection is already gone.
        clearTimeout(timer);
        settled = true;
        this.lostReason ??= (err as Error).message;
        reject(lost(err));
      }
    });
  }
}

/**
 * Ends a connection politely, then for certain: a peer that stopped answering (frozen, link cut, a firewall that
 * forgot the flow) never completes TCP's close, and the half-closed socket would keep the controller process alive
 * for the many minutes of TCP retransmissions.
 */
function endClient(client: Client): void {
  let closed = false;
  client.once('close', () => {
    closed = true;
    clearTimeout(force);
  });
  const force = setTimeout(() => {
    // Client.destroy() does nothing once end() made the socket unwritable, so destroy ssh2's socket itself (1.17).
    if (!closed) (client as unknown as { _sock?: Duplex })._sock?.destroy();
  }, 2000);
  force.unref();
  client.end();
}

function commandError(r: RawResult, what: string): RemoteCommandError {
  const why = r.timedOut ? 'timed out' : `exited ${r.exitCode}`;
  const stdout = r.stdout.toString('utf8');
  return new RemoteCommandError(`${what}: \`${r.command}\` ${why}: ${r.stderr.trim() || stdout.trim()}`, r.command, r.exitCode, stdout, r.stderr, r.timedOut);
}

function readKnownHosts(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

function connectHop(options: SshTransportOptions, hop: SshHop, label: string, sock: Duplex | undefined): Promise<Client> {
  const name = knownHostsName(hop.address, hop.port);
  const entries = parseKnownHosts(readKnownHosts(options.knownHostsFile));
  let hostKeyProblem: HostKeyError | undefined;
  const hostVerifier = (key: Buffer): boolean => {
    const verdict = checkHostKey(entries, name, key);
    const presented = `${keyTypeOfBlob(key)} ${fingerprintOfBlob(key)}`;
    if (verdict.kind === 'trusted') return true;
    if (verdict.kind === 'changed') {
      const known = verdict.known.map((k) => `${k.keyType} ${k.fingerprint} (${options.knownHostsFile}:${k.line})`).join(', ');
      hostKeyProblem = new HostKeyError(
        `${label}: HOST KEY CHANGED for ${name}: the server presented ${presented} but known_hosts has ${known}. ` +
          'This may be a man-in-the-middle attack or a reinstalled host; remove the old entry only after checking the new fingerprint out of band.',
        options.hostName,
        'changed',
      );
      return false;
    }
    if (verdict.kind === 'revoked') {
      hostKeyProblem = new HostKeyError(`${label}: the host key ${presented} for ${name} is marked @revoked in ${options.knownHostsFile}:${verdict.line}`, options.hostName, 'revoked');
      return false;
    }
    if (!options.acceptNewHostKeys) {
      hostKeyProblem = new HostKeyError(
        `${label}: host key for ${name} is not in ${options.knownHostsFile} (server presented ${presented}); verify it and add it, or pass --accept-new-host-keys for first contact`,
        options.hostName,
        'unknown',
      );
      return false;
    }
    mkdirSync(dirname(options.knownHostsFile), { recursive: true, mode: 0o700 });
    // O_APPEND keeps concurrent first contacts from interleaving within a line.
    appendFileSync(options.knownHostsFile, `${formatKnownHostsLine(name, key)}\n`, { mode: 0o600 });
    return true;
  };

  const preferred = knownKeyTypes(entries, name);
  const agent = options.agentSocket ?? process.env.SSH_AUTH_SOCK;
  const config: ConnectConfig = {
    host: hop.address,
    port: hop.port,
    username: hop.user,
    readyTimeout: options.connectTimeoutMs ?? defaults.connectTimeoutMs,
    keepaliveInterval: options.keepaliveIntervalMs ?? defaults.keepaliveIntervalMs,
    keepaliveCountMax: 3,
    hostVerifier,
    ...(sock && { sock }),
    ...(agent && { agent }),
    ...(preferred.length > 0 && { algorithms: { serverHostKey: preferHostKeyTypes(preferred) as never } }),
  };
  if (options.privateKeyFile) {
    try {
      config.privateKey = readFileSync(options.privateKeyFile);
    } catch (err) {
      return Promise.reject(new UnreachableError(`${label}: cannot read private key ${options.privateKeyFile}: ${(err as Error).message}`, options.hostName, { cause: err }));
    }
  }
  if (!config.privateKey && !config.agent) {
    return Promise.reject(new UnreachableError(`${label}: no credentials: set ansible_ssh_private_key_file or run an ssh-agent (SSH_AUTH_SOCK is empty)`, options.hostName));
  }

  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    // Stays subscribed after the first error: ssh2 can emit more (a readyTimeout is followed by "Connection lost
    // before handshake" when it destroys the socket), and an 'error' without a listener would crash the controller.
    const fail = (err: Error & { level?: string }) => {
      if (settled) return;
      settled = true;
      endClient(client);
      if (hostKeyProblem) return reject(hostKeyProblem);
      const how = err.level === 'client-authentication' ? `authentication as ${hop.user} failed (tried ${[options.privateKeyFile && `key ${options.privateKeyFile}`, agent && 'ssh-agent'].filter(Boolean).join(' and ')})` : err.message;
      reject(new UnreachableError(`${label}: cannot connect to ${hop.user}@${hop.address}:${hop.port}: ${how}`, options.hostName, { cause: err }));
    };
    client.once('ready', () => {
      settled = true;
      client.removeListener('error', fail);
      client.on('error', () => {
        // Reported to callers through the transport's lostReason; an unhandled 'error' would crash the controller.
      });
      resolve(client);
    });
    client.on('error', fail);
    // TCP_NODELAY, as OpenSSH sets it for interactive sessions. Each command is a few small packets (channel open,
    // exec request, EOF) sent before the server answers the first; with Nagle on, the second waits for the ACK of
    // the first, which the server's delayed ACK holds back for 40 ms: every round trip cost ~45 ms instead of ~5.
    // A hop through a bastion rides a forwarded channel (no socket option to set); the bastion's own TCP socket
    // gets it when its hop connects.
    client.once('connect', () => client.setNoDelay(true));
    try {
      client.connect(config);
    } catch (err) {
      fail(err as Error);
    }
  });
}

// Host-key algorithms ssh2 supports that may appear as known_hosts key types (others cannot be preferred).
const preferable = new Set(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);

/** The known host-key types first, as OpenSSH orders HostKeyAlgorithms, so the server presents a key we know. */
function preferHostKeyTypes(known: string[]): { remove: string[]; prepend: string[] } {
  const expanded = known.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])).filter((t) => preferable.has(t));
  // ssh2 applies the keys in order: removing first makes `prepend` move algorithms already in the default list.
  return { remove: expanded, prepend: expanded };
}

function forwardTo(client: Client, next: SshHop, label: string, hostName: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, next.address, next.port, (err, stream) => {
      if (err) reject(new UnreachableError(`${label}: the bastion cannot reach ${next.address}:${next.port}: ${err.message}`, hostName, { cause: err }));
      else resolve(stream);
    });
  });
}

interface JumpChain {
  /** The innermost bastion, which forwards to the target. */
  last: Client;
  label: string;
  release(): void;
}

/**
 * One connection per bastion chain, shared by every host behind it (each target is one forwarded channel), so a
 * fleet behind one bastion does not open hundreds of connections to it (and trip its sshd MaxStartups).
 * Closed when the last host using it closes; dropped from the pool if it dies, so the next host reconnects.
 */
export class JumpPool {
  private readonly chains = new Map<string, { clients: Promise<Client[]>; users: number }>();

  async acquire(options: SshTransportOptions, jumps: readonly SshHop[]): Promise<JumpChain> {
    const key = jumps.map((h) => `${h.user}@${h.address}:${h.port}`).join(' > ');
    let entry = this.chains.get(key);
    if (!entry) {
      const created = { clients: openChain(options, jumps, key), users: 0 };
      entry = created;
      this.chains.set(key, created);
      created.clients.then(
        (clients) => {
          for (const c of clients) c.once('close', () => this.chains.get(key) === created && this.chains.delete(key));
        },
        () => this.chains.get(key) === created && this.chains.delete(key),
      );
    }
    entry.users += 1;
    const held = entry;
    let clients: Client[];
    try {
      clients = await held.clients;
    } catch (err) {
      held.users -= 1;
      // The shared attempt may have been started for another host: re-label the error for this one.
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof HostKeyError) throw new HostKeyError(`${options.hostName}: ${message}`, options.hostName, err.reason);
      throw new UnreachableError(`${options.hostName}: ${message}`, options.hostName, { cause: err });
    }
    const last = clients[clients.length - 1] as Client;
    let released = false;
    return {
      last,
      label: key,
      release: () => {
        if (released) return;
        released = true;
        held.users -= 1;
        if (held.users === 0) {
          if (this.chains.get(key) === held) this.chains.delete(key);
          for (const c of [...clients].reverse()) endClient(c);
        }
      },
    };
  }
}

async function openChain(options: SshTransportOptions, jumps: readonly SshHop[], key: string): Promise<Client[]> {
  const clients: Client[] = [];
  try {
    let sock: Duplex | undefined;
    for (const [index, hop] of jumps.entries()) {
      const label = `bastion ${hop.address}:${hop.port}`;
      const client = await connectHop(options, hop, label, sock);
      clients.push(client);
      const next = jumps[index + 1];
      if (next) sock = await forwardTo(client, next, label, options.hostName);
    }
    return clients;
  } catch (err) {
    for (const c of clients.reverse()) endClient(c);
    if (err instanceof HostKeyError || !(err instanceof Error)) throw err;
    throw new Error(`via ${key}: ${err.message}`, { cause: err });
  }
}
