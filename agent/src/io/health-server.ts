// The loopback HTTP endpoint: GET /healthz returns contracts/health.ts HealthPayload. Other parts (the metrics
// exporter) add their own paths with route().
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { HealthPayload } from '../../../contracts/health';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export class HealthServer {
  private readonly routes = new Map<string, RouteHandler>();
  private server: Server | null = null;

  constructor(private readonly payload: () => HealthPayload) {
    this.route('/healthz', (_req, res) => {
      const body = this.payload();
      res.writeHead(body.ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    });
  }

  /** Registers a GET handler for an exact path (e.g. `/metrics`). */
  route(path: string, handler: RouteHandler): void {
    if (!path.startsWith('/')) throw new Error(`route path must start with '/', got ${JSON.stringify(path)}`);
    this.routes.set(path, handler);
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      const handler = this.routes.get(path);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (!handler) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route ${path}; try /healthz\n`);
        return;
      }
      Promise.resolve()
        .then(() => handler(req, res))
        .catch((e: unknown) => {
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${(e as Error).message}\n`);
        });
    });
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 10_000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const a = server.address();
        resolve({ host, port: typeof a === 'object' && a ? a.port : port });
      });
    });
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return Promise.resolve();
    s.closeAllConnections?.();
    return new Promise((resolve) => s.close(() => resolve()));
  }
}
