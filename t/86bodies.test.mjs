// poe-gateway: MIT licence. Request bodies before the handler (#15, src/serve/bodies.c): a request without a valid key is
// answered 401 from its head, its body never read; bodies in flight are bounded by gateway.max_body_bytes_per_connection
// and gateway.max_body_bytes_in_flight (503 overloaded_error from the head when a declared body does not fit; a body
// that passes a limit on the way is cut). libh2o 2.2.5 alone reads every body whole first: ten keyless 29 MB uploads
// took the gateway from 12 MB to 361 MB, eight 30 MB streams on one h2c connection added 244 MB.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { MASTER_KEY, PGW_BIN, authHeaders, certs, defaultConfig, request, startGateway, startMock } from './lib/harness.mjs';
import { H2, H2_FLAGS, H2_PREFACE, connect, h2frame, h2frames, hpackRequest, memoryScale, rssKiB, statuses, waitFor }
    from './lib/raw.mjs';

const MEM = memoryScale(PGW_BIN); // ASan builds hold freed memory in quarantine: bounds are scaled
const MB = 1024 * 1024;
let mock, gw, pid;
before(async () => {
    mock = await startMock();
    // the default limits: max_body_bytes 32M, per connection 64M, in flight 256M
    gw = await startGateway({ config: defaultConfig(mock, 'gateway:\n  upstream_rpm: 0\n'), env: { SSL_CERT_FILE: certs().ca } });
    pid = gw.child.pid;
});
after(async () => {
    const { code, signal } = await gw.stop();
    await mock.stop();
    assert.equal(signal, null, gw.output.stderr.slice(-3000));
    assert.equal(code, 0, gw.output.stderr.slice(-3000));
    assert.doesNotMatch(gw.output.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
});
beforeEach(() => mock.reset());

const message = (pad = 0) => JSON.stringify({ model: 'claude-bodies-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }],
    ...(pad ? { metadata: { user_id: 'x'.repeat(pad) } } : {}) });
const WRONG_KEY = 'sk-not-a-key-0123456789abcdef';

/** The JSON body of the one HTTP/1.1 answer in a raw connection's text. */
const answerBody = (text) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));

/** Lets the event loop read what has arrived: a write the kernel takes at once does not yield to I/O by itself. */
const yieldToIO = () => new Promise((resolve) => setImmediate(resolve));

/** Resolves once the raw connection `c` can take more, `answered()` is true, or the connection is gone. */
async function writable(c, answered) {
    await yieldToIO(); // else a peer that drains the socket as fast as it fills keeps an answer from being seen
    if (c.closed || answered() || !c.sock.writableNeedDrain) return;
    return new Promise((resolve) => {
        const done = () => {
            c.sock.off('drain', done).off('close', done).off('data', check);
            resolve();
        };
        const check = () => answered() && done();
        c.sock.on('drain', done).on('close', done).on('data', check);
    });
}

/** Resolves once the HTTP/2 stream can take more, has a response, or is gone. */
function streamWritable(st) {
    if (st.destroyed || st.closed || st.headersReceived) return Promise.resolve();
    return new Promise((resolve) => {
        const done = () => {
            st.off('drain', done).off('close', done).off('response', done);
            resolve();
        };
        st.on('drain', done).on('close', done).on('response', done);
    });
}

/**
 * Sends up to `total` bytes on an HTTP/2 stream, a megabyte at a time, until the gateway answers; ends the stream if it
 * was all sent. Resolves {status, headers, body, written, rstCode} when the stream closes.
 */
function h2upload(session, headers, total, sample = () => {}) {
    const st = session.request({ ':method': 'POST', ':path': '/v1/messages', ...headers });
    st.headersReceived = false;
    let status = null, resHeaders = null, body = '', written = 0;
    st.on('response', (h) => {
        st.headersReceived = true;
        status = h[':status'];
        resHeaders = h;
    });
    st.setEncoding('utf8');
    st.on('data', (d) => (body += d));
    st.on('error', () => {});
    // Node keeps a stream the server has closed (RST_STREAM NO_ERROR after a complete answer) until its own writes are
    // done, which those refused never will be: once the answer is read, such a stream is let go here
    st.on('end', () => st.closed && st.destroy());
    const closed = new Promise((resolve) => st.on('close', () => resolve({ status, headers: resHeaders, body, written, rstCode: st.rstCode })));
    (async () => {
        const mb = Buffer.alloc(MB, 0x20);
        while (written < total && !st.headersReceived && !st.destroyed && !st.closed) {
            const n = Math.min(MB, total - written);
            written += n;
            sample();
            if (!st.write(n === MB ? mb : mb.subarray(0, n))) await streamWritable(st);
            else await yieldToIO(); // let an answer that has arrived be seen before the next megabyte
        }
        if (written >= total && !st.destroyed && !st.closed) st.end();
    })();
    return closed;
}

/** One request with `body` on an HTTP/2 session. Resolves {status, body}. */
function h2post(session, headers, body) {
    return new Promise((resolve, reject) => {
        const st = session.request({ ':method': 'POST', ':path': '/v1/messages', ...headers });
        let status = null, data = '';
        st.on('response', (h) => (status = h[':status']));
        st.setEncoding('utf8');
        st.on('data', (d) => (data += d));
        st.on('end', () => resolve({ status, body: data }));
        st.on('error', reject);
        st.end(body);
    });
}

/** A PING's round trip: the gateway has read every frame sent before it. */
async function ping(session) {
    if (session.connecting) await new Promise((resolve) => session.once('connect', resolve));
    await new Promise((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
}

// ---- no valid key: answered from the head ----

test('HTTP/1.1: ten 29 MB bodies without a valid key get 401 from their heads and are never read; memory stays flat', async () => {
    const total = 29 * MB, mb = Buffer.alloc(MB, 0x20);
    const rss0 = rssKiB(pid);
    let peak = rss0;
    const upload = async (i) => {
        const c = await connect(gw.port);
        const key = i % 2 ? `x-api-key: ${WRONG_KEY}\r\n` : '';
        c.write(`POST /v1/messages HTTP/1.1\r\nHost: x\r\n${key}content-type: application/json\r\ncontent-length: ${total}\r\n\r\n`);
        const answered = () => /\r\n\r\n/.test(c.text);
        let written = 0;
        while (written < total && !c.closed && !answered()) {
            c.write(mb);
            written += MB;
            peak = Math.max(peak, rssKiB(pid));
            await writable(c, answered);
        }
        await writable(c, answered);
        await waitFor(() => c.closed, 5000, 10);
        c.destroy();
        return { i, c, written };
    };
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => upload(i)));
    peak = Math.max(peak, rssKiB(pid));
    for (const { i, c, written } of results) {
        assert.deepEqual(statuses(c.text), [401], `#${i}: ${c.text.slice(0, 300)}`);
        assert.ok(written < total, `#${i}: the answer came only after the whole ${total >> 20} MB body`);
        assert.match(c.text, /\r\nconnection: close\r\n/i, `#${i}`);
        assert.ok(c.closed, `#${i}: the connection stays open with a body unread`);
        const e = answerBody(c.text);
        assert.equal(e.type, 'error');
        assert.equal(e.error.type, 'authentication_error');
        assert.match(e.error.message, i % 2 ? /^invalid API key$/ : /^missing API key/);
    }
    process.env.PGW_TEST_VERBOSE && console.log(`HTTP/1.1: RSS +${(peak - rss0) >> 10} MB`);
    assert.ok(peak - rss0 < 16 * 1024 * MEM, `RSS grew by ${(peak - rss0) >> 10} MB`);
    assert.equal((await request(`${gw.url}/v1/messages`, { method: 'POST', headers: authHeaders(), body: message() })).status, 200);
});

test('h2c: eight 30 MB streams without a valid key on one connection get 401 at once, unread, then RST_STREAM(NO_ERROR)', async () => {
    const total = 30 * MB;
    const rss0 = rssKiB(pid);
    let peak = rss0;
    const sample = () => (peak = Math.max(peak, rssKiB(pid)));
    const session = http2.connect(gw.url);
    session.on('error', () => {});
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        h2upload(session, { 'content-type': 'application/json', ...(i % 2 ? { 'x-api-key': WRONG_KEY } : {}) }, total, sample)));
    sample();
    results.forEach((r, i) => {
        assert.equal(r.status, 401, `#${i}: ${r.status} ${r.body}`);
        assert.equal(JSON.parse(r.body).error.type, 'authentication_error', `#${i}`);
        assert.ok(r.written < total, `#${i}: the answer came only after the whole ${total >> 20} MB body`);
        assert.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR, `#${i}: the stream ended with code ${r.rstCode}`);
    });
    // the connection still serves
    await ping(session);
    session.close();
    process.env.PGW_TEST_VERBOSE && console.log(`h2c: RSS +${(peak - rss0) >> 10} MB`);
    assert.ok(peak - rss0 < 16 * 1024 * MEM, `RSS grew by ${(peak - rss0) >> 10} MB`);
});

test('h2c: DATA that comes with the HEADERS of a keyless request is dropped without costing the request its 401', async () => {
    // HEADERS and 48 KB of DATA in one write: libh2o reads the DATA before the 401 it was given is written out, and
    // left alone resets the stream (RST_STREAM STREAM_CLOSED) and drops the answer
    const c = await connect(gw.port);
    const chunk = Buffer.alloc(16384, 0x20);
    c.write(Buffer.concat([H2_PREFACE,
        h2frame(H2.HEADERS, H2_FLAGS.END_HEADERS, 1, hpackRequest('POST', '/v1/messages', [['content-type', 'application/json']])),
        h2frame(H2.DATA, 0, 1, chunk), h2frame(H2.DATA, 0, 1, chunk), h2frame(H2.DATA, 0, 1, chunk)]));
    const reset = (f) => f.type === H2.RST_STREAM && f.stream === 1;
    assert.ok(await waitFor(() => h2frames(c.data).some(reset), 5000, 10), 'stream 1 was not answered before its body ended');
    const frames = h2frames(c.data).filter((f) => f.stream === 1);
    const rst = frames.find(reset);
    assert.equal(rst.payload.readUInt32BE(0), 0, `RST_STREAM code ${rst.payload.readUInt32BE(0)}, not NO_ERROR`);
    assert.deepEqual(frames.map((f) => f.type).slice(0, 1), [H2.HEADERS]);
    const answer = Buffer.concat(frames.filter((f) => f.type === H2.DATA).map((f) => f.payload)).toString();
    assert.equal(JSON.parse(answer).error.type, 'authentication_error', answer);
    assert.equal(frames.indexOf(rst), frames.length - 1, 'frames after the RST_STREAM');
    // more DATA for the finished stream, then a probe on stream 3: the connection carries on
    c.write(Buffer.concat([h2frame(H2.DATA, H2_FLAGS.END_STREAM, 1, chunk),
        h2frame(H2.HEADERS, H2_FLAGS.END_HEADERS | H2_FLAGS.END_STREAM, 3, hpackRequest('GET', '/health/liveliness'))]));
    assert.ok(await waitFor(() => h2frames(c.data).some((f) => f.stream === 3 && f.type === H2.DATA && (f.flags & H2_FLAGS.END_STREAM)), 5000, 10),
        'no answer on stream 3');
    assert.ok(!h2frames(c.data).some((f) => f.type === H2.GOAWAY), 'GOAWAY');
    c.destroy();
});

test('over TLS too: a keyless 20 MB body gets its 401 from the head, over HTTP/1.1 and h2', async () => {
    const t = await startGateway({ config: defaultConfig(mock, `gateway:\n  upstream_rpm: 0\n  tls:\n    cert_file: ${certs().cert}\n` +
        `    key_file: ${certs().key}\n`), env: { SSL_CERT_FILE: certs().ca } });
    const total = 20 * MB;
    try {
        const h1 = await new Promise((resolve, reject) => {
            let written = 0, answered = false;
            const req = https.request(`${t.url}/v1/messages`, { method: 'POST', ca: fs.readFileSync(certs().ca), agent: false,
                headers: { 'content-type': 'application/json', 'content-length': total, 'x-api-key': WRONG_KEY } }, (res) => {
                answered = true;
                let body = '';
                res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => {
                    req.destroy();
                    resolve({ status: res.statusCode, headers: res.headers, body, written });
                });
            });
            req.on('error', (e) => !answered && reject(e));
            const mb = Buffer.alloc(MB, 0x20);
            const pump = () => {
                while (written < total && !answered && !req.destroyed) {
                    written += MB;
                    if (!req.write(mb)) return req.once('drain', pump);
                }
                if (written >= total) req.end();
            };
            pump();
        });
        assert.equal(h1.status, 401, h1.body);
        assert.equal(JSON.parse(h1.body).error.message, 'invalid API key');
        assert.equal(h1.headers.connection, 'close');
        assert.ok(h1.written < total, 'HTTP/1.1 over TLS: the answer came only after the whole body');

        const session = http2.connect(t.url, { ca: fs.readFileSync(certs().ca) });
        session.on('error', () => {});
        const h2 = await Promise.all([0, 1].map(() => h2upload(session, { 'content-type': 'application/json' }, total)));
        for (const r of h2) {
            assert.equal(r.status, 401, r.body);
            assert.ok(r.written < total, 'h2: the answer came only after the whole body');
            assert.equal(r.rstCode, http2.constants.NGHTTP2_NO_ERROR);
        }
        session.close();
    } finally {
        const { code, signal } = await t.stop();
        assert.equal(signal, null, t.output.stderr.slice(-3000));
        assert.equal(code, 0, t.output.stderr.slice(-3000));
    }
});

test('a keyless request without a body, or to a path that needs no key, is answered as before', async () => {
    const r = await request(`${gw.url}/v1/models`, { headers: { 'x-api-key': WRONG_KEY } });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).error.message, 'invalid API key');
    // a body on a probe: the probe's answer, not a 401
    const c = await connect(gw.port);
    c.write(`GET /health/liveliness HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello`);
    assert.ok(await c.waitData(/\r\n\r\n/, 5000));
    assert.deepEqual(statuses(c.text), [200], c.text);
    c.destroy();
});

// ---- the limits on bodies in flight ----

test('bodies past max_body_bytes_per_connection or max_body_bytes_in_flight get 503 overloaded_error from their heads, or are cut on the way; smaller ones pass',
    async () => {
    const g = await startGateway({
        config: defaultConfig(mock, 'gateway:\n  upstream_rpm: 0\n  max_body_bytes: 1M\n  max_body_bytes_per_connection: 1536K\n' +
            '  max_body_bytes_in_flight: 2560K\n'),
        env: { SSL_CERT_FILE: certs().ca } });
    const h1head = (length, extra = '') => `POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: ${MASTER_KEY}\r\n` +
        `content-type: application/json\r\ncontent-length: ${length}\r\n${extra}\r\n`;
    const assertOverloaded = (status, headers, body, setting, what) => {
        assert.equal(status, 503, `${what}: ${status} ${body}`);
        assert.equal(JSON.parse(body).error.type, 'overloaded_error', what);
        assert.match(JSON.parse(body).error.message, new RegExp(`gateway\\.${setting}`), what);
        assert.equal(headers['retry-after'], '1', what);
    };
    let exit;
    try {
        // HTTP/2 bodies without content-length are counted as they come: P declares 800 KB, Q declares nothing and sends
        // 950 KB on the same connection, passing 1.5 MB some 180 KB before its end (flow control keeps the rest, and its
        // END_STREAM, out of the read that passes it)
        const s2 = http2.connect(g.url);
        s2.on('error', () => {});
        const pBody = Buffer.from(message(800 * 1000));
        const p = s2.request({ ':method': 'POST', ':path': '/v1/messages', ...authHeaders(), 'content-length': String(pBody.length) });
        let pStatus = null, pAnswer = '';
        p.on('response', (h) => (pStatus = h[':status']));
        p.on('error', () => {});
        const pDone = new Promise((resolve) => p.on('close', resolve));
        p.setEncoding('utf8');
        p.on('data', (d) => (pAnswer += d));
        p.write(pBody.subarray(0, pBody.length - 1));
        await ping(s2); // the gateway has read P's HEADERS: its 800 KB are counted
        const q = await h2upload(s2, authHeaders(), 950 * 1000);
        assert.equal(q.status, null, `the stream past the limit was answered ${q.status} ${q.body}`);
        assert.equal(q.rstCode, http2.constants.NGHTTP2_REFUSED_STREAM, `the stream past the limit ended with code ${q.rstCode}`);
        p.end(pBody.subarray(pBody.length - 1));
        await pDone;
        assert.equal(pStatus, 200, `the stream within the limit: ${pAnswer}`);
        s2.close();

        // A: 1 MB declared on an h2c connection, 100 KB sent, held open
        const s1 = http2.connect(g.url);
        s1.on('error', () => {});
        const a = s1.request({ ':method': 'POST', ':path': '/v1/messages', ...authHeaders(), 'content-length': String(MB) });
        a.on('error', () => {});
        a.write(Buffer.alloc(100 * 1024, 0x20));
        await ping(s1);
        // B: 600 KB more on the same connection passes 1.5 MB: 503 from its head
        const b = await h2upload(s1, { ...authHeaders(), 'content-length': String(600 * 1000) }, 600 * 1000);
        assertOverloaded(b.status, b.headers, b.body, 'max_body_bytes_per_connection', 'B');
        // C: a small one on the same connection fits, and on another
        const small = message();
        const cr = await h2post(s1, { ...authHeaders(), 'content-length': String(Buffer.byteLength(small)) }, small);
        assert.equal(cr.status, 200, `a small body on the same connection: ${cr.body}`);
        const c2 = await request(`${g.url}/v1/messages`, { method: 'POST', protocol: 'h2c', body: small,
            headers: { ...authHeaders(), 'content-length': String(Buffer.byteLength(small)) } });
        assert.equal(c2.status, 200, `a small body on another connection: ${c2.body}`);

        // X: 1 MB declared over HTTP/1.1; its 100 Continue says the gateway has counted it: 2 MB in flight
        const x = await connect(g.port);
        x.write(h1head(MB, 'expect: 100-continue\r\n'));
        assert.ok(await x.waitData(/100 Continue/, 5000), `no 100 Continue: ${x.text}`);
        // Y: 600 KB more passes 2.5 MB: 503 from its head, the connection closed
        const y = await connect(g.port);
        y.write(h1head(600 * 1000));
        assert.ok(await y.waitData(/\r\n\r\n/, 5000), 'no answer to the head of a body past max_body_bytes_in_flight');
        assert.deepEqual(statuses(y.text), [503], y.text);
        const yHeaders = Object.fromEntries([...y.text.matchAll(/^([\w-]+): (.*)\r$/gm)].map((m) => [m[1].toLowerCase(), m[2]]));
        assertOverloaded(503, yHeaders, y.text.slice(y.text.indexOf('\r\n\r\n') + 4), 'max_body_bytes_in_flight', 'Y');
        assert.ok(await y.waitClose(5000), 'the connection stays open with a body unread');
        y.destroy();
        // Z: a small one fits
        const z = await request(`${g.url}/v1/messages`, { method: 'POST', body: small,
            headers: { ...authHeaders(), 'content-length': String(Buffer.byteLength(small)) } });
        assert.equal(z.status, 200, `a small body: ${z.body}`);
        // W: a chunked body that passes 2.5 MB on the way (600 KB, not finished): the connection is closed, unanswered
        const w = await connect(g.port);
        w.write(`POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: ${MASTER_KEY}\r\ntransfer-encoding: chunked\r\n\r\n`);
        const chunk = Buffer.concat([Buffer.from(`${(100 * 1000).toString(16)}\r\n`), Buffer.alloc(100 * 1000, 0x20), Buffer.from('\r\n')]);
        for (let i = 0; i < 6 && !w.closed; i++) {
            w.write(chunk);
            await writable(w, () => w.closed);
        }
        assert.ok(await w.waitClose(5000), 'a chunked body past max_body_bytes_in_flight is still being read');
        assert.deepEqual(statuses(w.text), [], w.text.slice(0, 200));
        w.destroy();

        // A and X go: their bytes are released, and 600 KB fit again
        a.close(http2.constants.NGHTTP2_CANCEL);
        x.destroy();
        const big = message(600 * 1000);
        let last;
        const fits = await waitFor(async () => {
            last = await request(`${g.url}/v1/messages`, { method: 'POST', body: big,
                headers: { ...authHeaders(), 'content-length': String(Buffer.byteLength(big)) } });
            return last.status === 200;
        }, 5000, 50);
        assert.ok(fits, `600 KB after the others left: ${last.status} ${last.body}`);
        s1.close();
    } finally {
        exit = await g.stop();
        if (process.env.PGW_TEST_VERBOSE) console.log(g.output.stderr);
    }
    assert.equal(exit.signal, null, g.output.stderr.slice(-3000));
    assert.equal(exit.code, 0, g.output.stderr.slice(-3000));
    assert.doesNotMatch(g.output.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
    assert.match(g.output.stderr, /passed gateway\.max_body_bytes_per_connection after \d+ bytes: its stream is refused/);
    assert.match(g.output.stderr, /passed gateway\.max_body_bytes_in_flight after \d+ bytes: its connection is closed/);
});
