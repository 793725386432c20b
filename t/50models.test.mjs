// poe-gateway: MIT licence. GET /v1/models in both shapes, with the official Anthropic SDK as a client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { MASTER_KEY, defaultConfig, request, startGateway } from './lib/harness.mjs';

// gpt-5 is followed by its picker alias (t/68discovery)
const LISTED = ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001', 'gpt-5', 'claude-via-poe-gpt-5'];
let gw, many;
before(async () => {
    gw = await startGateway();
    // 25 listed names: more than the Anthropic API's default page of 20
    let config = 'model_list:\n';
    for (let i = 0; i < 25; i++)
        config += `  - model_name: claude-test-${String(i).padStart(2, '0')}\n    litellm_params:\n      model: anthropic/x\n      api_key: k\n`;
    config += '  - model_name: "*"\n    litellm_params:\n      model: openai/*\n      api_key: k\n';
    many = await startGateway({ config });
});
after(async () => {
    for (const g of [gw, many]) assert.equal((await g.stop()).code, 0);
});

const get = (g, p, headers = {}) => request(`${g.url}${p}`, { headers: { 'x-api-key': MASTER_KEY, ...headers } });

test('with anthropic-version: the Anthropic list shape, wildcards left out', async () => {
    const r = await get(gw, '/v1/models', { 'anthropic-version': '2023-06-01' });
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body);
    assert.deepEqual(body.data.map((m) => m.id), LISTED);
    for (const m of body.data) {
        assert.equal(m.type, 'model');
        assert.equal(typeof m.display_name, 'string');
        assert.ok(!Number.isNaN(Date.parse(m.created_at)), m.created_at);
    }
    assert.equal(body.has_more, false);
    assert.equal(body.first_id, LISTED[0]);
    assert.equal(body.last_id, LISTED[3]);
});

test('without anthropic-version: the OpenAI list shape', async () => {
    const body = JSON.parse((await get(gw, '/v1/models')).body);
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((m) => m.id), LISTED);
    for (const m of body.data) {
        assert.equal(m.object, 'model');
        assert.equal(typeof m.created, 'number');
        assert.equal(typeof m.owned_by, 'string');
    }
});

test("a wildcard route's pattern is not a model: GET /v1/models/{pattern} is 404; names it serves are found", async () => {
    for (const [g, pattern] of [[gw, 'claude-*'], [many, '*'], [gw, 'claude-*-x']]) {
        const r = await get(g, `/v1/models/${pattern}`, { 'anthropic-version': '2023-06-01' });
        assert.equal(r.status, 404, `${pattern}: ${r.body}`);
        const e = JSON.parse(r.body);
        assert.equal(e.error.type, 'not_found_error');
        assert.match(e.error.message, /a wildcard route's pattern is not a model/);
    }
    const served = JSON.parse((await get(gw, '/v1/models/claude-opus-9', { 'anthropic-version': '2023-06-01' })).body);
    assert.equal(served.id, 'claude-opus-9');
    // and no list, in either shape, offers a pattern
    for (const headers of [{}, { 'anthropic-version': '2023-06-01' }])
        for (const g of [gw, many])
            assert.ok(JSON.parse((await get(g, '/v1/models?limit=1000', headers)).body).data.every((m) => !m.id.includes('*')));
});

test('?limit= is honoured and validated', async () => {
    const a = JSON.parse((await get(gw, '/v1/models?limit=2', { 'anthropic-version': '2023-06-01' })).body);
    assert.deepEqual(a.data.map((m) => m.id), LISTED.slice(0, 2));
    assert.equal(a.has_more, true);
    assert.equal(a.last_id, LISTED[1]);
    const o = JSON.parse((await get(gw, '/v1/models?limit=1')).body);
    assert.equal(o.data.length, 1);
    for (const bad of ['0', 'x', '1001', '-1', '']) {
        const r = await get(gw, `/v1/models?limit=${bad}`);
        assert.equal(r.status, 400, bad);
        assert.equal(JSON.parse(r.body).error.type, 'invalid_request_error');
    }
    // Claude Code's discovery request
    const cc = JSON.parse((await get(many, '/v1/models?limit=1000', { 'anthropic-version': '2023-06-01' })).body);
    assert.equal(cc.data.length, 25);
});

test('pagination with after_id and before_id', async () => {
    const h = { 'anthropic-version': '2023-06-01' };
    const p1 = JSON.parse((await get(many, '/v1/models', h)).body);
    assert.equal(p1.data.length, 20);
    assert.equal(p1.has_more, true);
    const p2 = JSON.parse((await get(many, `/v1/models?after_id=${p1.last_id}`, h)).body);
    assert.deepEqual(p2.data.map((m) => m.id), ['claude-test-20', 'claude-test-21', 'claude-test-22', 'claude-test-23', 'claude-test-24']);
    assert.equal(p2.has_more, false);
    const back = JSON.parse((await get(many, '/v1/models?before_id=claude-test-05&limit=2', h)).body);
    assert.deepEqual(back.data.map((m) => m.id), ['claude-test-03', 'claude-test-04']);
    assert.equal((await get(many, '/v1/models?after_id=nope', h)).status, 400);
});

test('the official SDK lists every model across pages, and retrieves one', async () => {
    const client = new Anthropic({ apiKey: MASTER_KEY, baseURL: many.url, maxRetries: 0 });
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.equal(ids.length, 25);
    assert.equal(new Set(ids).size, 25);
    assert.equal(ids[24], 'claude-test-24');
    const one = await client.models.retrieve('claude-test-07');
    assert.equal(one.id, 'claude-test-07');
    assert.equal(one.type, 'model');
    // the catch-all route serves any name, so retrieve answers for it too
    assert.equal((await client.models.retrieve('some-new-model')).id, 'some-new-model');
    const sdk = new Anthropic({ apiKey: MASTER_KEY, baseURL: gw.url, maxRetries: 0 });
    await assert.rejects(sdk.models.retrieve('not-configured'), (e) => e.status === 404);
    const bad = new Anthropic({ apiKey: 'wrong', baseURL: gw.url, maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e.status === 401 && e.error?.error?.type === 'authentication_error');
});
