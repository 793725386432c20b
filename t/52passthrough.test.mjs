// poe-gateway: MIT licence. anthropic/ routes: pass-through to the mock Poe's /v1/messages over HTTP/2 + TLS.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import Anthropic from '@anthropic-ai/sdk';
import { MASTER_KEY, POE_KEY, anthropicStream, certs, defaultConfig, parseSSE, request, sleep, startGateway, startMock } from './lib/harness.mjs';

let mock, gw;
before(async () => {
    mock = await startMock();
    const extra = `  - model_name: claude-fast-timeout
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
      timeout: 1
      stream_timeout: 1
      max_retries: 0
  - model_name: claude-refused
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: https://127.0.0.1:1
      api_key: os.environ/POE_API_KEY
      max_retries: 1
  - model_name: claude-bad-key
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/WRONG_POE_KEY
`;
    const config = defaultConfig(mock).replace('general_settings:', `${extra}general_settings:`);
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca, WRONG_POE_KEY: 'not-the-poe-key' } });
});
after(async () => {
    const { code } = await gw.stop();
    assert.equal(code, 0, gw.output.stderr.slice(-3000));
    await mock.stop();
    assert.ok(!gw.output.stderr.includes(MASTER_KEY) && !gw.output.stderr.includes(POE_KEY), 'a key reached the log');
});
beforeEach(() => mock.reset());

const headers = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const post = (body, { path = '/v1/messages', protocol = 'h1', extra = {} } = {}) =>
    request(`${gw.url}${path}`, { method: 'POST', protocol, headers: { ...headers, ...extra },
        body: typeof body === 'string' ? body : JSON.stringify(body) });
const msg = (extra = {}) => ({ model: 'claude-sonnet-4-5-20250929', max_tokens: 64, messages: [{ role: 'user', content: 'hello' }], ...extra });

test('the body goes through unchanged but for the model; Poe gets its key, never the master key', async () => {
    const body = '{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"hi \\u00e9"}],' +
        '"metadata":{"user_id":"u"},"context_management":{"edits":[]},"thinking":{"type":"enabled","budget_tokens":1.5e3},"future_field":[1,2.50]}';
    const r = await post(body, { extra: { 'anthropic-beta': 'claude-code-20250219,new-beta-2099-01-01', 'x-claude-code-session-id': 's1' } });
    assert.equal(r.status, 200, r.body);
    const [seen] = await mock.requests();
    assert.equal(seen.path, '/v1/messages');
    assert.equal(seen.protocol, 'HTTP/2');
    assert.equal(seen.tls, true);
    assert.equal(seen.body, body.replace('"claude-sonnet-4-5-20250929"', '"claude-sonnet-4.5"'));
    assert.equal(seen.headers['x-api-key'], POE_KEY);
    assert.equal(seen.headers['anthropic-version'], '2023-06-01');
    assert.equal(seen.headers['anthropic-beta'], 'claude-code-20250219,new-beta-2099-01-01');
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(seen.headers['x-claude-code-session-id'], undefined);
    assert.ok(!JSON.stringify(seen).includes(MASTER_KEY));
    // the reply's model is Poe's, untouched; usage reaches the access log
    assert.equal(JSON.parse(r.body).model, 'claude-sonnet-4.5');
    await sleep(50);
    assert.match(gw.output.stderr, /route=claude-sonnet-4-5-20250929 key=master .* in=\d+ out=\d+/);
});

test('a wildcard route with anthropic/* passes the client model name through', async () => {
    const r = await post(msg({ model: 'claude-opus-5-5' }));
    assert.equal(r.status, 200);
    const [seen] = await mock.requests();
    assert.equal(JSON.parse(seen.body).model, 'claude-opus-5-5');
});

test('SSE is relayed byte for byte, and the official SDK accumulates the message', async () => {
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'Hello from the mock, streamed in pieces.' }] });
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream', 'request-id': 'req_poe_42' },
        chunks, chunk_delay_ms: 5 });
    const raw = await post(msg({ stream: true }), { protocol: 'h2c' });
    assert.equal(raw.status, 200);
    assert.match(raw.headers['content-type'], /text\/event-stream/);
    assert.equal(raw.headers['request-id'], 'req_poe_42');
    assert.equal(raw.body, chunks.join(''));

    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks, chunk_delay_ms: 5 });
    const client = new Anthropic({ apiKey: MASTER_KEY, baseURL: gw.url, maxRetries: 0 });
    const stream = client.messages.stream(msg());
    const deltas = [];
    stream.on('text', (t) => deltas.push(t));
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, 'Hello from the mock, streamed in pieces.');
    assert.ok(deltas.length > 3);
    assert.equal(final.usage.output_tokens, 12);
    assert.equal(final.usage.cache_read_input_tokens, 40);
});

test('count_tokens is forwarded', async () => {
    const r = await post(msg({ max_tokens: undefined }), { path: '/v1/messages/count_tokens?beta=true' });
    assert.equal(r.status, 200, r.body);
    assert.ok(JSON.parse(r.body).input_tokens > 0);
    const [seen] = await mock.requests();
    assert.equal(seen.path, '/v1/messages/count_tokens');
});

test('Poe errors before the stream are relayed with status, body and retry hints', async () => {
    const err = JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'Extra inputs are not permitted' }, request_id: 'req_poe_x' });
    await mock.script({ match: { path: '/v1/messages' }, status: 400, headers: { 'content-type': 'application/json' }, body: err });
    const r = await post(msg());
    assert.equal(r.status, 400);
    assert.equal(r.body, err);
    // a 429 that outlasts the retries reaches the client with its Retry-After
    await mock.reset();
    await mock.script({ match: { path: '/v1/messages' }, status: 429, repeat: 3,
        headers: { 'content-type': 'application/json', 'retry-after': '0', 'anthropic-ratelimit-requests-remaining': '0' },
        body: JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } }) });
    const limited = await post(msg());
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['retry-after'], '0');
    assert.equal(limited.headers['anthropic-ratelimit-requests-remaining'], '0');
    assert.equal((await mock.requests()).length, 3, 'two retries, then relayed');
});

test('503 then 200 is retried transparently, the whole body sent again', async () => {
    await mock.script({ match: { path: '/v1/messages' }, status: 503, body: 'busy' });
    // larger than curl's 16 KB upload buffer, with the renamed model spliced in: the retry must rewind all three parts
    const body = JSON.stringify(msg({ messages: [{ role: 'user', content: 'é'.repeat(30000) + 'end' }] }));
    const r = await post(body);
    assert.equal(r.status, 200, r.body);
    const seen = await mock.requests();
    assert.equal(seen.length, 2);
    const want = body.replace('"claude-sonnet-4-5-20250929"', '"claude-sonnet-4.5"');
    for (const q of seen) assert.ok(q.body === want, `attempt sent ${q.body.length} bytes, not the ${want.length} expected`);
});

test('429 with Retry-After: 1 waits about a second before the retry', async () => {
    await mock.script({ match: { path: '/v1/messages' }, status: 429, headers: { 'retry-after': '1' }, body: '{}' });
    const t0 = Date.now();
    const r = await post(msg());
    const elapsed = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.ok(elapsed >= 900 && elapsed < 3000, `took ${elapsed} ms`);
});

test('a hang hits the route timeout: 504 timeout_error naming the route', async () => {
    await mock.script({ match: { path: '/v1/messages' }, hang: true });
    const t0 = Date.now();
    const r = await post(msg({ model: 'claude-fast-timeout' }));
    assert.equal(r.status, 504, r.body);
    const body = JSON.parse(r.body);
    assert.equal(body.error.type, 'timeout_error');
    assert.match(body.error.message, /claude-fast-timeout/);
    assert.ok(Date.now() - t0 < 4000);
});

test('a stall mid-stream ends with one error event after stream_timeout', async () => {
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'partial answer' }] });
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks, chunk_delay_ms: 5000 });
    const r = await post(msg({ model: 'claude-fast-timeout', stream: true }));
    const events = parseSSE(r.body);
    assert.equal(events[0].event, 'message_start');
    assert.equal(events.at(-1).event, 'error');
    assert.equal(events.at(-1).data.error.type, 'timeout_error');
    assert.equal(events.filter((e) => e.event === 'error').length, 1);
});

test('a cut mid-stream yields one error event, never a silent clean end', async () => {
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'this answer will be cut' }] });
    for (const protocol of ['h1', 'h2c']) {
        await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks, cut_after: 3 });
        const r = await post(msg({ stream: true }), { protocol });
        const events = parseSSE(r.body);
        assert.equal(events.length, 4, r.body);
        assert.equal(events[3].event, 'error');
        assert.equal(events[3].data.type, 'error');
        assert.equal(events[3].data.error.type, 'api_error');
        assert.ok(!events.some((e) => e.event === 'message_stop'));
    }
});

test('a client that disconnects makes Poe see its stream reset within a second', async () => {
    for (const protocol of ['h1', 'h2c']) {
        await mock.reset();
        const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'x'.repeat(400) }] });
        await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks, chunk_delay_ms: 200 });
        await new Promise((resolve, reject) => {
            const u = new URL(gw.url);
            const body = JSON.stringify(msg({ stream: true }));
            if (protocol === 'h1') {
                const req = http.request({ host: u.hostname, port: u.port, path: '/v1/messages', method: 'POST', headers }, (res) => {
                    res.once('data', () => {
                        req.destroy();
                        resolve();
                    });
                });
                req.on('error', () => {});
                req.end(body);
            } else {
                const s = http2.connect(gw.url);
                const st = s.request({ ':method': 'POST', ':path': '/v1/messages', ...headers });
                st.once('data', () => {
                    s.destroy();
                    resolve();
                });
                st.on('error', () => {});
                st.end(body);
            }
            setTimeout(() => reject(new Error('no data')), 5000);
        });
        const t0 = Date.now();
        let stats;
        while (Date.now() - t0 < 1000) {
            stats = await mock.stats();
            if (stats.client_aborts >= 1) break;
            await sleep(50);
        }
        assert.equal(stats.client_aborts, 1, `${protocol}: the mock did not see the reset within 1 s`);
        assert.equal(stats.active, 0);
    }
    // a hang, with nothing flowing, is noticed too (HTTP/1 hang-up polling)
    await mock.reset();
    await mock.script({ match: { path: '/v1/messages' }, hang: true });
    const u = new URL(gw.url);
    const req = http.request({ host: u.hostname, port: u.port, path: '/v1/messages', method: 'POST', headers });
    req.on('error', () => {});
    req.end(JSON.stringify(msg()));
    await sleep(300);
    req.destroy();
    await sleep(1000);
    assert.equal((await mock.stats()).client_aborts, 1);
});

test('200 concurrent streams share one HTTP/2 connection per worker', async () => {
    // four workers: the mock (libh2o) allows 100 streams per connection, and two workers could split 200 unevenly
    const g = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca }, args: ['--threads', '4'] });
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'concurrent' }] });
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks, chunk_delay_ms: 20, repeat: 200 });
    try {
        const results = await Promise.all(Array.from({ length: 200 }, (_, i) => request(`${g.url}/v1/messages`, { method: 'POST',
            protocol: i % 2 ? 'h2c' : 'h1', headers, body: JSON.stringify(msg({ stream: true })) })));
        for (const r of results) {
            assert.equal(r.status, 200);
            assert.equal(r.body, chunks.join(''));
        }
        const stats = await mock.stats();
        assert.equal((await mock.requests()).filter((q) => q.path === '/v1/messages').length, 200);
        assert.ok(stats.tls_connections >= 1 && stats.tls_connections <= 4, `${stats.tls_connections} connections for 4 workers`);
    } finally {
        await g.stop();
    }
});

test('connection refused and a refused Poe key become 502 api_error naming the route', async () => {
    const refused = await post(msg({ model: 'claude-refused' }));
    assert.equal(refused.status, 502);
    const body = JSON.parse(refused.body);
    assert.equal(body.error.type, 'api_error');
    assert.match(body.error.message, /claude-refused/);

    const badKey = await post(msg({ model: 'claude-bad-key' }));
    assert.equal(badKey.status, 502, badKey.body);
    const b = JSON.parse(badKey.body);
    assert.equal(b.error.type, 'api_error');
    assert.match(b.error.message, /claude-bad-key/);
    assert.match(b.error.message, /WRONG_POE_KEY/);
    assert.ok(!badKey.body.includes('not-the-poe-key'));
});

test('a certificate the gateway does not trust is a 502, and the next request is served normally', async () => {
    const g = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: null } });
    try {
        const r = await request(`${g.url}/v1/messages`, { method: 'POST', headers, body: JSON.stringify(msg()) });
        assert.equal(r.status, 502);
        assert.match(JSON.parse(r.body).error.message, /certificate|SSL/i);
    } finally {
        await g.stop();
    }
    assert.equal((await post(msg())).status, 200);
});

test('GET /health probes each upstream without a key, caches for 30 s, and says 503 when one is down', async () => {
    const unauth = await request(`${gw.url}/health`);
    assert.equal(unauth.status, 401);
    const r = await request(`${gw.url}/health`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    assert.equal(r.status, 503, r.body);
    const body = JSON.parse(r.body);
    assert.equal(body.status, 'unhealthy');
    const byBase = Object.fromEntries(body.upstreams.map((u) => [u.api_base, u]));
    assert.equal(byBase[mock.httpsUrl].reachable, true);
    assert.equal(byBase[mock.httpsUrl].status, 200);
    assert.equal(typeof byBase[mock.httpsUrl].latency_ms, 'number');
    assert.equal(byBase[`${mock.httpsUrl}/v1`].reachable, true);
    assert.equal(byBase['https://127.0.0.1:1'].reachable, false);
    assert.ok(byBase['https://127.0.0.1:1'].error.length > 0);
    for (let i = 0; i < 4; i++) await request(`${gw.url}/health`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    const probes = (await mock.requests()).filter((q) => q.method === 'GET');
    assert.ok(probes.length >= 2 && probes.length <= 4, `${probes.length} probes: at most one per upstream per worker`);
    for (const p of probes) {
        assert.match(p.path, /^\/v1\/models$/);
        assert.equal(p.headers['x-api-key'], undefined);
        assert.equal(p.headers.authorization, undefined);
    }

    const ok = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca } });
    try {
        const h = await request(`${ok.url}/health`, { headers: { 'x-api-key': MASTER_KEY } });
        assert.equal(h.status, 200, h.body);
        assert.equal(JSON.parse(h.body).status, 'healthy');
    } finally {
        await ok.stop();
    }
});

test('a slow client gets every byte: the upstream is paused past the high-water mark, then resumed', async () => {
    // about 6 MB of events, far more than the gateway buffers for one client (1 MB)
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'x'.repeat(1) }] });
    const big = [];
    for (let i = 0; i < 3000; i++)
        big.push(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: String(i).padEnd(2000, '.') } })}\n\n`);
    const all = [chunks[0], chunks[1], ...big, ...chunks.slice(2)];
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks: all });
    const u = new URL(gw.url);
    const body = await new Promise((resolve, reject) => {
        const req = http.request({ host: u.hostname, port: u.port, path: '/v1/messages', method: 'POST', headers }, (res) => {
            const parts = [];
            res.pause();
            setTimeout(() => {
                res.on('data', (d) => parts.push(d));
                res.on('end', () => resolve(Buffer.concat(parts).toString()));
                res.resume();
            }, 1500);
        });
        req.on('error', reject);
        req.end(JSON.stringify(msg({ stream: true })));
    });
    assert.equal(body.length, all.join('').length);
    assert.equal(body, all.join(''));
});

test('15 s of silence brings a ping, between events only, even when the silence falls inside an event', async () => {
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'a pause between events, then one inside an event' }] });
    const all = chunks.join('');
    const boundary = chunks[0].length + chunks[1].length; // after content_block_start
    const inside = boundary + chunks[2].length + 20; // in the middle of a content_block_delta
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' },
        chunks: [all.slice(0, boundary), all.slice(boundary, inside), all.slice(inside)], chunk_delay_ms: 16000 });
    const r = await post(msg({ stream: true }));
    const ping = 'event: ping\ndata: {"type": "ping"}\n\n';
    // the event cut by the second silence is held until it is whole, so the ping goes before it, never inside it
    const held = boundary + chunks[2].length;
    assert.equal(r.body, all.slice(0, boundary) + ping + all.slice(boundary, held) + ping + all.slice(held),
        'a ping at each silence, each between two events');
});
