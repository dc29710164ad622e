// Small modules for the runner's unit tests: a file module with an undo, and one that never converges.
import { z } from 'zod';
import type { Change } from '../core/change';
import type { HostContext } from '../modules/module';
import type { RegisteredModule } from '../modules/registry';

const fileParams = z.object({ path: z.string(), content: z.string(), secret: z.boolean().optional() });
type FileParams = z.infer<typeof fileParams>;
type FileFacts = { content: string | null };

export const testFileModule: RegisteredModule = {
  name: 'test_file',
  params: fileParams,
  async gather(host: HostContext, p: FileParams): Promise<FileFacts> {
    const r = await host.transport.exec(['cat', p.path]);
    return { content: r.exitCode === 0 ? r.stdout : null };
  },
  plan(p: FileParams, f: FileFacts): Change[] {
    if (f.content === p.content) return [];
    return [
      {
        id: `file:${p.path}`,
        summary: `${f.content === null ? 'create' : 'update'} ${p.path}`,
        diff: { subject: p.path, before: f.content ?? '', after: p.content },
        steps: [{ kind: 'put', path: p.path, content: p.content, mode: 0o644, ...(p.secret && { secret: true }) }],
        undo: f.content === null ? [{ kind: 'run', argv: ['rm', '-f', p.path] }] : [{ kind: 'put', path: p.path, content: f.content, mode: 0o644 }],
      },
    ];
  },
};

/** Always wants one more change: apply "works" but the state never matches. */
export const testDriftModule: RegisteredModule = {
  name: 'test_drift',
  params: z.object({}),
  async gather() {
    return {};
  },
  plan(): Change[] {
    return [{ id: 'drift', summary: 'set the unsettable', steps: [{ kind: 'run', argv: ['true'] }], undo: null }];
  },
};
