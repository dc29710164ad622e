// Loads the N-API helper that reads SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST (agent/native/origdst.c).
// The bundle finds it beside itself (dist/agent/prebuilds/<platform-arch>/); running from source (tsx) finds the
// committed prebuilds in agent/native/prebuilds/. One N-API binary per arch runs on Node 18, 20 and 22.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface OriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
}

interface OrigDstAddon {
  getOriginalDst(fd: number): OriginalDestination;
}

const platformDir = `${process.platform}-${process.arch}`;

function candidatePaths(): string[] {
  if (typeof __dirname === 'string') return [join(__dirname, 'prebuilds', platformDir, 'origdst.node')];
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '../../native/prebuilds', platformDir, 'origdst.node')];
}

let addon: OrigDstAddon | undefined;

export function loadOrigDst(): OrigDstAddon {
  if (addon) return addon;
  const tried = candidatePaths();
  const path = tried.find((p) => existsSync(p));
  if (!path) throw new Error(`origdst addon for ${platformDir} not found; looked in ${tried.join(', ')}`);
  const req = typeof require === 'function' ? require : createRequire(join(dirname(path), 'x.js'));
  addon = req(path) as OrigDstAddon;
  return addon;
}

/** fd of a net.Socket (private but stable: `_handle.fd`, as used by every SO_ORIGINAL_DST user on Node). */
export function socketFd(socket: object): number {
  const fd = (socket as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error(`socket has no usable fd (got ${String(fd)})`);
  return fd;
}

export function originalDestination(socket: object): OriginalDestination {
  return loadOrigDst().getOriginalDst(socketFd(socket));
}
