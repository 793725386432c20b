// poe-gateway: MIT licence. openai/ routes end to end: Anthropic in, Poe's chat/completions (the mock) out, and back,
// with the official SDK as the client.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { MASTER_KEY, POE_KEY, certs, openaiStream, parseSSE, request, sleep, startGateway, startMock } from './lib/harness.mjs';

let mock, gw, client;
before(async () => {
    mock = await startMock();
    const r = (name, bot, extra = '') => `  - model_name: ${name}
    litellm_params:
      model: openai/${bot}
      api_base: ${mock.httpsUrl}/v1
      api_key: os.environ/POE_API_KEY
${extra}`;
    const config = `model_list:
${r('gpt-5', 'GPT-5')}${r('claude-via-chat', 'Claude-Sonnet-4.5')}${r('gpt-pinned', 'gpt-5', '      extra_body:\n        reasoning_effort: low\n')}${r('gpt-fast', 'gpt-5', '      timeout: 1\n      stream_timeout: 1\n      max_retries: 0\n')}${r('no-such-bot', 'not-a-poe-bot')}general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`;
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca } });
    client = new Anthropic({ apiKey: MASTER_KEY, baseURL: gw.url, maxRetries: 0 });
    // the catalog is fetched at start: wait until it is there, so knobs and limits apply
    for (let i = 0; i < 50 && !/loaded \d+ bots/.test(gw.output.stderr); i++) await sleep(100);
    assert.match(gw.output.stderr, /loaded \d+ bots/);
});
after(async () => {
    const { code } = await gw.stop();
    await mock.stop();
    assert.equal(code, 0, gw.output.stderr.slice(-3000));
    assert.ok(!gw.output.stderr.includes(MASTER_KEY) && !gw.output.stderr.includes(POE_KEY));
});
beforeEach(() => mock.reset());

const headers = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const post = (body, path = '/v1/messages') => request(`${gw.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
const lastUpstream = async () => {
    const reqs = (await mock.requests()).filter((q) => q.path === '/v1/chat/completions');
    return { req: reqs.at(-1), body: JSON.parse(reqs.at(-1).body) };
};

test('a whole reply: translated both ways, accepted by the strict mock, Poe key as Bearer', async () => {
    const m = await client.messages.create({ model: 'gpt-5', max_tokens: 256, system: 'be brief',
        messages: [{ role: 'user', content: 'hello there' }] });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, 'gpt-5');
    assert.match(m.id, /^msg_[0-9a-f]{24}$/);
    assert.deepEqual(m.content, [{ type: 'text', text: 'mock reply to: hello there' }]);
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
    const { req, body } = await lastUpstream();
    assert.equal(req.headers.authorization, `Bearer ${POE_KEY}`);
    assert.equal(req.headers['x-api-key'], undefined);
    assert.equal(body.model, 'gpt-5', 'the catalog id, not the configured display name');
    assert.deepEqual(body.messages[0], { role: 'system', content: 'be brief' });
    assert.equal(body.stream ?? false, false);
    assert.ok(!JSON.stringify(req).includes(MASTER_KEY));
});

test('a stream through the SDK: text deltas, usage, and the exact event grammar', async () => {
    const stream = client.messages.stream({ model: 'gpt-5', max_tokens: 256, messages: [{ role: 'user', content: 'stream me' }] });
    const texts = [];
    stream.on('text', (t) => texts.push(t));
    const m = await stream.finalMessage();
    assert.equal(m.content[0].text, 'mock reply to: stream me');
    assert.ok(texts.length >= 2);
    assert.ok(m.usage.input_tokens > 0);
    const { body } = await lastUpstream();
    assert.equal(body.stream, true);
    assert.deepEqual(body.stream_options, { include_usage: true });

    const raw = await post({ model: 'gpt-5', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(raw.status, 200);
    assert.match(raw.headers['content-type'], /text\/event-stream/);
    const names = parseSSE(raw.body).map((e) => e.event);
    assert.deepEqual(names.filter((n) => n !== 'ping'), ['message_start', 'content_block_start', 'content_block_delta',
        'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    assert.ok(!raw.body.includes('[DONE]'));
    const start = parseSSE(raw.body)[0].data;
    assert.ok(start.message.usage.input_tokens > 0, 'message_start carries a non-zero input estimate');
});

test('tool calls stream as tool_use blocks with input_json_delta; stop_reason is tool_use', async () => {
    const chunks = openaiStream({ finish: 'tool_calls', deltas: [
        { content: 'Let me look.' },
        { tool_calls: [{ index: 0, id: 'Read:0', type: 'function', function: { name: 'Read', arguments: '' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '{"file_path":' } }] },
        { tool_calls: [{ index: 0, function: { arguments: '"/tmp/a.txt"}' } }] },
        { tool_calls: [{ index: 1, id: 'call_2', type: 'function', function: { name: 'Grep', arguments: '{"pattern":"x"}' } }] },
    ] });
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' }, chunks, chunk_delay_ms: 5 });
    const tools = [
        { name: 'Read', description: 'read a file', input_schema: { type: 'object', properties: { file_path: { type: 'string' } }, required: ['file_path'] } },
        { name: 'Grep', description: 'search', input_schema: { $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', properties: { pattern: { type: 'string' } } } },
    ];
    const m = await client.messages.stream({ model: 'gpt-5', max_tokens: 256, tools, messages: [{ role: 'user', content: 'find x' }] }).finalMessage();
    assert.equal(m.stop_reason, 'tool_use');
    assert.equal(m.content.length, 3);
    assert.deepEqual(m.content[0], { type: 'text', text: 'Let me look.' });
    assert.equal(m.content[1].type, 'tool_use');
    assert.equal(m.content[1].name, 'Read');
    assert.equal(m.content[1].id, 'Read_0', 'upstream ids are sanitised');
    assert.deepEqual(m.content[1].input, { file_path: '/tmp/a.txt' });
    assert.deepEqual(m.content[2].input, { pattern: 'x' });
    assert.equal(m.usage.output_tokens, 30);
    const { body } = await lastUpstream();
    assert.equal(body.tools.length, 2);
    assert.equal(body.tools[1].function.parameters.$schema, undefined, 'schemas are cleaned');

    // the next turn carries the results back: one tool message per result, right after the assistant's calls
    await client.messages.create({ model: 'gpt-5', max_tokens: 64, tools, messages: [
        { role: 'user', content: 'find x' },
        { role: 'assistant', content: m.content },
        { role: 'user', content: [
            { type: 'text', text: 'here you go' },
            { type: 'tool_result', tool_use_id: 'Read_0', content: 'file body' },
            { type: 'tool_result', tool_use_id: m.content[2].id, content: [{ type: 'text', text: 'no match' }], is_error: true },
        ] },
    ] });
    const next = (await lastUpstream()).body.messages;
    const roles = next.map((x) => x.role);
    assert.deepEqual(roles, ['user', 'assistant', 'tool', 'tool', 'user']);
    assert.equal(next[1].tool_calls[0].id, 'Read_0');
    assert.equal(next[1].tool_calls[0].function.name, 'Read');
    assert.deepEqual(JSON.parse(next[1].tool_calls[0].function.arguments), { file_path: '/tmp/a.txt' });
    assert.equal(next[2].tool_call_id, 'Read_0');
    assert.equal(next[2].content, 'file body');
    assert.match(next[3].content, /^\[tool error\] no match/);
});

test('thinking maps to the knob the bot declares; max_tokens is clamped; route pins win', async () => {
    const r = await post({ model: 'claude-via-chat', max_tokens: 100000,
        thinking: { type: 'enabled', budget_tokens: 50000 }, messages: [{ role: 'user', content: 'think' }] });
    assert.equal(r.status, 200, r.body);
    let { body } = await lastUpstream();
    assert.equal(body.model, 'claude-sonnet-4.5');
    assert.equal(body.max_tokens, 32768, 'clamped to the catalog max_output_tokens');
    assert.ok(body.thinking_budget > 0 && body.thinking_budget <= 31999 && body.thinking_budget < body.max_tokens, String(body.thinking_budget));
    assert.equal(body.reasoning_effort, undefined);
    assert.equal(body.thinking, undefined);

    await post({ model: 'gpt-5', max_tokens: 1000, thinking: { type: 'enabled', budget_tokens: 5000 }, output_config: { effort: 'high' },
        context_management: { edits: [] }, metadata: { user_id: 'x'.repeat(150) }, messages: [{ role: 'user', content: 'hi' }] });
    ({ body } = await lastUpstream());
    assert.ok(['low', 'medium', 'high', 'minimal'].includes(body.reasoning_effort), String(body.reasoning_effort));
    assert.equal(body.context_management, undefined);
    assert.equal(body.output_config, undefined);
    assert.equal(body.metadata, undefined);

    await post({ model: 'gpt-pinned', max_tokens: 10, thinking: { type: 'enabled', budget_tokens: 20000 }, messages: [{ role: 'user', content: 'hi' }] });
    ({ body } = await lastUpstream());
    assert.equal(body.reasoning_effort, 'low');
    // a body over 64 KB is translated on the thread pool, with the job's own copy of the route's pins
    await post({ model: 'gpt-pinned', max_tokens: 10, thinking: { type: 'enabled', budget_tokens: 20000 },
        messages: [{ role: 'user', content: 'x '.repeat(50000) }] });
    ({ body } = await lastUpstream());
    assert.equal(body.reasoning_effort, 'low');
    assert.equal(body.messages[0].content.length, 100000);
});

test('count_tokens answers locally from the translated request, never calling Poe', async () => {
    const small = await post({ model: 'gpt-5', messages: [{ role: 'user', content: 'hi' }] }, '/v1/messages/count_tokens');
    assert.equal(small.status, 200, small.body);
    const big = await post({ model: 'gpt-5', system: 'x '.repeat(3000), messages: [{ role: 'user', content: 'hi' }] }, '/v1/messages/count_tokens');
    const a = JSON.parse(small.body).input_tokens, b = JSON.parse(big.body).input_tokens;
    assert.ok(a > 0 && b > a + 1000, `${a} ${b}`);
    assert.equal((await mock.requests()).filter((q) => q.path === '/v1/chat/completions').length, 0);
});

test('upstream errors map to Anthropic statuses and types', async () => {
    const cases = [
        [401, '{"error":{"code":401,"type":"authentication_error","message":"Invalid API key"}}', 502, 'api_error'],
        [402, '{"error":{"code":402,"type":"insufficient_credits","message":"no points"}}', 402, 'billing_error'],
        [429, '{"error":{"code":429,"type":"rate_limit_error","message":"slow down"}}', 429, 'rate_limit_error'],
        [400, '{"error":{"message":"Unrecognized request argument supplied: foo","type":"invalid_request_error"}}', 400, 'invalid_request_error'],
        [404, '{"error":{"code":"model_not_found","message":"no such bot"}}', 404, 'not_found_error'],
    ];
    for (const [status, body, want, type] of cases) {
        await mock.script({ match: { path: '/v1/chat/completions' }, status, body, repeat: 3,
            headers: status === 429 ? { 'retry-after': '0' } : {} });
        const r = await post({ model: 'gpt-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
        assert.equal(r.status, want, `${status}: ${r.body}`);
        const e = JSON.parse(r.body);
        assert.equal(e.type, 'error');
        assert.equal(e.error.type, type, `${status}`);
        if (status === 429) assert.equal(r.headers['retry-after'], '0');
        await mock.reset();
    }
});

test('a bot the catalog does not know: sent as configured, and the strict mock says 404', async () => {
    const r = await post({ model: 'no-such-bot', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 404, r.body);
});

test('a stream cut before [DONE] ends with one error event; a hang before the head is 504', async () => {
    const chunks = openaiStream({ deltas: [{ content: 'partial' }, { content: ' answer' }], finish: null, usage: null, done: false });
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' }, chunks, cut_after: chunks.length });
    const r = await post({ model: 'gpt-5', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'x' }] });
    const events = parseSSE(r.body).filter((e) => e.event !== 'ping');
    assert.equal(events.at(-1).event, 'error', r.body);
    assert.ok(!events.some((e) => e.event === 'message_stop'));

    await mock.script({ match: { path: '/v1/chat/completions' }, hang: true });
    const h = await post({ model: 'gpt-fast', max_tokens: 64, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(h.status, 504);
    assert.equal(JSON.parse(h.body).error.type, 'timeout_error');
});

test('an error object before anything else in a 200 stream is a JSON error, not a 200', async () => {
    const chunks = ['data: {"error":{"code":500,"type":"provider_error","message":"the provider fell over"}}\n\n'];
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' }, chunks });
    const r = await post({ model: 'gpt-5', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'x' }] });
    assert.ok(r.status >= 400, `${r.status} ${r.body}`);
    assert.equal(JSON.parse(r.body).type, 'error');
});

test('a body the translator refuses is a 400 that names the field, with no upstream call', async () => {
    const r = await post({ model: 'gpt-5', max_tokens: 10, messages: [{ role: 'user', content: 42 }] });
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).error.type, 'invalid_request_error');
    assert.match(JSON.parse(r.body).error.message, /messages/);
    assert.equal((await mock.requests()).length, 0);
});

test('a lone surrogate escape goes upstream as one U+FFFD, never as bytes that are not UTF-8', async () => {
    // JSON.stringify writes a lone surrogate as the escape \udc00; yajl 2.1 decoded it to the bytes ED B0 80 (which a
    // UTF-8 reader takes for three bad characters), a lone high one to '?', and paired a high one with any escape after
    const r = await post({ model: 'gpt-5', max_tokens: 16, messages: [{ role: 'user', content: 'a\udc00b \ud800c \ud800\u0041 \ud83d\ude00' }] });
    assert.equal(r.status, 200, r.body);
    const { req, body } = await lastUpstream();
    assert.equal(body.messages[0].content, 'a\ufffdb \ufffdc \ufffdA \ud83d\ude00');
    assert.ok(!req.body.includes('\ufffd\ufffd'), req.body);
});

test('a content block of a type the gateway does not know: its text is sent, and the gateway says so in its log', async () => {
    const r = await post({ model: 'gpt-5', max_tokens: 16, messages: [{ role: 'user', content: [{ type: 'text', text: 'one' },
        { type: 'hologram_2031', text: 'two' }, { type: 'widget' }] }] });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual((await lastUpstream()).body.messages[0].content, [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }]);
    assert.match(gw.output.stderr,
        /warn \[translate_messages\] messages\.0\.content\.1: block type "hologram_2031" is unknown to the gateway: only its text was sent/);
});

test('15 s without a write to the client brings a ping between events', async () => {
    const chunks = openaiStream({ deltas: [{ content: 'before' }, { content: ' after the pause' }] });
    // the role chunk and the first text delta, a 16 s pause, then the rest at once
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' },
        chunks: [chunks.slice(0, 2).join(''), chunks.slice(2).join('')], chunk_delay_ms: 16000 });
    const r = await post({ model: 'gpt-5', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'x' }] });
    const events = parseSSE(r.body).map((e) => e.event);
    const ping = events.indexOf('ping');
    assert.ok(ping > events.indexOf('content_block_delta') && ping < events.lastIndexOf('content_block_delta'), events.join(','));
    assert.equal(events.at(-1), 'message_stop');
});

test('stop sequences go upstream (blank ones dropped); one the upstream names is reported as stop_sequence', async () => {
    const base = { id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1, model: 'gpt-5' };
    const chunks = [
        `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'one two' }, finish_reason: null }] })}\n\n`,
        `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop', stop_reason: '###' }] })}\n\n`,
        `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 } })}\n\n`,
        'data: [DONE]\n\n',
    ];
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' }, chunks });
    const m = await client.messages.stream({ model: 'gpt-5', max_tokens: 64, stop_sequences: ['  ', '###', 'END'],
        messages: [{ role: 'user', content: 'count' }] }).finalMessage();
    assert.equal(m.stop_reason, 'stop_sequence');
    assert.equal(m.stop_sequence, '###');
    const { body } = await lastUpstream();
    assert.deepEqual(body.stop, ['###', 'END']);
});
