// poe-gateway: MIT licence. The stream contract (#14): every answer ends complete or says why. A stream ends with
// message_stop only when Poe's answer really completed, and otherwise with exactly one `error` event; a whole answer is
// complete JSON under a 2xx, or an Anthropic error body under a 4xx/5xx. Checked against what real upstreams do and the
// mock cannot: a TLS connection destroyed under an HTTP/2 stream (Node's http2 server), and against hand-scripted
// answers the anthropic/ route used to relay as they were (5xx bodies of any shape, 204/302/418, streams that just end,
// garbage, a JSON body to a streamed request, a whole answer cut mid-way). Also: the route's Poe key never reaches a
// client or the log, whichever way an upstream quotes it.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import { POE_KEY, anthropicStream, authHeaders, certs, openaiStream, parseSSE, request, startGateway, startMock } from './lib/harness.mjs';

let mock, gw, h2up;
const h2conns = new Set();

/** A Node HTTP/2-over-TLS upstream whose handler each test sets: it can destroy the TLS socket mid-answer. */
async function startH2Upstream() {
    const c = certs();
    const server = http2.createSecureServer({ cert: fs.readFileSync(c.cert), key: fs.readFileSync(c.key) });
    server.on('session', (s) => { h2conns.add(s); s.on('close', () => h2conns.delete(s)); });
    // Node hands http2 handlers a proxy that refuses destroy(): keep the TLS sockets themselves, by the peer's port
    const sockets = new Map();
    server.on('secureConnection', (s) => { sockets.set(s.remotePort, s); s.on('close', () => sockets.delete(s.remotePort)); });
    // until a test sets its own: 404 (the gateway asks an openai/ route's upstream for its catalog at start)
    const notFound = (stream) => { stream.respond({ ':status': 404, 'content-type': 'application/json' }); stream.end('{}'); };
    const up = { server, port: 0, handler: notFound, cut: (stream) => sockets.get(stream.session.socket.remotePort).destroy() };
    server.on('stream', (stream, headers) => {
        stream.on('error', () => {});
        let body = '';
        stream.setEncoding('utf8');
        stream.on('data', (d) => (body += d));
        stream.on('end', () => up.handler(stream, headers, body));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    up.port = server.address().port;
    return up;
}

const route = (name, model, base, extra = '') => `  - model_name: ${name}
    litellm_params:
      model: ${model}
      api_base: ${base}
      api_key: os.environ/POE_API_KEY
      timeout: 3
      stream_timeout: 3
      max_retries: 0
${extra}`;
const config = (m, h2port) => `model_list:
${route('claude-h1', 'anthropic/claude-haiku-4.5', m.httpUrl)}${route('claude-h2', 'anthropic/claude-haiku-4.5', m.httpsUrl)}${
    route('claude-node', 'anthropic/claude-haiku-4.5', `https://localhost:${h2port}`)}${
    route('gpt-h2', 'openai/GPT-5', `${m.httpsUrl}/v1`)}${route('gpt-node', 'openai/GPT-5', `https://localhost:${h2port}/v1`)}general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  upstream_rpm: 0
`;

before(async () => {
    mock = await startMock();
    h2up = await startH2Upstream();
    gw = await startGateway({ config: config(mock, h2up.port), env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    for (const s of h2conns) s.destroy();
    h2up.server.close();
    const { code, signal } = await gw.stop(); // also fails if the Poe key reached the gateway's output
    await mock.stop();
    assert.equal(signal, null, gw.output.stderr.slice(-3000));
    assert.equal(code, 0, gw.output.stderr.slice(-3000));
    assert.doesNotMatch(gw.output.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
});
beforeEach(() => mock.reset());

const msg = (model, extra = {}) => ({ model, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], ...extra });
const post = (body, { protocol = 'h1' } = {}) => request(`${gw.url}/v1/messages`, { method: 'POST', protocol, headers: authHeaders(),
    body: JSON.stringify(body), timeout: 15000 });
const sse = { 'content-type': 'text/event-stream' };
const json = { 'content-type': 'application/json' };
const EVENTS = anthropicStream({ blocks: [{ type: 'text', text: 'hello there' }] });
const WHOLE = JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-haiku-4.5',
    content: [{ type: 'text', text: 'hello there' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 7, output_tokens: 9 } });

/**
 * The contract, for any answer: complete, or it says why. Returns 'complete', 'error-event' or 'error-status'.
 */
function contract(r, stream, what) {
    const where = `${what}: ${r.status} ${r.body.slice(0, 600)}`;
    if (r.status === 200 && stream) {
        assert.match(r.headers['content-type'] ?? '', /^text\/event-stream/, where);
        assert.ok(r.body.endsWith('\n\n'), `${where}: the stream does not end on an event boundary`);
        const events = parseSSE(r.body).filter((e) => e.event !== 'ping');
        const last = events.at(-1);
        assert.ok(last && (last.event === 'message_stop' || last.event === 'error'), `${where}: the stream just ends`);
        assert.equal(events.filter((e) => e.event === 'error' || e.event === 'message_stop').length, 1,
            `${where}: more than one end`);
        for (const e of events) assert.equal(typeof e.data, 'object', `${where}: an event that is not JSON`);
        if (last.event === 'error') {
            assert.equal(last.data.type, 'error', where);
            assert.equal(typeof last.data.error.type, 'string', where);
            assert.equal(typeof last.data.error.message, 'string', where);
            return 'error-event';
        }
        assert.equal(events[0].event, 'message_start', where);
        return 'complete';
    }
    const body = JSON.parse(r.body); // never truncated JSON
    if (r.status === 200) {
        assert.ok(!stream, `${where}: a streamed request answered with a whole body`);
        assert.equal(body.type, 'message', where);
        return 'complete';
    }
    assert.ok(r.status >= 400 && r.status <= 599, where);
    assert.equal(body.type, 'error', where);
    assert.equal(typeof body.error.type, 'string', where);
    assert.equal(typeof body.error.message, 'string', where);
    return 'error-status';
}

/** Waits for the gateway to log a line matching `re` (the access log is written when the request is disposed, which can
 * come a moment after the client has its answer). */
async function logged(re) {
    for (let i = 0; i < 200 && !re.test(gw.output.stderr); i++) await new Promise((r) => setTimeout(r, 25));
    assert.match(gw.output.stderr, re);
}

/** A counter's value from /metrics; -1 when it is missing (asserted where it is used). */
async function metric(name) {
    const r = await request(`${gw.url}/metrics`, { headers: authHeaders() });
    const m = r.body.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm'));
    return m ? Number(m[1]) : -1;
}

test('observation 1: an HTTP/2 stream from Poe that stops early ends in an error event, never as if complete', async () => {
    const cutBefore = await metric('poe_gateway_request_outcomes_total{outcome="upstream_cut"}');
    // three ways a stream stops after message_start and one delta: reset with NO_ERROR, ended cleanly (END_STREAM) but
    // early, and the TLS connection destroyed under it; curl reports only the last as an error
    const ends = {
        'RST_STREAM(NO_ERROR)': [(stream) => stream.close(http2.constants.NGHTTP2_NO_ERROR), /ended before the answer was complete/],
        'END_STREAM early': [(stream) => stream.end(), /ended before the answer was complete/],
        'TLS destroyed': [(stream) => h2up.cut(stream), /the stream from Poe broke off: HTTP\/2 stream \d+ was not closed cleanly/],
    };
    for (const [how, [end, why]] of Object.entries(ends)) {
        h2up.handler = (stream) => {
            stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
            stream.write(EVENTS.slice(0, 3).join(''), () => setTimeout(() => end(stream), 50));
        };
        for (const protocol of ['h1', 'h2c']) {
            const r = await post(msg('claude-node', { stream: true }), { protocol });
            assert.equal(contract(r, true, `anthropic/ ${how} ${protocol}`), 'error-event');
            assert.ok(r.body.startsWith(EVENTS.slice(0, 3).join('')), 'the events before the cut go through byte for byte');
            assert.match(parseSSE(r.body).at(-1).data.error.message, why, how);
        }
    }
    // the same cut under a whole answer: a 502 with an Anthropic body, never a 200 with half a JSON document
    h2up.handler = (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'application/json', 'content-length': String(WHOLE.length) });
        stream.write(WHOLE.slice(0, 60), () => setTimeout(() => h2up.cut(stream), 50));
    };
    const w = await post(msg('claude-node'));
    assert.equal(contract(w, false, 'anthropic/ whole'), 'error-status');
    assert.equal(w.status, 502);
    assert.ok(!w.body.includes(WHOLE.slice(0, 60)));
    // the translated route over the same upstream says why as well
    const chunks = openaiStream({ deltas: [{ content: 'hello' }, { content: ' there' }] });
    h2up.handler = (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
        stream.write(chunks.slice(0, 2).join(''), () => setTimeout(() => h2up.cut(stream), 50));
    };
    const o = await post(msg('gpt-node', { stream: true }));
    assert.equal(contract(o, true, 'openai/'), 'error-event');
    const cutAfter = await metric('poe_gateway_request_outcomes_total{outcome="upstream_cut"}');
    assert.ok(cutBefore >= 0, 'no outcome counter in /metrics');
    assert.equal(cutAfter - cutBefore, 8, '/metrics counts every cut');
    await logged(/"POST \/v1\/messages HTTP\/1\.1" 200 route=claude-node .* outcome=upstream_cut/);
});

// What the anthropic/ route once relayed as it came. Each runs over HTTP/1.1 and HTTP/2+TLS to the upstream, streamed and not.
const hostile = [
    ['a 500 with {"error":"boom"}', { status: 500, headers: json, body: '{"error":"boom"}' },
        (r) => { assert.equal(r.status, 500); assert.equal(JSON.parse(r.body).error.message, 'boom'); }],
    ['a 502 HTML page', { status: 502, headers: { 'content-type': 'text/html' }, body: '<html><body><h1>502 Bad Gateway</h1></body></html>' },
        (r) => { assert.equal(r.status, 502); assert.equal(JSON.parse(r.body).error.type, 'api_error'); }],
    ['a 204 with no body', { status: 204 }, (r) => assert.equal(r.status, 502)],
    ['a 302 with no body', { status: 302, headers: { location: 'https://example.invalid/login' } },
        (r) => { assert.equal(r.status, 502); assert.match(JSON.parse(r.body).error.message, /redirect to https:\/\/example\.invalid\/login/); }],
    ['a 418 with no body', { status: 418 }, (r) => { assert.equal(r.status, 400); assert.match(JSON.parse(r.body).error.message, /418/); }],
    ['a 200 stream that ends without message_stop', { headers: sse, chunks: EVENTS.slice(0, 4) }, null],
    ['a 200 stream of garbage', { headers: sse, chunks: ['hello world\n\n', 'data: <html>\n\n', 'event: x\ndata: {oops\n\n'] },
        (r) => assert.equal(r.status, 502)],
    ['a 200 stream with content before message_start', { headers: sse, chunks: EVENTS.slice(1) }, (r) => assert.equal(r.status, 502)],
    ['a JSON body under text/event-stream', { headers: sse, body: WHOLE }, (r) => assert.equal(r.status, 502)],
    ['a 200 whole answer cut mid-way', { headers: json, chunks: [WHOLE.slice(0, 50), WHOLE.slice(50)], cut_after: 1 }, null],
    ['an empty 200', { headers: json, body: '' }, (r) => assert.equal(r.status, 502)],
];

test('observation 3: what an upstream sends that is not an answer becomes an Anthropic error on the anthropic/ route', async () => {
    for (const [what, resp, check] of hostile)
        for (const model of ['claude-h1', 'claude-h2'])
            for (const stream of [false, true]) {
                await mock.reset();
                await mock.script({ match: { path: '/v1/messages' }, ...resp });
                const r = await post(msg(model, { stream }));
                const got = contract(r, stream, `${what} (${model}, stream ${stream})`);
                assert.notEqual(got, 'complete', `${what} (${model}, stream ${stream}) passed for a complete answer: ${r.body}`);
                if (check && r.status !== 200) check(r);
            }
    // a JSON body to a streamed request, and a stream to a whole one, are not what was asked
    await mock.script({ match: { path: '/v1/messages' }, headers: json, body: WHOLE });
    assert.equal((await post(msg('claude-h2', { stream: true }))).status, 502);
    await mock.script({ match: { path: '/v1/messages' }, headers: sse, chunks: EVENTS });
    assert.equal((await post(msg('claude-h2'))).status, 502);
});

test('Poe\'s own Anthropic-shaped errors stay byte for byte, as a status or as the first event of a stream', async () => {
    const overloaded = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}';
    await mock.script({ match: { path: '/v1/messages' }, status: 529, headers: json, body: overloaded });
    const s = await post(msg('claude-h2'));
    assert.equal(s.status, 529);
    assert.equal(s.body, overloaded);
    // an error before anything else in a 200 stream becomes the status its type implies, with that body
    await mock.script({ match: { path: '/v1/messages' }, headers: sse, chunks: [`event: error\ndata: ${overloaded}\n\n`] });
    const e = await post(msg('claude-h2', { stream: true }));
    assert.equal(e.status, 529);
    assert.equal(e.body, overloaded);
    // after message_start it is relayed as it is and ends the stream
    await mock.script({ match: { path: '/v1/messages' }, headers: sse, chunks: [...EVENTS.slice(0, 3), `event: error\ndata: ${overloaded}\n\n`,
        ...EVENTS.slice(3)] });
    const m = await post(msg('claude-h2', { stream: true }));
    assert.equal(contract(m, true, 'error mid-stream'), 'error-event');
    assert.equal(m.body, EVENTS.slice(0, 3).join('') + `event: error\ndata: ${overloaded}\n\n`);
    await logged(/"POST \/v1\/messages HTTP\/1\.1" 200 route=claude-h2 .* outcome=upstream_error/);
});

test('complete answers still pass byte for byte, streamed and whole, and are counted ok', async () => {
    const okBefore = await metric('poe_gateway_request_outcomes_total{outcome="ok"}');
    for (const model of ['claude-h1', 'claude-h2']) {
        await mock.script({ match: { path: '/v1/messages' }, headers: sse, chunks: EVENTS });
        const r = await post(msg(model, { stream: true }));
        assert.equal(contract(r, true, model), 'complete');
        assert.equal(r.body, EVENTS.join(''));
        await mock.script({ match: { path: '/v1/messages' }, headers: json, body: WHOLE });
        const w = await post(msg(model));
        assert.equal(contract(w, false, model), 'complete');
        assert.equal(w.body, WHOLE);
    }
    assert.ok(okBefore >= 0, 'no outcome counter in /metrics');
    assert.ok(await metric('poe_gateway_request_outcomes_total{outcome="ok"}') >= okBefore + 4);
});

test('observation 4: the Poe key is redacted from whatever an upstream quotes, mid-stream too, on both routes', async () => {
    const quoting = `the key ${POE_KEY} is not valid for this bot`;
    // anthropic/: an error event inside a 200 stream, and an Anthropic-shaped error body
    const errEvent = `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'api_error', message: quoting } })}\n\n`;
    await mock.script({ match: { path: '/v1/messages' }, headers: sse, chunks: [...EVENTS.slice(0, 3), errEvent] });
    const a = await post(msg('claude-h2', { stream: true }));
    assert.equal(contract(a, true, 'anthropic/ mid-stream'), 'error-event');
    assert.ok(!a.body.includes(POE_KEY), a.body);
    assert.match(parseSSE(a.body).at(-1).data.error.message, /the key \[redacted\] is not valid/);
    // a key in a text delta is redacted as well (whatever the upstream echoes)
    const echo = anthropicStream({ blocks: [{ type: 'text', text: `echo ${POE_KEY} echo` }] });
    await mock.script({ match: { path: '/v1/messages' }, headers: sse, chunks: echo });
    const d = await post(msg('claude-h2', { stream: true }));
    assert.equal(contract(d, true, 'anthropic/ echo'), 'complete');
    assert.ok(!d.body.includes(POE_KEY), d.body);
    await mock.script({ match: { path: '/v1/messages' }, status: 400, headers: json,
        body: JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: quoting } }) });
    const b = await post(msg('claude-h2'));
    assert.equal(b.status, 400);
    assert.ok(!b.body.includes(POE_KEY), b.body);
    // openai/: an error chunk inside a 200 stream, after the commit, and one whose message is cut inside the key
    for (const message of [quoting, `${'x'.repeat(500)} ${POE_KEY}`]) {
        const chunks = openaiStream({ deltas: [{ content: 'hello' }] });
        chunks.splice(2, 0, `data: ${JSON.stringify({ error: { message, type: 'server_error', code: 500 } })}\n\n`);
        await mock.script({ match: { path: '/v1/chat/completions' }, headers: sse, chunks });
        const o = await post(msg('gpt-h2', { stream: true }));
        assert.equal(contract(o, true, 'openai/ mid-stream'), 'error-event');
        assert.ok(!o.body.includes(POE_KEY.slice(0, 8)), o.body);
        assert.match(parseSSE(o.body).at(-1).data.error.message, /\[redacted\]/);
    }
    // and nothing of it in the log (the harness's stop() also checks the whole output for the key)
    assert.ok(!gw.output.stderr.includes(POE_KEY), 'the key is in the log');
});
