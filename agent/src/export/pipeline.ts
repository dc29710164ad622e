// ObservationPipeline owns the aggregation (and the sink the relay calls), renders /metrics, and, when
// metrics.remoteWrite is configured, snapshots every series each interval into the on-disk spool and sends
// the spool oldest-first to the collector, retrying with exponential backoff while it is down.
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from '../../../contracts/agent-config';
import type { Logger } from '../log/logger';
import type { AgentCounters } from '../observe/agent-counters';
import { Aggregator } from '../observe/aggregator';
import type { ObservationSink } from '../observe/observer';
import { AggregatingSink } from '../observe/sink';
import { renderMetrics } from './prometheus-text';
import { type SendResult, encodeWriteRequest, sendWriteRequest, toTimeSeries } from './remote-write';
import { type SampleFamily, collectFamilies } from './samples';
import { Spool } from './spool';

export type PipelineConfig = Pick<AgentConfig, 'observe' | 'metrics' | 'stateDir'>;

export interface PipelineOptions {
  log?: Logger;
  /** Labels added to every remote-written series (default: job="epoch-agent", instance=<hostname>). */
  remoteWriteLabels?: Record<string, string>;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Injected for tests of the retry logic; the default POSTs over HTTP(S). */
  send?: (url: string, body: Buffer, headers: Record<string, string>) => Promise<SendResult>;
}

const stopFlushMs = 5000;

const disabledSink: ObservationSink = { openConnection: () => null };

export class ObservationPipeline {
  readonly aggregator: Aggregator;
  readonly sink: ObservationSink;
  readonly spool: Spool | null;
  private timer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private backoffMs = 0;
  private stopped = false;
  private readonly stats = { sentBatches: 0, sentSamples: 0, failedAttempts: 0, rejectedBatches: 0, rejectedSamples: 0 };
  private readonly labels: Record<string, string>;
  private readonly send: NonNullable<PipelineOptions['send']>;

  constructor(
    private readonly config: PipelineConfig,
    private readonly counters: AgentCounters,
    private readonly options: PipelineOptions = {},
  ) {
    this.aggregator = new Aggregator({ routeRules: config.observe.routeRules, maxRoutesPerServer: config.observe.maxRoutesPerServer });
    this.sink = config.observe.enabled ? new AggregatingSink(this.aggregator, counters) : disabledSink;
    const rw = config.metrics.remoteWrite;
    this.spool = rw ? new Spool(join(config.stateDir, 'remote-write-spool'), rw.maxSpoolBytes) : null;
    this.labels = options.remoteWriteLabels ?? { job: 'epoch-agent', instance: hostname() };
    this.send = options.send ?? ((url, body, headers) => sendWriteRequest(url, body, headers));
  }

  async start(): Promise<void> {
    const rw = this.config.metrics.remoteWrite;
    if (!rw || !this.spool) return;
    await this.spool.open();
    if (this.spool.length > 0) this.options.log?.info('remote-write spool holds batches from a previous run', { batches: this.spool.length, bytes: this.spool.bytes });
    this.timer = setInterval(() => void this.collect(), rw.intervalSeconds * 1000);
    this.timer.unref();
    this.kick();
  }

  /** Stops the timers, writes a last snapshot to the spool and tries one bounded flush. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.timer = null;
    this.retryTimer = null;
    if (!this.spool) return;
    await this.flushing;
    await this.snapshot();
    // One bounded attempt; whatever is not sent stays in the spool for the next start.
    if (this.backoffMs === 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.flush(), new Promise((r) => { timer = setTimeout(r, stopFlushMs); })]);
      clearTimeout(timer);
    }
  }

  /** The /metrics body. */
  renderMetrics(): string {
    return renderMetrics(this.aggregator, this.counters, this.ownFamilies());
  }

  /** Takes one snapshot of every series into the spool and starts sending (also run by the interval). */
  async collect(): Promise<void> {
    if (this.stopped || !this.spool) return;
    await this.snapshot();
    this.kick();
  }

  /** Resolves when the spool is empty (or after timeoutMs); for tests and shutdown. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.spool && this.spool.length > 0 && Date.now() < deadline) {
      this.kick();
      await new Promise((r) => setTimeout(r, 50));
    }
    return !this.spool || this.spool.length === 0;
  }

  private async snapshot(): Promise<void> {
    const spool = this.spool!;
    const series = toTimeSeries(collectFamilies(this.aggregator, this.counters, this.ownFamilies()), Date.now(), this.labels);
    try {
      await spool.add(encodeWriteRequest(series), series.length);
    } catch (err) {
      this.options.log?.error('remote-write spool write failed', { dir: spool.dir, error: (err as Error).message });
    }
  }

  private kick(): void {
    if (this.flushing || this.retryTimer || !this.spool || this.spool.length === 0) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = null;
    });
  }

  private async flush(): Promise<void> {
    const spool = this.spool!;
    const rw = this.config.metrics.remoteWrite!;
    for (let entry = spool.oldest(); entry; entry = spool.oldest()) {
      let body: Buffer;
      try {
        body = await spool.read(entry);
      } catch {
        await spool.remove(entry); // dropped by the bound meanwhile, or unreadable
        continue;
      }
      const result = await this.send(rw.url, body, rw.headers ?? {});
      if (result.status >= 200 && result.status < 300) {
        this.stats.sentBatches++;
        this.stats.sentSamples += entry.samples;
        this.backoffMs = 0;
        await spool.remove(entry);
        continue;
      }
      if (result.status >= 400 && result.status < 500 && result.status !== 429) {
        // The collector refuses this batch for good (e.g. out-of-order samples): retrying cannot help.
        this.stats.rejectedBatches++;
        this.stats.rejectedSamples += entry.samples;
        this.options.log?.warn('remote-write batch rejected', { url: rw.url, status: result.status, error: result.error });
        await spool.remove(entry);
        continue;
      }
      this.stats.failedAttempts++;
      const initial = this.options.initialBackoffMs ?? 1000;
      const max = this.options.maxBackoffMs ?? 60_000;
      this.backoffMs = this.backoffMs === 0 ? initial : Math.min(max, this.backoffMs * 2);
      const wait = this.backoffMs * (0.8 + Math.random() * 0.4);
      this.options.log?.warn('remote-write failed; retrying', { url: rw.url, status: result.status, error: result.error, retryInMs: Math.round(wait), spooledBatches: spool.length });
      if (!this.stopped) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.kick();
        }, wait);
        this.retryTimer.unref();
      }
      return;
    }
  }

  private ownFamilies(): SampleFamily[] {
    if (!this.spool) return [];
    const counter = (name: string, help: string, value: number): SampleFamily => ({
      name, help, type: 'counter', samples: [{ name, labels: [], value }],
    });
    return [
      counter('epoch_agent_remote_write_samples_sent_total', 'Samples the collector accepted.', this.stats.sentSamples),
      counter('epoch_agent_remote_write_batches_sent_total', 'Batches the collector accepted.', this.stats.sentBatches),
      counter('epoch_agent_remote_write_failures_total', 'Send attempts that failed and will be retried.', this.stats.failedAttempts),
      counter('epoch_agent_remote_write_samples_rejected_total', 'Samples the collector refused with a 4xx (not retried).', this.stats.rejectedSamples),
      counter('epoch_agent_remote_write_samples_dropped_total', 'Spooled samples dropped because the spool reached its size bound.', this.spool.droppedSamples),
      { name: 'epoch_agent_remote_write_spool_bytes', help: 'Bytes waiting in the remote-write spool.', type: 'gauge',
        samples: [{ name: 'epoch_agent_remote_write_spool_bytes', labels: [], value: this.spool.bytes }] },
    ];
  }
}
