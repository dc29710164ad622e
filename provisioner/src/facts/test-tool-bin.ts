// For unit tests that run host probes for real through LocalTransport: a folder holding only the named system tools
// (symlinks), so PATH can be narrowed to exactly what a probe may use, and a private copy of this node binary, which
// a test can "upgrade" by touching it.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { LocalTransport } from '../transport/local-transport';
import type { Transport } from '../transport/transport';

export function toolBin(dir: string, tools: readonly string[]): string {
  mkdirSync(dir);
  for (const tool of tools) {
    symlinkSync(execFileSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { encoding: 'utf8' }).trim(), join(dir, tool));
  }
  return dir;
}

export function nodeCopy(path: string): string {
  copyFileSync(process.execPath, path);
  chmodSync(path, 0o755);
  return path;
}

/** A LocalTransport that records each command it runs as `label(argv)` (read-only tests: no file transfer). */
export function recordingTransport(label: (argv: readonly string[]) => string): { transport: Transport; calls: string[] } {
  const local = new LocalTransport({ hostName: 'local' });
  const calls: string[] = [];
  const transport = {
    hostName: 'local',
    exec: (argv: readonly string[], o?: Parameters<LocalTransport['exec']>[1]) => {
      calls.push(label(argv));
      return local.exec(argv, o);
    },
    getFile: async () => Buffer.from(''),
    close: async () => {},
  };
  return { transport, calls };
}
