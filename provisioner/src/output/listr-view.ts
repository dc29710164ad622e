// The TTY progress tree: listr2 as a VIEW of runner events. Each play is a Listr with one task per batch and one
// subtask per host; a host subtask only waits for that host's `host-done` event, so no logic lives in listr.
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { RunEvent } from '../core/run-events';
import { plainLine } from './plain-renderer';

type HostEnd = { status: 'ok' | 'changed' | 'failed' | 'unreachable' | 'not-run'; message?: string };

interface HostSlot {
  done: Promise<HostEnd>;
  finish: (end: HostEnd) => void;
  // biome-ignore lint/suspicious/noExplicitAny: listr2's wrapper type carries renderer generics we do not use
  task?: ListrTaskWrapper<any, any, any>;
  lastMessage?: string;
}

export class ListrView {
  private slots = new Map<string, HostSlot>();
  private running: Promise<unknown> | null = null;
  private readonly trailer: string[] = [];

  private slot(host: string): HostSlot {
    let s = this.slots.get(host);
    if (!s) {
      let finish: (end: HostEnd) => void = () => {};
      const done = new Promise<HostEnd>((resolve) => {
        finish = resolve;
      });
      s = { done, finish };
      this.slots.set(host, s);
    }
    return s;
  }

  handle(e: RunEvent): void {
    switch (e.type) {
      case 'play-start': {
        this.slots = new Map();
        const list = new Listr(
          e.batches.map((hosts, i) => ({
            title: `${e.play}: batch ${i + 1}/${e.batches.length} (${hosts.length} host${hosts.length === 1 ? '' : 's'})`,
            task: (_ctx: unknown, batchTask) =>
              batchTask.newListr(
                hosts.map((host) => ({
                  title: host,
                  task: async (_c: unknown, task) => {
                    const slot = this.slot(host);
                    slot.task = task;
                    const end = await slot.done;
                    if (end.status === 'not-run') task.skip(`${host}: not run (rollout halted)`);
                    else if (end.status === 'failed' || end.status === 'unreachable') throw new Error(`${host}: ${end.status}${end.message ? `: ${end.message}` : ''}`);
                    else task.title = `${host}: ${end.status}`;
                  },
                })),
                { concurrent: true, exitOnError: false },
              ),
          })),
          { concurrent: false, exitOnError: false, rendererOptions: { collapseSubtasks: false, collapseErrors: false } },
        );
        this.running = list.run().catch(() => undefined);
        break;
      }
      case 'task-start': {
        const s = this.slot(e.host);
        if (s.task) s.task.output = e.task;
        break;
      }
      case 'task-result': {
        const s = this.slot(e.host);
        if (e.status === 'failed') s.lastMessage = `${e.task}: ${e.message ?? 'failed'}`;
        if (s.task && e.changes.length > 0) s.task.output = `${e.task}: ${e.changes.map((c) => c.summary).join('; ')}`;
        // Diffs and module reports (CA fingerprints, trust coverage) are printed in full once the tree is done.
        if (e.changes.some((c) => c.diff) || (e.notes?.length ?? 0) > 0) this.trailer.push(plainLine(e) ?? '');
        break;
      }
      case 'host-unreachable':
        this.slot(e.host).lastMessage = e.message;
        break;
      case 'host-done': {
        const s = this.slot(e.host);
        s.finish({ status: e.status, ...(s.lastMessage && { message: s.lastMessage }) });
        break;
      }
      case 'rollout-halted':
        for (const host of e.notRun) this.slot(host).finish({ status: 'not-run' });
        this.trailer.push(plainLine(e) ?? '');
        break;
      case 'health-gate':
        if (!e.passed) this.trailer.push(plainLine(e) ?? '');
        break;
      default:
        break;
    }
  }

  /** Waits for the tree to finish drawing, then prints diffs and notes that do not fit in the tree. */
  async settle(): Promise<string[]> {
    for (const s of this.slots.values()) s.finish({ status: 'not-run' });
    await this.running;
    return this.trailer.splice(0);
  }
}
