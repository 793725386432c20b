// poe-gateway: MIT licence. The stream contract as a property (#14): thousands of requests through a fault-injecting
// proxy (t/lib/faultproxy.mjs), and for every single response: it is complete, or it says why.
//
// Each request picks at random (seeded) a route kind (anthropic/ pass-through or openai/ translation), an upstream
// (the mock's HTTP/1.1 port or its HTTP/2+TLS port, each behind its own proxy), streamed or whole, and the client's
// protocol (HTTP/1.1 or h2c). Each upstream connection the gateway opens gets a fault plan drawn at random: pass, FIN or
// RST after N bytes, a stall (short, past stream_timeout, or for ever), a trickle. N falls anywhere: in the TLS
// handshake, in a head, mid-event, between answers. A share of the requests also get a scripted misbehaviour of the mock
// (a cut, an answer that just stops, a stall, a late or missing head, a dropped connection, junk statuses, garbage SSE,
// JSON where SSE was asked and the reverse). A cut on a pooled connection hits every stream on it; the assertion is per
// response all the same.
//
// The contract, for every response:
//   streamed: 200 text/event-stream whose events parse, come in Anthropic's order and end with message_stop; or end
//             with exactly one `error` event (an Anthropic error object) with nothing after it; or, before the stream
//             started, a 4xx/5xx with an Anthropic error body;
//   whole:    200 with a complete JSON message, or a 5xx with an Anthropic error body;
//   4xx only when the upstream itself answered 4xx (a fault upstream is not the client's fault);
//   never a silent truncation, never a body broken off without saying why, never a hang past the route's timeouts.
// Afterwards the gateway answers /health/liveliness, its descriptors (upstream sockets aside) are back where they were,
// and its RSS has not grown past a generous bound.
//
// Env: PGW_PROPERTY_SEED (else random; printed in every failure), PGW_PROPERTY_N (requests, default 2000),
// PGW_PROPERTY_CONCURRENCY (default 24), PGW_PROPERTY_BUDGET_S (no new request after this, default 100),
// PGW_TEST_VERBOSE=1 (print every violation, not a sample). bench/faults.sh runs a long one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { PGW_BIN, anthropicStream, authHeaders, certs, openaiStream, request, startGateway, startMock }
    from './lib/harness.mjs';
import { fdCount, isSanitized, rssKiB, sleep } from './lib/raw.mjs';
import { prng, startFaultProxy } from './lib/faultproxy.mjs';

const SEED = process.env.PGW_PROPERTY_SEED ? Number(process.env.PGW_PROPERTY_SEED) : Math.floor(Math.random() * 2 ** 31);
const N = Number(process.env.PGW_PROPERTY_N || 2000);
const CONCURRENCY = Number(process.env.PGW_PROPERTY_CONCURRENCY || 24);
const BUDGET_MS = Number(process.env.PGW_PROPERTY_BUDGET_S || 100) * 1000;
const VERBOSE = !!process.env.PGW_TEST_VERBOSE;

// the routes' limits: small, so that faults resolve fast
const TIMEOUT_S = 3, STREAM_TIMEOUT_S = 2, MAX_RETRIES = 1;
// The longest a response may rightly take: every try waits up to `timeout` for its head (plus a backoff under a second),
// then the body may fall silent for up to stream_timeout, be held by a proxy stall that the gateway survives (< 2 s),
// trickle (≤ 3 s), or come in scripted pieces (≤ 1 s in all). Past that plus a generous margin for a busy machine
// (sanitizer builds run several times slower), a response counts as hung.
const LEGIT_MS = ((MAX_RETRIES + 1) * (TIMEOUT_S + 1) + STREAM_TIMEOUT_S + 2 + 3 + 1) * 1000;
const HANG_MS = (LEGIT_MS + 15000) * (isSanitized(PGW_BIN) ? 2 : 1);

const sse = { 'content-type': 'text/event-stream' };
const json = { 'content-type': 'application/json' };
const ev = (name, data) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
const anthropicWhole = (model, text) => JSON.stringify({ id: 'msg_prop', type: 'message', role: 'assistant', model,
    content: [{ type: 'text', text }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 7, output_tokens: 9 } });
const openaiWhole = (model, text) => JSON.stringify({ id: 'chatcmpl-prop', object: 'chat.completion', created: 1764150000, model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 7, completion_tokens: 9, total_tokens: 16 } });

const groupBy = (list, key) => list.reduce((o, x) => ((o[key(x)] ??= []).push(x), o), {});
const pick = (rng, list) => list[Math.floor(rng() * list.length)];
const between = (rng, lo, hi) => lo + Math.floor(rng() * (hi - lo));
/** A byte offset: often in the first 4 KB (TLS handshake, heads, first events), else log-uniform up to `max`. */
const offset = (rng, max) => (rng() < 0.3 ? between(rng, 0, 4096) : Math.floor(Math.exp(rng() * Math.log(max))));

/** One connection's fault plan (the proxy's vocabulary, t/lib/faultproxy.mjs). */
function drawPlan(rng, max) {
    const r = rng();
    if (r < 0.08) return { kind: 'pass' };
    const at = offset(rng, max);
    // a cut at an arbitrary byte, or between two of the upstream's writes (whole TLS records and frames)
    if (r < 0.60) return { kind: r < 0.38 ? 'close' : 'reset', at, boundary: rng() < 0.3 };
    if (r < 0.80) {
        const s = rng();
        // survivable (< stream_timeout), past stream_timeout, or for ever
        const ms = s < 0.5 ? between(rng, 50, 1500) : s < 0.8 ? between(rng, 2500, 5000) : Infinity;
        return { kind: 'stall', at, ms };
    }
    return { kind: 'trickle', at, bps: between(rng, 500, 8000), ms: between(rng, 300, 3000) };
}
const planName = (p) => (p.kind === 'pass' ? 'pass' : `${p.kind} at byte ${p.at}${p.boundary ? ' (at a write boundary)' : ''}${
    p.kind === 'stall' ? ` for ${Number.isFinite(p.ms) ? `${p.ms} ms` : 'ever'}` : ''}${p.kind === 'trickle' ? ` at ${p.bps} B/s for ${p.ms} ms` : ''}`);
const planKind = (p) => (p.kind === 'stall' ? `stall-${Number.isFinite(p.ms) ? (p.ms < STREAM_TIMEOUT_S * 1000 ? 'short' : 'long') : 'forever'}`
    : p.kind);

/**
 * A scripted misbehaviour of the mock for one request: {name, what (in words, for reports), script (for /_mock/script)}.
 * `model` is the request's own upstream model name, so that only this request (and its retries) can take the script.
 */
function drawScript(rng, { kind, stream, model, text }) {
    const name = pick(rng, stream ? ['chunked', 'cut', 'short', 'stall', 'late-head', 'hang', 'drop', 'junk-status',
        'odd-status', 'error-body', 'error-event', 'garbage-sse', 'json-for-stream']
        : ['chunked', 'cut', 'short', 'stall', 'late-head', 'hang', 'drop', 'junk-status', 'odd-status', 'error-body',
            'sse-for-whole']);
    const path = kind === 'anthropic' ? '/v1/messages' : '/v1/chat/completions';
    // every try of the request takes it: the gateway's, and libcurl's own on a reused HTTP/1.1 connection that dies
    // before the answer (a `drop` made 5 tries of one request with max_retries 1); unused ones match nothing else
    const base = { match: { path, model }, repeat: 16 };
    const wholeBody = kind === 'anthropic' ? anthropicWhole(model, text) : openaiWhole(model, text);
    const streamChunks = kind === 'anthropic' ? anthropicStream({ model, blocks: [{ type: 'text', text }] })
        : openaiStream({ model, deltas: [...text.match(/.{1,6}/g)].map((content) => ({ content })) });
    // the normal answer, cut into pieces at random points (a piece may end inside an event)
    const pieces = () => {
        if (!stream) {
            const k = between(rng, 1, wholeBody.length);
            return [wholeBody.slice(0, k), wholeBody.slice(k)];
        }
        const out = [];
        for (const c of streamChunks) {
            const k = rng() < 0.3 ? between(rng, 1, c.length) : c.length;
            out.push(...[c.slice(0, k), c.slice(k)].filter(Boolean));
        }
        return out;
    };
    const headers = stream ? sse : json;
    let s, what;
    switch (name) {
    case 'chunked':
        s = { headers, chunks: pieces(), chunk_delay_ms: between(rng, 0, 30) };
        what = `the whole answer in ${s.chunks.length} pieces, ${s.chunk_delay_ms} ms apart`;
        break;
    case 'cut':
        s = { headers, chunks: pieces() };
        s.cut_after = between(rng, 0, s.chunks.length);
        what = `${s.cut_after} of ${s.chunks.length} pieces, then the mock breaks the response (HTTP/1.1: closes; HTTP/2: resets)`;
        break;
    case 'short':
        s = { headers, chunks: stream ? streamChunks.slice(0, between(rng, 1, streamChunks.length)) : [wholeBody.slice(0, between(rng, 1, wholeBody.length))] };
        what = stream ? `the first ${s.chunks.length} of ${streamChunks.length} events, then a clean end` :
            `the first ${s.chunks[0].length} of ${wholeBody.length} bytes of the JSON, then a clean end`;
        break;
    case 'stall':
        s = { headers, chunks: pieces(), chunk_delay_ms: (STREAM_TIMEOUT_S + 1.5) * 1000 };
        what = `the answer in ${s.chunks.length} pieces, ${s.chunk_delay_ms} ms apart (past stream_timeout)`;
        break;
    case 'late-head':
        s = { headers, chunks: pieces(), delay_ms: (TIMEOUT_S + 1.5) * 1000 };
        what = `the head after ${s.delay_ms} ms (past timeout)`;
        break;
    case 'hang': s = { hang: true }; what = 'no head, ever'; break;
    case 'drop': s = { drop: true }; what = 'the mock shuts its connection down instead of answering'; break;
    case 'junk-status':
        s = { status: pick(rng, [500, 502, 503]), ...pick(rng, [{ headers: json, body: '{"error":"boom"}' },
            { headers: { 'content-type': 'text/html' }, body: '<html><body><h1>502 Bad Gateway</h1></body></html>' }]) };
        what = `${s.status} ${s.headers['content-type']} ${s.body}`;
        break;
    case 'odd-status': s = { status: pick(rng, [204, 302, 418]), body: '' }; what = `${s.status}, empty body`; break;
    case 'error-body': {
        const status = pick(rng, [400, 429, 500, 529]);
        const body = kind === 'anthropic' ? JSON.stringify({ type: 'error', error: { type: status === 400 ? 'invalid_request_error' :
            status === 429 ? 'rate_limit_error' : 'overloaded_error', message: 'scripted' } })
            : JSON.stringify({ error: { code: status, type: status === 400 ? 'invalid_request_error' : 'server_error', message: 'scripted' } });
        s = { status, headers: { ...json, 'retry-after': '0' }, body };
        what = `${status} with Poe's error body`;
        break;
    }
    case 'error-event':
        s = { headers, chunks: kind === 'anthropic' ? [...streamChunks.slice(0, 3), ev('error', { type: 'error', error:
            { type: 'overloaded_error', message: 'Overloaded' } })] : [...streamChunks.slice(0, 2), `data: ${JSON.stringify({ error:
            { type: 'server_error', message: 'the bot failed' } })}\n\n`] };
        what = 'a few events, then an error event and a clean end';
        break;
    case 'garbage-sse':
        s = { headers: sse, chunks: ['data: not json\n\n', 'event: what\ndata: {"x":1}\n\n', ': c\n\n', 'garbage\n\n'] };
        what = 'text/event-stream of lines that are no events';
        break;
    case 'json-for-stream': s = { headers: json, body: wholeBody }; what = 'a whole JSON answer, though stream: true was asked'; break;
    case 'sse-for-whole': s = { headers: sse, chunks: streamChunks }; what = 'an event stream, though no stream was asked'; break;
    }
    return { name, what, script: { ...base, ...s } };
}

/** The requests of a run, all drawn from the seed before any is sent (the order of sending does not change them). */
function drawRequests(seed, n) {
    const rng = prng(seed);
    return Array.from({ length: n }, (_, i) => {
        const kind = rng() < 0.5 ? 'anthropic' : 'openai';
        const up = rng() < 0.5 ? 'h1' : 'h2';
        const stream = rng() < 0.6;
        const client = rng() < 0.7 ? 'h1' : 'h2c';
        const scripted = rng() < 0.3;
        const marker = `pgwreq-${i}.`;
        const text = `answer to ${marker}`;
        // a scripted request has a model name of its own (wildcard routes pass it through); the others use fixed routes
        const model = scripted ? `${kind === 'anthropic' ? 'a' : 'o'}${up[1]}-r${i}` : kind === 'anthropic' ? `a${up[1]}-sonnet` : `o${up[1]}-gpt`;
        const req = { i, kind, up, stream, client, model, marker, script: null };
        if (scripted) req.script = drawScript(rng, { kind, stream, model, text });
        return req;
    });
}

const route = (name, model, base) => `  - model_name: "${name}"
    litellm_params:
      model: ${model}
      api_base: ${base}
      api_key: os.environ/POE_API_KEY
      timeout: ${TIMEOUT_S}
      stream_timeout: ${STREAM_TIMEOUT_S}
      max_retries: ${MAX_RETRIES}
`;
const config = (h1, h2) => `model_list:
${route('a1-sonnet', 'anthropic/claude-sonnet-4.5', h1)}${route('a2-sonnet', 'anthropic/claude-sonnet-4.5', h2)}${
    route('o1-gpt', 'openai/GPT-5', `${h1}/v1`)}${route('o2-gpt', 'openai/GPT-5', `${h2}/v1`)}${route('a1-*', 'anthropic/*', h1)}${
    route('a2-*', 'anthropic/*', h2)}${route('o1-*', 'openai/*', `${h1}/v1`)}${route('o2-*', 'openai/*', `${h2}/v1`)}general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  upstream_rpm: 0
`;

/* The client: HTTP/1.1 (a connection per request) or h2c (a few shared sessions). Never rejects: it reports. */

const h2Sessions = [];
function h2Session(url, lane) {
    let s = h2Sessions[lane];
    if (!s || s.closed || s.destroyed) {
        s = h2Sessions[lane] = http2.connect(url);
        s.on('error', () => {});
    }
    return s;
}

/**
 * Sends one request; resolves {status, headers, body, aborted, error, hung, ms}. `aborted`: the body did not end
 * properly (HTTP/1.1: no last chunk or a short body; HTTP/2: a reset or no END_STREAM). `hung`: no end in HANG_MS.
 */
function send(gwUrl, req, lane) {
    const body = JSON.stringify({ model: req.model, max_tokens: 64, stream: req.stream,
        messages: [{ role: 'user', content: `say hello to ${req.marker}` }] });
    const t0 = Date.now();
    return new Promise((resolve) => {
        const res = { status: undefined, headers: {}, body: '', aborted: false, error: null, hung: false, ms: 0 };
        let done = false, cancel;
        const finish = (patch = {}) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            Object.assign(res, patch, { ms: Date.now() - t0 });
            resolve(res);
        };
        const timer = setTimeout(() => {
            finish({ hung: true });
            cancel();
        }, HANG_MS);
        if (req.client === 'h1') {
            const u = new URL(`${gwUrl}/v1/messages`);
            const r = http.request(u, { method: 'POST', headers: { ...authHeaders(), 'content-length': Buffer.byteLength(body) }, agent: false },
                (m) => {
                    res.status = m.statusCode;
                    res.headers = m.headers;
                    m.setEncoding('utf8');
                    m.on('data', (d) => (res.body += d));
                    m.on('error', () => {});
                    m.on('close', () => finish({ aborted: !m.complete }));
                });
            r.on('error', (e) => finish({ error: e.code || e.message, aborted: true }));
            cancel = () => r.destroy();
            r.end(body);
        } else {
            const session = h2Session(gwUrl, lane);
            let ended = false;
            const s = session.request({ ':method': 'POST', ':path': '/v1/messages', ...authHeaders() });
            s.on('response', (h) => {
                res.status = h[':status'];
                res.headers = h;
            });
            s.setEncoding('utf8');
            s.on('data', (d) => (res.body += d));
            s.on('end', () => (ended = true));
            s.on('error', (e) => (res.error = e.code || e.message));
            s.on('close', () => finish({ aborted: !ended || s.rstCode !== http2.constants.NGHTTP2_NO_ERROR }));
            cancel = () => s.close(http2.constants.NGHTTP2_CANCEL);
            s.end(body);
        }
    });
}

/* The contract */

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
function anthropicError(data) {
    return isObject(data) && data.type === 'error' && isObject(data.error) && typeof data.error.type === 'string' &&
        typeof data.error.message === 'string';
}
function parseJSON(text) {
    try { return JSON.parse(text); } catch { return undefined; }
}

/**
 * Reads an SSE body into events: [{name, data, broken}], `broken` saying what is wrong with an event that is not an
 * Anthropic one (data not a JSON object, a line that is not SSE, a type other than the event's name). `tail`: bytes
 * after the last blank line (a body that ends inside an event).
 */
function readEvents(body) {
    const blocks = body.split('\n\n');
    const tail = blocks.pop();
    const events = blocks.map((block) => {
        let name = null, data = '', broken = null;
        for (const line of block.split('\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
            else if (!line.startsWith(':') && line !== '') broken ??= `a line that is not SSE: ${JSON.stringify(line.slice(0, 80))}`;
        }
        const parsed = parseJSON(data);
        if (!isObject(parsed)) broken ??= `data is not a JSON object: ${JSON.stringify(data.slice(-80))}`;
        else if (parsed.type !== name) broken ??= `data of type ${parsed.type}`;
        return { name, data: parsed, broken };
    });
    return { events, tail };
}

/** The first place where `events` leave Anthropic's order (a terminal event, message_stop or error, must be last), or null. */
function orderProblem(events) {
    let started = false, open = null, next = 0, delta = false, over = null;
    for (const [k, { name, data }] of events.entries()) {
        const where = `event ${k} (${name})`;
        if (over) return `${where} after ${over}`;
        switch (name) {
        case 'ping': break;
        case 'error':
            if (!anthropicError(data)) return `${where}: not an Anthropic error object: ${JSON.stringify(data)}`;
            over = 'error';
            break;
        case 'message_start':
            if (started) return `${where}: a second message_start`;
            if (!isObject(data.message) || data.message.role !== 'assistant') return `${where}: no message`;
            started = true;
            break;
        case 'content_block_start':
            if (!started || delta || open !== null || data.index !== next) return `${where}: index ${data.index} out of place`;
            open = next++;
            break;
        case 'content_block_delta':
        case 'content_block_stop':
            if (open === null || data.index !== open) return `${where}: index ${data.index} while ${open} is open`;
            if (name === 'content_block_stop') open = null;
            break;
        case 'message_delta':
            if (!started || open !== null || delta) return `${where} out of place`;
            if (!isObject(data.delta) || typeof data.delta.stop_reason !== 'string') return `${where}: no stop_reason`;
            delta = true;
            break;
        case 'message_stop':
            if (!delta) return `${where} before message_delta`;
            over = 'message_stop';
            break;
        default:
            return `${where}: not an Anthropic event`;
        }
    }
    return null;
}

/**
 * Classifies a response: {outcome} ('complete', 'error-event', 'error-status'), or {violation, detail}: `violation`
 * names the kind of breach (the report groups by it), `detail` says what exactly was seen.
 */
function judge(req, res) {
    const v = (violation, detail = '') => ({ violation, detail });
    if (res.hung) return v('hang: no end within the timeouts', `nothing after ${HANG_MS} ms`);
    if (res.status === undefined) return v('no response head', res.error);
    const upstream4xx = req.script && req.script.script.status >= 400 && req.script.script.status < 500;
    if (res.status >= 400) {
        if (res.aborted) return v('error status: the body broke off', `${res.status}`);
        if (!anthropicError(parseJSON(res.body))) return v('error status without an Anthropic error body', `${res.status} ${JSON.stringify(res.body.slice(0, 80))}`);
        if (res.status < 500 && !upstream4xx) return v('a 4xx for a fault upstream (blames the client)', `${res.status}`);
        return { outcome: 'error-status' };
    }
    if (res.status !== 200) return v('a status that is neither 200 nor an error', `${res.status} ${JSON.stringify(res.body.slice(0, 80))}`);
    const ct = String(res.headers['content-type'] ?? '');
    const broke = res.aborted ? ' (and the transfer broke off)' : '';
    if (req.stream) {
        if (!/^text\/event-stream/.test(ct)) return v('stream: a 200 that is not an event stream', `content-type "${ct}"${broke}`);
        const { events, tail } = readEvents(res.body);
        const last = events.at(-1);
        const endsWithError = last?.name === 'error' && !last.broken && anthropicError(last.data);
        const broken = events.find((e) => e.broken);
        if (tail !== '') return v('stream: the body ends inside an event', `${JSON.stringify(tail.slice(-80))}${broke}`);
        if (broken && endsWithError)
            return v('stream: a cut-short event relayed before the error event', `${broken.name}: ${broken.broken}`);
        if (broken) return v('stream: events that are not Anthropic SSE', `${broken.name}: ${broken.broken}${broke}`);
        const order = orderProblem(events);
        if (order) return v('stream: events out of Anthropic order', order + broke);
        if (last?.name === 'message_stop') return { outcome: 'complete' };
        if (endsWithError) return { outcome: 'error-event' };
        return res.aborted ? v('stream: broke off without an error event', `last event: ${last?.name ?? 'none'}`)
            : v('stream: ended cleanly without message_stop or error (silent truncation)', `last event: ${last?.name ?? 'none'}`);
    }
    if (res.aborted) return v('whole: a 200 whose body broke off', `${res.body.length} bytes`);
    const m = parseJSON(res.body);
    if (m === undefined) return v('whole: a 200 whose body is not JSON (truncated)', `${res.body.length} bytes, ending ${JSON.stringify(res.body.slice(-40))}`);
    if (!isObject(m) || m.type !== 'message' || m.role !== 'assistant' || !Array.isArray(m.content) || typeof m.stop_reason !== 'string')
        return v('whole: a 200 that is not a complete message', JSON.stringify(res.body.slice(0, 120)));
    if (!/^application\/json/.test(ct)) return v('whole: a message that is not application/json', `content-type "${ct}"`);
    return { outcome: 'complete' };
}

/* Which proxy fault hit which request */

/**
 * The plans that struck a request. HTTP/1.1: the proxy saw the request's marker on the connection, and the plan struck
 * after the request went out and before the next one did. HTTP/2 over TLS (one connection, many streams, encrypted):
 * every plan that struck on that proxy while the request was in flight.
 */
function faultsOf(req, proxies) {
    const conns = proxies[req.up].connections();
    const hit = [];
    for (const c of conns) {
        if (c.struckAt === null) continue;
        if (req.up === 'h1') {
            const k = c.marks.findIndex((m) => m.mark === req.marker);
            if (k < 0) continue;
            const nextAt = c.marks[k + 1]?.at ?? Infinity;
            if (c.struckAt >= c.marks[k].at && c.struckAt <= nextAt) hit.push(c);
        } else if (c.struckAt >= req.t0 && c.struckAt <= req.t1) {
            hit.push(c);
        }
    }
    return hit;
}

/** Sockets of `pid` connected to one of `ports` on this host (the gateway's upstream connections), from /proc. */
function socketsTo(pid, ports) {
    const inodes = new Set();
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        try {
            const m = fs.readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
            if (m) inodes.add(m[1]);
        } catch { /* closed meanwhile */ }
    }
    let n = 0;
    for (const f of ['tcp', 'tcp6']) {
        for (const line of fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8').split('\n').slice(1)) {
            const cols = line.trim().split(/\s+/);
            if (cols.length < 10) continue;
            const remotePort = parseInt(cols[2].split(':')[1], 16);
            if (ports.includes(remotePort) && inodes.has(cols[9])) n++;
        }
    }
    return n;
}

/*
 * The proxy itself, against a plain TCP server that writes 10 pieces of 1,000 bytes, each once the client has read the
 * one before (so each piece is one read on the proxy): a fault strikes at the byte asked, and is reported as done.
 */
test('the fault proxy closes, resets, stalls and trickles at the byte asked', async () => {
    const PIECE = 1000, PIECES = 10;
    const server = net.createServer((s) => {
        let sent = 0;
        const next = () => (++sent <= PIECES ? s.write(Buffer.alloc(PIECE, 48 + sent)) : s.end());
        s.on('data', () => next());
        s.on('error', () => {});
        next();
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = await startFaultProxy({ target: { port: server.address().port }, sniff: /pgwreq-\d+\./g });
    // one connection through the proxy: asks for each next piece once the last one is whole; resolves what came and when
    const run = (plan, { giveUpMs = 0 } = {}) => new Promise((resolve) => {
        proxy.queue(plan);
        const c = net.connect(proxy.port, '127.0.0.1');
        const t0 = Date.now(), got = [];
        let bytes = 0, gap = 0, last = t0;
        c.on('data', (d) => {
            const now = Date.now();
            gap = Math.max(gap, now - last);
            last = now;
            got.push({ at: now - t0, bytes: (bytes += d.length) });
            if (bytes % PIECE === 0) c.write('n');
        });
        c.on('error', () => {});
        c.on('close', () => resolve({ bytes, got, gap, rec: proxy.connections().at(-1) }));
        c.write('pgwreq-7.');
        if (giveUpMs) setTimeout(() => c.destroy(), giveUpMs);
    });
    try {
        let r = await run({ kind: 'pass' });
        assert.equal(r.bytes, PIECE * PIECES);
        assert.equal(r.rec.end, 'upstream');
        assert.deepEqual(r.rec.marks.map((m) => m.mark), ['pgwreq-7.']);
        for (const at of [0, 1, 2500, 9999, 10000]) {
            r = await run({ kind: 'close', at });
            assert.equal(r.bytes, at, `close at ${at}`);
            assert.deepEqual([r.rec.end, r.rec.struckDown], ['close', at], `close at ${at}`);
        }
        r = await run({ kind: 'close', at: 2500, boundary: true });
        assert.equal(r.bytes, 3000, 'close at 2500, at a write boundary: after the third piece');
        for (const at of [1, 1234, 7000]) {
            r = await run({ kind: 'reset', at });
            assert.ok(r.bytes <= at, `reset at ${at}: ${r.bytes} bytes came`); // a RST may overtake bytes not yet read
            assert.deepEqual([r.rec.end, r.rec.struckDown], ['reset', at], `reset at ${at}`);
        }
        r = await run({ kind: 'stall', at: 3000, ms: 300 });
        assert.equal(r.bytes, PIECE * PIECES);
        assert.ok(r.gap >= 250, `a 300 ms stall, but the longest gap was ${r.gap} ms`);
        r = await run({ kind: 'stall', at: 100, ms: Infinity }, { giveUpMs: 300 });
        assert.equal(r.bytes, 100, 'a stall for ever');
        assert.equal(r.rec.end, 'gateway');
        // 2,000 B/s in 50 ms ticks of 100 bytes for 400 ms: never ahead of the ticks that can have fired, then full speed
        r = await run({ kind: 'trickle', at: 0, bps: 2000, ms: 400 });
        assert.equal(r.bytes, PIECE * PIECES);
        for (const g of r.got.filter((x) => x.at < 400)) assert.ok(g.bytes <= Math.floor(g.at / 50) * 100, `${g.bytes} bytes after ${g.at} ms`);
        assert.ok(r.got.some((x) => x.at < 400), 'the trickle sent something in its 400 ms');
    } finally {
        await proxy.close();
        server.close();
    }
});

test(`every response is complete or says why, under random upstream faults (seed ${SEED}, n ${N})`, { timeout: BUDGET_MS + 4 * HANG_MS },
    async (t) => {
        const say = (line) => (t.diagnostic(line), VERBOSE && console.log(line));
        const mock = await startMock();
        const proxies = {
            h1: await startFaultProxy({ target: { port: mock.httpPort }, sniff: /pgwreq-\d+\./g }),
            h2: await startFaultProxy({ target: { port: mock.httpsPort } }),
        };
        const gw = await startGateway({ config: config(`http://127.0.0.1:${proxies.h1.port}`, `https://localhost:${proxies.h2.port}`),
            env: { SSL_CERT_FILE: certs().ca } });
        const pid = gw.child.pid;
        const proxyPorts = [proxies.h1.port, proxies.h2.port];
        const tag = `[seed ${SEED}; rerun: PGW_PROPERTY_SEED=${SEED} PGW_PROPERTY_N=${N} node --test t/84property.test.mjs]`;
        let failed = true;
        try {
            // warm up without faults, then note the idle state: descriptors other than upstream sockets, and RSS
            const warm = await Promise.all(['a1-sonnet', 'a2-sonnet', 'o1-gpt', 'o2-gpt'].map((model, i) =>
                send(gw.url, { model, stream: i % 2 === 0, client: 'h1', marker: 'warm.' }, 0)));
            for (const r of warm) assert.equal(r.status, 200, `warm-up: ${r.status} ${r.body} ${tag}`);
            const otherFds = () => fdCount(pid) - socketsTo(pid, proxyPorts);
            // the warm-up's client connections are closed; wait until the gateway has seen that (two equal readings)
            let fdBase = otherFds();
            for (let k = 0, prev = -1; k < 50 && fdBase !== prev; k++) {
                await sleep(100);
                [prev, fdBase] = [fdBase, otherFds()];
            }
            const rssBase = rssKiB(pid);

            // the run: faults drawn per upstream connection from their own streams of the seed
            const planRng = { h1: prng(SEED ^ 0x5eed1), h2: prng(SEED ^ 0x5eed2) };
            proxies.h1.setDraw(() => drawPlan(planRng.h1, 64 * 1024));
            proxies.h2.setDraw(() => drawPlan(planRng.h2, 128 * 1024));
            // the warm-up's pooled connections have no fault plan: close them (as an upstream closes idle connections)
            // so that every request meets one
            proxies.h1.closeAll();
            proxies.h2.closeAll();
            const reqs = drawRequests(SEED, N);
            const t0 = Date.now();
            let next = 0, slowest = 0;
            const lane = async (l) => {
                while (next < reqs.length && Date.now() - t0 < BUDGET_MS) {
                    const req = reqs[next++];
                    if (req.script) await mock.script(req.script.script);
                    req.t0 = Date.now();
                    req.res = await send(gw.url, req, l);
                    req.t1 = Date.now();
                    slowest = Math.max(slowest, req.res.ms);
                    req.verdict = judge(req, req.res);
                    if (gw.child.exitCode !== null || gw.child.signalCode !== null) throw new Error(`the gateway died ${tag}:\n${gw.output.stderr.slice(-3000)}`);
                }
            };
            await Promise.all(Array.from({ length: CONCURRENCY }, (_, l) => lane(l)));
            const elapsed = Date.now() - t0;
            const ran = reqs.filter((r) => r.verdict);

            // attribution and counts
            const table = new Map();
            const count = (label, col) => {
                const row = table.get(label) ?? { complete: 0, 'error-event': 0, 'error-status': 0, VIOLATION: 0 };
                row[col]++;
                table.set(label, row);
            };
            const violations = [];
            for (const r of ran) {
                const hits = faultsOf(r, proxies);
                r.hits = hits;
                const col = r.verdict.outcome ?? 'VIOLATION';
                const label = `${r.up} ${r.script ? `script:${r.script.name}${hits.length ? '+proxy' : ''}` : hits.length ? `proxy:${planKind(hits[0].plan)}` : 'no fault'}`;
                count(label, col);
                count(`all ${r.kind} ${r.stream ? 'streamed' : 'whole'}`, col);
                if (r.verdict.violation) violations.push(r);
            }
            const conns = [...proxies.h1.connections(), ...proxies.h2.connections()];
            const struck = conns.filter((c) => c.struckAt !== null);
            say(`property run: seed ${SEED}, ${ran.length} of ${N} requests in ${(elapsed / 1000).toFixed(1)} s, concurrency ${CONCURRENCY}, ` +
                `slowest ${slowest} ms (hang bound ${HANG_MS} ms); upstream connections ${conns.length}, faults struck on ${struck.length} ` +
                `(${Object.entries(groupBy(struck, (c) => planKind(c.plan))).map(([k, v]) => `${k} ${v.length}`).join(', ')})`);
            say(`outcomes per fault (HTTP/1.1: the fault that struck the request's connection; HTTP/2: a fault that struck on its proxy while the request ran)`);
            say(`${''.padEnd(34)} ${['complete', 'error-event', 'error-status', 'VIOLATION'].map((c) => c.padStart(12)).join('')}`);
            for (const [label, row] of [...table.entries()].sort(([a], [b]) => a.localeCompare(b)))
                say(`${label.padEnd(34)} ${Object.values(row).map((v) => String(v).padStart(12)).join('')}`);

            // the violations, grouped by what broke and where; per group the simplest examples (all with PGW_TEST_VERBOSE)
            const describe = (r) => `#${r.i} ${r.kind}/ route ${r.model} via ${r.up === 'h1' ? 'HTTP/1.1' : 'HTTP/2+TLS'} upstream, ` +
                `${r.stream ? 'streamed' : 'whole'}, client ${r.client}; script ${r.script ? `${r.script.name} (${r.script.what})` : 'none'}; ` +
                `proxy plan(s) that struck: ${r.hits.map((c) => `${planName(c.plan)} (connection ${c.id}, struck at byte ${c.struckDown})`).join(', ') || 'none'}; ` +
                `got ${r.res.status ?? '-'}${r.res.aborted ? ' (broke off)' : ''} after ${r.res.ms} ms, body ends ${JSON.stringify(r.res.body.slice(-160))}`;
            const groups = groupBy(violations, (r) => `${r.verdict.violation} [${r.kind}/ ${r.stream ? 'streamed' : 'whole'}]`);
            const simplest = (rs) => [...rs].sort((a, b) => (a.hits.length + !!a.script) - (b.hits.length + !!b.script));
            const report = Object.entries(groups).sort((a, b) => b[1].length - a[1].length).map(([what, rs]) => {
                const by = groupBy(rs, (r) => `${r.up} ${r.script ? `script:${r.script.name}` : r.hits.length ? `proxy:${planKind(r.hits[0].plan)}` : 'no fault seen'}`);
                const examples = VERBOSE ? rs : Object.values(by).map((g) => simplest(g)[0]).slice(0, 4);
                return `  ${rs.length} × ${what}: ${Object.entries(by).map(([k, g]) => `${k} ${g.length}`).join(', ')}\n` +
                    examples.map((r) => `      e.g. ${r.verdict.detail}\n        ${describe(r)}`).join('\n');
            });

            // afterwards: alive, descriptors back, RSS bounded
            for (const s of h2Sessions) s?.close();
            const live = await request(`${gw.url}/health/liveliness`);
            let fdNow = 0;
            for (let k = 0; k < 100; k++) {
                fdNow = otherFds();
                if (fdNow <= fdBase) break;
                await sleep(100);
            }
            const upstreamNow = socketsTo(pid, proxyPorts);
            const rssNow = rssKiB(pid);
            say(`afterwards: liveliness ${live.status}; descriptors other than upstream sockets ${fdBase} → ${fdNow}; upstream sockets ${upstreamNow}; ` +
                `RSS ${(rssBase / 1024).toFixed(1)} → ${(rssNow / 1024).toFixed(1)} MB`);

            assert.ok(violations.length === 0, `${violations.length} of ${ran.length} responses broke the contract ${tag}:\n${report.join('\n')}`);
            assert.ok(ran.length >= Math.min(N, 200), `only ${ran.length} requests ran in the time budget ${tag}`);
            assert.equal(live.status, 200, `the gateway does not answer /health/liveliness after the run ${tag}`);
            assert.ok(fdNow <= fdBase + 2, `descriptors other than upstream sockets: ${fdBase} before, ${fdNow} after ${tag}`);
            // an HTTP/2 upstream gets a few connections per worker; an HTTP/1.1 one a connection per request in flight,
            // kept idle for the next (at most 32 per worker, src/upstream/upstream.c): no more than CONCURRENCY; a few
            // may be closing
            assert.ok(upstreamNow <= CONCURRENCY + 2 * 2 * 4 + 4, `${upstreamNow} upstream sockets open after the run ${tag}`);
            // an ASan build keeps up to 256 MB of freed memory in quarantine (its default quarantine_size_mb) on top
            const rssBound = rssBase + 64 * 1024 + (isSanitized(PGW_BIN) ? 320 * 1024 : 0);
            assert.ok(rssNow <= rssBound, `RSS grew from ${rssBase} to ${rssNow} KiB (bound ${rssBound}) ${tag}`);
            failed = false;
        } finally {
            for (const s of h2Sessions) s?.destroy();
            const { code, signal } = await gw.stop();
            await mock.stop();
            await proxies.h1.close();
            await proxies.h2.close();
            if (!failed) {
                assert.equal(signal, null, gw.output.stderr.slice(-3000));
                assert.equal(code, 0, gw.output.stderr.slice(-3000));
                assert.doesNotMatch(gw.output.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
            }
        }
    });
