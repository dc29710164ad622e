// An HTTPS client loop inside a lab host, run as an unprivileged user with the system trust store (like any
// application on the host): one new curl connection after another, each result appended to a file, until a stop
// file appears or the time bound passes. Proves that port 443 never blackholes while something (an uninstall, a
// restart) runs. Files live in /tmp/epoch-https-loop-<id>/ (owned by the user), outside /etc.
//   const loop = new HttpsLoop(lab, 'deb1', 'https://upstream.lab.test/');
//   await loop.start(120); ...; const { ok, failed } = await loop.finish();
import type { Lab, LabHost } from './lab';

const loopScript = `dir=$1 url=$2 seconds=$3
end=$(( $(date +%s) + seconds ))
while [ ! -e "$dir/stop" ] && [ "$(date +%s)" -lt "$end" ]; do
  if code=$(curl -sS -o /dev/null --max-time 10 -w '%{http_code}' "$url" 2>"$dir/err"); then
    echo "ok $code $(date +%s.%N)" >> "$dir/out"
  else
    echo "fail $(date +%s.%N) $(tr '\\n' ' ' < "$dir/err")" >> "$dir/out"
  fi
done
echo done >> "$dir/out"
`;

export interface HttpsLoopResult {
  /** Requests answered 2xx-4xx (the upstream answers 200; anything below 500 means the connection worked). */
  ok: number;
  /** Every other line: curl errors and 5xx answers, with their time and message. */
  failed: string[];
}

let counter = 0;

export class HttpsLoop {
  private readonly dir: string;
  constructor(
    private readonly lab: Lab,
    private readonly host: string | LabHost,
    private readonly url: string,
    private readonly user = 'nobody',
  ) {
    counter += 1;
    this.dir = `/tmp/epoch-https-loop-${process.pid}-${counter}`;
  }

  async start(maxSeconds: number): Promise<void> {
    await this.lab.execOk(this.host, ['sh', '-c', 'rm -rf -- "$1" && mkdir -m 0700 -- "$1" && : > "$1/out" && chown -R "$2" -- "$1"', 'sh', this.dir, this.user]);
    await this.lab.execOk(this.host, [
      'sh', '-c', 'setsid runuser -u "$1" -- sh -c "$2" epoch-https-loop "$3" "$4" "$5" > /dev/null 2>&1 < /dev/null &',
      'sh', this.user, loopScript, this.dir, this.url, String(maxSeconds),
    ]);
  }

  async count(): Promise<HttpsLoopResult> {
    const text = (await this.lab.exec(this.host, ['cat', `${this.dir}/out`])).stdout;
    const lines = text.split('\n').filter((l) => l && l !== 'done');
    const good = (l: string) => /^ok [1-4]\d\d /.test(l);
    return { ok: lines.filter(good).length, failed: lines.filter((l) => !good(l)) };
  }

  /** Stops the loop, waits for its last request to finish, removes its files and returns the counts. */
  async finish(): Promise<HttpsLoopResult> {
    await this.lab.execOk(this.host, ['touch', `${this.dir}/stop`]);
    try {
      for (let i = 0; i < 150; i++) {
        const text = (await this.lab.exec(this.host, ['cat', `${this.dir}/out`])).stdout;
        if (text.endsWith('done\n')) return await this.count();
        await new Promise((r) => setTimeout(r, 100));
      }
      const tail = (await this.lab.exec(this.host, ['tail', '-5', `${this.dir}/out`])).stdout;
      throw new Error(`HTTPS loop on ${typeof this.host === 'string' ? this.host : this.host.name} did not stop within 15 s; its last lines: ${JSON.stringify(tail)}`);
    } finally {
      await this.lab.exec(this.host, ['rm', '-rf', '--', this.dir]);
    }
  }
}
