// poe-gateway: MIT licence. Connections to an HTTP/1.1 upstream: the pool is sized to a team's demand
// (gateway.upstream_connections), and a request that waits for a connection past the cap waits; the wait does not count
// against the route's `timeout`, so it never becomes a 504 for a request the upstream never saw.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { MASTER_KEY, anthropicStream, startGateway, startMock } from './lib/harness.mjs';

let mock;
before(async () => {
    mock = await startMock();
});
after(() => mock.stop());
beforeEach(() => mock.reset());

const config = (timeout, extra = '') => `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: ${mock.httpUrl}
      api_key: os.environ/POE_API_KEY
      timeout: ${timeout}
      max_retries: 0
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  upstream_rpm: 0
${extra}`;

/** A streamed answer in `n` writes (2 or 3), the first with the head, the others `gapMs` apart. */
function stream(n, gapMs, repeat) {
    const ev = anthropicStream({ blocks: [{ type: 'text', text: 'queued, not timed out' }] });
    const chunks = n === 2 ? [ev.slice(0, 2).join(''), ev.slice(2).join('')]
        : [ev.slice(0, 2).join(''), ev.slice(2, -3).join(''), ev.slice(-3).join('')];
    return { match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunk_delay_ms: gapMs, repeat, chunks };
}

/** One streamed request on its own connection: {status, body, headMs, endMs} (ms from `t0`). */
function post(gw, t0) {
    const body = JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'hi' }] });
    return new Promise((resolve, reject) => {
        const req = http.request(`${gw.url}/v1/messages`, { method: 'POST', agent: false, headers: { 'x-api-key': MASTER_KEY,
            'anthropic-version': '2023-06-01', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
            const headMs = performance.now() - t0;
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode, body: text, headMs, endMs: performance.now() - t0 }));
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
    });
}

test('past gateway.upstream_connections, streams wait for a connection: all are answered, none is a 504', async () => {
    // 6 streams of 1.6 s, 2 connections, timeout 1 s: 3 waves, the later ones queued longer than the timeout
    await mock.script(stream(3, 800, 6));
    const gw = await startGateway({ config: config(1, '  upstream_connections: 2\n'), args: ['--threads', '1'] });
    try {
        const t0 = performance.now();
        const rs = await Promise.all(Array.from({ length: 6 }, () => post(gw, t0)));
        for (const r of rs) {
            assert.equal(r.status, 200, r.body);
            assert.match(r.body, /event: message_stop/, r.body);
        }
        const sent = (await mock.requests()).filter((q) => q.path === '/v1/messages').length;
        assert.equal(sent, 6);
        // the cap held: two at a time, three waves of at least 1.6 s each
        const last = Math.max(...rs.map((r) => r.endMs));
        assert.ok(last >= 3 * 1600 * 0.95, `the last stream ended after ${Math.round(last)} ms: more than 2 connections were used`);
    } finally {
        await gw.stop();
    }
});

test('by default the pool holds a team\'s streams at once: 64 concurrent streams to an http:// upstream all start before any ends', async () => {
    await mock.script(stream(2, 3000, 64));
    const gw = await startGateway({ config: config(10), args: ['--threads', '1'] });
    try {
        const t0 = performance.now();
        const rs = await Promise.all(Array.from({ length: 64 }, () => post(gw, t0)));
        for (const r of rs) assert.equal(r.status, 200, r.body);
        const lastHead = Math.max(...rs.map((r) => r.headMs)), firstEnd = Math.min(...rs.map((r) => r.endMs));
        assert.ok(lastHead < firstEnd, `the last stream started ${Math.round(lastHead)} ms in, after the first ended (${Math.round(firstEnd)} ms): streams were queued ` +
            `(heads at ${rs.map((r) => Math.round(r.headMs)).sort((a, b) => a - b).join(' ')} ms)`);
    } finally {
        await gw.stop();
    }
});
