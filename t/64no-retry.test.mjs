// poe-gateway: MIT licence. Errors a retry cannot fix (no Poe key, Poe refusing the gateway's key, a route without its
// api_base) reach the user at once: the answer says x-should-retry: false, and the official SDK and the real Claude
// Code CLI send the request once and show the message that names the fix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { MASTER_KEY, SOURCE_DIR, authHeaders, certs, defaultConfig, request, startGateway, startMock, tmpdir } from './lib/harness.mjs';
import { CLAUDE, claudeMissing } from './lib/claude.mjs';

const messagesLines = (gw) => (gw.output.stderr.match(/\[access\] [^\n]*"POST \/v1\/messages[^\n]*/g) || []);

let mock, noKey, refused;
before(async () => {
    assert.equal(claudeMissing(), null);
    mock = await startMock({ apiKey: 'the-key-poe-knows-0123456789' });
    // no POE_API_KEY at all; and one Poe does not know (the mock refuses it with a 401)
    noKey = await startGateway({ config: defaultConfig(mock), env: { POE_API_KEY: null, SSL_CERT_FILE: certs().ca } });
    refused = await startGateway({ config: defaultConfig(mock), env: { POE_API_KEY: 'a-key-poe-refuses-0123456789',
        SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await noKey.stop()).code, 0);
    assert.equal((await refused.stop()).code, 0);
    await mock.stop();
});

/** One request through the official SDK with its default retries: the error it throws, and how many times it asked. */
async function sdkError(gw, model) {
    let attempts = 0;
    const client = new Anthropic({ apiKey: MASTER_KEY, baseURL: gw.url, maxRetries: 2,
        fetch: (...args) => { attempts++; return fetch(...args); } });
    try {
        await client.messages.create({ model, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
    } catch (e) {
        return { e, attempts };
    }
    assert.fail('the request succeeded');
}

test('no Poe key: 503 with x-should-retry: false; the SDK asks once and shows the fix', async () => {
    for (const model of ['claude-sonnet-4-5-20250929', 'gpt-5']) {
        const { e, attempts } = await sdkError(noKey, model);
        assert.equal(attempts, 1, 'the SDK did not retry');
        assert.equal(e.status, 503);
        assert.equal(e.headers.get('x-should-retry'), 'false');
        assert.equal(e.error.error.type, 'api_error');
        assert.match(e.error.error.message, /set the environment variable POE_API_KEY/);
    }
});

test('Poe refusing the gateway\'s key: 502 with x-should-retry: false, sent once, on both route kinds', async () => {
    const upstream = (await mock.requests()).filter((q) => q.path !== '/v1/models').length;
    for (const model of ['claude-sonnet-4-5-20250929', 'gpt-5']) {
        const { e, attempts } = await sdkError(refused, model);
        assert.equal(attempts, 1, 'the SDK did not retry');
        assert.equal(e.status, 502);
        assert.equal(e.headers.get('x-should-retry'), 'false');
        assert.match(e.error.error.message, /Poe refused the API key configured for route .*; check POE_API_KEY/);
    }
    assert.equal((await mock.requests()).filter((q) => q.path !== '/v1/models').length - upstream, 2,
        'the gateway did not retry either');
});

test('Poe refusing the key inside a 200 on an openai/ route: 502 with x-should-retry: false, whole or streamed', async () => {
    const gw = await startGateway({ config: defaultConfig(mock), env: { POE_API_KEY: 'the-key-poe-knows-0123456789',
        SSL_CERT_FILE: certs().ca } });
    try {
        const error = JSON.stringify({ error: { type: 'authentication_error', message: 'Invalid API key' } });
        const match = { path: '/v1/chat/completions' };
        await mock.script({ match, body: error },
            { match, headers: { 'content-type': 'text/event-stream' }, chunks: [`data: ${error}\n\n`] });
        for (const stream of [false, true]) {
            const r = await request(`${gw.url}/v1/messages`, { method: 'POST', headers: authHeaders(),
                body: JSON.stringify({ model: 'gpt-5', max_tokens: 16, stream, messages: [{ role: 'user', content: 'hi' }] }) });
            assert.equal(r.status, 502, r.body);
            assert.equal(r.headers['x-should-retry'], 'false', `stream: ${stream}`);
            assert.match(JSON.parse(r.body).error.message, /Poe refused the API key configured for route gpt-5/);
        }
    } finally {
        await mock.reset();
        assert.equal((await gw.stop()).code, 0);
    }
});

test('errors a retry can fix keep their retries: a 529 from Poe has no x-should-retry', async () => {
    const gw = await startGateway({ config: defaultConfig(mock), env: { POE_API_KEY: 'the-key-poe-knows-0123456789',
        SSL_CERT_FILE: certs().ca } });
    try {
        await mock.script(...Array(3).fill({ match: { path: '/v1/messages' }, status: 529,
            body: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }) }));
        const client = new Anthropic({ apiKey: MASTER_KEY, baseURL: gw.url, maxRetries: 0 });
        const e = await client.messages.create({ model: 'claude-sonnet-4-5-20250929', max_tokens: 16,
            messages: [{ role: 'user', content: 'hi' }] }).catch((err) => err);
        assert.equal(e.status, 529);
        assert.equal(e.headers.get('x-should-retry'), null);
    } finally {
        await mock.reset();
        assert.equal((await gw.stop()).code, 0);
    }
});

/**
 * Runs the real Claude Code CLI once against `gw` with `token`; a retry is the failure, so Claude Code is stopped as soon
 * as the gateway sees a second request rather than after its minutes of back-off. Resolves {code, out, requests}.
 */
async function claudeOnce(gw, token) {
    const work = tmpdir('pgw-cc-work-'), home = tmpdir('pgw-cc-home-');
    const before = messagesLines(gw).length;
    const child = spawn(CLAUDE, ['-p', 'hi', '--model', 'claude-sonnet-4-5-20250929'], {
        cwd: work,
        env: { PATH: process.env.PATH, HOME: home, ANTHROPIC_BASE_URL: gw.url, ANTHROPIC_AUTH_TOKEN: token,
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const watch = setInterval(() => { if (messagesLines(gw).length - before > 1) child.kill('SIGKILL'); }, 20);
    const code = await new Promise((resolve) => child.on('exit', (c, sig) => resolve(c ?? sig)));
    clearInterval(watch);
    // the access line is written as the request is disposed, which may come just after Claude Code has its answer
    for (let i = 0; i < 100 && messagesLines(gw).length === before; i++) await new Promise((r) => setTimeout(r, 20));
    return { code, out, requests: messagesLines(gw).slice(before) };
}

test('the real Claude Code CLI shows the missing Poe key at once, after one request', async () => {
    const { code, out, requests } = await claudeOnce(noKey, MASTER_KEY);
    assert.equal(requests.length, 1, `Claude Code retried:\n${requests.join('\n')}`);
    assert.equal(code, 1, out);
    assert.match(out, /API Error: 503 .*set the environment variable POE_API_KEY/);
});

test('a key the gateway does not know: 401 with x-should-retry: false; Claude Code says so after one request', async () => {
    const client = new Anthropic({ apiKey: 'sk-not-a-key-of-this-gateway', baseURL: noKey.url, maxRetries: 2 });
    const e = await client.models.list().catch((err) => err);
    assert.equal(e.status, 401);
    assert.equal(e.headers.get('x-should-retry'), 'false');
    const { code, out, requests } = await claudeOnce(noKey, 'sk-not-a-key-of-this-gateway');
    assert.equal(requests.length, 1, `Claude Code retried:\n${requests.join('\n')}`);
    assert.equal(code, 1, out);
    assert.match(out, /API Error: 401 invalid API key/);
});
