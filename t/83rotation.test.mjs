// poe-gateway: MIT licence. HTTP/2 frames that end a stream or a connection while the request is still on its way (#14):
// an answer followed by RST_STREAM(NO_ERROR) before the upload ended, GOAWAY every few requests, streams refused over a
// concurrency limit. Upstreams: t/lib/h2upstream.mjs (Node's http2 over TLS, for the frames the C mock cannot send) and,
// for the case as first observed, a real nginx answering without reading the body. Every response is checked whole, on
// both route kinds, streamed and not; the rotation tests run with max_retries: 0, so that only replays that spend no
// retry can keep the clients free of errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { SOURCE_DIR, anthropicStream, authHeaders, certs, openaiStream, parseSSE, request, startGateway, tmpdir } from './lib/harness.mjs';
import { ANSWER_TEXT, startH2Upstream } from './lib/h2upstream.mjs';

const ROUTES = ['claude-sse', 'claude-whole', 'gpt-sse', 'gpt-whole'];
const cleanups = [];
after(async () => {
    for (const f of cleanups.reverse()) await f();
});

/** A gateway whose four routes (pass-through and translation, streamed and whole) all lead to `base`. */
async function gatewayFor(base, routeExtra = '') {
    const route = (name, model, apiBase) => `  - model_name: ${name}
    litellm_params:
      model: ${model}
      api_base: ${apiBase}
      api_key: os.environ/POE_API_KEY
      timeout: 10
      stream_timeout: 10
${routeExtra}`;
    const config = `model_list:
${route('claude-sse', 'anthropic/claude-sonnet-4.5', `${base}/sse`)}${route('claude-whole', 'anthropic/claude-sonnet-4.5', `${base}/whole`)}${
    route('gpt-sse', 'openai/GPT-5', `${base}/sse/v1`)}${route('gpt-whole', 'openai/GPT-5', `${base}/whole/v1`)}general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  upstream_rpm: 0
`;
    const gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca } });
    let stopped = false;
    const stop = async () => {
        if (stopped) return;
        stopped = true;
        const { code, signal } = await gw.stop();
        assert.equal(signal, null, gw.output.stderr.slice(-3000));
        assert.equal(code, 0, gw.output.stderr.slice(-3000));
        assert.doesNotMatch(gw.output.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
    };
    cleanups.push(stop);
    return { gw, stop };
}

/** Whether `r` is the whole answer of the stand-ins, as the client of `route` must see it. */
function complete(route, r) {
    if (r.status !== 200) return false;
    try {
        if (route.endsWith('-sse')) {
            const events = parseSSE(r.body);
            const text = events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join('');
            return text === ANSWER_TEXT && events.at(-1).event === 'message_stop';
        }
        const m = JSON.parse(r.body);
        return m.type === 'message' && m.content[0].text === ANSWER_TEXT && m.stop_reason === 'end_turn';
    } catch {
        return false;
    }
}

/**
 * Sends `total` requests of about `size` bytes, `concurrency` at a time, round the four routes; resolves the failures
 * (each one's route, status and the start of its body) and what the gateway logged: retries (on max_retries), replays
 * (not) and libcurl's framing-layer errors.
 */
async function drive(gw, { total, concurrency, size }) {
    const failures = [];
    const logFrom = gw.output.stderr.length;
    let next = 0;
    const one = async (i) => {
        const model = ROUTES[i % ROUTES.length];
        const body = JSON.stringify({ model, max_tokens: 64, stream: model.endsWith('-sse'),
            messages: [{ role: 'user', content: `${i} ${'x'.repeat(size)}` }] });
        const r = await request(`${gw.url}/v1/messages`, { method: 'POST', headers: authHeaders(), body, timeout: 60000 })
            .catch((e) => ({ status: 'exception', body: e.message }));
        if (!complete(model, r)) failures.push(`${model}: ${r.status} ${String(r.body).slice(0, 200)}`);
    };
    await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < total) await one(next++);
    }));
    const log = gw.output.stderr.slice(logFrom);
    return {
        failures,
        retries: (log.match(/; retry \d+ of \d+ in /g) ?? []).length,
        replays: (log.match(/; Poe did not process the request: replay \d+ of \d+ /g) ?? []).length,
        framing: (log.match(/Stream error in the HTTP\/2 framing layer/g) ?? []).length,
    };
}

function report(t, what, total, run, stats) {
    t.diagnostic(`${what}: ${total} requests, ${run.failures.length} failed; ${run.retries} retries and ${run.replays} replays logged` +
        `, ${run.framing} framing-layer errors; upstream ${JSON.stringify(stats ?? {})}`);
}

test('an answer followed by RST_STREAM(NO_ERROR) before the upload ended is delivered, on both route kinds', async (t) => {
    // The upstream answers on the request's HEADERS, never reads the body, and resets the upload with NO_ERROR; the
    // 100 KB bodies are larger than the flow-control window (64 KB before SETTINGS, 16 KB after), so no upload can end
    // before the answer. libcurl 7.88 waited for a send the closed stream would never take (until stream_timeout) or
    // failed the transfer with "Stream error in the HTTP/2 framing layer"; HTTP/2 says the answer stands. The
    // reset comes a moment after the answer: libcurl 7.88 drops an answer it reads together with the reset (a retry
    // covers that; the nginx test below has the reset at once).
    const up = await startH2Upstream({ early: true, resetDelayMs: 100, window: 16384 });
    cleanups.push(() => up.stop());
    const { gw, stop } = await gatewayFor(up.url);
    const total = 128;
    const run = await drive(gw, { total, concurrency: 32, size: 100000 });
    report(t, 'early answers', total, run, up.stats);
    assert.deepEqual(run.failures, [], `${run.failures.length} of ${total} failed`);
    // every request was answered before its body ended; the reset follows unless the gateway has ended the stream first
    assert.ok(up.stats.early >= total, JSON.stringify(up.stats));
    await stop();
});

/** The nginx binary (nginx-light, installed by tools/deps.sh --test): the test fails, naming the fix, without it. */
function nginxBinary() {
    for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'])
        if (fs.existsSync(p)) return p;
    try {
        return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim();
    } catch {
        throw new Error('nginx not found: apt-get install nginx-light (bash tools/deps.sh --test installs it)');
    }
}

async function freePort() {
    return new Promise((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/** nginx over HTTP/2 + TLS answering each of the four routes' paths with `return 200`, the body never read. */
async function startNginx() {
    const dir = tmpdir('pgw-nginx-');
    const c = certs();
    const port = await freePort();
    const whole = JSON.stringify({ id: 'msg_ng', type: 'message', role: 'assistant', model: 'claude-sonnet-4.5',
        content: [{ type: 'text', text: ANSWER_TEXT }], stop_reason: 'end_turn', stop_sequence: null,
        usage: { input_tokens: 50, output_tokens: 12 } });
    const completion = JSON.stringify({ id: 'chatcmpl-ng', object: 'chat.completion', created: 1764150000, model: 'gpt-5',
        choices: [{ index: 0, message: { role: 'assistant', content: ANSWER_TEXT }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 } });
    const answers = {
        '/sse/v1/messages': ['text/event-stream', anthropicStream({ blocks: [{ type: 'text', text: ANSWER_TEXT }] }).join('')],
        '/whole/v1/messages': ['application/json', whole],
        '/sse/v1/chat/completions': ['text/event-stream', openaiStream({ deltas: [{ content: ANSWER_TEXT }] }).join('')],
        '/whole/v1/chat/completions': ['application/json', completion],
    };
    const locations = Object.entries(answers).map(([p, [type, body]]) =>
        `    location = ${p} { default_type ${type}; return 200 '${body.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'; }`);
    fs.writeFileSync(path.join(dir, 'nginx.conf'), `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${c.cert};
    ssl_certificate_key ${c.key};
${locations.join('\n')}
    location ~ /v1/models$ { default_type application/json; alias ${path.join(SOURCE_DIR, 't/assets/poe-catalog.json')}; }
  }
}
`);
    const child = spawn(nginxBinary(), ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    for (let i = 0; ; i++) {
        const up = await new Promise((resolve) => net.connect(port, '127.0.0.1').on('connect', function () {
            this.end();
            resolve(true);
        }).on('error', () => resolve(false)));
        if (up) break;
        if (i === 100 || child.exitCode !== null) throw new Error(`nginx did not start:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
    }
    return {
        url: `https://localhost:${port}`,
        async stop() {
            child.kill('SIGTERM');
            await exited;
        },
    };
}

test('nginx answering without reading the body: 64 concurrent 50 KB requests, and larger ones, all complete', async (t) => {
    // The case as observed: nginx answers at once, then resets the upload it has not seen the end of. libcurl 7.88
    // cannot take that answer while it still has body to send; the gateway now hands curl the whole body in one send,
    // so a 50 KB body is mostly on the wire before nginx answers and no reset comes. A 200 KB body is larger than
    // nginx's 64 KB window: it cannot end before the answer, which is taken by its Content-Length.
    const ng = await startNginx();
    cleanups.push(() => ng.stop());
    const { gw, stop } = await gatewayFor(ng.url);
    const total = 512;
    const run = await drive(gw, { total, concurrency: 64, size: 50000 });
    report(t, 'nginx, 50 KB', total, run);
    assert.deepEqual(run.failures, [], `${run.failures.length} of ${total} failed`);
    // What is left: when nginx answers before the body is all on the wire, libcurl 7.88 reads the answer together with
    // the reset and drops it, and the request is sent again (max_retries) though nginx has answered it. How often is
    // the machine's scheduling (none to a few of 512 on a quiet machine, 37 seen on a busy one), so the count is
    // reported above, not bounded: a bound on it failed under load. What keeps it rare is checked where it is
    // deterministic: the whole body goes to curl in one piece (t/00unit/src/upstream/upstream.c, "upload buffer";
    // curl's own 16 KB made it one request in five). What the client sees is asserted here: every request complete.
    const big = await drive(gw, { total: 8, concurrency: 1, size: 200000 });
    report(t, 'nginx, 200 KB, one at a time', 8, big);
    assert.deepEqual(big.failures, [], `${big.failures.length} of 8 failed`);
    await stop();
});

test('GOAWAY every 10 requests under 64 concurrent streams: no client error, no retry spent', async (t) => {
    // Each connection answers 10 requests; the others on it are above the GOAWAY's last stream id, never processed, and
    // go to a new connection. libcurl 7.88 replays them itself but rewound no body it had read without sending (the
    // server saw a short body: PROTOCOL_ERROR), and gives up after five replays in a row; max_retries is 0 here.
    const up = await startH2Upstream({ goawayEvery: 10, delayMs: 20 });
    cleanups.push(() => up.stop());
    const { gw, stop } = await gatewayFor(up.url, '      max_retries: 0\n');
    const total = 512;
    const run = await drive(gw, { total, concurrency: 64, size: 50000 });
    report(t, 'GOAWAY every 10', total, run, up.stats);
    assert.deepEqual(run.failures, [], `${run.failures.length} of ${total} failed`);
    assert.ok(up.stats.goaways > total / 20, JSON.stringify(up.stats));
    await stop();
});

test('streams refused over the upstream concurrency limit under 64 concurrent streams: no client error, no retry spent',
    async (t) => {
        // The upstream takes 4 streams a connection and refuses those over it with REFUSED_STREAM, unprocessed; libcurl
        // sends each again on a new connection, up to five times in a row, but without the part of the body it had
        // read and not sent (the server saw a short body: PROTOCOL_ERROR).
        const up = await startH2Upstream({ maxStreams: 4, delayMs: 20 });
        cleanups.push(() => up.stop());
        const { gw, stop } = await gatewayFor(up.url, '      max_retries: 0\n');
        const total = 512;
        const run = await drive(gw, { total, concurrency: 64, size: 50000 });
        report(t, 'refused over 4 streams', total, run, up.stats);
        assert.deepEqual(run.failures, [], `${run.failures.length} of ${total} failed`);
        assert.ok(up.stats.refused > 0, JSON.stringify(up.stats));
        await stop();
    });

test('more requests than the connections\' advertised streams: those over wait for a stream that ends, and all are answered',
    async (t) => {
        // 2 streams a connection (SETTINGS_MAX_CONCURRENT_STREAMS), 4 connections a worker and host: 8 streams at once,
        // 32 requests at a time, each answered in 100 ms. The built-in client queued the rest, and took them off the
        // queue only on a SETTINGS, a GOAWAY or a new connection, never when a stream ended: they waited for ever.
        const up = await startH2Upstream({ advertise: 2, delayMs: 100 });
        cleanups.push(() => up.stop());
        const { gw, stop } = await gatewayFor(up.url, '      max_retries: 0\n');
        const total = 96;
        const run = await drive(gw, { total, concurrency: 32, size: 1000 });
        report(t, 'advertised 2 streams', total, run, up.stats);
        assert.deepEqual(run.failures, [], `${run.failures.length} of ${total} failed`);
        assert.ok(up.stats.answered >= total, JSON.stringify(up.stats)); // and the catalog, once a worker
        await stop();
    });

test('a server that refuses every stream gets 4 replays and then max_retries retries, and the client a 502', async (t) => {
    const up = await startH2Upstream({ refuseAll: true });
    cleanups.push(() => up.stop());
    const { gw, stop } = await gatewayFor(up.url, '      max_retries: 1\n');
    const r = await request(`${gw.url}/v1/messages`, { method: 'POST', headers: authHeaders(),
        body: JSON.stringify({ model: 'claude-whole', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(r.status, 502, r.body);
    assert.equal(JSON.parse(r.body).error.type, 'api_error');
    const log = gw.output.stderr;
    const replays = log.match(/; Poe did not process the request: replay \d+ of 4 /g) ?? [];
    const retries = log.match(/; retry \d+ of 1 in /g) ?? [];
    t.diagnostic(`${up.stats.refused} streams refused, ${replays.length} replays and ${retries.length} retries logged`);
    assert.equal(replays.length, 4, log);
    assert.equal(retries.length, 1, log);
    // each attempt is libcurl's six tries: 4 replays and 1 retry after the first attempt
    assert.equal(up.stats.refused, (1 + 4 + 1) * 6);
    await stop();
});
