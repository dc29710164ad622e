import assert from 'node:assert/strict';
import { test } from 'node:test';
import { demoCommand, parseRequestCounts } from './demo';

test('request counts come from the histogram _count series, one row per label set', () => {
  const text = [
    '# TYPE http_client_request_duration_seconds histogram',
    'http_client_request_duration_seconds_bucket{server_address="upstream.lab.test",http_request_method="GET",http_response_status_code="200",http_route="/status/{id}",le="0.1"} 3',
    'http_client_request_duration_seconds_count{server_address="upstream.lab.test",http_request_method="GET",http_response_status_code="200",http_route="/status/{id}",network_protocol_version="2"} 3',
    'http_client_request_duration_seconds_count{server_address="upstream.lab.test",http_request_method="GET",http_response_status_code="404",http_route="/users/{id}/orders"} 1',
    'epoch_agent_loop_refused_total 0',
  ].join('\n');
  assert.deepEqual(parseRequestCounts(text), [
    { server: 'upstream.lab.test', method: 'GET', status: '200', route: '/status/{id}', count: 3 },
    { server: 'upstream.lab.test', method: 'GET', status: '404', route: '/users/{id}/orders', count: 1 },
  ]);
  assert.deepEqual(parseRequestCounts(''), []);
});

test('bad demo flags are a config error before anything starts', async () => {
  const original = console.error;
  console.error = () => {};
  try {
    assert.equal(await demoCommand(['--hosts', '1']), 2);
    assert.equal(await demoCommand(['--flavor', 'arch']), 2);
  } finally {
    console.error = original;
  }
});
