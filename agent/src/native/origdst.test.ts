import assert from 'node:assert/strict';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { test } from 'node:test';
import { loadOrigDst, originalDestination, socketFd } from './origdst';

async function acceptedSocket(host: string): Promise<{ accepted: Socket; close: () => void }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as AddressInfo).port;
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const client = connect(port, host);
  const s = await accepted;
  return { accepted: s, close: () => { client.destroy(); s.destroy(); server.close(); } };
}

test('the prebuilt addon for this platform loads and rejects bad fds with the errno text', () => {
  const addon = loadOrigDst();
  assert.throws(() => addon.getOriginalDst(-1), /non-negative integer/);
  assert.throws(() => addon.getOriginalDst(0), /getsockname: Socket operation on non-socket|getsockopt/);
});

test('without NAT: the conntrack original destination is the socket itself, or ENOENT when conntrack is off (v4, v6, v4-mapped)', async () => {
  for (const host of ['127.0.0.1', '::1']) {
    const { accepted, close } = await acceptedSocket(host);
    try {
      assert.ok(socketFd(accepted) > 2);
      let got: { address: string; port: number; family: number } | null = null;
      try {
        got = originalDestination(accepted);
      } catch (e) {
        assert.match((e as Error).message, /No such file or directory|ENOENT/);
      }
      if (got) {
        assert.equal(got.address, host);
        assert.equal(got.port, accepted.localPort);
        assert.equal(got.family, host.includes(':') ? 6 : 4);
      }
    } finally {
      close();
    }
  }
});
