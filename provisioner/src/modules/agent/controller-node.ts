// The opt-in Node runtime pushed from the controller: the controller's own `process.execPath`, when it is a
// self-contained binary (the nodejs.org / NodeSource build, linked only against glibc and libstdc++). Debian's and
// Fedora's `node` link libnode.so and cannot be copied alone, so they are refused with a clear reason.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

export interface ControllerNode {
  path: string;
  version: string;
  /** Node's process.arch: x64, arm64. */
  arch: string;
  /** Highest GLIBC_x.y symbol version the binary references: the host needs at least this glibc. */
  requiredGlibc: string;
  sha256: string;
  /** gzip of the binary, base64: the stdin of the push step. */
  payloadBase64: string;
  payloadBytes: number;
}

export type ControllerNodeResult = { ok: true; node: ControllerNode } | { ok: false; reason: string };

let cached: ControllerNodeResult | undefined;

/** Reads and compresses the controller's node once per process (about 100 MB in, 35 MB out). */
export function loadControllerNode(): ControllerNodeResult {
  cached ??= inspectNodeBinary(process.execPath, process.version, process.arch);
  return cached;
}

export function inspectNodeBinary(path: string, version: string, arch: string): ControllerNodeResult {
  const binary = readFileSync(path);
  const text = binary.toString('latin1');
  if (/libnode\.so/.test(text)) {
    return { ok: false, reason: `the controller's node (${path}) links libnode.so, so it cannot run without the controller's Node libraries; install the self-contained nodejs.org build on the controller or install nodejs on the host` };
  }
  let required = '0.0';
  for (const m of text.matchAll(/GLIBC_(\d+\.\d+)/g)) {
    const [a, b] = m[1]!.split('.').map(Number) as [number, number];
    const [c, d] = required.split('.').map(Number) as [number, number];
    if (a > c || (a === c && b > d)) required = m[1]!;
  }
  if (required === '0.0') return { ok: false, reason: `the controller's node (${path}) references no glibc symbol versions (static or musl build?); refusing to guess whether it runs on the host` };
  const payload = gzipSync(binary, { level: 6 });
  return {
    ok: true,
    node: {
      path,
      version,
      arch,
      requiredGlibc: required,
      sha256: createHash('sha256').update(binary).digest('hex'),
      payloadBase64: payload.toString('base64'),
      payloadBytes: payload.length,
    },
  };
}
