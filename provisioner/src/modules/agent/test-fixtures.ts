// Facts builders shared by this folder's unit tests.
import type { HostRuntimeFacts } from './node-runtime';

export function debianRuntime(overrides: Partial<HostRuntimeFacts> = {}): HostRuntimeFacts {
  return {
    machine: 'x86_64',
    glibc: '2.36',
    osId: 'debian',
    osIdLike: [],
    osVersionId: '12',
    systemd: true,
    nodes: [{ path: '/usr/bin/node', version: 'v18.19.0' }],
    ...overrides,
  };
}
