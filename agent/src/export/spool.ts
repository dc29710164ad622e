// On-disk spool of remote-write batches (each file is one ready-to-POST snappy WriteRequest), oldest first.
// Bounded in bytes: when a new batch does not fit, the oldest batches are dropped and counted. Files are
// written atomically (temp + rename), so a crash leaves either a whole batch or none, and the spool
// survives agent restarts.
import { chownSync, mkdirSync, statSync } from 'node:fs';
import { readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface SpoolEntry {
  seq: number;
  samples: number;
  bytes: number;
  file: string;
}

const entryRe = /^(\d{16})-(\d+)\.rw$/;

export class Spool {
  private entries: SpoolEntry[] = [];
  private nextSeq = 1;
  private totalBytes = 0;
  droppedBatches = 0;
  droppedSamples = 0;

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {
    if (!(maxBytes > 0)) throw new Error(`metrics.remoteWrite.maxSpoolBytes must be > 0, got ${maxBytes}`);
  }

  /** Creates the directory (0700) and picks up batches left by a previous run. */
  async open(): Promise<void> {
    // The agent opens the spool as root just before dropping to its own user (`run --user`), without awaiting this:
    // give the directory to the owner of the state dir, so the unprivileged agent can still write batches into it.
    // Synchronous on purpose: with awaits here the privilege drop overtook the chown (EPERM, remote-write never
    // started); done before the first await, it completes before open() returns to the caller.
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (process.getuid?.() === 0) {
      const owner = statSync(dirname(this.dir));
      const own = statSync(this.dir);
      if (own.uid !== owner.uid || own.gid !== owner.gid) chownSync(this.dir, owner.uid, owner.gid);
    }
    const found: SpoolEntry[] = [];
    for (const name of await readdir(this.dir)) {
      const file = join(this.dir, name);
      if (name.startsWith('.tmp-')) {
        await rm(file, { force: true }); // an interrupted write
        continue;
      }
      const m = entryRe.exec(name);
      if (!m) continue;
      const { size } = await stat(file);
      found.push({ seq: Number(m[1]), samples: Number(m[2]), bytes: size, file });
    }
    found.sort((a, b) => a.seq - b.seq);
    this.entries = found;
    this.totalBytes = found.reduce((n, e) => n + e.bytes, 0);
    this.nextSeq = (found[found.length - 1]?.seq ?? 0) + 1;
    await this.enforceBound(0);
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get length(): number {
    return this.entries.length;
  }

  get pendingSamples(): number {
    return this.entries.reduce((n, e) => n + e.samples, 0);
  }

  oldest(): SpoolEntry | undefined {
    return this.entries[0];
  }

  async add(body: Buffer, samples: number): Promise<void> {
    if (body.length > this.maxBytes) {
      // Larger than the whole spool: it cannot be kept.
      this.droppedBatches++;
      this.droppedSamples += samples;
      return;
    }
    await this.enforceBound(body.length);
    const seq = this.nextSeq++;
    const file = join(this.dir, `${String(seq).padStart(16, '0')}-${samples}.rw`);
    const tmp = join(this.dir, `.tmp-${seq}`);
    await writeFile(tmp, body, { mode: 0o600 });
    await rename(tmp, file);
    this.entries.push({ seq, samples, bytes: body.length, file });
    this.totalBytes += body.length;
  }

  read(entry: SpoolEntry): Promise<Buffer> {
    return readFile(entry.file);
  }

  /** Removes a batch once the collector has it (or rejected it for good). */
  async remove(entry: SpoolEntry): Promise<void> {
    const i = this.entries.indexOf(entry);
    if (i === -1) return; // already dropped by the bound
    this.entries.splice(i, 1);
    this.totalBytes -= entry.bytes;
    await rm(entry.file, { force: true });
  }

  private async enforceBound(incoming: number): Promise<void> {
    while (this.entries.length > 0 && this.totalBytes + incoming > this.maxBytes) {
      const old = this.entries.shift()!;
      this.totalBytes -= old.bytes;
      this.droppedBatches++;
      this.droppedSamples += old.samples;
      await rm(old.file, { force: true });
    }
  }
}
