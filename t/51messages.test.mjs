// poe-gateway: MIT licence. POST /v1/messages and count_tokens: validation and routing before any upstream call.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MASTER_KEY, certs, defaultConfig, request, sleep, startGateway, startMock } from './lib/harness.mjs';

let mock, gw;
before(async () => {
    mock = await startMock();
    gw = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});

const post = (p, body, headers = {}) =>
    request(`${gw.url}${p}`, { method: 'POST', headers: { 'x-api-key': MASTER_KEY, 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body) });
const msg = (extra) => ({ model: 'gpt-5', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], ...extra });

function errorOf(r, status, type) {
    assert.equal(r.status, status, r.body);
    const body = JSON.parse(r.body);
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, type);
    return body.error.message;
}

test('malformed JSON and non-objects are 400 invalid_request_error', async () => {
    for (const body of ['{', '', 'null', '[1]', '{"model": "gpt-5",}', '{"a":1} x', '"str"']) {
        const m = errorOf(await post('/v1/messages', body), 400, 'invalid_request_error');
        assert.match(m, /JSON|empty/, body);
    }
});

test('missing or mistyped model, messages and max_tokens are 400 naming the field', async () => {
    assert.match(errorOf(await post('/v1/messages', msg({ model: undefined })), 400, 'invalid_request_error'), /^model/);
    assert.match(errorOf(await post('/v1/messages', msg({ model: 42 })), 400, 'invalid_request_error'), /^model/);
    assert.match(errorOf(await post('/v1/messages', msg({ messages: undefined })), 400, 'invalid_request_error'), /^messages/);
    assert.match(errorOf(await post('/v1/messages', msg({ messages: 'hi' })), 400, 'invalid_request_error'), /^messages/);
    assert.match(errorOf(await post('/v1/messages', msg({ max_tokens: undefined })), 400, 'invalid_request_error'), /^max_tokens/);
    assert.match(errorOf(await post('/v1/messages', msg({ model: 'x'.repeat(300) })), 400, 'invalid_request_error'), /^model/);
    // count_tokens takes no max_tokens: gpt-5 is an openai/ route, whose count is the gateway's own estimate
    const r = await post('/v1/messages/count_tokens', msg({ max_tokens: undefined }));
    assert.equal(r.status, 200, r.body);
    const count = JSON.parse(r.body);
    assert.deepEqual(Object.keys(count), ['input_tokens']);
    assert.ok(Number.isInteger(count.input_tokens) && count.input_tokens > 0, r.body);
});

test('an unknown model is 404 naming it and the closest configured names', async () => {
    const config = defaultConfig().replace(/  - model_name: claude-\*\n(.*\n){4}/, '');
    const g = await startGateway({ config });
    try {
        const r = await request(`${g.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': MASTER_KEY },
            body: JSON.stringify(msg({ model: 'claude-sonet-4-5-20250929' })) });
        const m = errorOf(r, 404, 'not_found_error');
        assert.match(m, /claude-sonet-4-5-20250929/);
        assert.match(m, /closest: claude-sonnet-4-5-20250929/);
    } finally {
        await g.stop();
    }
});

test('a model name holding a NUL or control characters is quoted whole in the 404, escaped', async () => {
    // the name was formatted as a C string: the message stopped at the NUL ("model: gpt" and nothing after)
    const r = await post('/v1/messages', msg({ model: 'gpt\u0000-5\n\\x' }));
    const m = errorOf(r, 404, 'not_found_error');
    assert.match(m, /^model: gpt\\u0000-5\\u000a\\\\x is not configured on this gateway/);
    assert.ok(!m.includes('\u0000'), m);
});

test('exact names beat wildcards; a wildcard catches the rest', async () => {
    // the route name is in the access log, written when the request is disposed: each request is found by its query
    // string, since the workers may write the lines in any order
    const cases = { exact: 'claude-sonnet-4-5-20250929', wildcard: 'claude-opus-5-5', 'beta=true': 'gpt-5' };
    for (const [query, model] of Object.entries(cases))
        assert.equal((await post(`/v1/messages?${query.includes('=') ? query : `case=${query}`}`, msg({ model }))).status, 200);
    const routeOf = (query) => gw.output.stderr.match(new RegExp(`\\[access\\] .*"POST /v1/messages\\?${query} .* route=(\\S+)`))?.[1];
    for (let i = 0; i < 100 && !['case=exact', 'case=wildcard', 'beta=true'].every(routeOf); i++) await sleep(50);
    assert.deepEqual(['case=exact', 'case=wildcard', 'beta=true'].map(routeOf), ['claude-sonnet-4-5-20250929', 'claude-*', 'gpt-5']);
});

test('a model name with JSON escapes is decoded before routing', async () => {
    const r = await post('/v1/messages', '{"model":"gpt\\u002d5","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}');
    assert.equal(r.status, 200, r.body);
    const answer = JSON.parse(r.body);
    assert.equal(answer.type, 'message');
    assert.equal(answer.model, 'gpt-5'); // the decoded name, as the client meant it
    const up = (await mock.requests()).filter((q) => q.path === '/v1/chat/completions').at(-1);
    assert.equal(JSON.parse(up.body).model, 'gpt-5'); // the gpt-5 route's bot, GPT-5, as Poe's catalog spells it
});
