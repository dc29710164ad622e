// A bounded HTTPS client loop inside a lab host: one new curl connection after another (so every restart window is
// hit by fresh connections), each result appended to a file, until a stop file appears or the time bound passes.
import type { Lab, LabHost } from '../../support/lab';

const loopScript = `out=$1 stop=$2 url=$3 cafile=$4 seconds=$5
end=$(( $(date +%s) + seconds ))
: > "$out"
while [ ! -e "$stop" ] && [ "$(date +%s)" -lt "$end" ]; do
  if code=$(curl -sS -o /dev/null --max-time 10 --cacert "$cafile" -w '%{http_code}' "$url" 2>/tmp/epoch-loop.err); then
    echo "ok $code $(date +%s.%N)" >> "$out"
  else
    echo "fail $(date +%s.%N) $(tr '\\n' ' ' < /tmp/epoch-loop.err)" >> "$out"
  fi
done
echo done >> "$out"
`;

export interface LoopResult {
  ok: number;
  failed: string[];
}

export class ClientLoop {
  private readonly out = '/root/epoch-client-loop.out';
  private readonly stop = '/root/epoch-client-loop.stop';
  constructor(
    private readonly lab: Lab,
    private readonly host: LabHost,
  ) {}

  async start(url: string, caFile: string, maxSeconds: number): Promise<void> {
    await this.lab.execOk(this.host, ['rm', '-f', this.out, this.stop]);
    await this.lab.execOk(this.host, ['sh', '-c', 'setsid sh -c "$0" epoch-client-loop "$@" > /dev/null 2>&1 < /dev/null &', loopScript, this.out, this.stop, url, caFile, String(maxSeconds)]);
  }

  async count(): Promise<LoopResult> {
    const text = (await this.lab.exec(this.host, ['cat', this.out])).stdout;
    const lines = text.split('\n').filter((l) => l && l !== 'done');
    return { ok: lines.filter((l) => l.startsWith('ok 200 ')).length, failed: lines.filter((l) => !l.startsWith('ok 200 ')) };
  }

  /** Stops the loop and waits for its last request to finish. */
  async finish(): Promise<LoopResult> {
    await this.lab.execOk(this.host, ['touch', this.stop]);
    for (let i = 0; i < 150; i++) {
      const text = (await this.lab.exec(this.host, ['cat', this.out])).stdout;
      if (text.endsWith('done\n')) return this.count();
      await new Promise((r) => setTimeout(r, 100));
    }
    const text = (await this.lab.exec(this.host, ['tail', '-5', this.out])).stdout;
    throw new Error(`client loop on ${this.host.name} did not stop within 15 s; its last lines: ${JSON.stringify(text)}`);
  }
}
