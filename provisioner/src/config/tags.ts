// --tags / --skip-tags with Ansible's rules (Taggable.evaluate_tags): an untagged task has the tag `untagged`;
// `always` runs unless skipped explicitly (or `--skip-tags all` without always being asked for); `never` runs only
// when one of the task's other tags is asked for; `all` and `tagged` select as their names say.
import type { Task } from './types';

export interface TagFilter {
  /** --tags; empty or absent means `all`. */
  tags?: readonly string[];
  /** --skip-tags. */
  skipTags?: readonly string[];
}

export function shouldRunTags(taskTags: readonly string[], filter: TagFilter): boolean {
  const tags = new Set(taskTags.length > 0 ? taskTags : ['untagged']);
  const only = new Set(filter.tags && filter.tags.length > 0 ? filter.tags : ['all']);
  const skip = new Set(filter.skipTags ?? []);
  const untaggedOnly = tags.size === 1 && tags.has('untagged');
  const intersects = (a: Set<string>, b: Set<string>): boolean => [...a].some((t) => b.has(t));

  let run: boolean;
  if (tags.has('always')) run = true;
  else if (only.has('all') && !tags.has('never')) run = true;
  else if (intersects(tags, only)) run = true;
  else if (only.has('tagged') && !untaggedOnly && !tags.has('never')) run = true;
  else run = false;

  if (run && skip.size > 0) {
    if (skip.has('all')) {
      if (!tags.has('always') || skip.has('always')) run = false;
    } else if (intersects(tags, skip)) run = false;
    else if (skip.has('tagged') && !untaggedOnly) run = false;
  }
  return run;
}

/** The tasks that run under --tags/--skip-tags, in order. */
export function filterTasksByTags<T extends Pick<Task, 'tags'>>(tasks: readonly T[], filter: TagFilter): T[] {
  return tasks.filter((t) => shouldRunTags(t.tags, filter));
}

/** `--tags a,b --tags c` → ['a', 'b', 'c'] (Ansible accepts both forms). */
export function splitTagList(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((t) => t.trim()).filter(Boolean);
}
