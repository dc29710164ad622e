import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { AgentConfig } from '../../../contracts/agent-config';
import { Logger } from '../log/logger';
import { AgentCounters } from '../observe/agent-counters';
import { type MetricsHost, createObservationSink, stopObservation } from './attach';

test('createObservationSink serves /metrics on the host and returns a working sink', async () => {
  const routes = new Map<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>();
  const host: MetricsHost = { counters: new AgentCounters(), health: { route: (path, handler) => routes.set(path, handler) } };
  const config = {
    observe: { enabled: true, routeRules: [], maxRoutesPerServer: 10 },
    metrics: {},
    stateDir: '/nonexistent',
    log: { level: 'error', connectLog: false },
  } as unknown as AgentConfig;
  const sink = createObservationSink(config, host, new Logger('error', () => {}));
  const obs = sink.openConnection({ serverAddress: 'a.test', serverPort: 443, alpn: 'http/1.1', tlsProtocol: 'TLSv1.2', handshakeMs: 1 })!;
  obs.onClientData(Buffer.from('GET /x/1 HTTP/1.1\r\n\r\n'), 0);
  obs.onServerData(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 1);
  host.counters.inc('connections_accepted');
  const server = http.createServer((req, res) => routes.get(req.url ?? '')!(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
    assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await r.text();
    assert.match(text, /http_client_request_duration_seconds_count\{server_address="a.test",.*http_route="\/x\/\{id\}".*\} 1\n/);
    assert.match(text, /epoch_agent_connections_accepted_total 1\n/);
  } finally {
    server.close();
    await stopObservation();
  }
});
