// A Transport that runs the release module's real shell scripts on this machine, with /opt/epoch-agent moved under
// a scratch folder: every argv word and path is rewritten, so nothing outside the scratch folder is touched.
import type { Argv } from '../../../provisioner/src/core/change';
import { agentHome } from '../../../provisioner/src/modules/agent/layout';
import type { ExecOptions, ExecResult, Transport } from '../../../provisioner/src/transport/transport';

export class RootedTransport implements Transport {
  readonly hostName: string;
  readonly calls: { argv: Argv; stdinBytes: number }[] = [];

  constructor(
    private readonly inner: Transport,
    private readonly root: string,
  ) {
    this.hostName = inner.hostName;
  }

  private move(word: string): string {
    return word.replaceAll(agentHome, `${this.root}${agentHome}`);
  }

  exec(argv: Argv, options: ExecOptions = {}): Promise<ExecResult> {
    this.calls.push({ argv, stdinBytes: options.stdin === undefined ? 0 : Buffer.byteLength(options.stdin) });
    return this.inner.exec(argv.map((w) => this.move(w)), options);
  }

  getFile(path: string): Promise<Buffer> {
    return this.inner.getFile(this.move(path));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
