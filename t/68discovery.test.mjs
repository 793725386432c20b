// poe-gateway: MIT licence. Model discovery for Claude Code's /model picker (#17 part 1): every route reachable from
// the picker, under a picker alias when the picker would drop its name; what each entry says; the real CLI's cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, SOURCE_DIR, certs, openaiStream, request, startGateway, startMock, tmpdir } from './lib/harness.mjs';
import { claudeMissing, runClaude } from './lib/claude.mjs';

// Claude Code's own filter on discovered ids (its bundle: /(claude|anthropic)/i), and the documented stricter one
const pickerKeeps = (id) => /^(claude|anthropic)/i.test(id) && /(claude|anthropic)/i.test(id);

let mock, gw;
before(async () => {
    assert.equal(claudeMissing(), null);
    mock = await startMock();
    const route = (name, model, base) => `  - model_name: ${name}
    litellm_params:
      model: ${model}
      api_base: ${base}
      api_key: os.environ/POE_API_KEY
`;
    const https = mock.httpsUrl;
    // the exact routes go before the claude-* wildcard, which must not take their aliases
    const config = 'model_list:\n' + route('claude-sonnet-4-5-20250929', 'anthropic/claude-sonnet-4.5', https) +
        route('claude-haiku-4-5-20251001', 'anthropic/claude-haiku-4.5', https) + route('gpt-5', 'openai/GPT-5', `${https}/v1`) +
        route('gemini-2.5-pro', 'openai/Gemini-2.5-Pro', `${https}/v1`) + route('o-bot', 'openai/No-Such-Bot', `${https}/v1`) +
        route('grok', 'openai/Grok-4', `${https}/v1`) + '    model_info: {max_input_tokens: 131072}\n' +
        route('claude-*', 'anthropic/*', https) + `general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  keys:
    - {name: claude-only, key: sk-claude-only-key-0123, models: ["claude-*"]}
    - {name: gpt-only, key: sk-gpt-only-key-0123456, models: ["gpt-5"]}
`;
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});

const list = async (headers = { 'anthropic-version': '2023-06-01' }) => {
    const r = await request(`${gw.url}/v1/models?limit=1000`, { headers: { authorization: `Bearer ${MASTER_KEY}`, ...headers } });
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body);
};

test('every exact route is listed under an id the picker keeps: its own, else claude-via-poe-<name>', async () => {
    const ids = (await list()).data.map((m) => m.id);
    assert.deepEqual(ids, ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001', 'gpt-5', 'claude-via-poe-gpt-5',
        'gemini-2.5-pro', 'claude-via-poe-gemini-2.5-pro', 'o-bot', 'claude-via-poe-o-bot', 'grok', 'claude-via-poe-grok']);
    const kept = new Set(ids.filter(pickerKeeps));
    for (const name of ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001', 'gpt-5', 'gemini-2.5-pro', 'o-bot', 'grok'])
        assert.ok(kept.has(name) || kept.has(`claude-via-poe-${name}`), `${name} is not reachable from the picker`);
    // the OpenAI shape lists the same ids
    assert.deepEqual((await list({})).data.map((m) => m.id), ids);
});

test('display_name names the Poe bot and the route kind; limits come from the catalog, and are absent when unknown', async () => {
    const byId = Object.fromEntries((await list()).data.map((m) => [m.id, m]));
    for (const id of ['gpt-5', 'claude-via-poe-gpt-5']) {
        assert.equal(byId[id].display_name, 'GPT-5 via Poe (translated)');
        assert.equal(byId[id].max_input_tokens, 400000);
        assert.equal(byId[id].max_tokens, 128000);
        assert.match(byId[id].description, /Poe bot gpt-5: the gateway translates Anthropic Messages to chat\/completions \(route gpt-5\)/);
    }
    assert.equal(byId['claude-via-poe-gemini-2.5-pro'].display_name, 'Gemini-2.5-Pro via Poe (translated)');
    assert.equal(byId['claude-via-poe-gemini-2.5-pro'].max_input_tokens, 1065000);
    assert.equal(byId['claude-via-poe-gemini-2.5-pro'].max_tokens, 65536);
    // pass-through routes, described by the catalog of the same host
    const sonnet = byId['claude-sonnet-4-5-20250929'];
    assert.equal(sonnet.display_name, 'Claude-Sonnet-4.5 via Poe (pass-through)');
    assert.equal(sonnet.max_input_tokens, 200000);
    assert.equal(sonnet.max_tokens, 32768);
    // a bot the catalog does not list: its configured name, and no limits (never null: the CLI's schema wants numbers)
    const odd = byId['claude-via-poe-o-bot'];
    assert.equal(odd.display_name, 'No-Such-Bot via Poe (translated)');
    assert.ok(!('max_input_tokens' in odd) && !('max_tokens' in odd), JSON.stringify(odd));
    // the route's model_info.max_input_tokens wins over the catalog's 256,000; the catalog gives no output limit
    assert.equal(byId['claude-via-poe-grok'].max_input_tokens, 131072);
    assert.ok(!('max_tokens' in byId['claude-via-poe-grok']));
    // one model: the same entry
    const one = await request(`${gw.url}/v1/models/claude-via-poe-gpt-5`, { headers: { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01' } });
    assert.equal(one.status, 200, one.body);
    assert.deepEqual(JSON.parse(one.body), byId['claude-via-poe-gpt-5']);
});

test('pagination walks aliases like any other id', async () => {
    const h = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01' };
    const p1 = JSON.parse((await request(`${gw.url}/v1/models?limit=4`, { headers: h })).body);
    assert.equal(p1.last_id, 'claude-via-poe-gpt-5');
    assert.equal(p1.has_more, true);
    const p2 = JSON.parse((await request(`${gw.url}/v1/models?limit=2&after_id=claude-via-poe-gpt-5`, { headers: h })).body);
    assert.deepEqual(p2.data.map((m) => m.id), ['gemini-2.5-pro', 'claude-via-poe-gemini-2.5-pro']);
    const back = JSON.parse((await request(`${gw.url}/v1/models?limit=2&before_id=gemini-2.5-pro`, { headers: h })).body);
    assert.deepEqual(back.data.map((m) => m.id), ['gpt-5', 'claude-via-poe-gpt-5']);
});

test('the alias routes to its route (not the claude-* wildcard), and a key allow list judges it by the route', async () => {
    await mock.reset();
    const body = JSON.stringify({ model: 'claude-via-poe-gpt-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const post = (key) => request(`${gw.url}/v1/messages`, { method: 'POST', body,
        headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' } });
    const r = await post(MASTER_KEY);
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).model, 'claude-via-poe-gpt-5'); // the name the client asked for
    const got = (await mock.requests()).filter((q) => q.path.startsWith('/v1/'));
    assert.deepEqual(got.map((q) => q.path), ['/v1/chat/completions']);
    assert.equal(JSON.parse(got[0].body).model, 'gpt-5');

    const denied = await post('sk-claude-only-key-0123');
    assert.equal(denied.status, 403, denied.body);
    assert.match(JSON.parse(denied.body).error.message, /may not use model claude-via-poe-gpt-5/);
    assert.equal((await post('sk-gpt-only-key-0123456')).status, 200);
});

test('the real Claude Code CLI discovers the models, caches the aliases, and runs a turn on one', async () => {
    await mock.reset();
    await mock.script({ match: { path: '/v1/chat/completions', model: 'gpt-5' }, headers: { 'content-type': 'text/event-stream' },
        chunk_delay_ms: 2, chunks: openaiStream({ deltas: [{ content: 'hello from the picker alias' }] }) });
    const home = tmpdir('pgw-cc-home-'), work = tmpdir('pgw-cc-work-');
    // 2.1.328 keeps no window from discovery (docs/peers.md): the README's recipe gives it the one /v1/models lists
    const window = (await list()).data.find((m) => m.id === 'claude-via-poe-gpt-5').max_input_tokens;
    assert.equal(window, 400000);
    const r = await runClaude(['-p', 'say hello', '--model', 'claude-via-poe-gpt-5'], {
        cwd: work, quiet: false,
        env: { HOME: home, ANTHROPIC_BASE_URL: gw.url, ANTHROPIC_AUTH_TOKEN: MASTER_KEY, CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY: '1',
            CLAUDE_CODE_AUTO_COMPACT_WINDOW: String(window) },
    });
    assert.equal(r.code, 0, `claude exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.ok(r.stdout.includes('hello from the picker alias'), r.stdout);
    assert.ok(!/assumes a context window/.test(r.stderr), r.stderr);

    // where the CLI keeps what it discovered: {baseUrl, fetchedAt, models: [{id, display_name, description}]}
    const cache = JSON.parse(fs.readFileSync(path.join(home, '.claude/cache/gateway-models.json'), 'utf8'));
    assert.equal(cache.baseUrl, gw.url);
    const cached = Object.fromEntries(cache.models.map((m) => [m.id, m]));
    assert.deepEqual(Object.keys(cached), ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001', 'claude-via-poe-gpt-5',
        'claude-via-poe-gemini-2.5-pro', 'claude-via-poe-o-bot', 'claude-via-poe-grok']);
    assert.equal(cached['claude-via-poe-gpt-5'].display_name, 'GPT-5 via Poe (translated)');
    assert.equal(cached['claude-sonnet-4-5-20250929'].display_name, 'Claude-Sonnet-4.5 via Poe (pass-through)');

    // one credential, the Bearer token, on the discovery request; the turn went to GPT-5 through the alias
    assert.match(gw.output.stderr, /"GET \/v1\/models\?limit=1000 HTTP\/[12.]+" 200 route=- key=master/);
    // the CLI names its session on every turn (t/67sessions: the log and /usage)
    assert.match(gw.output.stderr, /"POST \/v1\/messages\?beta=true HTTP\/[12.]+" 200 route=gpt-5 key=master .* session=[0-9a-f-]{36}/);
    const turns = (await mock.requests()).filter((q) => q.path === '/v1/chat/completions');
    assert.ok(turns.length >= 1);
    assert.ok(turns.every((q) => JSON.parse(q.body).model === 'gpt-5'));
});
