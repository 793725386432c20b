// poe-gateway: MIT licence. Several replicas share one Poe key through Redis (#20): the rate Poe sees from all of them
// together stays within upstream_rpm and its burst, developers take turns across replicas, a Redis that dies leaves the
// replicas serving on local shares, and a Redis that comes back is used again without restarting them.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { anthropicStream, certs, defaultConfig, request, sleep, startGateway, startMock, MASTER_KEY, POE_KEY } from './lib/harness.mjs';
import { startRedis } from './lib/redis.mjs';

const RPM = 600, BURST = 5, RATE_PER_S = RPM / 60; // scaled down from 500 a minute so the test takes seconds
const DEVS = 6;

let mock;
before(async () => {
    mock = await startMock();
});
after(() => mock.stop());
beforeEach(() => mock.reset());

const config = (redisUrl, extra = '', dev1 = '') => `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
      max_retries: 0
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  redis: ${redisUrl}
  upstream_rpm: ${RPM}
  upstream_burst: ${BURST}
${extra}  keys:
${Array.from({ length: DEVS }, (_, i) => `    - {name: dev${i}, key: dev${i}-key-0123456789${i === 1 ? dev1 : ''}}`).join('\n')}
`;

const post = (g, dev, n = 0) => {
    const t0 = Date.now();
    return request(`${g.url}/v1/messages`, { method: 'POST',
        headers: { 'x-api-key': `dev${dev}-key-0123456789`, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: `dev${dev} #${n}` }] }) })
        .then((r) => ({ status: r.status, body: r.body, ms: Date.now() - t0 }));
};

/** Requests waiting in the gateway's lanes (poe_gateway_queued_requests). */
const queued = async (g) => Number(/^poe_gateway_queued_requests (\d+)$/m.exec((await request(`${g.url}/metrics`,
    { headers: { 'x-api-key': MASTER_KEY } })).body)[1]);

const readiness = async (g) => JSON.parse((await request(`${g.url}/health/readiness`)).body);

/** Waits until every gateway reports the shared state as `state` and (when given) Redis counts `replicas` of them. */
async function waitShared(gws, state, replicas) {
    for (let i = 0; i < 200; i++) {
        const rs = await Promise.all(gws.map(readiness));
        if (rs.every((r) => r.shared_state === state && (replicas === undefined || r.replicas === replicas))) return;
        await sleep(50);
    }
    throw new Error(`the gateways never reported shared_state ${state}: ${JSON.stringify(await Promise.all(gws.map(readiness)))}`);
}

/** The mock's arrivals of /v1/messages: [{at, dev}] in order of arrival. */
async function arrivals() {
    return (await mock.requests()).filter((q) => q.path === '/v1/messages')
        .map((q) => ({ at: q.at_ms, dev: Number(/dev(\d+)/.exec(JSON.parse(q.body).messages[0].content)[1]) }))
        .sort((a, b) => a.at - b.at);
}

/** The most arrivals in any window of `ms` (each window starting at an arrival). */
function worstWindow(list, ms) {
    let worst = 0;
    for (let i = 0, j = 0; i < list.length; i++) {
        while (j < list.length && list[j].at < list[i].at + ms) j++;
        worst = Math.max(worst, j - i);
    }
    return worst;
}

// Delivery jitter: the mock sees a request when the gateway's transfer reaches it, a variable time after Redis granted
// the turn (the worker's loop, curl, TLS, the mock's loop). On a loaded machine, and under ASan, that time varies by a
// few hundred ms, so grants spaced at the rate can arrive bunched after a stall. Windows allow what the rate lets
// through in JITTER_S more: 5 requests here, well under what an unshared or bursting gateway adds (27 and 20 measured).
const JITTER_S = 0.5;
const JITTER = RATE_PER_S * JITTER_S;

test('three replicas let through at most the burst plus the rate in any window, and developers take turns across them', async () => {
    const redis = await startRedis();
    const env = { SSL_CERT_FILE: certs().ca };
    const gws = [];
    try {
        // one worker each, and each worker's connection to Poe made before the measure: a TLS handshake on a busy
        // machine would otherwise hold a first request back and crowd it together with later ones
        for (let i = 0; i < 3; i++) gws.push(await startGateway({ config: config(redis.url), env, args: ['--threads', '1'] }));
        await waitShared(gws, 'ok', 3);
        for (const g of gws) assert.equal((await post(g, 5, -1)).status, 200);
        await mock.reset();
        // The key is paused (as Poe's 429 would) until every request waits in a lane, so that the turns below do not
        // depend on how fast a busy machine lets the 60 requests in: then it opens, and the burst and the rate follow.
        const bucket = `pgw:{${crypto.createHash('sha256').update(POE_KEY).digest('hex').slice(0, 32)}}:bucket`;
        await redis.cli('HSET', bucket, 'blocked', '99999999999999');
        // dev0 bursts 20 requests on the first replica alone; dev1..dev5 send 8 each, spread over the three
        const work = [];
        for (let j = 0; j < 20; j++) work.push(post(gws[0], 0, j));
        for (let d = 1; d < DEVS; d++) for (let j = 0; j < 8; j++) work.push(post(gws[(d + j) % 3], d, j));
        for (let i = 0; i < 400 && (await Promise.all(gws.map(queued))).reduce((a, b) => a + b) < 60; i++) await sleep(25);
        assert.equal((await Promise.all(gws.map(queued))).reduce((a, b) => a + b), 60, 'the requests never all queued');
        await redis.cli('HSET', bucket, 'blocked', '0');
        const results = await Promise.all(work);
        for (const r of results) assert.equal(r.status, 200, r.body);

        const list = await arrivals();
        assert.equal(list.length, 60);
        const worst = worstWindow(list, 1000);
        const bound = BURST + RATE_PER_S;
        console.log(`worst 1 s window: ${worst} requests (bound ${bound}, rate ${RATE_PER_S}/s, burst ${BURST}); ` +
            `overshoot above the rate: ${worst - RATE_PER_S}; span ${list.at(-1).at - list[0].at} ms`);
        const local = gws.map((g) => (g.output.stderr.match(/deciding locally/g) ?? []).length);
        assert.ok(worst <= bound + JITTER, `${worst} requests reached Poe within one second: more than the burst ${BURST} plus ` +
            `the rate ${RATE_PER_S} (Redis clients lost per replica: ${local}; arrivals, ms: ${list.map((a) => a.at - list[0].at)})`);
        // the whole run took at least as long as the rate allows: (60 - burst) / rate seconds
        assert.ok(list.at(-1).at - list[0].at >= ((60 - BURST - JITTER) / RATE_PER_S) * 1000 - 100,
            `60 requests went in ${list.at(-1).at - list[0].at} ms`);

        // turns: every 2 rounds (12 arrivals) serve each developer who still waits (has arrivals after them) at least
        // once, dev0's burst included; so dev1..dev5 are done after about 8 rounds of 6, before dev0's burst is
        const order = list.map((a) => a.dev), last = Array.from({ length: DEVS }, (_, d) => order.lastIndexOf(d));
        assert.ok(Math.max(...last.slice(1)) < 48 + 4, `dev1..dev5 were done only at arrival ${Math.max(...last.slice(1))}: ${order.join('')}`);
        for (let i = BURST; i + 12 <= list.length; i++) {
            const seen = new Set(order.slice(i, i + 12));
            for (let d = 0; d < DEVS; d++)
                if (last[d] >= i + 12)
                    assert.ok(seen.has(d), `dev${d} waited through arrivals ${i}..${i + 11}: ${order.join('')}`);
        }
    } finally {
        for (const g of gws) await g.stop();
        await redis.stop();
    }
});

test('Redis killed mid-run: no request hangs or fails, readiness and /metrics say degraded; back, it is used again without a restart', async () => {
    const redis = await startRedis();
    const env = { SSL_CERT_FILE: certs().ca };
    const gws = [];
    try {
        // a burst of 20 that the queue spends at once: the local buckets must not hold another 20 when Redis dies
        const burst = 20;
        for (let i = 0; i < 2; i++)
            gws.push(await startGateway({ config: config(redis.url).replace(`upstream_burst: ${BURST}`, `upstream_burst: ${burst}`), env }));
        await waitShared(gws, 'ok', 2);
        // 70 requests: the burst, then 10 a second; Redis dies once 35 have reached Poe, in the steady part
        const work = Array.from({ length: 70 }, (_, j) => post(gws[j % 2], j % DEVS, j));
        for (let i = 0; i < 800 && (await mock.stats()).requests < 35; i++) await sleep(10);
        const killedAt = Date.now();
        await redis.stop('SIGKILL');
        const results = await Promise.all(work);
        for (const r of results) assert.equal(r.status, 200, r.body);
        const list = await arrivals();
        const after = list.filter((a) => a.at >= killedAt);
        assert.ok(after.length >= 25, `${after.length} requests went after the kill`);
        // past the first burst the rate holds in every second, across the kill: the replicas' own buckets had been
        // charged for what Redis granted them, so neither starts afresh with a burst of its own
        const steady = list.slice(burst + 5);
        const worst = worstWindow(steady, 1000);
        console.log(`steady part, Redis killed in it: worst 1 s window ${worst} (rate ${RATE_PER_S}/s)`);
        assert.ok(worst <= RATE_PER_S + 1 + JITTER, `${worst} requests within one second around Redis's death: ${steady.map((a) => a.at - killedAt)}`);
        // and the requests after it went at the local shares (two replicas, half the rate each), not stuck
        const span = after.at(-1).at - after[0].at;
        assert.ok(span >= ((after.length - 2) / RATE_PER_S) * 1000 - 200,
            `${after.length} requests went within ${span} ms of Redis's death: the local shares were not shares`);
        // the degraded state is reported, and the replicas still count each other
        for (const g of gws) {
            const r = await readiness(g);
            assert.equal(r.status, 'ready');
            assert.equal(r.shared_state, 'degraded');
            assert.equal(r.replicas, 2);
            const m = await request(`${g.url}/metrics`, { headers: { 'x-api-key': MASTER_KEY } });
            assert.match(m.body, /^poe_gateway_shared_state_degraded 1$/m);
        }

        // Redis comes back empty on the same port: the gateways reconnect by themselves and share through it again
        await redis.start();
        await waitShared(gws, 'ok', 2);
        const again = await Promise.all([post(gws[0], 0), post(gws[1], 1)]);
        for (const r of again) assert.equal(r.status, 200, r.body);
        const buckets = await redis.cli('--scan', '--pattern', 'pgw:*:bucket');
        assert.match(buckets, /^pgw:\{[0-9a-f]{32}\}:bucket$/, 'the shaping decisions did not reach the new Redis');
        // and their heartbeats (one a second) count both replicas in it again
        let alive = '0';
        for (let i = 0; i < 100 && alive !== '2'; i++, await sleep(50)) alive = await redis.cli('ZCARD', 'pgw:replicas');
        assert.equal(alive, '2');
        for (const g of gws) {
            const m = await request(`${g.url}/metrics`, { headers: { 'x-api-key': MASTER_KEY } });
            assert.match(m.body, /^poe_gateway_shared_state_degraded 0$/m);
        }
    } finally {
        for (const g of gws) await g.stop();
        await redis.stop();
    }
});

test('with redis_failure: closed, an unreachable Redis answers 503 naming the setting at once, and readiness is 503', async () => {
    const redis = await startRedis();
    await redis.stop(); // a port nobody listens on any more
    const g = await startGateway({ config: config(redis.url, '  redis_failure: closed\n'), env: { SSL_CERT_FILE: certs().ca } });
    try {
        const r = await post(g, 1);
        assert.equal(r.status, 503, r.body);
        assert.match(JSON.parse(r.body).error.message, /gateway\.redis_failure is closed/);
        assert.ok(r.ms < 2000, `the refusal took ${r.ms} ms`);
        const ready = await request(`${g.url}/health/readiness`);
        assert.equal(ready.status, 503);
        assert.equal(JSON.parse(ready.body).shared_state, 'degraded');
        assert.equal((await arrivals()).length, 0); // nothing went to Poe (its catalog may have been fetched)
    } finally {
        await g.stop();
    }
});

test('Redis hung (stopped, its socket open): decisions wait at most redis_timeout, then go local; it is used again once it runs', async () => {
    const redis = await startRedis();
    const g = await startGateway({ config: config(redis.url, '  redis_timeout: 0.2\n'), env: { SSL_CERT_FILE: certs().ca } });
    try {
        await waitShared([g], 'ok', 1);
        redis.signal('SIGSTOP');
        const t0 = Date.now();
        const rs = await Promise.all(Array.from({ length: 4 }, (_, j) => post(g, j)));
        for (const r of rs) assert.equal(r.status, 200, r.body);
        // the first question waits out its deadline once; the rest are decided locally without asking
        assert.ok(Date.now() - t0 < 3000, `4 requests took ${Date.now() - t0} ms with Redis hung`);
        assert.equal((await readiness(g)).shared_state, 'degraded');
        redis.signal('SIGCONT');
        await waitShared([g], 'ok', 1);
        assert.equal((await post(g, 5)).status, 200);
        assert.match(await redis.cli('--scan', '--pattern', 'pgw:*:bucket'), /bucket/);
    } finally {
        await g.stop();
        redis.signal('SIGCONT');
        await redis.stop();
    }
});

test('a key\'s rpm holds across replicas: its requests count once whichever replica they reach', async () => {
    const redis = await startRedis();
    const env = { SSL_CERT_FILE: certs().ca };
    const gws = [];
    try {
        for (let i = 0; i < 2; i++) gws.push(await startGateway({ config: config(redis.url, '', ', rpm: 3'), env }));
        await waitShared(gws, 'ok');
        const statuses = [];
        for (let j = 0; j < 4; j++) statuses.push((await post(gws[j % 2], 1, j)).status);
        assert.deepEqual(statuses, [200, 200, 200, 429]);
        // another key is not held back by dev1's limit
        assert.equal((await post(gws[1], 2)).status, 200);
    } finally {
        for (const g of gws) await g.stop();
        await redis.stop();
    }
});

test('Poe\'s 429 on one replica pauses the key on every replica for its Retry-After', async () => {
    const redis = await startRedis();
    const env = { SSL_CERT_FILE: certs().ca };
    const gws = [];
    try {
        for (let i = 0; i < 2; i++) gws.push(await startGateway({ config: config(redis.url), env }));
        await waitShared(gws, 'ok');
        await mock.script({ match: { path: '/v1/messages' }, status: 429, headers: { 'retry-after': '2' },
            body: '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}' });
        assert.equal((await post(gws[0], 0)).status, 429);
        // the pause is in Redis once replica A has told it (a write on its own connection): wait for that, not for time
        let blocked = '';
        for (let i = 0; i < 100 && !blocked; i++, await sleep(20))
            blocked = await redis.cli('--scan', '--pattern', 'pgw:*:bucket').then((k) => k && redis.cli('HGET', k, 'blocked'));
        assert.ok(Number(blocked) > 0, 'replica A did not record the pause');
        const next = await post(gws[1], 1);
        assert.equal(next.status, 200, next.body);
        assert.ok(next.ms >= 1500, `replica B sent to Poe after ${next.ms} ms, not after the Retry-After replica A was given`);
    } finally {
        for (const g of gws) await g.stop();
        await redis.stop();
    }
});

test('an unlimited key (upstream_rpm: 0) goes without asking Redis, which has no rate to share', async () => {
    const redis = await startRedis();
    const g = await startGateway({ config: config(redis.url, '  queue_timeout: 2\n').replace(`upstream_rpm: ${RPM}`, 'upstream_rpm: 0'),
        env: { SSL_CERT_FILE: certs().ca } });
    try {
        await waitShared([g], 'ok', 1);
        const rs = await Promise.all(Array.from({ length: 3 }, (_, j) => post(g, j)));
        for (const r of rs) assert.equal(r.status, 200, r.body);
        assert.equal(await redis.cli('--scan', '--pattern', 'pgw:*:bucket'), '');
    } finally {
        await g.stop();
        await redis.stop();
    }
});

test('scripts flushed from Redis: the gateway loads them again on a new connection and shares again', async () => {
    const redis = await startRedis();
    const g = await startGateway({ config: config(redis.url), env: { SSL_CERT_FILE: certs().ca }, args: ['--threads', '1'] });
    try {
        await waitShared([g], 'ok', 1);
        assert.equal(await redis.cli('SCRIPT', 'FLUSH'), 'OK');
        assert.equal((await post(g, 1)).status, 200); // decided locally: the script was not there
        await waitShared([g], 'ok', 1);
        await redis.cli('DEL', ...(await redis.cli('--scan', '--pattern', 'pgw:*:bucket')).split('\n').filter(Boolean), 'pgw:none');
        assert.equal((await post(g, 2)).status, 200);
        assert.match(await redis.cli('--scan', '--pattern', 'pgw:*:bucket'), /bucket/, 'the turn did not go through Redis');
    } finally {
        await g.stop();
        await redis.stop();
    }
});

test('budgets and usage agree whichever replica is asked: each ledger gets the other replicas\' records', async () => {
    const redis = await startRedis();
    const usage = { input_tokens: 100000, output_tokens: 10000, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
    const COST = 100000 * 0.0000026 + 10000 * 0.000013; // the mock catalog's claude-sonnet-4.5 prices: 0.39 USD
    const cfg = defaultConfig(mock, `gateway:
  redis: ${redis.url}
  upstream_rpm: 6000
  keys:
    - {name: alice, key: alice-key-0123456789, budget: {daily: ${1.2 * COST}}}
    - {name: bob, key: bob-key-0123456789}
`);
    const gws = [];
    const ask = (g, key) => request(`${g.url}/v1/messages`, { method: 'POST',
        headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude-sonnet-4-5-20250929', max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
    const usageOf = async (g) => JSON.parse((await request(`${g.url}/usage`, { headers: { 'x-api-key': MASTER_KEY } })).body);
    const requestsOf = (u, who) => u.keys?.[who]?.['claude-sonnet-4-5-20250929']?.total.requests ?? 0;
    /** Waits until every gateway's /usage shows `n` requests of `who` (each ledger has the others' records). */
    async function seen(who, n) {
        for (let i = 0; i < 200; i++) {
            const us = await Promise.all(gws.map(usageOf));
            if (us.every((u) => requestsOf(u, who) === n)) return us;
            await sleep(25);
        }
        throw new Error(`the replicas never all showed ${n} requests of ${who}: ${JSON.stringify(await Promise.all(gws.map(usageOf)))}`);
    }
    try {
        // each replica has its own ledger file (its own HOME)
        for (let i = 0; i < 2; i++) gws.push(await startGateway({ config: cfg, env: { SSL_CERT_FILE: certs().ca } }));
        await waitShared(gws, 'ok', 2);
        await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, repeat: 10,
            chunks: anthropicStream({ blocks: [{ type: 'text', text: 'a fairly long answer' }], usage }) });
        // alice spends 83% of her day on replica A, then, under her budget still, crosses it on replica B
        assert.equal((await ask(gws[0], 'alice-key-0123456789')).status, 200);
        await seen('alice', 1);
        assert.equal((await ask(gws[1], 'alice-key-0123456789')).status, 200);
        await seen('alice', 2);
        // replica A, which served only one of them, counts both: she is over
        const refused = await ask(gws[0], 'alice-key-0123456789');
        assert.equal(refused.status, 402, refused.body);
        assert.match(JSON.parse(refused.body).error.message, /budget exceeded: key alice has spent 0\.78 USD/);
        // bob on both replicas: the two /usage answers are the same
        assert.equal((await ask(gws[0], 'bob-key-0123456789')).status, 200);
        assert.equal((await ask(gws[1], 'bob-key-0123456789')).status, 200);
        const [a, b] = await seen('bob', 2);
        assert.deepEqual(a.keys, b.keys);
        assert.ok(Math.abs(a.keys.alice['claude-sonnet-4-5-20250929'].total.cost_usd - 2 * COST) < 1e-6);
    } finally {
        for (const g of gws) await g.stop();
        await redis.stop();
    }
});
