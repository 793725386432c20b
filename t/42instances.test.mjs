// poe-gateway: MIT licence. One gateway per address: a second process on a port a gateway listens on exits 1 rather than
// sharing its connections through SO_REUSEPORT, and a new gateway can take the port while the old one drains.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, PGW_BIN, anthropicStream, authHeaders, certs, defaultConfig, request, sleep, startGateway, startMock,
    tmpdir } from './lib/harness.mjs';

let mock;
before(async () => { mock = await startMock(); });
after(async () => { await mock.stop(); });

/**
 * Starts a second gateway on `port` with its own master key and no Poe key (the case of the report), and resolves as soon
 * as it either exits or says it listens: {code, listening, stderr, child}.
 */
function startSecond(port, config) {
    const dir = tmpdir('pgw-second-');
    fs.writeFileSync(path.join(dir, 'gateway.yaml'), config);
    const env = { PATH: process.env.PATH, HOME: dir, LITELLM_MASTER_KEY: 'sk-second-gateway-0123456789abcdef' };
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
    const child = spawn(PGW_BIN, ['--config', 'gateway.yaml', '--port', String(port), '--threads', '2'],
        { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    return new Promise((resolve) => {
        child.stderr.setEncoding('utf8').on('data', (d) => {
            stderr += d;
            if (/listening on/.test(stderr)) resolve({ code: null, listening: true, stderr, child });
        });
        child.on('exit', (code) => resolve({ code, listening: false, stderr, child }));
    });
}

async function stopSecond(second) {
    if (second.child.exitCode !== null || second.child.signalCode !== null) return;
    const exited = new Promise((resolve) => second.child.on('exit', resolve));
    second.child.kill('SIGTERM');
    await exited;
}

test('a second gateway on the port of a running one exits 1 and takes none of its connections', async () => {
    const gw = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca } });
    let second;
    try {
        second = await startSecond(gw.port, defaultConfig(mock));
        assert.equal(second.listening, false, `the second gateway listens beside the first:\n${second.stderr}`);
        assert.equal(second.code, 1, second.stderr);
        assert.match(second.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${gw.port}: Address already in use`));
        // every request reaches the first gateway, on new connections each time
        const statuses = [];
        for (let i = 0; i < 12; i++)
            statuses.push((await request(`${gw.url}/v1/models`, { headers: { 'x-api-key': MASTER_KEY } })).status);
        assert.deepEqual(statuses, Array(12).fill(200));
    } finally {
        if (second) await stopSecond(second);
        assert.equal((await gw.stop()).code, 0);
    }
});

test('a gateway started while the old one drains takes the port; the old one finishes its stream', async () => {
    const old = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca },
        args: ['--threads', '1'] });
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'an answer that outlives the restart '.repeat(6) }] });
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks,
        chunk_delay_ms: 100 });
    const stream = request(`${old.url}/v1/messages`, { method: 'POST', headers: authHeaders(),
        body: JSON.stringify({ model: 'claude-sonnet-4-5-20250929', max_tokens: 16, stream: true,
            messages: [{ role: 'user', content: 'x' }] }) });
    while ((await mock.requests()).length === 0) await sleep(20);
    old.child.kill('SIGTERM');
    // the old gateway closes its listeners at once; wait for that, not for a time
    for (;;) {
        try { await request(`${old.url}/health/liveliness`, { timeout: 1000 }); } catch { break; }
        await sleep(20);
    }
    const fresh = await startSecond(old.port, defaultConfig(mock));
    try {
        assert.equal(fresh.listening, true, fresh.stderr);
        assert.equal(old.child.exitCode, null, 'the old gateway was still draining when the new one started');
        const live = await request(`${old.url}/health/liveliness`);
        assert.equal(live.status, 200);
        const r = await stream;
        assert.equal(r.status, 200);
        assert.equal(r.body, chunks.join(''));
        assert.equal((await old.exited).code, 0);
    } finally {
        await stopSecond(fresh);
    }
});
