// poe-gateway: MIT licence. Protocol hygiene on the pass-through (#17 part 5): anthropic-* headers and body fields are
// open lists, and Poe's error bodies reach the client as Poe wrote them (but for the gateway's own refused key).
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { MASTER_KEY, POE_KEY, certs, defaultConfig, protocolsFor, request, startGateway, startMock } from './lib/harness.mjs';

let mock, gw;
before(async () => {
    mock = await startMock();
    const extra = `  - model_name: claude-bad-key
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/WRONG_POE_KEY
      max_retries: 0
`;
    const config = defaultConfig(mock).replace('general_settings:', `${extra}general_settings:`) +
        'router_settings:\n  num_retries: 0\n';
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca, WRONG_POE_KEY: 'not-the-poe-key' } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});
beforeEach(() => mock.reset());

const post = (body, { path = '/v1/messages', protocol = 'h1', headers = {} } = {}) =>
    request(`${gw.url}${path}`, { method: 'POST', protocol, body,
        headers: { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json', ...headers } });

test('made-up future anthropic-* headers and body fields reach Poe untouched, on messages and count_tokens', async () => {
    const future = {
        'anthropic-beta': 'claude-code-20250219,some-beta-2031-04-01',
        'anthropic-version': '2031-01-01',
        'anthropic-future-routing-hint': 'keep-me; q=0.5',
        'Anthropic-Client-Capability': 'Mixed-Case Value',
    };
    // fields no release knows yet, at the top level and inside messages, blocks and tools, in odd JSON spellings
    const body = '{"model":"claude-sonnet-4-5-20250929","max_tokens":16,"future_top_level":{"nested":[1,2.50,-0e0,"\\u00e9"]},' +
        '"messages":[{"role":"user","content":[{"type":"text","text":"hi","future_block_field":true}],"future_message_field":null}],' +
        '"tools":[{"name":"t","input_schema":{"type":"object"},"future_tool_field":{"x":1}}],"output_config":{"future_knob":"max"}}';
    const protocols = protocolsFor(gw);
    for (const path of ['/v1/messages', '/v1/messages/count_tokens?beta=true'])
        for (const protocol of protocols) {
            await mock.reset();
            const r = await post(path.includes('count') ? body.replace('"max_tokens":16,', '') : body, { path, protocol, headers: future });
            assert.equal(r.status, 200, `${path} ${protocol}: ${r.body}`);
            const [seen] = await mock.requests();
            assert.equal(seen.path, path.split('?')[0]);
            const sent = path.includes('count') ? body.replace('"max_tokens":16,', '') : body;
            assert.equal(seen.body, sent.replace('"claude-sonnet-4-5-20250929"', '"claude-sonnet-4.5"'), `${path} ${protocol}`);
            assert.equal(seen.headers['anthropic-beta'], future['anthropic-beta']);
            assert.equal(seen.headers['anthropic-version'], '2031-01-01', 'the client\'s version, not a default');
            assert.equal(seen.headers['anthropic-future-routing-hint'], 'keep-me; q=0.5', `${path} ${protocol}`);
            assert.equal(seen.headers['anthropic-client-capability'], 'Mixed-Case Value', `${path} ${protocol}`);
            assert.equal(seen.headers['x-api-key'], POE_KEY);
        }
    // two anthropic-beta lines stay two values, in order; a missing anthropic-version gets the default
    await mock.reset();
    const raw = await new Promise((resolve, reject) => {
        import('node:http').then(({ default: http }) => {
            const req = http.request(`${gw.url}/v1/messages`, { method: 'POST', headers: [
                'x-api-key', MASTER_KEY, 'content-type', 'application/json',
                'anthropic-beta', 'first-beta-2030', 'anthropic-beta', 'second-beta-2030'] }, (res) => {
                res.resume();
                res.on('end', () => resolve(res.statusCode));
            });
            req.on('error', reject);
            req.end(body);
        });
    });
    assert.equal(raw, 200);
    const [seen] = await mock.requests();
    assert.match(seen.headers['anthropic-beta'], /^first-beta-2030, ?second-beta-2030$/);
    assert.equal(seen.headers['anthropic-version'], '2023-06-01');
});

// Anthropic-shaped errors as Poe might word them, with its own spacing and fields: Claude Code matches their text
const ERRORS = [
    [400, '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 212345 tokens > 200000 maximum"},"request_id":"req_1"}'],
    [400, '{ "type": "error", "error": { "type": "invalid_request_error", "message": "max_tokens: 64001 > 64000, which is the maximum allowed" } }'],
    [403, '{"type":"error","error":{"type":"permission_error","message":"Your request was flagged by moderation."}}'],
    [404, '{"type":"error","error":{"type":"not_found_error","message":"model: claude-sonnet-4.5"},"request_id":"req_2"}'],
    [413, '{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum size"}}'],
    [429, '{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}'],
    [500, '{"type":"error","error":{"type":"api_error","message":"Internal server error"},"request_id":"req_3"}'],
    [529, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"future_error_field":[1]}'],
];

test("Poe's Anthropic-shaped error bodies reach the client byte for byte, whole, streamed and on count_tokens", async () => {
    const json = { 'content-type': 'application/json' };
    for (const [status, body] of ERRORS)
        for (const [path, extra] of [['/v1/messages', ''], ['/v1/messages', ',"stream":true'], ['/v1/messages/count_tokens', '']]) {
            await mock.reset();
            await mock.script({ match: { path }, status, headers: json, body });
            const req = `{"model":"claude-sonnet-4-5-20250929","max_tokens":16,"messages":[{"role":"user","content":"hi"}]${extra}}`;
            const r = await post(req, { path });
            assert.equal(r.status, status, `${status} ${path}${extra}: ${r.body}`);
            assert.equal(r.body, body, `${status} ${path}${extra}`);
            assert.match(r.headers['content-type'], /application\/json/);
        }
});

test('the exception: Poe refusing the gateway\'s own key is a 502 naming the fix, not a 401 that logs the user out', async () => {
    const r = await post('{"model":"claude-bad-key","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}');
    assert.equal(r.status, 502, r.body);
    const e = JSON.parse(r.body);
    assert.equal(e.type, 'error');
    assert.equal(e.error.type, 'api_error');
    assert.match(e.error.message, /WRONG_POE_KEY/);
    assert.ok(!r.body.includes('not-the-poe-key'));
});
