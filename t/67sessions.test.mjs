// poe-gateway: MIT licence. Claude Code's sessions and subagents (#17 part 4): the ids in the access log, per-session
// totals in /usage grouped by developer, and never a label in /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MASTER_KEY, certs, defaultConfig, request, sleep, startGateway, startMock } from './lib/harness.mjs';

const ALICE = 'sk-alice-sessions-key-0123';
let mock, gw;
before(async () => {
    mock = await startMock();
    const config = defaultConfig(mock) + `gateway:\n  keys:\n    - {name: alice, key: ${ALICE}}\n`;
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});

const post = (model, key, ids = {}, stream = false) => request(`${gw.url}/v1/messages?beta=true`, {
    method: 'POST',
    headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json', ...ids },
    body: JSON.stringify({ model, max_tokens: 32, stream, messages: [{ role: 'user', content: 'hello' }] }),
});
const usage = async () => JSON.parse((await request(`${gw.url}/usage`, { headers: { 'x-api-key': MASTER_KEY } })).body);
// a request's access-log line and its session row are written when libh2o disposes of it, just after the client has
// its answer: wait for them (bounded), rather than for a guessed time
async function waitFor(what, fn) {
    for (let i = 0; i < 500; i++) {
        const v = await fn();
        if (v) return v;
        await sleep(10);
    }
    throw new Error(`gave up waiting for ${what}`);
}
// the usage a whole answer reported, as the client saw it
const tokens = (r) => JSON.parse(r.body).usage;

test('requests carrying session and agent ids: logged, and summed per session and developer in /usage', async () => {
    const S1 = '8d81f84e-76e3-46b6-ad7e-639288eff130', S2 = '11111111-2222-3333-4444-555555555555';
    const main = await post('claude-sonnet-4-5-20250929', MASTER_KEY, { 'x-claude-code-session-id': S1 });
    assert.equal(main.status, 200, main.body);
    const sub = { 'x-claude-code-session-id': S1, 'x-claude-code-agent-id': 'agent-7', 'x-claude-code-parent-agent-id': 'root' };
    const a = await post('gpt-5', MASTER_KEY, sub);
    const b = await post('claude-haiku-4-5-20251001', MASTER_KEY, { ...sub, 'x-claude-code-agent-id': 'agent-8' });
    const streamed = await post('claude-sonnet-4-5-20250929', MASTER_KEY, sub, true);
    for (const r of [a, b, streamed]) assert.equal(r.status, 200, r.body);
    // another developer, and a request without ids
    assert.equal((await post('claude-sonnet-4-5-20250929', ALICE, { 'x-claude-code-session-id': S2 })).status, 200);
    assert.equal((await post('claude-sonnet-4-5-20250929', MASTER_KEY)).status, 200);

    const u = await waitFor('the session rows in /usage', async () => {
        const v = await usage();
        return v.sessions.keys.master?.[S1]?.requests === 4 && v.sessions.keys.alice?.[S2] ? v : null;
    });
    const s1 = u.sessions.keys.master[S1];
    assert.equal(s1.subagent_requests, 3);
    assert.equal(s1.agents, 2);
    const whole = [main, a, b].map(tokens);
    const sum = (f) => whole.reduce((n, t) => n + (t[f] ?? 0), 0);
    // the streamed answer's tokens are in the access log; the whole answers' are what the client got
    const line = await waitFor('the streamed request\'s log line', () => gw.output.stderr.split('\n')
        .filter((l) => /route=claude-sonnet-4-5-20250929 key=master .* session=8d81f84e\S* agent=agent-7/.test(l))[0]);
    const streamedIn = Number(line.match(/ in=(\d+)/)[1]), streamedOut = Number(line.match(/ out=(\d+)/)[1]);
    assert.equal(s1.input_tokens, sum('input_tokens') + streamedIn);
    assert.equal(s1.output_tokens, sum('output_tokens') + streamedOut);
    assert.ok(s1.input_tokens > 0);
    assert.ok(!Number.isNaN(Date.parse(s1.first_seen)) && Date.parse(s1.last_seen) >= Date.parse(s1.first_seen));
    assert.deepEqual(Object.keys(u.sessions.keys).sort(), ['alice', 'master']);
    assert.deepEqual(Object.keys(u.sessions.keys.alice), [S2]);
    assert.equal(u.sessions.max, 1024);
    assert.equal(u.sessions.evicted, 0);
    // the per-key totals are still there, beside
    assert.ok(u.keys.master['gpt-5'].total.requests >= 1);

    // the access log names them
    assert.match(gw.output.stderr, new RegExp(`"POST /v1/messages\\?beta=true HTTP/1.1" 200 route=gpt-5 key=master .* session=${S1} agent=agent-7 parent_agent=root`));
    assert.match(gw.output.stderr, new RegExp(`route=claude-sonnet-4-5-20250929 key=alice .* session=${S2}\\n`));
});

test('an id that could break a log line or JSON is made safe; /metrics never carries sessions', async () => {
    const evil = 'x" y\\z=1 key=master';
    const r = await post('claude-sonnet-4-5-20250929', MASTER_KEY, { 'x-claude-code-session-id': evil });
    assert.equal(r.status, 200, r.body);
    await waitFor('the log line', () => /session=x__y_z=1_key=master\n/.test(gw.output.stderr));
    const u = await usage();
    assert.equal(u.sessions.keys.master['x__y_z=1_key=master'].requests, 1);

    const m = await request(`${gw.url}/metrics`, { headers: { 'x-api-key': MASTER_KEY } });
    assert.equal(m.status, 200);
    assert.ok(!/session|8d81f84e|agent-7/.test(m.body), 'a session or agent id reached /metrics');
});
