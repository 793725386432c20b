// poe-gateway: MIT licence. The server over HTTP/1.1, h2c and h2/TLS: probes, auth, errors, limits, access log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { MASTER_KEY, certs, defaultConfig, protocolsFor, request, startGateway } from './lib/harness.mjs';
import { connect, statuses, waitFor } from './lib/raw.mjs';

let plain, tls;
before(async () => {
    const c = certs();
    plain = await startGateway({ config: defaultConfig(null, 'gateway:\n  max_body_bytes: 65536\n  idle_timeout: 1\n') });
    tls = await startGateway({ config: defaultConfig(null, `gateway:\n  tls:\n    cert_file: ${c.cert}\n    key_file: ${c.key}\n`) });
});
after(async () => {
    for (const gw of [plain, tls]) {
        const { code } = await gw.stop();
        assert.equal(code, 0, gw.output.stderr);
        assert.ok(!gw.output.stderr.includes(MASTER_KEY), 'the master key reached the log');
    }
});

function* matrix() {
    for (const gw of [plain, tls]) for (const protocol of protocolsFor(gw)) yield { gw, protocol };
}

function assertAnthropicError(r, status, type) {
    assert.equal(r.status, status, r.body);
    assert.match(String(r.headers['content-type']), /application\/json/);
    const body = JSON.parse(r.body);
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, type);
    assert.equal(typeof body.error.message, 'string');
    assert.ok(body.error.message.length > 0);
    return body;
}

test('TLS listener negotiates h2 by ALPN; plain listener speaks h2c with prior knowledge', async () => {
    const r = await request(`${tls.url}/health/liveliness`, { protocol: 'h2' });
    assert.equal(r.status, 200);
    assert.equal(r.alpn, 'h2');
    const r1 = await request(`${tls.url}/health/liveliness`, { protocol: 'h1' });
    assert.equal(r1.protocol, 'HTTP/1.1');
    const c = await request(`${plain.url}/health/liveliness`, { protocol: 'h2c' });
    assert.equal(c.status, 200);
    assert.equal(c.protocol, 'HTTP/2');
});

test('HEAD /api/hello and the liveness probes answer 200 without credentials', async () => {
    for (const { gw, protocol } of matrix()) {
        const hello = await request(`${gw.url}/api/hello`, { method: 'HEAD', protocol });
        assert.equal(hello.status, 200, `${protocol} hello`);
        assert.equal(hello.body, '');
        for (const p of ['/health/liveliness', '/health/liveness']) {
            const r = await request(`${gw.url}${p}`, { protocol });
            assert.equal(r.status, 200, `${protocol} ${p}`);
            assert.equal(JSON.parse(r.body), "I'm alive!");
        }
    }
});

test('GET /health/readiness reports version, routes and workers', async () => {
    for (const { gw, protocol } of matrix()) {
        const r = await request(`${gw.url}/health/readiness`, { protocol });
        assert.equal(r.status, 200);
        const body = JSON.parse(r.body);
        assert.equal(body.status, 'ready');
        assert.match(body.version, /^\d+\.\d+\.\d+$/);
        assert.equal(body.routes, 4);
        assert.equal(body.workers, 2);
    }
});

test('authentication: x-api-key or Bearer; missing or wrong is 401 in the Anthropic shape', async () => {
    for (const { gw, protocol } of matrix()) {
        const url = `${gw.url}/v1/models`;
        assert.equal((await request(url, { protocol, headers: { 'x-api-key': MASTER_KEY } })).status, 200);
        assert.equal((await request(url, { protocol, headers: { authorization: `Bearer ${MASTER_KEY}` } })).status, 200);
        assert.equal((await request(url, { protocol, headers: { authorization: `bearer  ${MASTER_KEY} ` } })).status, 200);
        const missing = assertAnthropicError(await request(url, { protocol }), 401, 'authentication_error');
        assert.match(missing.error.message, /missing/);
        const wrong = await request(url, { protocol, headers: { 'x-api-key': MASTER_KEY + 'x' } });
        const body = assertAnthropicError(wrong, 401, 'authentication_error');
        assert.ok(!body.error.message.includes(MASTER_KEY));
        assertAnthropicError(await request(url, { protocol, headers: { authorization: `Basic ${MASTER_KEY}` } }), 401,
            'authentication_error');
        assertAnthropicError(await request(url, { protocol, headers: { 'x-api-key': MASTER_KEY.slice(0, -1) } }), 401,
            'authentication_error');
    }
});

test('unknown path is 404 and wrong method is 405 with Allow, both Anthropic-shaped', async () => {
    for (const { gw, protocol } of matrix()) {
        assertAnthropicError(await request(`${gw.url}/v1/nothing`, { protocol }), 404, 'not_found_error');
        assertAnthropicError(await request(`${gw.url}/`, { protocol }), 404, 'not_found_error');
        const r = await request(`${gw.url}/v1/messages`, { protocol, headers: { 'x-api-key': MASTER_KEY } });
        assertAnthropicError(r, 405, 'invalid_request_error');
        assert.equal(r.headers.allow, 'POST');
        const m = await request(`${gw.url}/v1/models`, { method: 'DELETE', protocol });
        assertAnthropicError(m, 405, 'invalid_request_error');
        assert.equal(m.headers.allow, 'GET, HEAD');
    }
});

test('an error answer keeps its HTTP/1.1 connection: the requests pipelined behind it are answered', async () => {
    // the gateway's errors used to go out without a length, and libh2o closes a connection after a non-200 answer of
    // unknown length: every 4xx dropped whatever the client had pipelined behind it
    const k = `x-api-key: ${MASTER_KEY}\r\n`;
    const c = await connect(plain.port);
    c.write(`GET /nope HTTP/1.1\r\nHost: x\r\n${k}\r\n` +
        'GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n' +
        `POST /v1/messages HTTP/1.1\r\nHost: x\r\n${k}content-length: 1\r\n\r\n{` +
        `DELETE /v1/models HTTP/1.1\r\nHost: x\r\n${k}\r\n` +
        `HEAD /v1/models/nope HTTP/1.1\r\nHost: x\r\n${k}\r\n` +
        `GET /v1/models HTTP/1.1\r\nHost: x\r\n${k}\r\n`);
    await waitFor(() => statuses(c.text).length === 6 || c.closed, 5000);
    assert.deepEqual(statuses(c.text), [404, 401, 400, 405, 404, 200], c.text);
    assert.ok(!c.closed, 'the connection was closed');
    const heads = c.text.split(/HTTP\/1\.1 /).slice(1);
    for (const h of heads.slice(0, 5)) {
        assert.match(h, /\r\nconnection: keep-alive\r\n/i, h);
        assert.match(h, /\r\ncontent-length: \d+\r\n/i, h);
        assert.match(h, /\r\ncontent-type: application\/json\r\n/i, h);
    }
    c.destroy();
});

test('the query string does not affect routing (Claude Code sends ?beta=true)', async () => {
    const r = await request(`${plain.url}/v1/messages?beta=true`, { method: 'POST', headers: { 'x-api-key': MASTER_KEY }, body: '{' });
    assertAnthropicError(r, 400, 'invalid_request_error');
    const h = await request(`${plain.url}/health/liveliness?x=1`);
    assert.equal(h.status, 200);
});

test('a body over gateway.max_body_bytes: 413 request_too_large over HTTP/1.1, the stream refused over HTTP/2', async () => {
    const big = JSON.stringify({ model: 'gpt-5', max_tokens: 1, messages: [{ role: 'user', content: 'x'.repeat(70000) }] });
    const headers = { 'x-api-key': MASTER_KEY, 'content-type': 'application/json' };
    const r = await request(`${plain.url}/v1/messages`, { method: 'POST', headers, body: big });
    const e = assertAnthropicError(r, 413, 'request_too_large');
    assert.equal(e.error.message, 'request body is larger than gateway.max_body_bytes (65536 bytes)');
    assert.equal(r.headers.connection, 'close', 'the body was not read: the connection cannot be reused');
    const chunked = await request(`${plain.url}/v1/messages`, { method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' }, body: big });
    assertAnthropicError(chunked, 413, 'request_too_large');
    // libh2o's other refusals of a body it cannot read: the same shape
    const k = `x-api-key: ${MASTER_KEY}\r\n`;
    for (const [head, re] of [['content-length: 1x', /content-length/], ['transfer-encoding: gzip', /transfer-encoding/]]) {
        const c = await connect(plain.port);
        c.write(`POST /v1/messages HTTP/1.1\r\nHost: x\r\n${k}${head}\r\n\r\n{}`);
        await c.waitClose(2000);
        assert.deepEqual(statuses(c.text), [400], c.text);
        assert.match(c.text, /\r\ncontent-type: application\/json\r\n/i, c.text);
        const body = JSON.parse(c.text.slice(c.text.indexOf('\r\n\r\n') + 4));
        assert.equal(body.error.type, 'invalid_request_error');
        assert.match(body.error.message, re);
    }
    // libh2o 2.2.5 answers an oversized HTTP/2 body with RST_STREAM (REFUSED_STREAM) rather than a 413 response
    await assert.rejects(request(`${plain.url}/v1/messages`, { method: 'POST', protocol: 'h2c', headers, body: big }),
        /REFUSED_STREAM/);
    // just under the limit is read and routed (and answered by the route, not by the size check), on either protocol
    const ok = JSON.stringify({ model: 'nope', max_tokens: 1, messages: [{ role: 'user', content: 'x'.repeat(60000) }] });
    for (const protocol of ['h1', 'h2c']) {
        const r2 = await request(`${plain.url}/v1/messages`, { method: 'POST', protocol, headers, body: ok });
        assert.equal(r2.status, 404, protocol);
    }
});

test('an idle client is disconnected after gateway.idle_timeout', async () => {
    const sock = net.connect(plain.port, '127.0.0.1');
    const t0 = Date.now();
    await new Promise((resolve, reject) => {
        sock.on('close', resolve);
        sock.on('error', resolve);
        setTimeout(() => reject(new Error('idle connection still open after 5 s')), 5000);
    });
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 800 && elapsed < 4000, `closed after ${elapsed} ms`);
});

test('one access-log line per request, with key name and route, never the key', async () => {
    const before = plain.output.stderr.split('\n').filter((l) => l.includes('[access]')).length;
    await request(`${plain.url}/v1/models?limit=1`, { headers: { 'x-api-key': MASTER_KEY } });
    await request(`${plain.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': MASTER_KEY },
        body: JSON.stringify({ model: 'claude-opus-9', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] }), protocol: 'h2c' });
    await new Promise((r) => setTimeout(r, 100));
    const lines = plain.output.stderr.split('\n').filter((l) => l.includes('[access]'));
    assert.equal(lines.length - before, 2, lines.slice(before).join('\n'));
    const [models, messages] = lines.slice(before);
    assert.match(models, /"GET \/v1\/models\?limit=1 HTTP\/1\.1" 200 route=- key=master dur_ms=[\d.]+ bytes=\d+/);
    // the route has no reachable upstream here: what matters is that the line names the route and the key
    assert.match(messages, /"POST \/v1\/messages HTTP\/2" 502 route=claude-\* key=master/);
    assert.match(models, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info \[access\] 127\.0\.0\.1 /);
});
