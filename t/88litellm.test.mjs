// poe-gateway: MIT licence. The LiteLLM migration: a team's LiteLLM config and .env (t/assets/litellm-team/), unchanged,
// serve /v1/messages and /v1/chat/completions and listen on LITELLM_PORT; LiteLLM's command-line flags; the OpenAI-format
// endpoint on both route kinds; the hint that moves Claude off openai/ routes (--check-config, doctor).
//
// The team's config names Poe itself (https://api.poe.com/v1). The gateway reaches it here through HTTPS_PROXY, a
// CONNECT proxy of this test that tunnels api.poe.com:443 to the mock Poe, whose test certificate also names api.poe.com.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SOURCE_DIR, certs, defaultConfig, parseSSE, request, runGateway, startGateway, startMock } from './lib/harness.mjs';

// The team's directory as they keep it, config and .env side by side, made afresh for each run: the repository tracks
// no .env file, so t/assets/litellm-team keeps the team's .env (test values) under the name `env`.
const TEAM_SRC = path.join(SOURCE_DIR, 't/assets/litellm-team');
const TEAM_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'pgw-litellm-team-'));
fs.copyFileSync(path.join(TEAM_SRC, 'litellm-config.yaml'), path.join(TEAM_DIR, 'litellm-config.yaml'));
fs.copyFileSync(path.join(TEAM_SRC, 'env'), path.join(TEAM_DIR, '.env'));
const TEAM_CONFIG = path.join(TEAM_DIR, 'litellm-config.yaml');
const TEAM_ENV = Object.fromEntries(fs.readFileSync(path.join(TEAM_DIR, '.env'), 'utf8').split('\n')
    .filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const SONNET = 'claude-sonnet-4-5-20250929';

let mock, proxy, gw;
const tunnels = new Set(), tunnelled = [];

/** A free port: bound by the kernel's choice, then released for the gateway to take. */
function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
        s.on('error', reject);
    });
}

/** An HTTP CONNECT proxy that tunnels api.poe.com:443 to the mock's TLS port, and refuses every other destination. */
function startProxy(target) {
    const server = http.createServer((req, res) => res.writeHead(405).end());
    server.on('connect', (req, sock, head) => {
        tunnels.add(sock);
        sock.on('close', () => tunnels.delete(sock));
        sock.on('error', () => sock.destroy());
        if (req.url !== 'api.poe.com:443') {
            sock.end('HTTP/1.1 403 Forbidden\r\n\r\n');
            return;
        }
        tunnelled.push(req.url);
        const up = net.connect(target, '127.0.0.1', () => {
            sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
            if (head.length) up.write(head);
            up.pipe(sock);
            sock.pipe(up);
        });
        tunnels.add(up);
        up.on('close', () => tunnels.delete(up));
        up.on('error', () => sock.destroy());
        sock.on('close', () => up.destroy());
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const proxyEnv = () => ({ HTTPS_PROXY: `http://127.0.0.1:${proxy.address().port}`, SSL_CERT_FILE: certs().ca });

/** Resolves once the access log holds `n` lines for `path`: the request is disposed, its usage recorded. */
async function logged(g, pathname, n) {
    const count = () => g.output.stderr.split('\n').filter((l) => l.includes(`POST ${pathname} `)).length;
    while (count() < n) await new Promise((r) => g.child.stderr.once('data', r));
}

const chat = (g, body, { key = TEAM_ENV.LITELLM_MASTER_KEY, headers = {} } = {}) =>
    fetch(`${g.url}/v1/chat/completions`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body),
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers } });

/** The data events of an OpenAI stream: parsed chunks, and '[DONE]' as the string. */
const dataEvents = (text) => parseSSE(text).map((e) => e.data);

before(async () => {
    mock = await startMock({ apiKey: TEAM_ENV.POE_API_KEY });
    proxy = await startProxy(mock.httpsPort);
    const port = await freePort();
    // exactly the team's files: the gateway runs in their directory (.env read from there), on their config; the
    // environment names the port (it wins over .env's, which a test cannot count on being free) and the route to Poe
    gw = await startGateway({ configFile: TEAM_CONFIG, cwd: TEAM_DIR, port: null,
        env: { LITELLM_MASTER_KEY: null, POE_API_KEY: null, LITELLM_PORT: String(port), ...proxyEnv() } });
    gw.litellmPort = port;
});

after(async () => {
    const { code } = await gw.stop();
    assert.equal(code, 0, gw.output.stderr.slice(-3000));
    for (const [name, value] of Object.entries(TEAM_ENV))
        if (/KEY/.test(name)) assert.ok(!gw.output.stderr.includes(value), `the gateway logged ${name}`);
    await mock.stop();
    for (const s of tunnels) s.destroy();
    await new Promise((r) => proxy.close(r));
    fs.rmSync(TEAM_DIR, { recursive: true, force: true });
});

test('LITELLM_PORT is the port: from the environment, and from .env when the environment has none', async () => {
    assert.equal(gw.port, gw.litellmPort, gw.output.stderr);
    // the pair as it is, .env's LITELLM_PORT included (checked, not bound: a test cannot count on a fixed port being free)
    const r = await runGateway(['--check-config', '--config', TEAM_CONFIG], { cwd: TEAM_DIR });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^listen: 127\\.0\\.0\\.1:${TEAM_ENV.LITELLM_PORT},`, 'm'));
    // precedence: --port > gateway.port > LITELLM_PORT > 4000
    const dir = fs.mkdtempSync(path.join(gw.dir, 'port-'));
    const withPort = path.join(dir, 'with-port.yaml');
    fs.writeFileSync(withPort, `${fs.readFileSync(TEAM_CONFIG, 'utf8')}gateway:\n  port: 4555\n`);
    const env = { ...TEAM_ENV, LITELLM_PORT: '4444' };
    assert.match((await runGateway(['--check-config', '--config', withPort], { env })).stdout, /^listen: 127\.0\.0\.1:4555,/m);
    assert.match((await runGateway(['--check-config', '--config', withPort, '--port', '4666'], { env })).stdout,
        /^listen: 127\.0\.0\.1:4666,/m);
    assert.match((await runGateway(['--check-config', '--config', TEAM_CONFIG], { env: { ...TEAM_ENV, LITELLM_PORT: null }, cwd: dir }))
        .stdout, /^listen: 127\.0\.0\.1:4000,/m);
    const bad = await runGateway(['--check-config', '--config', TEAM_CONFIG], { env: { ...TEAM_ENV, LITELLM_PORT: '40x' }, cwd: dir });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /LITELLM_PORT must be a port number \(0 to 65535\), not 40x/);
});

test('the team\'s pair serves /v1/messages, whole and streamed, through the tunnel to Poe', async () => {
    const headers = { 'x-api-key': TEAM_ENV.LITELLM_MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
    const body = { model: SONNET, max_tokens: 64, messages: [{ role: 'user', content: 'hello from claude code' }] };
    const whole = await request(`${gw.url}/v1/messages`, { method: 'POST', headers, body: JSON.stringify(body) });
    assert.equal(whole.status, 200, whole.body);
    assert.equal(JSON.parse(whole.body).content[0].text, 'mock reply to: hello from claude code');
    const streamed = await request(`${gw.url}/v1/messages`, { method: 'POST', headers, body: JSON.stringify({ ...body, stream: true }) });
    assert.equal(streamed.status, 200, streamed.body);
    const events = parseSSE(streamed.body);
    assert.equal(events.at(-1).event, 'message_stop');
    assert.equal(events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join(''),
        'mock reply to: hello from claude code');
    assert.ok(tunnelled.length >= 1 && tunnelled.every((t) => t === 'api.poe.com:443'), 'Poe was reached as api.poe.com');
});

test('/v1/chat/completions, whole: the body goes to Poe as sent but for the model; usage is counted', async () => {
    await mock.reset();
    const usageRow = async () => JSON.parse((await request(`${gw.url}/usage`,
        { headers: { authorization: `Bearer ${TEAM_ENV.LITELLM_MASTER_KEY}` } })).body).keys.master[SONNET].total;
    const before = await usageRow(); // the /v1/messages requests of the test before
    // the client's own bytes (spacing, key order, a field the gateway knows nothing of) reach Poe unchanged
    const sent = `{"messages": [{"role": "user", "content": "hi there"}], "model": "${SONNET}", "user": "editor-plugin"}`;
    const r = await chat(gw, sent);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    const answer = await r.json();
    assert.equal(answer.object, 'chat.completion');
    assert.equal(answer.choices[0].message.content, 'mock reply to: hi there');
    assert.match(r.headers.get('x-request-id'), /^req_poe_mock/);

    const [seen] = await mock.requests();
    assert.equal(seen.path, '/v1/chat/completions');
    assert.equal(seen.headers.authorization, `Bearer ${TEAM_ENV.POE_API_KEY}`);
    assert.equal(seen.body, sent.replace(SONNET, 'Claude-Sonnet-4.5'));

    await logged(gw, '/v1/chat/completions', 1);
    const after = await usageRow();
    assert.equal(after.requests - before.requests, 1);
    assert.equal(after.input_tokens - before.input_tokens, answer.usage.prompt_tokens);
    assert.equal(after.output_tokens - before.output_tokens, answer.usage.completion_tokens);
});

test('/v1/chat/completions, streamed: chunks relayed as Poe sent them, [DONE] last, usage from the final chunk', async () => {
    await mock.reset();
    const scrape = async () => (await request(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${TEAM_ENV.LITELLM_MASTER_KEY}` } })).body;
    const sample = (text, kind) =>
        Number(text.match(new RegExp(`^poe_gateway_tokens_total\\{key="master",model="${SONNET}",kind="${kind}"\\} (\\d+)`, 'm'))[1]);
    const before = await scrape();
    const r = await chat(gw, { model: SONNET, stream: true, stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'stream me' }] });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const events = dataEvents(await r.text());
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'Claude-Sonnet-4.5'));
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'mock reply to: stream me');
    const usage = chunks.at(-1).usage;
    assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0);

    await logged(gw, '/v1/chat/completions', 2);
    const metrics = await scrape();
    assert.equal(sample(metrics, 'input') - sample(before, 'input'), usage.prompt_tokens);
    assert.equal(sample(metrics, 'output') - sample(before, 'output'), usage.completion_tokens);
    // two /v1/messages and two /v1/chat/completions so far, all on the one route
    assert.match(metrics, /poe_gateway_requests_total\{key="master",route="claude-sonnet-4-5-20250929",model="claude-sonnet-4-5-20250929",status="200"\} 4/);
});

test('/v1/chat/completions relays each event as it comes: nothing waits for the end of the answer', async () => {
    const base = { id: 'chatcmpl-slow', object: 'chat.completion.chunk', created: 1, model: 'Claude-Sonnet-4.5' };
    const chunk = (delta, finish = null) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    // the second chunk comes a minute after the first: the client must see the first long before
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' }, chunk_delay_ms: 60000,
        chunks: [chunk({ role: 'assistant', content: 'first' }), chunk({}, 'stop'), 'data: [DONE]\n\n'] });
    const ac = new AbortController();
    const r = await chat(gw, { model: SONNET, stream: true, messages: [{ role: 'user', content: 'x' }] }, {});
    const reader = r.body.getReader();
    let text = '';
    const deadline = setTimeout(() => ac.abort(), 20000);
    ac.signal.addEventListener('abort', () => reader.cancel());
    while (!text.includes('\n\n')) {
        const { value, done } = await reader.read();
        assert.ok(!done, 'the stream ended before its first event');
        text += Buffer.from(value).toString();
    }
    clearTimeout(deadline);
    assert.equal(dataEvents(text)[0].choices[0].delta.content, 'first');
    await reader.cancel();
    await mock.reset();
});

test('/v1/chat/completions errors are OpenAI-shaped: the gateway\'s own, Poe\'s, and a stream that breaks off', async () => {
    const own = await chat(gw, { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(own.status, 404);
    const ownBody = await own.json();
    assert.deepEqual(Object.keys(ownBody), ['error']);
    assert.equal(ownBody.error.type, 'not_found_error');
    assert.equal(ownBody.error.code, '404');
    assert.equal(ownBody.error.param, null);
    assert.match(ownBody.error.message, /model: no-such-model is not configured on this gateway; closest: /);

    const noMessages = await chat(gw, { model: SONNET });
    assert.equal(noMessages.status, 400);
    assert.equal((await noMessages.json()).error.message, 'messages: field required (an array)');

    // gpt-4o is not in the mock's catalog: Poe's own 404, relayed with its words
    const poe = await chat(gw, { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(poe.status, 404);
    assert.equal((await poe.json()).error.message, "Model 'gpt-4o' not found");

    // Poe refusing the gateway's key is not the client's key failing: 502, in OpenAI's shape
    await mock.script({ match: { path: '/v1/chat/completions' }, status: 401,
        body: JSON.stringify({ error: { code: 401, type: 'authentication_error', message: `bad key ${TEAM_ENV.POE_API_KEY}` } }) });
    const refused = await chat(gw, { model: SONNET, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(refused.status, 502);
    const refusedBody = await refused.json();
    assert.equal(refusedBody.error.code, '502');
    assert.ok(!JSON.stringify(refusedBody).includes(TEAM_ENV.POE_API_KEY));

    // a stream cut after two chunks: both relayed, then one error event and nothing after it (no [DONE]). The chunks
    // come apart from the cut: libcurl 7.88 may drop data that reaches it with the stream's reset in the same read, and
    // a cut before any byte was relayed is then, rightly, retried (the retry would get the mock's default answer)
    const base = { id: 'chatcmpl-cut', object: 'chat.completion.chunk', created: 1, model: 'Claude-Sonnet-4.5' };
    const chunk = (content) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' },
        chunks: [chunk('one'), chunk('two')], cut_after: 2, chunk_delay_ms: 100 });
    const cut = await chat(gw, { model: SONNET, stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(cut.status, 200);
    const events = dataEvents(await cut.text());
    assert.deepEqual(events.slice(0, 2).map((e) => e.choices[0].delta.content), ['one', 'two']);
    assert.equal(events.length, 3, JSON.stringify(events));
    assert.equal(events[2].error.type, 'api_error');
    assert.match(events[2].error.message, /broke off/);

    // Poe's error as the first chunk of a stream: an error status, not an empty stream
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' },
        chunks: [`data: ${JSON.stringify({ error: { code: 429, type: 'rate_limit_error', message: 'slow down' } })}\n\n`] });
    const limited = await chat(gw, { model: SONNET, stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(limited.status, 429);
    assert.match((await limited.json()).error.message, /slow down/);

    // a request without the key: 401 (the dispatcher's, which OpenAI clients read by error.message too)
    const anon = await chat(gw, { model: SONNET, messages: [] }, { key: 'sk-wrong' });
    assert.equal(anon.status, 401);
    assert.equal(typeof (await anon.json()).error.message, 'string');
});

test('anthropic/ routes on /v1/chat/completions go to Poe\'s chat/completions under Poe\'s name for the model', async () => {
    const other = await startGateway({ config: defaultConfig(mock), env: { POE_API_KEY: TEAM_ENV.POE_API_KEY, SSL_CERT_FILE: certs().ca } });
    try {
        for (const [model, bot] of [[SONNET, 'claude-sonnet-4.5'], ['claude-opus-4-5-20251101', 'claude-opus-4.5'], ['gpt-5', 'GPT-5']]) {
            await mock.reset();
            const r = await chat(other, { model, messages: [{ role: 'user', content: `to ${model}` }] },
                { key: 'sk-test-master-0123456789abcdef' });
            assert.equal(r.status, 200, model);
            const [seen] = await mock.requests();
            assert.equal(seen.path, '/v1/chat/completions');
            assert.equal(JSON.parse(seen.body).model, bot);
            assert.equal((await r.json()).choices[0].message.content, `mock reply to: to ${model}`);
        }
    } finally {
        assert.equal((await other.stop()).code, 0);
    }
});

test('a LiteLLM compose command runs: --config, --port, --host, --num_workers, --detailed_debug', async () => {
    const port = await freePort();
    const g = await startGateway({ configFile: TEAM_CONFIG, cwd: TEAM_DIR, port,
        args: ['--host', '127.0.0.1', '--num_workers', '1', '--detailed_debug'],
        env: { LITELLM_MASTER_KEY: null, POE_API_KEY: null, ...proxyEnv() } });
    try {
        assert.equal(g.port, port);
        assert.match(g.output.stderr, /\(1 workers\)/);
        assert.match(g.output.stderr, / debug \[main\] debug logging is on/);
        const r = await chat(g, { model: SONNET, messages: [{ role: 'user', content: 'compose' }] });
        assert.equal(r.status, 200);
    } finally {
        assert.equal((await g.stop()).code, 0);
    }
    // the image runs the compose `command:` as the gateway's arguments, listening on every address as LiteLLM's does
    const dockerfile = fs.readFileSync(path.join(SOURCE_DIR, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^ENTRYPOINT \["poe-gateway"\]$/m);
    assert.match(dockerfile, /^RUN cmake -S \. -B build .*-DPGW_DEFAULT_HOST=0\.0\.0\.0/m);
    const help = await runGateway(['--help']);
    assert.match(help.stdout, /--num_workers N/);
    assert.match(help.stdout, /--detailed_debug/);
});

test('--check-config and doctor point out Claude on an openai/ route, with the anthropic/ line that caches', async () => {
    const r = await runGateway(['--check-config', '--config', TEAM_CONFIG], { cwd: TEAM_DIR });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /note: route claude-sonnet-4-5-20250929 \(line 3\) sends Claude through openai\/ \(chat\/completions\), without prompt caching/);
    assert.match(r.stdout, /^ {8}model: anthropic\/claude-sonnet-4\.5$/m);
    assert.doesNotMatch(r.stdout, /route gpt-4o .*sends Claude/);

    const d = await runGateway(['doctor', '--config', TEAM_CONFIG, '--env-file', path.join(TEAM_DIR, '.env')],
        { cwd: TEAM_DIR, env: proxyEnv() });
    assert.match(d.stdout, /✘ route claude-sonnet-4-5-20250929 sends Claude \(openai\/Claude-Sonnet-4\.5\) through chat\/completions: no prompt caching/);
    assert.match(d.stdout, /fix: for prompt caching \(a cached turn costs about a tenth\), change route claude-sonnet-4-5-20250929 \(line 3\) to\n\s+model: anthropic\/claude-sonnet-4\.5/);
    assert.equal(d.code, 1);
});
