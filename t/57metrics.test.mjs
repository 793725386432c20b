// poe-gateway: MIT licence. /metrics (Prometheus text) and /usage (JSON): summed over workers, by key name and model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { MASTER_KEY, anthropicStream, certs, request, sleep, startGateway, startMock } from './lib/harness.mjs';

const ALICE = 'alice-0123456789-metrics';
let mock, gw;
before(async () => {
    mock = await startMock();
    gw = await startGateway({ env: { SSL_CERT_FILE: certs().ca, ALICE_KEY: ALICE }, config: `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  keys:
    - name: alice
      key: os.environ/ALICE_KEY
` });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});

const post = (key, model, extra = {}) => request(`${gw.url}/v1/messages`, { method: 'POST',
    headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }], ...extra }) });
const scrape = async (key = MASTER_KEY) => request(`${gw.url}/metrics`, { headers: key ? { 'x-api-key': key } : {} });
const sample = (text, re) => {
    const line = text.split('\n').find((l) => re.test(l));
    return line === undefined ? undefined : Number(line.split(' ').pop());
};

test('requests, tokens, errors, latency and retries, summed over both workers', async () => {
    const usage = { input_tokens: 50, output_tokens: 12, cache_read_input_tokens: 40, cache_creation_input_tokens: 5 };
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, repeat: 10,
        chunks: anthropicStream({ blocks: [{ type: 'text', text: 'counted' }], usage }) });
    for (let i = 0; i < 10; i++) assert.equal((await post(ALICE, 'claude-sonnet-4-5', { stream: true })).status, 200);
    await mock.script({ match: { path: '/v1/messages' }, status: 503, body: 'busy' });
    assert.equal((await post(MASTER_KEY, 'claude-haiku-4-5')).status, 200);
    assert.equal((await post(ALICE, 'gpt-5')).status, 404);
    await sleep(100);

    const r = await scrape();
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/plain; version=0\.0\.4/);
    const t = r.body;
    assert.equal(sample(t, /^poe_gateway_requests_total\{key="alice",route="claude-\*",model="claude-sonnet-4-5",status="200"\}/), 10);
    assert.equal(sample(t, /^poe_gateway_requests_total\{key="master",route="claude-\*",model="claude-haiku-4-5",status="200"\}/), 1);
    assert.equal(sample(t, /^poe_gateway_requests_total\{key="alice",route="-",model="-",status="404"\}/), 1);
    assert.equal(sample(t, /^poe_gateway_tokens_total\{key="alice",model="claude-sonnet-4-5",kind="input"\}/), 500);
    assert.equal(sample(t, /^poe_gateway_tokens_total\{key="alice",model="claude-sonnet-4-5",kind="output"\}/), 120);
    assert.equal(sample(t, /^poe_gateway_tokens_total\{key="alice",model="claude-sonnet-4-5",kind="cache_read"\}/), 400);
    assert.equal(sample(t, /^poe_gateway_tokens_total\{key="alice",model="claude-sonnet-4-5",kind="cache_write"\}/), 50);
    assert.equal(sample(t, /^poe_gateway_errors_total\{type="not_found_error"\}/), 1);
    assert.equal(sample(t, /^poe_gateway_request_duration_seconds_count\{route="claude-\*"\}/), 11);
    assert.equal(sample(t, /^poe_gateway_time_to_first_byte_seconds_bucket\{route="claude-\*",le="\+Inf"\}/), 11);
    assert.ok(sample(t, /^poe_gateway_upstream_retries_total /) >= 1);
    assert.equal(sample(t, /^poe_gateway_upstream_connections_active /), 0, 'nothing is being transferred');
    assert.equal(sample(t, /^poe_gateway_requests_in_flight /), 1, 'only the scrape itself');
    assert.ok(!t.includes(ALICE) && !t.includes(MASTER_KEY));
    // both workers served: the sum is what the clients saw
    assert.match(gw.output.stderr, /\(2 workers\)/);
});

test('gauges during a stream: in-flight requests and active upstream connections', async () => {
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunk_delay_ms: 100,
        chunks: anthropicStream({ blocks: [{ type: 'text', text: 'slow' }] }) });
    const streaming = post(MASTER_KEY, 'claude-haiku-4-5', { stream: true });
    await sleep(300);
    const t = (await scrape()).body;
    assert.equal(sample(t, /^poe_gateway_requests_in_flight /), 2);
    assert.ok(sample(t, /^poe_gateway_upstream_connections_active /) >= 1);
    assert.equal((await streaming).status, 200);
});

test('/metrics and /usage take the master key by default', async () => {
    assert.equal((await scrape(null)).status, 401);
    assert.equal((await scrape(ALICE)).status, 403);
    assert.equal((await request(`${gw.url}/usage`, { headers: { 'x-api-key': ALICE } })).status, 403);
    const open = await startGateway({ config: 'model_list: []\ngeneral_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\ngateway:\n  metrics_auth: none\n' });
    try {
        assert.equal((await request(`${open.url}/metrics`)).status, 200);
        assert.equal((await request(`${open.url}/usage`)).status, 401, '/usage stays behind the master key');
    } finally {
        await open.stop();
    }
});

test('metrics_auth: keys lets any caller with a valid key read /metrics, and /usage stays behind the master key', async () => {
    const keys = await startGateway({ env: { ALICE_KEY: ALICE }, config: `model_list: []
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  metrics_auth: keys
  keys:
    - name: alice
      key: os.environ/ALICE_KEY
` });
    try {
        const scrapeAt = (key) => request(`${keys.url}/metrics`, { headers: key ? { 'x-api-key': key } : {} });
        assert.equal((await scrapeAt(ALICE)).status, 200);
        assert.equal((await scrapeAt(MASTER_KEY)).status, 200);
        assert.equal((await scrapeAt(null)).status, 401);
        assert.equal((await scrapeAt('not-a-key-0123456789')).status, 401);
        assert.equal((await request(`${keys.url}/usage`, { headers: { 'x-api-key': ALICE } })).status, 403);
    } finally {
        await keys.stop();
    }
});

test('/usage: per key and model, from the ledger: all it holds and today, with the cost', async () => {
    const r = await request(`${gw.url}/usage`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    assert.equal(r.status, 200);
    const u = JSON.parse(r.body);
    assert.ok(!Number.isNaN(Date.parse(u.since)));
    assert.match(u.today, /^\d{4}-\d\d-\d\d$/);
    const a = u.keys.alice['claude-sonnet-4-5'];
    // the cost at the mock catalog's prices for claude-sonnet-4.5 (USD per token: prompt, completion, cache read, cache write)
    const cost = 500 * 0.0000026 + 120 * 0.000013 + 400 * 0.00000026 + 50 * 0.0000033;
    assert.deepEqual(a.total, { requests: 10, input_tokens: 500, output_tokens: 120, cache_read_input_tokens: 400, cache_creation_input_tokens: 50,
        cost_usd: Number(cost.toFixed(6)) });
    assert.deepEqual(a.today, a.total);
    assert.equal(u.keys.master['claude-haiku-4-5'].total.requests, 2, 'one whole, one streamed (the gauges test)');
    assert.equal(u.keys.alice['gpt-5'], undefined, 'unrouted requests have no model line');
});

// #15: a wildcard route passes any model name, so a key holder can fill the workers' tables. Each worker's table is
// bounded; their sum used to overflow /usage's fixed arrays, and the process crashed at the next /usage.
test('1,500 distinct model names through a wildcard: /usage and /metrics stay bounded, and every request is counted', async () => {
    const N = 1500;
    // a gateway of its own, without the upstream rate (500 a minute would take three minutes)
    const flood = await startGateway({ env: { SSL_CERT_FILE: certs().ca, ALICE_KEY: ALICE }, config: `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  upstream_rpm: 0
  keys:
    - name: alice
      key: os.environ/ALICE_KEY
` });
    try {
        const send = (key, model) => request(`${flood.url}/v1/messages`, { method: 'POST',
            headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
            body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }) });
        const usage = async () => {
            const r = await request(`${flood.url}/usage`, { headers: { 'x-api-key': MASTER_KEY } });
            assert.equal(r.status, 200, r.body.slice(0, 300));
            return JSON.parse(r.body);
        };
        const requestsOf = (u, key) => Object.values(u.keys[key] ?? {}).reduce((n, m) => n + m.total.requests, 0);

        assert.equal((await send(MASTER_KEY, 'claude-haiku-4-5')).status, 200);
        for (let i = 0; i < N; i += 25) {
            const batch = Array.from({ length: Math.min(25, N - i) }, (_, k) => send(ALICE, `claude-flood-${i + k}`));
            for (const r of await Promise.all(batch)) assert.equal(r.status, 200, r.body);
        }
        // another key's request after the flood is still that key's
        assert.equal((await send(MASTER_KEY, 'claude-haiku-4-5')).status, 200);

        const u = await usage();
        const rows = Object.values(u.keys).reduce((n, models) => n + Object.keys(models).length, 0);
        assert.ok(rows <= 512, `/usage has ${rows} rows: more than one worker's table holds`);
        assert.equal(requestsOf(u, 'alice'), N, 'every flooded request is counted');
        assert.ok(u.keys.alice['(other)'].total.requests > 0, 'the names past the bound are summed under (other)');
        assert.equal(requestsOf(u, 'master'), 2);
        assert.deepEqual(Object.keys(u.keys), ['alice', 'master']);
        assert.deepEqual(Object.keys(u.keys.alice), Object.keys(u.keys.alice).sort(), 'models in order');

        const m = await request(`${flood.url}/metrics`, { headers: { 'x-api-key': MASTER_KEY } });
        assert.equal(m.status, 200);
        const lines = (prefix) => m.body.split('\n').filter((l) => l.startsWith(prefix));
        assert.ok(lines('poe_gateway_requests_total{').length <= 1024, `${lines('poe_gateway_requests_total{').length} request series`);
        assert.ok(lines('poe_gateway_tokens_total{').length <= 4 * 512, `${lines('poe_gateway_tokens_total{').length} token series`);
        const routed = lines('poe_gateway_requests_total{').filter((l) => l.includes('route="claude-*"'))
            .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
        assert.equal(routed, N + 2);
        assert.match(m.body, /^poe_gateway_requests_total\{key="alice",route="claude-\*",model="\(other\)",status="200"\} \d+$/m);
        assert.equal((await request(`${flood.url}/health/liveliness`)).status, 200, 'still alive');
    } finally {
        const { code, signal } = await flood.stop();
        assert.equal(signal, null, `the gateway died of ${signal}:\n${flood.output.stderr.slice(-2000)}`);
        assert.equal(code, 0);
        assert.doesNotMatch(flood.output.stderr, /AddressSanitizer|runtime error:/);
    }
});

// A worker answering /metrics or /usage reads every worker's tables. The main thread used to prepare and start the
// workers one after the other, so the first workers served requests while later ones had no tables yet, and a scrape
// in that window crashed the process (a NULL table; with 64 workers, nearly every start). The scrapes here are queued
// on the listening sockets from the moment they are bound, before any worker runs.
test('/metrics while the workers start: answered, and the gateway lives', async () => {
    const port = await new Promise((resolve) => {
        const srv = net.createServer().listen(0, '127.0.0.1', () => {
            const p = srv.address().port;
            srv.close(() => resolve(p));
        });
    });
    const starting = startGateway({ args: ['--host', '127.0.0.1', '--port', String(port), '--threads', '64'] });
    let started = false;
    starting.then(() => (started = true), () => (started = true));
    const answers = [];
    const scrape = () => new Promise((resolve) => {
        let data = '', connected = false;
        const s = net.connect(port, '127.0.0.1', () => {
            connected = true;
            s.end(`GET /metrics HTTP/1.1\r\nHost: x\r\nx-api-key: ${MASTER_KEY}\r\nConnection: close\r\n\r\n`);
        });
        s.setEncoding('utf8').on('data', (d) => (data += d));
        s.on('close', () => resolve(connected ? data : null));
        s.on('error', () => {});
    });
    while (!started && answers.length < 2000) {
        for (let i = 0; i < 20; i++) answers.push(scrape());
        await new Promise((r) => setImmediate(r));
    }
    const gw = await starting;
    try {
        const got = (await Promise.all(answers)).filter((a) => a !== null);
        assert.ok(got.length > 0, 'no scrape reached the gateway');
        for (const a of got) {
            assert.match(a, /^HTTP\/1\.1 200 /, a.slice(0, 200));
            assert.match(a, /^poe_gateway_requests_in_flight \d+$/m);
        }
        assert.equal((await request(`${gw.url}/health/liveliness`)).status, 200, 'still alive');
    } finally {
        const { code, signal } = await gw.stop();
        assert.equal(signal, null, `the gateway died of ${signal}:\n${gw.output.stderr.slice(-2000)}`);
        assert.equal(code, 0);
    }
});
