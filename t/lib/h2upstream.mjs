// poe-gateway: MIT licence. A Poe stand-in over HTTP/2 + TLS for the frames the C mock (libh2o 2.2.5) cannot send: an
// answer followed by RST_STREAM(NO_ERROR) before the request body was read, RST_STREAM(REFUSED_STREAM) over a concurrency
// limit, and a GOAWAY after every K requests of a connection. It answers /v1/messages (Anthropic SSE or a whole message)
// and /v1/chat/completions (chat.completion chunks or a whole completion) as Poe does, and /v1/models from
// t/assets/poe-catalog.json. A path may start with /sse or /whole (a route's api_base says which): the answer is then
// streamed or whole whatever the body asks, which an early answer does not read; otherwise the body's `stream` decides.
//
// Options of startH2Upstream (all off by default):
//   early:        answer on the request's HEADERS without reading its body (the stream is paused, so no flow-control
//                 window is granted past the initial one), a canned answer with a Content-Length as nginx's `return`
//                 sends, then reset the upload with RST_STREAM(NO_ERROR) if its END_STREAM has not come, as nginx does;
//                 `resetDelayMs` after the answer (nginx: at once)
//   window:       SETTINGS_INITIAL_WINDOW_SIZE (65536 by default, as nginx; the connection's window is opened wide, as
//                 nginx does)
//   maxStreams:   a request arriving while that many of its connection are being answered is refused with
//                 RST_STREAM(REFUSED_STREAM): a front end with a limit it does not advertise (nghttp2 would refuse the
//                 streams over an advertised one itself, unseen and uncounted here)
//   refuseAll:    every request but /v1/models is refused with RST_STREAM(REFUSED_STREAM)
//   goawayEvery:  after the K-th request of a connection, GOAWAY(NO_ERROR, last-stream-id = that request's stream) and a
//                 graceful close: the requests up to it are answered, those above it refused unprocessed
//   delayMs:      how long an answer takes (so that requests overlap)
//   advertise:    SETTINGS_MAX_CONCURRENT_STREAMS, a limit the server announces (nghttp2 refuses streams over it)
// `stats` counts answered requests, those answered before their body had come whole (early), refused streams, resets
// (RST_STREAM(NO_ERROR) of unread uploads), GOAWAYs and connections.
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { SOURCE_DIR, anthropicStream, certs, openaiStream } from './harness.mjs';

const { NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL } = http2.constants;
const CATALOG = fs.readFileSync(path.join(SOURCE_DIR, 't/assets/poe-catalog.json'));
export const ANSWER_TEXT = 'rotation is invisible';

/** The answer to `pathname` as [content-type, chunks]: Poe-shaped, streamed or whole. */
function answer(pathname, stream) {
    if (pathname === '/v1/messages') {
        if (stream) return ['text/event-stream', anthropicStream({ blocks: [{ type: 'text', text: ANSWER_TEXT }] })];
        return ['application/json', [JSON.stringify({ id: 'msg_h2', type: 'message', role: 'assistant', model: 'claude-sonnet-4.5',
            content: [{ type: 'text', text: ANSWER_TEXT }], stop_reason: 'end_turn', stop_sequence: null,
            usage: { input_tokens: 50, output_tokens: 12 } })]];
    }
    if (stream) return ['text/event-stream', openaiStream({ deltas: [{ content: ANSWER_TEXT }] })];
    return ['application/json', [JSON.stringify({ id: 'chatcmpl-h2', object: 'chat.completion', created: 1764150000, model: 'gpt-5',
        choices: [{ index: 0, message: { role: 'assistant', content: ANSWER_TEXT }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 } })]];
}

/** Sends the answer; a whole one (or a canned one) with its Content-Length, a stream chunk by chunk. */
function send(stream, pathname, isStream, canned, done) {
    let status = 200, type, chunks;
    if (pathname === '/v1/models') [type, chunks] = ['application/json', [CATALOG]];
    else if (pathname === '/v1/messages' || pathname === '/v1/chat/completions') [type, chunks] = answer(pathname, isStream);
    else [status, type, chunks] = [404, 'application/json', ['{"error":{"message":"not found"}}']];
    if (!isStream || canned) chunks = [Buffer.concat(chunks.map((c) => Buffer.from(c)))];
    const headers = { ':status': status, 'content-type': type };
    if (chunks.length === 1) headers['content-length'] = chunks[0].length;
    stream.respond(headers);
    for (const c of chunks.slice(0, -1)) stream.write(c);
    stream.end(chunks[chunks.length - 1], done);
}

/** Starts the server on a free port of 127.0.0.1; resolves {url, stats, stop()}. */
export async function startH2Upstream({ early = false, resetDelayMs = 0, window = 65536, maxStreams = 0, refuseAll = false,
    goawayEvery = 0, delayMs = 0, advertise = 0 } = {}) {
    const c = certs();
    const stats = { answered: 0, early: 0, refused: 0, resets: 0, goaways: 0, connections: 0 };
    const sessions = new Set();
    const server = http2.createSecureServer({ key: fs.readFileSync(c.key), cert: fs.readFileSync(c.cert),
        settings: { initialWindowSize: window, ...(advertise ? { maxConcurrentStreams: advertise } : {}) } });

    server.on('session', (session) => {
        stats.connections++;
        sessions.add(session);
        session.on('close', () => sessions.delete(session));
        session.on('error', () => {});
        session.setLocalWindowSize(2 ** 31 - 1);
        session.requests = 0;
        session.inflight = 0;
        session.lastStream = Infinity; /* lowered by our GOAWAY */
    });
    server.on('stream', (stream, headers) => {
        const session = stream.session;
        stream.on('error', () => {});
        const m = /^\/(sse|whole)(\/.*)$/.exec(headers[':path']);
        const pathname = m ? m[2] : headers[':path'];
        const over = maxStreams && session.inflight >= maxStreams;
        if (stream.id > session.lastStream || over || (refuseAll && pathname !== '/v1/models')) {
            stats.refused++;
            stream.close(NGHTTP2_REFUSED_STREAM);
            return;
        }
        session.inflight++;
        stream.on('close', () => session.inflight--);
        if (goawayEvery && ++session.requests === goawayEvery) {
            session.lastStream = stream.id;
            stats.goaways++;
            session.goaway(NGHTTP2_NO_ERROR, stream.id);
            session.close(); /* once the streams up to this one are answered */
        }
        if (early) {
            stream.pause();
            setTimeout(() => {
                stats.answered++;
                send(stream, pathname, m?.[1] === 'sse', true, () => {
                    if (stream.state.state !== NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL) return; /* the body came whole */
                    stats.early++;
                    setTimeout(() => {
                        if (stream.state.state !== NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL) return; /* the client ended it */
                        stats.resets++;
                        stream.close(NGHTTP2_NO_ERROR);
                    }, resetDelayMs);
                });
            }, delayMs);
            return;
        }
        const parts = [];
        stream.on('data', (d) => parts.push(d));
        stream.on('end', () => {
            let isStream = m ? m[1] === 'sse' : false;
            if (!m && parts.length) isStream = JSON.parse(Buffer.concat(parts).toString('utf8')).stream === true;
            setTimeout(() => {
                stats.answered++;
                send(stream, pathname, isStream, false);
            }, delayMs);
        });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
        url: `https://localhost:${server.address().port}`,
        stats,
        async stop() {
            for (const s of sessions) s.destroy();
            await new Promise((resolve) => server.close(resolve));
        },
    };
}
