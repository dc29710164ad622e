// Prometheus remote-write 1.0: a protobuf WriteRequest (protobufjs), snappy block-compressed (snappyjs),
// POSTed with the headers the protocol requires. Mimir, Thanos, Cortex and VictoriaMetrics accept the same.
import http from 'node:http';
import https from 'node:https';
import protobuf from 'protobufjs';
import { compress, uncompress } from 'snappyjs';
import type { SampleFamily } from './samples';

const root = protobuf.Root.fromJSON({
  nested: {
    prometheus: {
      nested: {
        WriteRequest: {
          fields: { timeseries: { rule: 'repeated', type: 'TimeSeries', id: 1 } },
        },
        TimeSeries: {
          fields: {
            labels: { rule: 'repeated', type: 'Label', id: 1 },
            samples: { rule: 'repeated', type: 'Sample', id: 2 },
          },
        },
        Label: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        Sample: { fields: { value: { type: 'double', id: 1 }, timestamp: { type: 'int64', id: 2 } } },
      },
    },
  },
});
export const WriteRequest = root.lookupType('prometheus.WriteRequest');

export interface TimeSeries {
  labels: { name: string; value: string }[];
  samples: { value: number; timestamp: number }[];
}

/** One sample per series at `timestampMs`; labels sorted by name, `__name__` included, as the spec requires. */
export function toTimeSeries(families: readonly SampleFamily[], timestampMs: number, extraLabels: Record<string, string> = {}): TimeSeries[] {
  const out: TimeSeries[] = [];
  for (const f of families) {
    for (const s of f.samples) {
      const labels = [{ name: '__name__', value: s.name }, ...Object.entries(extraLabels).map(([name, value]) => ({ name, value }))];
      for (const [name, value] of s.labels) labels.push({ name, value });
      labels.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      out.push({ labels, samples: [{ value: s.value, timestamp: timestampMs }] });
    }
  }
  return out;
}

/** The HTTP body: snappy(WriteRequest). */
export function encodeWriteRequest(timeseries: TimeSeries[]): Buffer {
  const bytes = WriteRequest.encode(WriteRequest.create({ timeseries })).finish();
  return Buffer.from(compress(bytes));
}

/** The inverse, for tests and debugging. */
export function decodeWriteRequest(body: Buffer): TimeSeries[] {
  const message = WriteRequest.decode(uncompress(body)) as unknown as { timeseries: TimeSeries[] };
  return WriteRequest.toObject(message as unknown as protobuf.Message, { longs: Number, defaults: true }).timeseries as TimeSeries[];
}

export interface SendResult {
  status: number; // 0 on a network error
  error?: string;
}

/** POSTs one compressed WriteRequest. Never throws; a network error has status 0. */
export function sendWriteRequest(url: string, body: Buffer, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<SendResult> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      resolve({ status: 0, error: `invalid remote-write URL ${JSON.stringify(url)}` });
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const req = client.request(target, {
      method: 'POST',
      timeout: timeoutMs,
      headers: {
        ...headers,
        'Content-Encoding': 'snappy',
        'Content-Type': 'application/x-protobuf',
        'X-Prometheus-Remote-Write-Version': '0.1.0',
        'User-Agent': 'epoch-agent',
        'Content-Length': String(body.length),
      },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (text.length < 512) text += c;
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve(status >= 200 && status < 300 ? { status } : { status, error: text.trim().slice(0, 512) });
      });
      res.on('error', (err) => resolve({ status: 0, error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${target.host} within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 0, error: err.message }));
    req.end(body);
  });
}
