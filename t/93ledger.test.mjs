// poe-gateway: MIT licence. The ledger (#19): every finished request of both route kinds is recorded in SQLite with its
// cost, count_tokens is not, and what was recorded survives a restart by SIGTERM and by kill -9.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, anthropicStream, certs, defaultConfig, openaiStream, request, startGateway, startMock, tmpdir } from './lib/harness.mjs';

const ALICE = 'alice-0123456789-ledger';
const usage = { input_tokens: 1000, output_tokens: 100, cache_read_input_tokens: 2000, cache_creation_input_tokens: 300 };
// the mock catalog's prices (USD per token) for claude-sonnet-4.5 and gpt-5
const SONNET = 1000 * 0.0000026 + 100 * 0.000013 + 2000 * 0.00000026 + 300 * 0.0000033;
const GPT5 = 120 * 0.0000011 + 30 * 0.0000090;

let mock, dir, ledgerPath, config;
before(async () => {
    mock = await startMock();
    dir = tmpdir('pgw-ledger-');
    ledgerPath = path.join(dir, 'ledger.sqlite');
    config = defaultConfig(mock, `gateway:
  ledger:
    path: ${ledgerPath}
  keys:
    - name: alice
      key: os.environ/ALICE_KEY
`);
});
after(async () => {
    await mock.stop();
    fs.rmSync(dir, { recursive: true, force: true });
});

const start = () => startGateway({ config, env: { SSL_CERT_FILE: certs().ca, ALICE_KEY: ALICE } });
const post = (gw, model, { path: p = '/v1/messages', session, stream = true } = {}) => request(`${gw.url}${p}`, { method: 'POST',
    headers: { 'x-api-key': ALICE, 'anthropic-version': '2023-06-01', 'content-type': 'application/json',
        ...(session ? { 'x-claude-code-session-id': session } : {}) },
    body: JSON.stringify({ model, max_tokens: 8, stream, messages: [{ role: 'user', content: 'hi' }] }) });
const usageOf = async (gw) => {
    const r = await request(`${gw.url}/usage`, { headers: { 'x-api-key': MASTER_KEY } });
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body);
};
const close = (a, b) => Math.abs(a - b) < 1e-6;

test('both route kinds are recorded with their cost; count_tokens is not; SIGTERM and kill -9 keep them', async () => {
    let gw = await start();
    try {
        await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, repeat: 3,
            chunks: anthropicStream({ blocks: [{ type: 'text', text: 'ok' }], usage }) });
        await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' },
            chunks: openaiStream({ deltas: [{ content: 'ok' }] }) });
        for (let i = 0; i < 3; i++) {
            const r = await post(gw, 'claude-sonnet-4-5-20250929', { session: 's-1' });
            assert.equal(r.status, 200, r.body);
        }
        const g = await post(gw, 'gpt-5');
        assert.equal(g.status, 200, g.body);
        const c = await post(gw, 'claude-sonnet-4-5-20250929', { path: '/v1/messages/count_tokens', stream: false });
        assert.equal(c.status, 200, c.body);

        let u = await usageOf(gw);
        const sonnet = u.keys.alice['claude-sonnet-4-5-20250929'].total;
        assert.equal(sonnet.requests, 3, 'count_tokens is not in the ledger');
        assert.equal(sonnet.input_tokens, 3000);
        assert.equal(sonnet.cache_read_input_tokens, 6000);
        assert.ok(close(sonnet.cost_usd, 3 * SONNET), `${sonnet.cost_usd} != ${3 * SONNET}`);
        const gpt = u.keys.alice['gpt-5'].total;
        assert.equal(gpt.requests, 1);
        assert.ok(close(gpt.cost_usd, GPT5), `${gpt.cost_usd} != ${GPT5}`);

        // SIGTERM: a graceful stop writes what is queued
        assert.equal((await gw.stop()).code, 0);
        gw = await start();
        u = await usageOf(gw);
        assert.equal(u.keys.alice['claude-sonnet-4-5-20250929'].total.requests, 3, 'kept across SIGTERM');
        assert.equal(u.keys.alice['gpt-5'].total.requests, 1);

        // kill -9 between requests: what was committed is intact, and the file opens again
        assert.equal((await post(gw, 'claude-haiku-4-5-20251001')).status, 200);
        u = await usageOf(gw); // answered after the writer has committed the request above
        assert.equal(u.keys.alice['claude-haiku-4-5-20251001'].total.requests, 1);
        const { signal } = await gw.stop('SIGKILL');
        assert.equal(signal, 'SIGKILL');
        gw = await start();
        u = await usageOf(gw);
        assert.equal(u.keys.alice['claude-haiku-4-5-20251001'].total.requests, 1, 'kept across kill -9');
        assert.equal(u.keys.alice['claude-sonnet-4-5-20250929'].total.requests, 3);
        assert.ok(close(u.keys.alice['claude-sonnet-4-5-20250929'].today.cost_usd, 3 * SONNET));
    } finally {
        await gw.stop();
    }
});

test('gateway.ledger.enabled: false keeps no file, and /usage counts since start as before', async () => {
    const off = path.join(dir, 'off.sqlite');
    const gw = await startGateway({ config: defaultConfig(mock, `gateway:\n  ledger:\n    enabled: false\n    path: ${off}\n`),
        env: { SSL_CERT_FILE: certs().ca } });
    try {
        const r = await request(`${gw.url}/usage`, { headers: { 'x-api-key': MASTER_KEY } });
        assert.equal(r.status, 200);
        assert.deepEqual(JSON.parse(r.body).keys, {});
        assert.equal(fs.existsSync(off), false);
    } finally {
        assert.equal((await gw.stop()).code, 0);
    }
});
