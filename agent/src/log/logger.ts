// JSON lines on stderr (journald captures them), one object per event. Never pass payload bytes or keys here.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export class Logger {
  constructor(
    public level: Level = 'info',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
    private readonly base: Fields = {},
  ) {}

  child(fields: Fields): Logger {
    return new Logger(this.level, this.write, { ...this.base, ...fields });
  }

  enabled(level: Level): boolean {
    return rank[level] >= rank[this.level];
  }

  log(level: Level, msg: string, fields: Fields = {}): void {
    if (!this.enabled(level)) return;
    this.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.base, ...fields })}\n`);
  }

  debug(msg: string, fields?: Fields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log('error', msg, fields);
  }
}

/** The per-connection connect log (like SSLsplit -l): one JSON line on stdout per finished connection, no payloads. */
export class ConnectLog {
  constructor(
    public enabled: boolean,
    private readonly write: (line: string) => void = (line) => process.stdout.write(line),
  ) {}

  record(fields: Fields): void {
    if (this.enabled) this.write(`${JSON.stringify({ time: new Date().toISOString(), msg: 'connect', ...fields })}\n`);
  }
}

/** At most one log line per key per interval, so one broken upstream cannot flood the journal. Bounded. */
export class LogThrottle {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly intervalMs = 60_000,
    private readonly maxKeys = 1000,
  ) {}

  allow(key: string, now = Date.now()): boolean {
    const t = this.last.get(key);
    if (t !== undefined && now - t < this.intervalMs) return false;
    this.last.delete(key);
    this.last.set(key, now);
    if (this.last.size > this.maxKeys) this.last.delete(this.last.keys().next().value as string);
    return true;
  }
}
