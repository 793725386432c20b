// poe-gateway: MIT licence. The upstream key's rate is shaped and shared fairly: one developer's burst waits in its own
// lane while another developer's requests keep their turn; waiting ends in 429 after queue_timeout; Poe's 429 slows it.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { certs, request, startGateway, startMock } from './lib/harness.mjs';

let mock;
before(async () => {
    mock = await startMock();
});
after(() => mock.stop());
beforeEach(() => mock.reset());

const config = (extra) => `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: MOCK
      api_key: os.environ/POE_API_KEY
      max_retries: 0
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  upstream_rpm: 120
  upstream_burst: 1
${extra}  keys:
    - {name: alice, key: alice-key-0123456789}
    - {name: bob, key: bob-key-0123456789}
`;
const post = (g, key) => {
    const t0 = Date.now();
    return request(`${g.url}/v1/messages`, { method: 'POST',
        headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }) })
        .then((r) => ({ status: r.status, body: r.body, headers: r.headers, ms: Date.now() - t0 }));
};

test('a burst from one key does not starve another: lanes are served round-robin at the shaped rate', async () => {
    const g = await startGateway({ config: config('').replace('MOCK', mock.httpsUrl), env: { SSL_CERT_FILE: certs().ca }, args: ['--threads', '1'] });
    try {
        const alice = Array.from({ length: 20 }, () => post(g, 'alice-key-0123456789'));
        await new Promise((r) => setTimeout(r, 200));
        const bob = [post(g, 'bob-key-0123456789'), post(g, 'bob-key-0123456789')];
        const [a, b] = [await Promise.all(alice), await Promise.all(bob)];
        for (const r of [...a, ...b]) assert.equal(r.status, 200, r.body);
        const aliceLast = Math.max(...a.map((r) => r.ms)), bobLast = Math.max(...b.map((r) => r.ms));
        // 2 requests a second: alice's 20 take ~10 s; bob's 2, interleaved with hers, ~2 s
        assert.ok(aliceLast > 7000, `alice's last took ${aliceLast} ms: the rate was not shaped`);
        assert.ok(bobLast < 3500, `bob waited ${bobLast} ms behind alice's burst`);
    } finally {
        await g.stop();
    }
});

test('a request that waits longer than queue_timeout gets 429 rate_limit_error without reaching Poe', async () => {
    const g = await startGateway({ config: config('  queue_timeout: 0.6\n').replace('MOCK', mock.httpsUrl), env: { SSL_CERT_FILE: certs().ca }, args: ['--threads', '1'] });
    try {
        const rs = await Promise.all(Array.from({ length: 4 }, () => post(g, 'alice-key-0123456789')));
        const limited = rs.filter((r) => r.status === 429);
        assert.ok(limited.length >= 1, rs.map((r) => r.status).join(','));
        assert.equal(JSON.parse(limited[0].body).error.type, 'rate_limit_error');
        assert.ok(Number(limited[0].headers['retry-after']) >= 1);
        const sent = (await mock.requests()).filter((q) => q.path === '/v1/messages').length;
        assert.equal(sent, rs.filter((r) => r.status === 200).length);
    } finally {
        await g.stop();
    }
});

test('Poe\'s 429 slows the shaper down for its Retry-After', async () => {
    const g = await startGateway({ config: config('').replace('upstream_rpm: 120', 'upstream_rpm: 6000').replace('MOCK', mock.httpsUrl),
        env: { SSL_CERT_FILE: certs().ca }, args: ['--threads', '1'] });
    try {
        await mock.script({ match: { path: '/v1/messages' }, status: 429, headers: { 'retry-after': '2' },
            body: '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}' });
        assert.equal((await post(g, 'alice-key-0123456789')).status, 429);
        const next = await post(g, 'bob-key-0123456789');
        assert.equal(next.status, 200);
        assert.ok(next.ms >= 1500, `the next request went after ${next.ms} ms, not after Poe's Retry-After`);
    } finally {
        await g.stop();
    }
});
