// poe-gateway: MIT licence. LiteLLM's fallbacks: a route failing before the first byte (429, 529, 5xx, a timeout, after its
// retries) hands the request to the next route of its model's list, of either kind; cooldowns; context_window_fallbacks;
// the access log, /metrics and x-poe-gateway-route say which route served.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import { MASTER_KEY, authHeaders, certs, parseSSE, request, runGateway, startGateway, startMock, tmpdir } from './lib/harness.mjs';

const OVERLOADED = JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
const SONNET = 'claude-sonnet-4-5-20250929', VIA_OPENAI = 'claude-sonnet-via-openai', HAIKU = 'claude-haiku-4-5-20251001';

const LIMITED_KEY = 'sk-sonnet-only-0123456789abcdef';

function config(mock, router, gateway = '') {
    const https = mock.httpsUrl, key = 'api_key: os.environ/POE_API_KEY';
    return `model_list:
  - model_name: ${SONNET}
    litellm_params: {model: anthropic/claude-sonnet-4.5, api_base: ${https}, ${key}}
  - model_name: ${VIA_OPENAI}
    litellm_params: {model: openai/Claude-Sonnet-4.5, api_base: ${https}/v1, ${key}}
  - model_name: ${HAIKU}
    litellm_params: {model: anthropic/claude-haiku-4.5, api_base: ${https}, ${key}}
  - model_name: gpt-5
    litellm_params: {model: openai/GPT-5, api_base: ${https}/v1, ${key}, timeout: 1}
  - model_name: lonely
    litellm_params: {model: anthropic/claude-sonnet-4.5, api_base: ${https}, ${key}}
  - model_name: small-window
    litellm_params: {model: anthropic/claude-haiku-4.5, api_base: ${https}, ${key}}
    model_info: {max_input_tokens: 100}
  - model_name: mid-window
    litellm_params: {model: anthropic/claude-haiku-4.5, api_base: ${https}, ${key}}
    model_info: {max_input_tokens: 200}
  - model_name: claude-*
    litellm_params: {model: anthropic/*, api_base: ${https}, ${key}}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
router_settings:
${router}${gateway}`;
}

let mock, gw;
before(async () => {
    mock = await startMock();
    gw = await startGateway({
        env: { SSL_CERT_FILE: certs().ca },
        config: config(mock, `  num_retries: 1
  allowed_fails: 1000
  fallbacks:
    - ${SONNET}: [${VIA_OPENAI}]
    - gpt-5: [${HAIKU}, ${SONNET}]
  context_window_fallbacks:
    - small-window: [mid-window, claude-opus-4-1-big]
`, `gateway:
  keys:
    - {name: sonnet-only, key: ${LIMITED_KEY}, models: [${SONNET}]}
`),
    });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});
beforeEach(async () => {
    await mock.control('POST', '/_mock/reset');
});

const send = (g, model, { stream = true, text = 'hi', path: p = '/v1/messages' } = {}) => request(`${g.url}${p}`, {
    method: 'POST', headers: authHeaders(),
    body: JSON.stringify({ model, max_tokens: 64, stream, messages: [{ role: 'user', content: text }] }),
});
const upstreamCalls = async () => (await mock.requests()).filter((q) => q.path !== '/v1/models')
    .map((q) => `${q.path} ${JSON.parse(q.body).model}`);

async function metric(g, re) {
    const res = await request(`${g.url}/metrics`, { headers: { 'x-api-key': MASTER_KEY } });
    const line = res.body.split('\n').find((l) => re.test(l));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

/* The access-log line is written when the request is disposed, just after the client has its answer: wait for it. */
async function logLine(g, re) {
    for (let i = 0; i < 200; i++) {
        const line = g.output.stderr.split('\n').find((l) => re.test(l));
        if (line !== undefined) return line;
        await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`no log line matches ${re}:\n${g.output.stderr.slice(-3000)}`);
}

test('an anthropic/ route answering 529 after its retries is served by its openai/ fallback, unnoticed by the client', async () => {
    const before = await metric(gw, new RegExp(`^poe_gateway_fallbacks_total\\{from="${SONNET}",to="${VIA_OPENAI}"\\}`));
    await mock.script({ match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 529, body: OVERLOADED, repeat: 2,
        headers: { 'anthropic-ratelimit-requests-remaining': '7' } });
    const res = await send(gw, SONNET, { text: 'fallback please' });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], VIA_OPENAI);
    assert.equal(res.headers['anthropic-ratelimit-requests-remaining'], undefined, 'a failed route\'s headers leaked');
    const events = parseSSE(res.body);
    assert.equal(events[0].event, 'message_start');
    assert.equal(events[0].data.message.model, SONNET); /* the client's name, as on any translated answer */
    assert.equal(events.at(-1).event, 'message_stop');
    assert.match(events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join(''), /mock reply to: fallback please/);
    /* the route's own retry first, then the other kind of route for the same bot */
    assert.deepEqual(await upstreamCalls(), ['/v1/messages claude-sonnet-4.5', '/v1/messages claude-sonnet-4.5',
        '/v1/chat/completions claude-sonnet-4.5']);
    assert.equal(await metric(gw, new RegExp(`^poe_gateway_fallbacks_total\\{from="${SONNET}",to="${VIA_OPENAI}"\\}`)), before + 1);
    assert.ok(await metric(gw, new RegExp(`^poe_gateway_requests_total\\{key="master",route="${VIA_OPENAI}",model="${SONNET}",status="200"\\}`)) >= 1);
    const line = await logLine(gw, new RegExp(`route=${VIA_OPENAI} fallback_from=${SONNET} `));
    assert.match(line, /" 200 /);
});

test('an openai/ route answering 429 falls back to an anthropic/ route; a whole answer', async () => {
    await mock.script({ match: { path: '/v1/chat/completions', model: 'gpt-5' }, status: 429, repeat: 2, headers: { 'retry-after': '0' },
        body: JSON.stringify({ error: { message: 'rate limited', type: 'rate_limit_error' } }) });
    const res = await send(gw, 'gpt-5', { stream: false, text: 'whole' });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], HAIKU);
    assert.equal(res.headers['retry-after'], undefined);
    const body = JSON.parse(res.body);
    assert.equal(body.type, 'message');
    assert.match(body.content[0].text, /mock reply to: whole/);
    assert.deepEqual(await upstreamCalls(), ['/v1/chat/completions gpt-5', '/v1/chat/completions gpt-5', '/v1/messages claude-haiku-4.5']);
});

test('/v1/chat/completions: a route answering 429 in OpenAI\'s shape falls back, as for any other error body', async () => {
    await mock.script({ match: { path: '/v1/chat/completions', model: 'gpt-5' }, status: 429, repeat: 2, headers: { 'retry-after': '0' },
        body: JSON.stringify({ error: { message: 'rate limited', type: 'rate_limit_error' } }) });
    const res = await send(gw, 'gpt-5', { stream: false, text: 'chat', path: '/v1/chat/completions' });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], HAIKU);
    assert.match(JSON.parse(res.body).choices[0].message.content, /mock reply to: chat/);
    /* the body goes as the client wrote it, but for the route's bot name (GPT-5) */
    assert.deepEqual(await upstreamCalls(), ['/v1/chat/completions GPT-5', '/v1/chat/completions GPT-5',
        '/v1/chat/completions claude-haiku-4.5']);
});

test('a route that gives no head within its timeout falls back', async () => {
    await mock.script({ match: { path: '/v1/chat/completions', model: 'gpt-5' }, hang: true });
    const res = await send(gw, 'gpt-5', { text: 'stalled' });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], HAIKU);
    assert.equal(parseSSE(res.body).at(-1).event, 'message_stop');
    assert.deepEqual(await upstreamCalls(), ['/v1/chat/completions gpt-5', '/v1/messages claude-haiku-4.5']);
});

test('the list is tried in order; when every route fails, the last one\'s error is the answer', async () => {
    await mock.script(
        { match: { path: '/v1/chat/completions', model: 'gpt-5' }, status: 500, repeat: 2, body: '{"error":{"message":"boom"}}' },
        { match: { path: '/v1/messages', model: 'claude-haiku-4.5' }, status: 529, repeat: 2, body: OVERLOADED },
        { match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 503, repeat: 2, body: 'upstream connect error' },
    );
    const res = await send(gw, 'gpt-5');
    assert.equal(res.status, 529, res.body);
    assert.equal(JSON.parse(res.body).error.type, 'overloaded_error');
    assert.equal(res.headers['x-poe-gateway-route'], SONNET);
    assert.deepEqual(await upstreamCalls(), ['/v1/chat/completions gpt-5', '/v1/chat/completions gpt-5',
        '/v1/messages claude-haiku-4.5', '/v1/messages claude-haiku-4.5', '/v1/messages claude-sonnet-4.5', '/v1/messages claude-sonnet-4.5']);
    /* fallbacks follow the requested model's list only: the sonnet route's own list is not walked */
});

test('an invalid request is not retried elsewhere, and a route without fallbacks answers as before', async () => {
    await mock.script({ match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 400,
        body: JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: 'bad thing' } }) });
    let res = await send(gw, SONNET);
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.body).error.message, 'bad thing');
    assert.equal(res.headers['x-poe-gateway-route'], SONNET);
    assert.deepEqual(await upstreamCalls(), ['/v1/messages claude-sonnet-4.5']);

    await mock.control('POST', '/_mock/reset');
    await mock.script({ match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 529, body: OVERLOADED, repeat: 2 });
    res = await send(gw, 'lonely');
    assert.equal(res.status, 529);
    assert.equal(res.body, OVERLOADED);
    assert.equal(res.headers['x-poe-gateway-route'], 'lonely');
    assert.equal((await upstreamCalls()).length, 2);
});

test('a named key reaches only the fallbacks its models allow', async () => {
    await mock.script({ match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 529, body: OVERLOADED, repeat: 2 });
    const res = await request(`${gw.url}/v1/messages`, { method: 'POST', headers: authHeaders(LIMITED_KEY),
        body: JSON.stringify({ model: SONNET, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(res.status, 529, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], SONNET);
    assert.deepEqual(await upstreamCalls(), ['/v1/messages claude-sonnet-4.5', '/v1/messages claude-sonnet-4.5']);
});

test('context_window_fallbacks: a prompt the estimate says does not fit goes to the first fallback it fits', async () => {
    let res = await send(gw, 'small-window', { text: 'short' });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], 'small-window');
    assert.deepEqual(await upstreamCalls(), ['/v1/messages claude-haiku-4.5']);

    /* some 140 tokens by the estimate (a token per 3 bytes): too many for small-window, not for mid-window */
    await mock.control('POST', '/_mock/reset');
    res = await send(gw, 'small-window', { text: 'mid prompt. '.repeat(33) });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], 'mid-window');
    assert.deepEqual(await upstreamCalls(), ['/v1/messages claude-haiku-4.5']);

    /* some 250 tokens: mid-window is skipped for the route without a limit */
    await mock.control('POST', '/_mock/reset');
    res = await send(gw, 'small-window', { text: 'long prompt '.repeat(60) });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-poe-gateway-route'], 'claude-*');
    assert.deepEqual(await upstreamCalls(), ['/v1/messages claude-opus-4-1-big']);
    assert.equal(await metric(gw, /^poe_gateway_fallbacks_total\{from="small-window",to="claude-\*"\}/), 1);
    assert.equal(await metric(gw, /^poe_gateway_fallbacks_total\{from="small-window",to="mid-window"\}/), 1);
    await logLine(gw, /route small-window takes 100 input tokens, the prompt has about \d+: small-window goes to route claude-\*/);
});

test('a route that failed more than allowed_fails times is cooled down: its requests go straight to the fallback', async () => {
    const g = await startGateway({
        env: { SSL_CERT_FILE: certs().ca },
        config: config(mock, `  num_retries: 0\n  allowed_fails: 1\n  cooldown_time: 600\n  fallbacks:\n    - ${SONNET}: [${VIA_OPENAI}]\n`),
    });
    try {
        await mock.script({ match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 529, body: OVERLOADED, repeat: 2 });
        for (let i = 0; i < 2; i++) {
            const res = await send(g, SONNET);
            assert.equal(res.status, 200, res.body);
            assert.equal(res.headers['x-poe-gateway-route'], VIA_OPENAI);
        }
        await logLine(g, new RegExp(`route ${SONNET} failed more than 1 times within a minute: cooling down for 600 s`));
        await mock.control('POST', '/_mock/reset');
        const res = await send(g, SONNET, { stream: false });
        assert.equal(res.status, 200, res.body);
        assert.equal(res.headers['x-poe-gateway-route'], VIA_OPENAI);
        assert.deepEqual(await upstreamCalls(), ['/v1/chat/completions claude-sonnet-4.5'], 'the resting route was asked');
        assert.equal(await metric(g, new RegExp(`^poe_gateway_fallbacks_total\\{from="${SONNET}",to="${VIA_OPENAI}"\\}`)), 3);
        await logLine(g, new RegExp(`route ${SONNET} is cooling down: ${SONNET} goes to route ${VIA_OPENAI}`));
    } finally {
        assert.equal((await g.stop()).code, 0);
    }
});

test('a client that leaves while the fallback route works resets the fallback\'s upstream request', async () => {
    for (const protocol of ['h1', 'h2c']) {
        await mock.control('POST', '/_mock/reset');
        await mock.script(
            { match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 529, body: OVERLOADED, repeat: 2 },
            { match: { path: '/v1/chat/completions', model: 'claude-sonnet-4.5' }, hang: true },
        );
        const body = JSON.stringify({ model: SONNET, max_tokens: 64, stream: true, messages: [{ role: 'user', content: protocol }] });
        let leave;
        if (protocol === 'h1') {
            const u = new URL(gw.url);
            const req = http.request({ host: u.hostname, port: u.port, path: '/v1/messages', method: 'POST', headers: authHeaders() });
            req.on('error', () => {});
            req.end(body);
            leave = () => req.destroy();
        } else {
            const session = http2.connect(gw.url);
            session.on('error', () => {});
            const st = session.request({ ':method': 'POST', ':path': '/v1/messages', ...authHeaders() });
            st.on('error', () => {});
            st.end(body);
            leave = () => session.destroy();
        }
        /* once the fallback route has sent its request, the client goes */
        for (let i = 0; i < 200 && !(await upstreamCalls()).includes('/v1/chat/completions claude-sonnet-4.5'); i++)
            await new Promise((r) => setTimeout(r, 25));
        leave();
        let stats;
        for (let i = 0; i < 200 && (stats = await mock.stats()).client_aborts < 1; i++)
            await new Promise((r) => setTimeout(r, 25));
        assert.equal(stats.client_aborts, 1, `${protocol}: the fallback's request was not reset`);
        assert.equal(stats.active, 0);
        await logLine(gw, new RegExp(`HTTP/${protocol === 'h1' ? '1.1' : '2'}" 0 route=${VIA_OPENAI} fallback_from=${SONNET} `));
    }
});

test('--check-config prints the fallbacks; a name no route serves is a configuration error with its position', async () => {
    const dir = tmpdir();
    const file = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(file, config(mock, `  allowed_fails: 2\n  fallbacks: [{${SONNET}: [${VIA_OPENAI}, claude-opus-4-1]}]\n` +
        'litellm_settings:\n  context_window_fallbacks: [{small-window: [mid-window, claude-opus-4-1-big]}]\n'));
    const ok = await runGateway(['--check-config', '--config', file], { env: { POE_API_KEY: 'x', LITELLM_MASTER_KEY: MASTER_KEY } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /fallbacks \(2\), a route resting 5 s after more than 2 failures in a minute:\n/);
    assert.match(ok.stdout, new RegExp(`\\n  ${SONNET} +-> ${VIA_OPENAI}, claude-opus-4-1 \\(route claude-\\*\\)\\n`));
    assert.match(ok.stdout, /\n  small-window +context window -> mid-window, claude-opus-4-1-big \(route claude-\*\)\n/);

    fs.writeFileSync(file, config(mock, `  fallbacks:\n    - ${SONNET}: [gpt-4o]\n`));
    const r = await runGateway(['--check-config', '--config', file], { env: { POE_API_KEY: 'x', LITELLM_MASTER_KEY: MASTER_KEY } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /gateway\.yaml:24:36: fallbacks: target 'gpt-4o' is not served by any model_list entry/);
});
