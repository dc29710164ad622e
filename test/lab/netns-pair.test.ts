// withNetns: two bare namespaces joined by a veth, reachable from each other only, and removed afterwards.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { labSkipReason, withNetns } from '../support/lab';

const skip = process.getuid?.() !== 0 ? 'needs root to create network namespaces' : labSkipReason();

test('withNetns joins two namespaces by a veth and deletes them afterwards', { skip }, async () => {
  let names: string[] = [];
  await withNetns('eplabt', async (pair) => {
    names = [pair.a.name, pair.b.name];
    const listen = 'import socket,sys\ns=socket.socket();s.bind((sys.argv[1],8080));s.listen(1);s.settimeout(10)\nc,_=s.accept();c.sendall(b"hi");c.close()';
    const connect = 'import socket,sys\nc=socket.create_connection((sys.argv[1],8080),timeout=5);print(c.recv(2).decode())';
    const server = pair.exec('b', ['python3', '-c', listen, pair.b.address], { timeoutMs: 15_000 });
    let got = '';
    for (let i = 0; i < 20 && !got; i++) {
      const r = await pair.exec('a', ['python3', '-c', connect, pair.b.address], { timeoutMs: 10_000 });
      got = r.stdout.trim();
      if (!got) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(got, 'hi');
    assert.equal((await server).exitCode, 0);
    assert.equal((await pair.exec('a', ['ip', 'route', 'show', 'default'])).stdout.trim(), '');
  });
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const n of names) assert.equal(list.includes(n), false, `${n} left behind`);
});
