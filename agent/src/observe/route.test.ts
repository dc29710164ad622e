import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RouteTemplater, maxRouteLength } from './route';

test('query and fragment removed; numbers, UUIDs and hex hashes become {id}', () => {
  const t = new RouteTemplater();
  const cases: [string, string][] = [
    ['/', '/'],
    ['', '/'],
    ['/users/123', '/users/{id}'],
    ['/users/123/orders/456?expand=1&token=secret', '/users/{id}/orders/{id}'],
    ['/objects/3f2504e0-4f89-11d3-9a0c-0305e82c3301#frag', '/objects/{id}'],
    ['/git/commit/4b825dc642cb6eb9a060e54bf8d69288fbee4904', '/git/commit/{id}'],
    ['/blob/a1b2c3d4', '/blob/{id}'],
    ['/static/deadbeefcafe/app.js', '/static/deadbeefcafe/app.js'], // hex letters only: a word, not an id
    ['/v1/items', '/v1/items'],
    ['/api/v2/', '/api/v2/'],
    ['https://example.test/users/9?x', '/users/{id}'],
    ['example.test:443', '{authority}'],
    ['*', '*'],
    ['/caf\u00e9/1', '/{id}/{id}'],
  ];
  for (const [input, route] of cases) assert.equal(t.route(input), route, input);
});

test('configured rules run first, on the path without the query', () => {
  const t = new RouteTemplater([
    { match: '^/tenants/[^/]+', replace: '/tenants/{tenant}' },
    { match: '/sessions/[A-Za-z0-9_-]{20,}', replace: '/sessions/{token}' },
  ]);
  assert.equal(t.route('/tenants/acme/users/42?q=1'), '/tenants/{tenant}/users/{id}');
  assert.equal(t.route('/sessions/AbCdEfGhIjKlMnOpQrStUvWx'), '/sessions/{token}');
  assert.throws(() => new RouteTemplater([{ match: '(', replace: '' }]), /observe\.routeRules\[0\]\.match: invalid regular expression/);
});

test('long paths are truncated', () => {
  const t = new RouteTemplater();
  const r = t.route(`/${'segment/'.repeat(100)}`);
  assert.equal(r.length, maxRouteLength + '{truncated}'.length);
});
