// poe-gateway: MIT licence. The gateway's own HTTP/2 client for https:// upstreams (#18, docs/request-path.md, The upstream
// client): what only it does, seen from the wire. The behaviours it shares with libcurl (retries, resets, pauses,
// certificates, pools) are held by the tests of the routes (52, 55, 66, 81, 83, 87, ...).
//
// - A request body leaves in DATA frames that each fill one TLS record: libcurl wrote each 16,393-byte frame as a
//   16,384-byte record plus a 9-byte one. A TCP relay between the gateway and the mock Poe reads the TLS record headers
//   the gateway sends (their lengths are in clear text).
// - A server that does not select h2 by ALPN is reached through libcurl, over HTTP/1.1, and the log says so once.
// - The certificate must name the host of the URL: a trusted certificate for other names is refused, unless the route
//   turns verification off (ssl_verify: false).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { MASTER_KEY, certs, parseSSE, request, startGateway, startMock } from './lib/harness.mjs';

const TLS13_OVERHEAD = 17; // content type byte + AEAD tag, on every TLS 1.3 record
const FULL_RECORD = 16384 + TLS13_OVERHEAD;
const SPILL_RECORD = 9 + TLS13_OVERHEAD; // a DATA frame's header alone

let mock, relay, plain, elsewhere, gw;
const records = []; // lengths of the TLS application-data records the gateway sent through the relay, in order

/** A TCP relay to `port` that notes the length of each TLS application-data record its clients send. */
function startRelay(port, host = '127.0.0.1') {
    const server = net.createServer((client) => {
        const upstream = net.connect(port, '127.0.0.1');
        let pending = Buffer.alloc(0);
        client.on('data', (chunk) => {
            pending = Buffer.concat([pending, chunk]);
            while (pending.length >= 5 && pending.length >= 5 + pending.readUInt16BE(3)) {
                const len = pending.readUInt16BE(3);
                if (pending[0] === 23) records.push(len);
                pending = pending.subarray(5 + len);
            }
        });
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
    });
    return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

/** An HTTPS server that speaks HTTP/1.1 only and selects no ALPN protocol; it answers every POST with a whole message. */
function startPlainTls() {
    const c = certs();
    const server = https.createServer({ key: fs.readFileSync(c.key), cert: fs.readFileSync(c.cert) }, (req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
            server.seen.push({ method: req.method, httpVersion: req.httpVersion });
            const answer = JSON.stringify({ id: 'msg_h1', type: 'message', role: 'assistant', model: 'claude-h1',
                content: [{ type: 'text', text: 'over HTTP/1.1' }], stop_reason: 'end_turn', stop_sequence: null,
                usage: { input_tokens: 3, output_tokens: 3 } });
            res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
            res.end(answer);
        });
    });
    server.seen = [];
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
    mock = await startMock();
    relay = await startRelay(mock.httpsPort);
    plain = await startPlainTls();
    elsewhere = await startRelay(mock.httpsPort, '127.0.0.2'); // the test certificate names 127.0.0.1, not 127.0.0.2
    const config = `model_list:
  - model_name: claude-relayed
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: https://localhost:${relay.address().port}
      api_key: os.environ/POE_API_KEY
  - model_name: claude-h1
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: https://localhost:${plain.address().port}
      api_key: os.environ/POE_API_KEY
  - model_name: claude-wrong-name
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: https://127.0.0.2:${elsewhere.address().port}
      api_key: os.environ/POE_API_KEY
      max_retries: 0
  - model_name: claude-unverified
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: https://127.0.0.2:${elsewhere.address().port}
      api_key: os.environ/POE_API_KEY
      ssl_verify: false
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`;
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca }, args: ['--threads', '1'] });
});
after(async () => {
    const { code } = await gw.stop();
    assert.equal(code, 0, gw.output.stderr.slice(-3000));
    await mock.stop();
    await new Promise((r) => relay.close(r));
    await new Promise((r) => plain.close(r));
    await new Promise((r) => elsewhere.close(r));
});

const post = (model, text, stream) => request(`${gw.url}/v1/messages`, { method: 'POST',
    headers: { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 64, stream, messages: [{ role: 'user', content: text }] }) });

test('a 49.5 KB body goes out in DATA frames that each fill one TLS record, none spilling 9 bytes into another', async (t) => {
    const text = 'x'.repeat(50000);
    const r = await post('claude-relayed', text, true);
    assert.equal(r.status, 200, r.body);
    const events = parseSSE(r.body);
    assert.equal(events.at(-1).event, 'message_stop', 'the whole stream came back');
    const seen = (await mock.requests()).find((q) => q.method === 'POST');
    assert.equal(JSON.parse(seen.body).messages[0].content, text, 'the body arrived whole, in order');
    t.diagnostic(`records: ${records.join(', ')}`);
    const full = records.filter((len) => len === FULL_RECORD).length;
    assert.ok(full >= 3, `the body filled whole records (${full} of ${FULL_RECORD} bytes among ${records.join(', ')})`);
    const spills = records.filter((len, i) => len === SPILL_RECORD && records[i - 1] === FULL_RECORD).length;
    assert.equal(spills, 0, `records after a full one that carry only a frame header: ${records.join(', ')}`);
});

test('a server that does not select h2 by ALPN is reached over HTTP/1.1 through libcurl, and the log says so once', async () => {
    for (let i = 0; i < 3; i++) {
        const r = await post('claude-h1', `hello ${i}`, false);
        assert.equal(r.status, 200, r.body);
        assert.equal(JSON.parse(r.body).content[0].text, 'over HTTP/1.1');
    }
    const posts = plain.seen.filter((s) => s.method === 'POST');
    assert.deepEqual(posts.map((s) => s.httpVersion), ['1.1', '1.1', '1.1'], 'each request reached it once');
    const said = gw.output.stderr.match(/localhost:\d+ does not speak HTTP\/2 \(ALPN\): its requests go through libcurl/g) ?? [];
    assert.equal(said.length, 1, gw.output.stderr.slice(-2000));
});

test('a trusted certificate that does not name the URL\'s host is refused; ssl_verify: false on the route accepts it', async () => {
    const refused = await post('claude-wrong-name', 'hello', false);
    assert.equal(refused.status, 502, refused.body);
    assert.match(JSON.parse(refused.body).error.message, /certificate/i, refused.body);
    const accepted = await post('claude-unverified', 'hello', false);
    assert.equal(accepted.status, 200, accepted.body);
    assert.equal(JSON.parse(accepted.body).type, 'message');
});
