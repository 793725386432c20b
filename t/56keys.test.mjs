// poe-gateway: MIT licence. Named client keys: allow lists, per-key rpm, names (never keys) in the access log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { MASTER_KEY, certs, request, sleep, startGateway, startMock } from './lib/harness.mjs';

const ALICE = 'alice-0123456789-secret', BOB = 'bob-0123456789-secret';
let mock, gw;
before(async () => {
    mock = await startMock();
    const bobHash = crypto.createHash('sha256').update(BOB).digest('hex');
    const config = `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
  - model_name: gpt-5
    litellm_params:
      model: anthropic/gpt-5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  keys:
    - name: alice
      key: os.environ/ALICE_KEY
      models: ["claude-*"]
    - name: bob
      key: sha256:${bobHash}
      rpm: 2
    - name: carol
      key: os.environ/CAROL_KEY
`;
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca, ALICE_KEY: ALICE } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
    for (const k of [ALICE, BOB, MASTER_KEY]) assert.ok(!gw.output.stderr.includes(k), 'a key reached the log');
});

const post = (key, model) => request(`${gw.url}/v1/messages`, { method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }) });

test('each named key works; its name, not its key, is in the access log', async () => {
    assert.equal((await post(ALICE, 'claude-haiku-4-5')).status, 200);
    assert.equal((await post(BOB, 'gpt-5')).status, 200);
    assert.equal((await post(MASTER_KEY, 'gpt-5')).status, 200);
    assert.equal((await post('nobody', 'gpt-5')).status, 401);
    await sleep(100);
    const lines = gw.output.stderr.split('\n').filter((l) => l.includes('[access]') && l.includes('POST /v1/messages'));
    // one line per request, written when h2o disposes it: a loaded machine may log the last two in either order
    assert.deepEqual(lines.slice(-4).map((l) => l.match(/key=(\S+)/)[1]).sort(), ['-', 'alice', 'bob', 'master']);
});

test('a key whose variable is unset matches nothing: no credential, not its reference, not the variable\'s name', async () => {
    assert.match(gw.output.stderr, /environment variable CAROL_KEY is referenced by .* but not set/);
    for (const key of ['os.environ/CAROL_KEY', 'CAROL_KEY', 'carol', '-']) {
        const r = await post(key, 'claude-haiku-4-5');
        assert.equal(r.status, 401, key);
        assert.equal(JSON.parse(r.body).error.message, 'invalid API key', key);
    }
    const r = await request(`${gw.url}/v1/models`, { headers: { 'x-api-key': '' } });
    assert.equal(r.status, 401);
    assert.match(JSON.parse(r.body).error.message, /^missing API key/);
});

test('a model outside the key\'s list is 403 permission_error', async () => {
    const r = await post(ALICE, 'gpt-5');
    assert.equal(r.status, 403);
    const e = JSON.parse(r.body);
    assert.equal(e.error.type, 'permission_error');
    assert.match(e.error.message, /alice/);
    assert.ok(!r.body.includes(ALICE));
});

test('over its rpm a key gets 429 with Retry-After; other keys are unaffected', async () => {
    let limited;
    for (let i = 0; i < 4 && !limited; i++) {
        const r = await post(BOB, 'gpt-5');
        if (r.status === 429) limited = r;
    }
    assert.ok(limited, 'bob was never limited');
    assert.equal(JSON.parse(limited.body).error.type, 'rate_limit_error');
    assert.ok(Number(limited.headers['retry-after']) >= 1);
    assert.equal((await post(ALICE, 'claude-x')).status, 200);
    assert.equal((await post(MASTER_KEY, 'gpt-5')).status, 200);
});
