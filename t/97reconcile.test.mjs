// poe-gateway: MIT licence. Reconciliation with Poe (#19): the gateway polls /usage/current_balance and
// /usage/points_history (paginated) with each upstream key, shows the balance as a gauge in /metrics, and reports per
// day its own cost against the points Poe billed (usage --by day, the /usage page).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, POE_KEY, anthropicStream, certs, defaultConfig, request, runGateway, startGateway, startMock, tmpdir } from './lib/harness.mjs';

const FP = crypto.createHash('sha256').update(POE_KEY).digest('hex').slice(0, 12);
const DAY = 86400000;
let mock, gw, dir, ledger;
const now = Date.now();
const today = new Date(now).toISOString().slice(0, 10);
const startOfToday = Math.floor(now / DAY) * DAY;
// 150 entries today (two pages of up to 100), 3 yesterday, and one older that ends the paging
const history = [];
for (let i = 0; i < 150; i++) history.push({ creation_time: (startOfToday + 1000 + (149 - i) * 10) * 1000, bot_name: 'Claude-Sonnet-4.5',
    query_id: `q${i}`, usage_type: 'API', cost_points: 10, cost_usd: '0.0003' });
for (let i = 0; i < 3; i++) history.push({ creation_time: (startOfToday - DAY + 3600000 - i) * 1000, bot_name: 'GPT-5',
    query_id: `y${i}`, usage_type: 'API', cost_points: 7, cost_usd: '0.0002' });
history.push({ creation_time: (startOfToday - 3 * DAY) * 1000, bot_name: 'GPT-5', query_id: 'old', usage_type: 'API', cost_points: 999 });
for (let i = 0; i < 50; i++) history.push({ creation_time: (startOfToday - 4 * DAY - i) * 1000, bot_name: 'GPT-5', query_id: `older${i}`,
    usage_type: 'API', cost_points: 1 });

before(async () => {
    mock = await startMock();
    await mock.control('POST', '/_mock/account', { balance: 123456, history });
    dir = tmpdir('pgw-reconcile-');
    ledger = path.join(dir, 'ledger.sqlite');
    gw = await startGateway({ env: { SSL_CERT_FILE: certs().ca }, config: defaultConfig(mock, `gateway:
  ledger:
    path: ${ledger}
    reconcile_interval: 0.5
`) });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
    fs.rmSync(dir, { recursive: true, force: true });
});

async function until(what, fn) {
    for (let i = 0; i < 300; i++) {
        const v = await fn();
        if (v) return v;
        await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`${what} never happened:\n${gw.output.stderr.slice(-2000)}`);
}

test('the balance is a gauge; the points Poe billed per day stand beside the gateway\'s cost', async () => {
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' },
        chunks: anthropicStream({ blocks: [{ type: 'text', text: 'ok' }],
            usage: { input_tokens: 10000, output_tokens: 1000, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 } }) });
    const r = await request(`${gw.url}/v1/messages`, { method: 'POST',
        headers: { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-sonnet-4-5-20250929', max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(r.status, 200);

    const metrics = await until('the balance gauge', async () => {
        const m = await request(`${gw.url}/metrics`, { headers: { 'x-api-key': MASTER_KEY } });
        return m.body.includes('poe_gateway_poe_balance_points{') && m.body;
    });
    assert.match(metrics, new RegExp(`^poe_gateway_poe_balance_points\\{upstream="${FP}"\\} 123456$`, 'm'));
    assert.match(metrics, /^# TYPE poe_gateway_poe_balance_points gauge$/m);

    // one poll: the balance, then history pages until one reaches back past yesterday; Poe's key as Bearer, no points spent
    const reqs = (await mock.requests()).filter((q) => q.path.startsWith('/usage/'));
    assert.deepEqual(reqs.slice(0, 3).map((q) => q.path),
        ['/usage/current_balance', '/usage/points_history?limit=100', '/usage/points_history?limit=100&starting_after=q99']);
    assert.ok(reqs.every((q) => q.headers.authorization === `Bearer ${POE_KEY}` && q.method === 'GET'));
    assert.equal((await mock.requests()).filter((q) => q.method === 'POST').length, 1, 'only the one request above spent points');

    const byDay = await until('Poe\'s figures in the ledger', async () => {
        const u = await runGateway(['usage', '--ledger', ledger, '--by', 'day', '--json']);
        const rows = JSON.parse(u.stdout).rows;
        return rows.some((x) => x.poe_points !== null) && rows;
    });
    const row = byDay.find((x) => x.day === today);
    assert.equal(row.poe_points, 1500, '150 entries of 10 points today');
    const mine = row.cost_points;
    assert.ok(Math.abs(row.drift_percent - (mine - 1500) * 100 / 1500) < 0.01);
    const table = (await runGateway(['usage', '--ledger', ledger, '--by', 'day'])).stdout;
    assert.match(table, /poe_points +drift$/m);
    assert.match(table, new RegExp(`^${today} +1 .* 1500 +[-+]\\d+\\.\\d%$`, 'm'));

    const page = await request(`${gw.url}/usage`, { headers: { 'x-api-key': MASTER_KEY, accept: 'text/html' } });
    assert.equal(page.status, 200);
    assert.match(page.body, new RegExp(`Poe balance of upstream key ${FP}: <b>123456 points</b>`));
    assert.match(page.body, new RegExp(`<tr class="recon"><td>${today}</td><td class="n">\\$[0-9.]+</td><td class="n">\\d+</td><td class="n">1500</td>`));
    const yesterday = new Date(startOfToday - DAY).toISOString().slice(0, 10);
    assert.match(page.body, new RegExp(`<tr class="recon"><td>${yesterday}</td><td class="n">\\$0\\.0000</td><td class="n">0</td><td class="n">21</td>`));
    assert.ok(!gw.output.stderr.includes(POE_KEY));
});
