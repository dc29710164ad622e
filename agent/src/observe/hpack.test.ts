import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HpackDecoder, HpackError, huffmanDecode } from './hpack';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
function decodeAll(d: HpackDecoder, block: Buffer): [string, string][] {
  const out: [string, string][] = [];
  d.decode(block, (n, v) => out.push([n, v]));
  return out;
}

test('RFC 7541 C.2: literal representations', () => {
  const d = new HpackDecoder();
  assert.deepEqual(decodeAll(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), [['custom-key', 'custom-header']]);
  assert.equal(d.dynamicTableSize, 55);
  assert.deepEqual(decodeAll(new HpackDecoder(), hex('040c 2f73 616d 706c 652f 7061 7468')), [[':path', '/sample/path']]);
  const never = new HpackDecoder();
  assert.deepEqual(decodeAll(never, hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), [['password', 'secret']]);
  assert.equal(never.dynamicTableSize, 0);
  assert.deepEqual(decodeAll(new HpackDecoder(), hex('82')), [[':method', 'GET']]);
});

const c3 = [
  ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']], 57],
  ['8286 84be 5808 6e6f 2d63 6163 6865', [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']], 110],
  ['8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']], 164],
] as const;
const c4 = [
  '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
  '8286 84be 5886 a8eb 1064 9cbf',
  '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
];

test('RFC 7541 C.3 and C.4: requests without and with Huffman share one dynamic table', () => {
  for (const huffman of [false, true]) {
    const d = new HpackDecoder();
    c3.forEach(([, headers, size], i) => {
      const block = huffman ? c4[i]! : c3[i]![0];
      assert.deepEqual(decodeAll(d, hex(block)), headers.map((h) => [...h]));
      assert.equal(d.dynamicTableSize, size);
    });
  }
});

const c5 = [
  ['4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']], 222],
  ['4803 3330 37c1 c0bf', [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']], 222],
  ['88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
    [[':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'],
      ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']], 215],
] as const;
const c6 = [
  '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
  '4883 640e ffc1 c0bf',
  '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
];

test('RFC 7541 C.5 and C.6: responses with eviction (256-byte table), without and with Huffman', () => {
  for (const huffman of [false, true]) {
    const d = new HpackDecoder();
    d.setAllowedTableSize(256);
    // The encoder starts at the 4096 default; a size update brings it to 256, as the examples assume.
    decodeAll(d, hex('3fe101'));
    c5.forEach(([plain, headers, size], i) => {
      assert.deepEqual(decodeAll(d, hex(huffman ? c6[i]! : plain)), headers.map((h) => [...h]));
      assert.equal(d.dynamicTableSize, size);
    });
  }
});

test('Huffman: invalid padding and EOS are rejected', () => {
  assert.equal(huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f4ff'), 0, 12), 'www.example.com');
  assert.throws(() => huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f400'), 0, 12), HpackError);
  assert.throws(() => huffmanDecode(hex('ffffffff'), 0, 4), HpackError);
});

test('table-size attack: updates beyond the allowed size and huge SETTINGS are refused, memory stays bounded', () => {
  const d = new HpackDecoder({ hardMaxTableSize: 65536 });
  // Size update to 1,000,000: refused.
  assert.throws(() => decodeAll(d, hex('3fa1843d')), /exceeds the allowed 4096/);
  // A huge SETTINGS_HEADER_TABLE_SIZE is capped at the observer's bound; updates above it are refused.
  const big = new HpackDecoder({ hardMaxTableSize: 65536 });
  big.setAllowedTableSize(2 ** 31 - 1);
  assert.throws(() => decodeAll(big, hex('3fa1843d')), /exceeds the allowed 65536/);
  // Integer overflow attempts are refused rather than wrapping.
  assert.throws(() => decodeAll(d, hex('3fffffffffffffff7f')), /integer too large/);
  // Many inserts never grow the table past its size.
  const block: number[] = [];
  for (let i = 0; i < 2000; i++) block.push(0x40, 0x01, 0x61, 0x7f, 0x00, ...Buffer.alloc(127, 0x62));
  decodeAll(d, Buffer.from(block));
  assert.ok(d.dynamicTableSize <= 4096);
  assert.equal(d.dynamicTableEntries, Math.floor(4096 / (1 + 127 + 32)));
  // A size update after a field is invalid.
  assert.throws(() => decodeAll(d, hex('8220')), /after a header field/);
  // Index past the table.
  assert.throws(() => decodeAll(new HpackDecoder(), hex('be')), /beyond the dynamic table/);
  assert.throws(() => decodeAll(new HpackDecoder(), hex('0a')), /truncated/);
});
