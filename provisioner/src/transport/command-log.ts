// What a transport reports about each command it ran, for the local run log. stdin content is never included.
export interface CommandLogEntry {
  host: string;
  /** The quoted command line as sent (or the upload/download it stands for). */
  command: string;
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  /** Whether stdin was sent, and whether it was secret; the bytes themselves are never logged. */
  stdin: 'none' | 'sent' | 'secret';
}

export type CommandLogger = (entry: CommandLogEntry) => void;
