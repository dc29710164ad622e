// lab preflight: each missing prerequisite is one clear line, raised before anything is changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LabUnavailable, type PreflightProbe, preflight } from './lab';

const tools = ['ip', 'systemd-nspawn', 'nsenter', 'ssh-keygen', 'openssl', 'mount', 'chroot'];

function probe(overrides: { uid?: number; missing?: string[]; filesystems?: string } = {}): PreflightProbe {
  const present = new Set(['/proc/self/ns/net', '/sys/fs/cgroup/cgroup.procs', ...tools.map((t) => `/usr/bin/${t}`)]);
  for (const m of overrides.missing ?? []) present.delete(m);
  const files: Record<string, string> = {
    '/proc/filesystems': overrides.filesystems ?? 'nodev\tproc\nnodev\toverlay\n',
    '/proc/sys/kernel/osrelease': '6.1.0-test\n',
  };
  return {
    uid: overrides.uid ?? 0,
    exists: (path) => present.has(path),
    read: (path) => files[path] ?? assert.fail(`unexpected read of ${path}`),
    pathDirs: ['/usr/bin'],
  };
}

const unavailable = (p: PreflightProbe, message: RegExp) =>
  assert.throws(() => preflight(p), (e: unknown) => e instanceof LabUnavailable && message.test(e.message) && !e.message.includes('\n'));

test('a machine with everything passes; each missing prerequisite is named in one line', () => {
  assert.doesNotThrow(() => preflight(probe()));
  unavailable(probe({ uid: 1000 }), /^the lab needs root .*run it with sudo$/);
  unavailable(probe({ missing: ['/proc/self/ns/net'] }), /no network namespaces \(\/proc\/self\/ns\/net is missing\)/);
  unavailable(probe({ filesystems: 'nodev\tproc\n' }), /^this kernel \(6\.1\.0-test\) has no overlayfs/);
  unavailable(probe({ missing: ['/sys/fs/cgroup/cgroup.procs'] }), /^no cgroup2 hierarchy/);
  unavailable(probe({ missing: ['/usr/bin/systemd-nspawn', '/usr/bin/nsenter'] }), /^missing tools: systemd-nspawn \(apt-get install systemd-container\), nsenter \(apt-get install util-linux\)$/);
});

test('overlayfs as a loadable module (not yet in /proc/filesystems) is enough', () => {
  const p = probe({ filesystems: 'nodev\tproc\n' });
  const exists = p.exists;
  assert.doesNotThrow(() => preflight({ ...p, exists: (path) => path === '/lib/modules/6.1.0-test/kernel/fs/overlayfs' || exists(path) }));
});
