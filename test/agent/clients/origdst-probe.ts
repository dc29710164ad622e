// Calls the origdst addon the way the agent does, on whatever Node runs it. test/agent/addon-platforms.test.ts bundles
// this file exactly like the agent (CommonJS for node18, `*.node` external) and puts it beside a fresh build's
// epoch-agent.cjs, so the agent's own loader (agent/src/native/origdst.ts) finds prebuilds/<platform-arch>/origdst.node
// through __dirname, as in the shipped bundle. Prints one JSON line: what was loaded, then each case's result or error.
// Usage: node origdst-probe.cjs CASE...
//   redirect-v4         198.18.209.10:443 (nft REDIRECT to the v4 listener 0.0.0.0:8443)
//   redirect-v4-mapped  198.18.209.10:444 (REDIRECT to the dual-stack listener [::]:8444: an IPv4-mapped socket)
//   redirect-v6         [::1]:443 (REDIRECT to [::]:8444)
//   direct-v4           127.0.0.1:8443, no REDIRECT
//   direct-v6           [::1]:8444, no REDIRECT
//   not-a-socket        a regular file's fd
//   closed-fd           an fd that is not open
//   bad-fd              -1 (rejected before any system call)
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { loadOrigDst, originalDestination } from '../../../agent/src/native/origdst';

type Outcome = { ok: unknown; local?: string } | { error: { name: string; code?: string; message: string }; local?: string };

const connections: Record<string, { host: string; port: number; listener: 'v4' | 'dual' }> = {
  'redirect-v4': { host: '198.18.209.10', port: 443, listener: 'v4' },
  'redirect-v4-mapped': { host: '198.18.209.10', port: 444, listener: 'dual' },
  'redirect-v6': { host: '::1', port: 443, listener: 'dual' },
  'direct-v4': { host: '127.0.0.1', port: 8443, listener: 'v4' },
  'direct-v6': { host: '::1', port: 8444, listener: 'dual' },
};

function attempt(fn: () => unknown): Outcome {
  try {
    return { ok: fn() };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { error: { name: err.name, code: err.code, message: err.message } };
  }
}

function listen(port: number, host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port, host, ipv6Only: false }, () => resolve(server));
  });
}

/** Connects to host:port and returns what the addon says about the socket the listener accepted. */
function viaConnection(server: net.Server, host: string, port: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection accepted for ${host}:${port} within 10 s`)), 10_000);
    server.once('connection', (socket) => {
      clearTimeout(timer);
      const outcome = attempt(() => originalDestination(socket));
      outcome.local = `${socket.localAddress}:${socket.localPort}`;
      socket.destroy();
      client.destroy();
      resolve(outcome);
    });
    const client = net.connect({ host, port });
    client.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`connect ${host}:${port}: ${e.message}`));
    });
  });
}

async function main(): Promise<void> {
  const addon = loadOrigDst();
  const fn = addon.getOriginalDst;
  const report = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    napi: process.versions.napi,
    // The loader's require() of the prebuilt file: its path shows which prebuild was picked.
    loaded: Object.keys(require.cache).filter((k) => k.endsWith('.node')),
    exports: Object.keys(addon),
    getOriginalDst: { type: typeof fn, name: fn.name },
    cases: {} as Record<string, Outcome>,
  };
  const names = process.argv.slice(2);
  const servers: { v4?: net.Server; dual?: net.Server } = {};
  if (names.some((n) => connections[n])) {
    servers.v4 = await listen(8443, '0.0.0.0');
    servers.dual = await listen(8444, '::');
  }
  for (const name of names) {
    const c = connections[name];
    if (c) report.cases[name] = await viaConnection(servers[c.listener]!, c.host, c.port);
    else if (name === 'not-a-socket') {
      const fd = openSync(__filename, 'r');
      report.cases[name] = attempt(() => fn(fd));
      closeSync(fd);
    } else if (name === 'closed-fd') report.cases[name] = attempt(() => fn(4000));
    else if (name === 'bad-fd') report.cases[name] = attempt(() => fn(-1));
    else throw new Error(`unknown case ${name}`);
  }
  servers.v4?.close();
  servers.dual?.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`origdst-probe: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
