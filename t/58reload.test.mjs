// poe-gateway: MIT licence. SIGHUP reloads the configuration: new requests see new routes and keys, a stream in flight
// finishes on the old ones, and a broken file is refused with the running configuration kept.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { MASTER_KEY, anthropicStream, certs, request, sleep, startGateway, startMock } from './lib/harness.mjs';

let mock, gw;
const route = (name) => `  - model_name: ${name}
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: MOCK
      api_key: os.environ/POE_API_KEY
`;
const configA = () => `model_list:\n${route('claude-a')}general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n` +
    'gateway:\n  keys:\n    - name: alice\n      key: alice-key-0123456789\n';
const configB = () => `model_list:\n${route('claude-b')}${route('claude-c')}general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n` +
    'gateway:\n  keys:\n    - name: bob\n      key: bob-key-0123456789\n';

before(async () => {
    mock = await startMock();
    gw = await startGateway({ config: configA().replaceAll('MOCK', mock.httpsUrl), env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0, gw.output.stderr.slice(-2000));
    await mock.stop();
});

const post = (key, model, stream = false) => request(`${gw.url}/v1/messages`, { method: 'POST',
    headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 8, stream, messages: [{ role: 'user', content: 'hi' }] }) });

async function reload(text) {
    const before = (gw.output.stderr.match(/reload(ed| refused)/g) || []).length;
    fs.writeFileSync(gw.configPath, text);
    gw.child.kill('SIGHUP');
    for (let i = 0; i < 100; i++) {
        if ((gw.output.stderr.match(/reload(ed| refused)/g) || []).length > before) return;
        await sleep(20);
    }
    throw new Error('no reload line in the log');
}

test('SIGHUP: new routes and keys for new requests; the stream in flight finishes on the old ones', async () => {
    assert.equal((await post('alice-key-0123456789', 'claude-a')).status, 200);
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'this stream began before the reload' }] });
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks, chunk_delay_ms: 100 });
    const inFlight = post('alice-key-0123456789', 'claude-a', true);
    await sleep(300);

    await reload(configB().replaceAll('MOCK', mock.httpsUrl));
    assert.match(gw.output.stderr, /reloaded .*: 2 routes, 1 keys \(configuration 2\)/);
    await sleep(100); // the workers pick it up on their next loop turn
    assert.equal((await post('bob-key-0123456789', 'claude-b')).status, 200);
    assert.equal((await post(MASTER_KEY, 'claude-c')).status, 200);
    assert.equal((await post(MASTER_KEY, 'claude-a')).status, 404);
    assert.equal((await post('alice-key-0123456789', 'claude-b')).status, 401);
    const ready = JSON.parse((await request(`${gw.url}/health/readiness`)).body);
    assert.equal(ready.routes, 2);

    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.equal(r.body, chunks.join(''), 'the old stream completed untouched');
});

test('a broken file is refused with the error logged; the running configuration stays', async () => {
    await reload('model_list:\n  - model_name: x\n    litellm_params:\n      model: bedrock/x\n');
    assert.match(gw.output.stderr, /reload refused, the running configuration stays: .*gateway\.yaml:4:\d+: /);
    assert.equal((await post(MASTER_KEY, 'claude-b')).status, 200);
    // a setting that needs new listeners is kept, with a warning
    await reload(configB().replaceAll('MOCK', mock.httpsUrl) + '  max_body_bytes: 1024\n  max_connections: 5\n');
    assert.match(gw.output.stderr, /gateway\.max_body_bytes changed; it takes effect only at a restart/);
    assert.match(gw.output.stderr, /gateway\.max_connections changed; it takes effect only at a restart/);
});

test('settings read once at start are kept by a reload, and the log says which: a changed ssl_ca_file among them', async () => {
    // the upstream clients load their CA when the workers start: a new ssl_ca_file was ignored while the log said
    // "reloaded" and nothing else
    const text = configB().replaceAll('MOCK', mock.httpsUrl) + `  ssl_ca_file: ${certs().ca}\n  graceful_timeout: 7\n`;
    await reload(text);
    assert.match(gw.output.stderr, /reload: gateway\.ssl_ca_file changed; it takes effect only at a restart/);
    assert.match(gw.output.stderr, /reload: gateway\.graceful_timeout changed; it takes effect only at a restart/);
    const line = gw.output.stderr.split('\n').filter((l) => /reloaded /.test(l)).at(-1);
    assert.match(line, /\(configuration \d+\); kept until a restart: ssl_ca_file, graceful_timeout$/);
    assert.equal((await post(MASTER_KEY, 'claude-b')).status, 200, 'the upstream client keeps the CA it started with');
    // back to the values the gateway started with: nothing is kept
    await reload(configB().replaceAll('MOCK', mock.httpsUrl));
    assert.match(gw.output.stderr.split('\n').filter((l) => /reloaded /.test(l)).at(-1), /\(configuration \d+\)$/);
});
