// poe-gateway: MIT licence. The real Claude Code CLI completes a tool round trip through the pass-through route, through a
// translation route, and through a fallback when its route is overloaded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, POE_KEY, SOURCE_DIR, anthropicStream, certs, defaultConfig, openaiStream, request, startGateway, startMock, tmpdir } from './lib/harness.mjs';
import { claudeMissing, runClaude } from './lib/claude.mjs';

let mock, gw;
before(async () => {
    assert.equal(claudeMissing(), null);
    mock = await startMock();
    gw = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});

/* one prompt with Write and Read allowed, through `url` */
function claude(prompt, cwd, home, model = 'claude-sonnet-4-5-20250929', url = gw.url) {
    return runClaude(['-p', prompt, '--model', model, '--allowedTools', 'Write Read', '--permission-mode', 'acceptEdits'],
        { cwd, env: { HOME: home, ANTHROPIC_BASE_URL: url, ANTHROPIC_AUTH_TOKEN: MASTER_KEY } });
}

test('Claude Code writes a file through a scripted Write tool call, then prints the final text', async () => {
    const work = tmpdir('pgw-cc-work-');
    const home = tmpdir('pgw-cc-home-');
    const target = path.join(work, 'hello.txt');
    const content = 'hello from poe-gateway\n';
    const finalText = 'Created hello.txt with the greeting.';
    // the upstream model name after the route's rename: only the conversation's turns take these answers
    const match = { path: '/v1/messages', model: 'claude-sonnet-4.5' };
    await mock.script(
        { match, headers: { 'content-type': 'text/event-stream' }, chunk_delay_ms: 2,
            chunks: anthropicStream({ stopReason: 'tool_use',
                blocks: [{ type: 'text', text: 'I will create the file.' },
                    { type: 'tool_use', id: 'toolu_01', name: 'Write', input: { file_path: target, content } }] }) },
        { match, headers: { 'content-type': 'text/event-stream' }, chunk_delay_ms: 2,
            chunks: anthropicStream({ blocks: [{ type: 'text', text: finalText }] }) },
    );

    const r = await claude('create hello.txt containing hi', work, home);
    assert.equal(r.code, 0, `claude exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.equal(fs.readFileSync(target, 'utf8'), content);
    assert.ok(r.stdout.includes(finalText), r.stdout);

    const turns = (await mock.requests()).filter((q) => q.path.startsWith('/v1/messages') && JSON.parse(q.body).model === 'claude-sonnet-4.5');
    assert.equal(turns.length, 2);
    const second = JSON.parse(turns[1].body);
    const last = second.messages.at(-1);
    const result = last.content.find((b) => b.type === 'tool_result');
    assert.equal(result.tool_use_id, 'toolu_01');
    for (const q of await mock.requests()) {
        assert.ok(!JSON.stringify(q).includes(MASTER_KEY), 'the master key reached Poe');
        if (q.path === '/v1/models')
            continue; /* the catalog: no key at all */
        assert.equal(q.headers['x-api-key'], POE_KEY);
        assert.ok(!JSON.stringify(q).includes(MASTER_KEY), 'the master key reached Poe');
    }
    assert.match(turns[0].headers['anthropic-beta'] ?? '', /claude-code/);
});

test('Claude Code through a translation (openai/) route: Write, then Read, then the final answer', async () => {
    const work = tmpdir('pgw-cc-work-');
    const home = tmpdir('pgw-cc-home-');
    const target = path.join(work, 'notes.txt');
    const content = 'written through chat/completions\n';
    const finalText = 'The file says: written through chat/completions';
    const match = { path: '/v1/chat/completions', model: 'gpt-5' };
    const sse = { 'content-type': 'text/event-stream' };
    await mock.script(
        { match, headers: sse, chunk_delay_ms: 2, chunks: openaiStream({ finish: 'tool_calls', deltas: [
            { content: 'Writing the file.' },
            { tool_calls: [{ index: 0, id: 'call:w1', type: 'function', function: { name: 'Write', arguments: '' } }] },
            { tool_calls: [{ index: 0, function: { arguments: JSON.stringify({ file_path: target, content }) } }] }] }) },
        { match, headers: sse, chunk_delay_ms: 2, chunks: openaiStream({ finish: 'tool_calls', deltas: [
            { tool_calls: [{ index: 0, id: 'call:r1', type: 'function', function: { name: 'Read', arguments: JSON.stringify({ file_path: target }) } }] }] }) },
        { match, headers: sse, chunk_delay_ms: 2, chunks: openaiStream({ deltas: [{ content: finalText }] }) },
    );
    const r = await claude('write notes.txt, read it back, and tell me what it says', work, home, 'gpt-5');
    assert.equal(r.code, 0, `claude exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.equal(fs.readFileSync(target, 'utf8'), content);
    assert.ok(r.stdout.includes(finalText), r.stdout);

    const turns = (await mock.requests()).filter((q) => q.path === '/v1/chat/completions' && JSON.parse(q.body).model === 'gpt-5');
    assert.equal(turns.length, 3);
    const third = JSON.parse(turns[2].body).messages;
    const toolMsgs = third.filter((m) => m.role === 'tool');
    assert.equal(toolMsgs.length, 2);
    assert.equal(toolMsgs[0].tool_call_id, 'call_w1');
    assert.equal(toolMsgs[1].tool_call_id, 'call_r1');
    assert.ok(toolMsgs[1].content.includes('written through chat/completions'), toolMsgs[1].content);
    for (const q of turns) {
        assert.equal(q.headers.authorization, `Bearer ${POE_KEY}`);
        const b = JSON.parse(q.body);
        assert.equal(b.context_management, undefined);
        assert.ok(!JSON.stringify(b).includes('x-anthropic-billing-header'), 'the billing line reached Poe');
    }
});

test('Claude Code, its route answering 529: the fallback (an openai/ route) answers both turns, and the user never sees an error', async () => {
    const fgw = await startGateway({ env: { SSL_CERT_FILE: certs().ca }, config: defaultConfig(mock,
        'router_settings:\n  num_retries: 0\n  fallbacks:\n    - claude-sonnet-4-5-20250929: [gpt-5]\n') });
    try {
        await mock.control('POST', '/_mock/reset');
        const work = tmpdir('pgw-cc-work-');
        const home = tmpdir('pgw-cc-home-');
        const target = path.join(work, 'fallback.txt');
        const content = 'written by the fallback\n';
        const finalText = 'Done: fallback.txt is written.';
        const sse = { 'content-type': 'text/event-stream' };
        const overloaded = JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
        await mock.script(
            { match: { path: '/v1/messages', model: 'claude-sonnet-4.5' }, status: 529, body: overloaded, repeat: 2 },
            { match: { path: '/v1/chat/completions', model: 'gpt-5' }, headers: sse, chunk_delay_ms: 2, chunks: openaiStream({
                finish: 'tool_calls', deltas: [{ tool_calls: [{ index: 0, id: 'call_f1', type: 'function',
                    function: { name: 'Write', arguments: JSON.stringify({ file_path: target, content }) } }] }] }) },
            { match: { path: '/v1/chat/completions', model: 'gpt-5' }, headers: sse, chunk_delay_ms: 2,
                chunks: openaiStream({ deltas: [{ content: finalText }] }) },
        );
        const r = await claude('create fallback.txt', work, home, 'claude-sonnet-4-5-20250929', fgw.url);
        assert.equal(r.code, 0, `claude exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
        assert.equal(fs.readFileSync(target, 'utf8'), content);
        assert.ok(r.stdout.includes(finalText), r.stdout);
        assert.doesNotMatch(r.stdout + r.stderr, /overload|529|retry|error/i);

        const reqs = (await mock.requests()).filter((q) => q.path !== '/v1/models');
        const primary = reqs.filter((q) => q.path === '/v1/messages' && JSON.parse(q.body).model === 'claude-sonnet-4.5');
        const fallback = reqs.filter((q) => q.path === '/v1/chat/completions' && JSON.parse(q.body).model === 'gpt-5');
        assert.equal(primary.length, 2, 'each turn went to the primary route first');
        assert.equal(fallback.length, 2);
        const toolMsg = JSON.parse(fallback[1].body).messages.find((m) => m.role === 'tool');
        assert.equal(toolMsg.tool_call_id, 'call_f1');
        const metrics = await request(`${fgw.url}/metrics`, { headers: { 'x-api-key': MASTER_KEY } });
        assert.match(metrics.body, /^poe_gateway_fallbacks_total\{from="claude-sonnet-4-5-20250929",to="gpt-5"\} 2$/m);
    } finally {
        assert.equal((await fgw.stop()).code, 0);
    }
});
