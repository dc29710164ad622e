// Picks the view once: listr2 tree on an interactive TTY, plain lines in CI or a pipe, JSON lines for --output json.
import type { RunEvent } from '../core/run-events';
import { jsonLine } from './json-renderer';
import { ListrView } from './listr-view';
import { plainLine } from './plain-renderer';

export type OutputMode = 'tree' | 'plain' | 'json';

export interface Renderer {
  handle(e: RunEvent): void;
  /** Call before printing anything else once a play is over (the tree must finish drawing first). */
  settle(): Promise<void>;
}

export function chooseOutputMode(requested: string | undefined, isTty: boolean, env: NodeJS.ProcessEnv): OutputMode {
  if (requested === 'json') return 'json';
  if (requested === 'plain') return 'plain';
  return isTty && !env.CI && env.TERM !== 'dumb' ? 'tree' : 'plain';
}

export function createRenderer(mode: OutputMode, write: (text: string) => void): Renderer {
  if (mode === 'json') return { handle: (e) => write(`${jsonLine(e)}\n`), settle: async () => {} };
  if (mode === 'plain') {
    return {
      handle: (e) => {
        const line = plainLine(e);
        if (line !== null) write(`${line}\n`);
      },
      settle: async () => {},
    };
  }
  const view = new ListrView();
  return {
    handle: (e) => {
      if (e.type === 'recap' || e.type === 'run-start' || e.type === 'rollback-entry') {
        const line = plainLine(e);
        if (line !== null) write(`${line}\n`);
        return;
      }
      view.handle(e);
    },
    settle: async () => {
      for (const line of await view.settle()) if (line) write(`${line}\n`);
    },
  };
}
