// poe-gateway: MIT licence. Web search on translated routes (docs/mapping.md#web-search, #server-tools): Anthropic's
// web_search server tool becomes the bot's web_search knob and the pages it cites come back as the blocks Claude Code
// counts; a server tool a bot cannot run is refused, naming the routes that can; anthropic/ routes pass it through. Then
// the real Claude Code CLI's WebSearch, which asks in a side request, end to end.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { MASTER_KEY, SOURCE_DIR, anthropicStream, certs, openaiStream, parseSSE, request, sleep, startGateway, startMock,
    tmpdir, urlCitation } from './lib/harness.mjs';
import { claudeMissing, runClaude } from './lib/claude.mjs';

// what the mock's default chat answer cites when its web_search knob is on (t/mock-poe/poe.c)
const MOCK_PAGES = [{ url: 'https://search.example/results/1', title: 'Mock search result 1' },
    { url: 'https://search.example/results/2', title: 'Mock search result 2' }];
// Claude Code's WebSearch side request, as the CLI sends it
const WEB_SEARCH_TOOL = { type: 'web_search_20250305', name: 'web_search', max_uses: 8 };
const sideQuery = (model, extra = {}) => ({ model, max_tokens: 1024, system: 'Search once, then reply with a brief summary.',
    messages: [{ role: 'user', content: 'Perform a web search for the query: rust 1.100 release date' }],
    tools: [WEB_SEARCH_TOOL], tool_choice: { type: 'tool', name: 'web_search' }, ...extra });

let mock, gw, client;
before(async () => {
    assert.equal(claudeMissing(), null);
    mock = await startMock();
    const route = (name, model, base) => `  - model_name: ${name}
    litellm_params:
      model: ${model}
      api_base: ${base}
      api_key: os.environ/POE_API_KEY
`;
    const config = `model_list:
${route('gpt-5', 'openai/GPT-5', `${mock.httpsUrl}/v1`)}${route('grok', 'openai/Grok-4', `${mock.httpsUrl}/v1`)}${
    route('claude-sonnet-4-5-20250929', 'anthropic/claude-sonnet-4.5', mock.httpsUrl)}general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`;
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca } });
    client = new Anthropic({ apiKey: MASTER_KEY, baseURL: gw.url, maxRetries: 0 });
    // the catalog says which bots can search: wait until it is loaded
    for (let i = 0; i < 50 && !/loaded \d+ bots/.test(gw.output.stderr); i++) await sleep(100);
    assert.match(gw.output.stderr, /loaded \d+ bots/);
});
after(async () => {
    const { code } = await gw.stop();
    await mock.stop();
    assert.equal(code, 0, gw.output.stderr.slice(-3000));
});
beforeEach(() => mock.reset());

const headers = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const post = (body, p = '/v1/messages') => request(`${gw.url}${p}`, { method: 'POST', headers, body: JSON.stringify(body) });
const upstream = async (p = '/v1/chat/completions') => (await mock.requests()).filter((q) => q.path === p);

function assertSearchBlocks(blocks, pages) {
    assert.equal(blocks[0].type, 'server_tool_use');
    assert.equal(blocks[0].name, 'web_search');
    assert.match(blocks[0].id, /^srvtoolu_[0-9a-f]{24}$/);
    assert.equal(blocks[1].type, 'web_search_tool_result');
    assert.equal(blocks[1].tool_use_id, blocks[0].id);
    assert.deepEqual(blocks[1].content.map((r) => ({ url: r.url, title: r.title })), pages);
    for (const r of blocks[1].content) assert.equal(r.type, 'web_search_result');
}

test('whole: the side query searches through the knob, and the cited pages come back before the text', async () => {
    const m = await client.messages.create(sideQuery('gpt-5'));
    assert.deepEqual(m.content.map((b) => b.type), ['server_tool_use', 'web_search_tool_result', 'text']);
    assertSearchBlocks(m.content, MOCK_PAGES);
    assert.match(m.content[2].text, /rust 1\.100 release date/);
    assert.equal(m.usage.server_tool_use.web_search_requests, 1);
    assert.equal(m.stop_reason, 'end_turn');
    const [q] = await upstream();
    const body = JSON.parse(q.body);
    assert.equal(body.web_search, true);
    assert.equal(body.tools, undefined, 'no function stands for the server tool');
    assert.equal(body.tool_choice, undefined);
});

test('streamed: text as it comes, then the search blocks whole, with usage.server_tool_use', async () => {
    const r = await post(sideQuery('gpt-5', { stream: true }));
    assert.equal(r.status, 200, r.body);
    const events = parseSSE(r.body);
    const starts = events.filter((e) => e.event === 'content_block_start').map((e) => e.data.content_block);
    assert.deepEqual(starts.map((b) => b.type), ['text', 'server_tool_use', 'web_search_tool_result']);
    assertSearchBlocks(starts.slice(1), MOCK_PAGES);
    // the search blocks have no deltas: every delta is the text's
    const deltas = events.filter((e) => e.event === 'content_block_delta');
    assert.ok(deltas.length >= 1 && deltas.every((e) => e.data.index === 0 && e.data.delta.type === 'text_delta'));
    const delta = events.find((e) => e.event === 'message_delta').data;
    assert.equal(delta.usage.server_tool_use.web_search_requests, 1);
    // and the SDK assembles the same message from the stream
    const m = await client.messages.stream(sideQuery('gpt-5')).finalMessage();
    assert.deepEqual(m.content.map((b) => b.type), ['text', 'server_tool_use', 'web_search_tool_result']);
    assertSearchBlocks(m.content.slice(1), MOCK_PAGES);
});

test('an answer that cites nothing claims no search; a request without the tool never searches', async () => {
    await mock.script({ match: { path: '/v1/chat/completions' }, headers: { 'content-type': 'text/event-stream' },
        chunks: openaiStream({ deltas: [{ content: 'Nothing found.' }] }) });
    const r = await post(sideQuery('gpt-5', { stream: true }));
    const events = parseSSE(r.body);
    assert.deepEqual(events.filter((e) => e.event === 'content_block_start').map((e) => e.data.content_block.type), ['text']);
    assert.equal(events.find((e) => e.event === 'message_delta').data.usage.server_tool_use, undefined);
    // a plain request: no knob, and annotations in the answer are not taken for a search
    await mock.script({ match: { path: '/v1/chat/completions' }, body: JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'See the docs.', annotations: [urlCitation('https://a.example/', 'A')] },
            finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 3 } }) });
    const m = await client.messages.create({ model: 'gpt-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    assert.deepEqual(m.content.map((b) => b.type), ['text']);
    const reqs = await upstream();
    assert.equal(JSON.parse(reqs.at(-1).body).web_search, undefined);
});

test('a bot without the knob: a 400 that names the bot and the models that can search, and nothing sent to Poe', async () => {
    for (const stream of [false, true]) {
        const r = await post(sideQuery('grok', { stream }));
        assert.equal(r.status, 400, r.body);
        const e = JSON.parse(r.body);
        assert.equal(e.type, 'error');
        assert.equal(e.error.type, 'invalid_request_error');
        assert.match(e.error.message, /web_search_20250305/);
        assert.match(e.error.message, /grok-4/);
        assert.match(e.error.message, /Models whose routes can run it: gpt-5, claude-sonnet-4-5-20250929$/);
    }
    assert.equal((await upstream()).length, 0);
    // counting tokens is no search: it still counts
    const c = await post(sideQuery('grok'), '/v1/messages/count_tokens');
    assert.equal(c.status, 200, c.body);
    assert.ok(JSON.parse(c.body).input_tokens > 0);
});

test('other server tools run nowhere behind chat/completions: refused, naming the anthropic/ routes', async () => {
    const r = await post({ model: 'gpt-5', max_tokens: 64, messages: [{ role: 'user', content: 'run it' }],
        tools: [{ name: 'Read', input_schema: { type: 'object' } }, { type: 'code_execution_20250825', name: 'code_execution' }] });
    assert.equal(r.status, 400, r.body);
    const e = JSON.parse(r.body).error;
    assert.match(e.message, /code_execution_20250825 cannot run on model gpt-5/);
    assert.match(e.message, /Models whose routes can run it: claude-sonnet-4-5-20250929$/);
    assert.equal((await upstream()).length, 0);
});

test('anthropic/ routes: the server tool reaches Poe untouched, and so do the answer blocks', async () => {
    const sid = 'srvtoolu_01abc';
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'msg_01', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5-20250929',
            content: [{ type: 'server_tool_use', id: sid, name: 'web_search', input: { query: 'rust' } },
                { type: 'web_search_tool_result', tool_use_id: sid, content: [{ type: 'web_search_result', url: 'https://r.example/',
                    title: 'R', encrypted_content: 'e', page_age: null }] },
                { type: 'text', text: 'Found it.' }],
            stop_reason: 'end_turn', stop_sequence: null,
            usage: { input_tokens: 10, output_tokens: 5, server_tool_use: { web_search_requests: 1 } } }) });
    const sent = sideQuery('claude-sonnet-4-5-20250929', { tools: [{ ...WEB_SEARCH_TOOL, allowed_domains: ['r.example'] }] });
    const m = await client.messages.create(sent);
    assert.deepEqual(m.content.map((b) => b.type), ['server_tool_use', 'web_search_tool_result', 'text']);
    assert.equal(m.usage.server_tool_use.web_search_requests, 1);
    const [q] = await upstream('/v1/messages');
    const body = JSON.parse(q.body);
    assert.deepEqual(body.tools, sent.tools);
    assert.deepEqual(body.tool_choice, sent.tool_choice);
});

async function claude(prompt, model) {
    const r = await runClaude(['-p', prompt, '--model', model, '--allowedTools', 'WebSearch', '--output-format', 'stream-json',
        '--verbose'], { env: { ANTHROPIC_BASE_URL: gw.url, ANTHROPIC_AUTH_TOKEN: MASTER_KEY } });
    return { ...r, lines: r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)) };
}

// The turn that calls WebSearch, and the answer after its result; the side request between them is the gateway's.
async function scriptTurns(bot, sideAnswer) {
    const match = { path: '/v1/chat/completions', model: bot };
    const sse = { 'content-type': 'text/event-stream' };
    await mock.script(
        { match, headers: sse, chunks: openaiStream({ finish: 'tool_calls', deltas: [{ tool_calls: [{ index: 0, id: 'call_ws1',
            type: 'function', function: { name: 'WebSearch', arguments: JSON.stringify({ query: 'rust 1.100 release date' }) } }] }] }) },
        ...(sideAnswer ? [{ match, headers: sse, chunks: sideAnswer }] : []),
        { match, headers: sse, chunks: openaiStream({ deltas: [{ content: 'Rust 1.100 came out on 27 November.' }] }) },
    );
}

test('Claude Code: WebSearch on a searching bot yields a search-result block and a final answer ("Did 1 search")', async () => {
    const cited = [urlCitation('https://blog.rust-lang.org/2026/11/27/Rust-1.100.0/', 'Announcing Rust 1.100.0', 0, 24),
        urlCitation('https://www.rust-lang.org/', 'Rust Programming Language', 25, 40)];
    await scriptTurns('gpt-5', openaiStream({ deltas: [{ content: 'Rust 1.100 was released ' },
        { content: 'on 27 November.', annotations: cited }] }));
    const r = await claude('when was rust 1.100 released? search the web', 'gpt-5');
    assert.equal(r.code, 0, `claude exited ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr}`);
    // the tool's result as Claude Code recorded it: one search, the cited pages, the side answer's text
    const result = r.lines.find((l) => l.type === 'user' && l.tool_use_result?.query)?.tool_use_result;
    assert.ok(result, r.stdout.slice(-3000));
    assert.equal(result.searchCount, 1);
    const hits = result.results.find((x) => typeof x === 'object');
    assert.deepEqual(hits.content, cited.map((a) => ({ title: a.url_citation.title, url: a.url_citation.url })));
    assert.ok(result.results.includes('Rust 1.100 was released on 27 November.'));
    assert.equal(r.lines.at(-1).type, 'result');
    assert.equal(r.lines.at(-1).result, 'Rust 1.100 came out on 27 November.');
    // the side request searched through the knob; the next turn carried the links to the model
    const turns = await upstream();
    assert.equal(turns.length, 3);
    const side = JSON.parse(turns[1].body);
    assert.equal(side.web_search, true);
    assert.equal(side.tools, undefined);
    const toolMsg = JSON.parse(turns[2].body).messages.find((m) => m.role === 'tool');
    assert.match(toolMsg.content, /Links: \[\{"title":"Announcing Rust 1\.100\.0","url":"https:\/\/blog\.rust-lang\.org/);
});

test('Claude Code: WebSearch on a bot that cannot search gets the gateway\'s error, naming the routes that can', async () => {
    await scriptTurns('grok-4', null);
    const r = await claude('when was rust 1.100 released? search the web', 'grok');
    assert.equal(r.code, 0, `claude exited ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr}`);
    // the WebSearch call ends in an error that reaches the model with the gateway's words
    const turns = await upstream();
    assert.equal(turns.length, 2, 'no side request reached Poe');
    const toolMsg = JSON.parse(turns[1].body).messages.find((m) => m.role === 'tool');
    assert.match(toolMsg.content, /web_search_20250305 cannot run on model grok/);
    assert.match(toolMsg.content, /grok-4/);
    assert.match(toolMsg.content, /gpt-5, claude-sonnet-4-5-20250929/);
});
