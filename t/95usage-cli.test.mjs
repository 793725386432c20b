// poe-gateway: MIT licence. `poe-gateway usage` reads the ledger while the gateway runs (table, JSON, CSV; by key, model,
// session, day), and `poe-gateway keys add` makes a key whose printed config line works (#19).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, anthropicStream, certs, defaultConfig, request, runGateway, startGateway, startMock, tmpdir } from './lib/harness.mjs';

const ALICE = 'alice-0123456789-usage-cli';
const BOB = 'bob-0123456789-usage-cli';
const usage = { input_tokens: 1000, output_tokens: 100, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
const SONNET = 1000 * 0.0000026 + 100 * 0.000013;
const HAIKU = 1000 * 0.00000085 + 100 * 0.0000043;

let mock, gw, dir, ledger;
before(async () => {
    mock = await startMock();
    dir = tmpdir('pgw-usage-cli-');
    ledger = path.join(dir, 'ledger.sqlite');
    gw = await startGateway({ env: { SSL_CERT_FILE: certs().ca, ALICE_KEY: ALICE, BOB_KEY: BOB }, config: defaultConfig(mock, `gateway:
  ledger:
    path: ${ledger}
  keys:
    - {name: alice, key: os.environ/ALICE_KEY}
    - {name: bob, key: os.environ/BOB_KEY}
`) });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
    fs.rmSync(dir, { recursive: true, force: true });
});

const post = (key, model, session) => request(`${gw.url}/v1/messages`, { method: 'POST',
    headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json', 'x-claude-code-session-id': session },
    body: JSON.stringify({ model, max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
const answer = { match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, repeat: 3,
    chunks: anthropicStream({ blocks: [{ type: 'text', text: 'ok' }], usage }) };
const close = (a, b) => Math.abs(a - b) < 1e-6;

test('usage: by key, model, session and day, as JSON, CSV and a table, while the gateway runs', async () => {
    await mock.script(answer);
    assert.equal((await post(ALICE, 'claude-sonnet-4-5-20250929', 'sess-a1')).status, 200);
    assert.equal((await post(ALICE, 'claude-haiku-4-5-20251001', 'sess-a1')).status, 200);
    assert.equal((await post(BOB, 'claude-sonnet-4-5-20250929', 'sess-b1')).status, 200);
    assert.equal((await request(`${gw.url}/usage`, { headers: { 'x-api-key': MASTER_KEY } })).status, 200); // flushes the writer

    const run = async (...args) => {
        const r = await runGateway(['usage', '--ledger', ledger, ...args]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout;
    };
    const byKey = JSON.parse(await run('--json'));
    assert.equal(byKey.by, 'key');
    assert.deepEqual(byKey.rows.map((r) => [r.key, r.requests]), [['alice', 2], ['bob', 1]]);
    assert.ok(close(byKey.rows[0].cost_usd, SONNET + HAIKU));
    assert.equal(byKey.rows[0].cost_points, Math.round((SONNET + HAIKU) * 33333));
    assert.equal(byKey.total.requests, 3);

    const byModel = JSON.parse(await run('--by', 'model', '--json'));
    assert.deepEqual(byModel.rows.map((r) => [r.model, r.requests]), [['claude-sonnet-4.5', 2], ['claude-haiku-4.5', 1]], 'the Poe bot');
    const bySession = JSON.parse(await run('--by', 'session', '--json', '--since', '1h'));
    assert.deepEqual(bySession.rows.map((r) => [r.session, r.requests]), [['sess-a1', 2], ['sess-b1', 1]]);
    const today = new Date().toISOString().slice(0, 10);
    const byDay = JSON.parse(await run('--by', 'day', '--json'));
    assert.deepEqual(byDay.rows.map((r) => [r.day, r.requests]), [[today, 3]]);

    const csv = (await run('--csv')).trim().split('\n');
    assert.equal(csv[0], 'key,requests,input_tokens,output_tokens,cache_read_input_tokens,cache_creation_input_tokens,cost_usd,cost_points');
    assert.match(csv[1], /^alice,2,2000,200,0,0,0\.00\d+,\d+$/);
    const table = await run();
    assert.match(table, /^key +requests +input +output +cache_read +cache_write +cost_usd +points$/m);
    assert.match(table, /^alice +2 +2000 +200 +0 +0 +0\.00\d\d +\d+$/m);
    assert.match(table, /^total +3 +3000 /m);

    // nothing in a future window; a bad argument is a usage error
    assert.match(await run('--since', '2099-01-01'), /^no requests since 2099-01-01/);
    assert.equal((await runGateway(['usage', '--ledger', ledger, '--since', 'yesterday'])).code, 2);
    assert.equal((await runGateway(['usage', '--ledger', ledger, '--by', 'colour'])).code, 2);
    // the configuration names the file
    assert.equal(JSON.parse((await runGateway(['usage', '--config', gw.configPath, '--json'])).stdout).total.requests, 3);
});

test('keys add: a key printed once, and a config line with its hash that the gateway accepts', async () => {
    const r = await runGateway(['keys', 'add', 'carol', '--budget-daily', '5', '--config', gw.configPath]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const key = lines[1];
    assert.match(key, /^sk-pgw-[0-9a-f]{48}$/);
    const entry = lines.slice(3).join('\n');
    assert.match(entry, /^ {4}- name: carol\n {6}key: sha256:[0-9a-f]{64}\n {6}budget: \{daily: 5\.00\}\n$/);
    assert.ok(!entry.includes(key), 'the config holds the hash only');
    const again = await runGateway(['keys', 'add', 'carol', '--config', gw.configPath]);
    assert.notEqual(again.stdout.split('\n')[1], key, 'random');
    assert.equal((await runGateway(['keys', 'add', 'alice', '--config', gw.configPath])).code, 1, 'a name the config has');

    const g = await startGateway({ env: { SSL_CERT_FILE: certs().ca }, config: defaultConfig(mock,
        `gateway:\n  ledger: {path: ${path.join(dir, 'keys.sqlite')}}\n  keys:\n${entry}`) });
    try {
        const ok = await request(`${g.url}/v1/models`, { headers: { 'x-api-key': key } });
        assert.equal(ok.status, 200, ok.body);
        assert.equal((await request(`${g.url}/v1/models`, { headers: { 'x-api-key': key.slice(0, -1) + 'x' } })).status, 401);
    } finally {
        assert.equal((await g.stop()).code, 0);
    }
});
