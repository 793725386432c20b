// poe-gateway: MIT licence. Typos do not pass: --check-config refuses unknown keys of the gateway's own sections (with the
// nearest known key) and a config without routes; a request field of the wrong type says which type it must be.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { authHeaders, certs, defaultConfig, request, runGateway, startGateway, startMock, tmpdir } from './lib/harness.mjs';

const KEYS = { POE_API_KEY: 'poe-0123456789abcdef-secret', LITELLM_MASTER_KEY: 'sk-master-0123456789abcdef-secret' };

function checkConfig(text) {
    const dir = tmpdir('pgw-typos-');
    fs.writeFileSync(path.join(dir, 'gateway.yaml'), text);
    return runGateway(['--check-config', '--config', 'gateway.yaml'], { cwd: dir, env: KEYS });
}

test('--check-config refuses an unknown gateway key and names the nearest one', async () => {
    const r = await checkConfig(defaultConfig(null, 'gateway:\n  prot: 4001\n  tls:\n    key_fille: /k\n'));
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /gateway\.yaml:\d+:3: gateway: unknown key 'prot'; did you mean 'port'\?\n/);
    assert.match(r.stderr, /gateway\.tls: unknown key 'key_fille'; did you mean 'key_file'\?\n/);
    // LiteLLM's own settings the gateway does not use stay warnings
    const litellm = await checkConfig(defaultConfig(null, 'litellm_settings:\n  drop_params: true\n' +
        'router_settings:\n  routing_strategy: simple-shuffle\n'));
    assert.equal(litellm.code, 0, litellm.stderr);
    assert.match(litellm.stderr, /router_settings: ignoring unknown key 'routing_strategy'/);
});

test('a start with an unknown gateway key warns with the nearest key and serves', async () => {
    const gw = await startGateway({ config: defaultConfig(null, 'gateway:\n  thread: 2\n') });
    try {
        assert.match(gw.output.stderr, /gateway: unknown key 'thread'; did you mean 'threads'\? \(ignored\)/);
        assert.equal((await request(`${gw.url}/health/liveliness`)).status, 200);
    } finally {
        assert.equal((await gw.stop()).code, 0);
    }
});

test('--check-config refuses a config without routes', async () => {
    for (const text of ['', 'gateway:\n  port: 4001\n', 'model_list: []\n']) {
        const r = await checkConfig(text);
        assert.equal(r.code, 2, `${JSON.stringify(text)}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /no routes: model_list is missing or empty/);
    }
});

let mock, gw;
before(async () => {
    mock = await startMock();
    gw = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
});

const post = (body) => request(`${gw.url}/v1/messages`, { method: 'POST', headers: authHeaders(), body: JSON.stringify(body) });

test('a request field of the wrong type says the type it must have, on both route kinds; a missing one is required', async () => {
    const messages = [{ role: 'user', content: 'hi' }];
    for (const model of ['claude-sonnet-4-5-20250929', 'gpt-5']) {
        const cases = [
            [{ model, max_tokens: '50', messages }, 'max_tokens: must be a number'],
            [{ model, messages }, 'max_tokens: field required (a number)'],
            [{ model, max_tokens: null, messages }, 'max_tokens: field required (a number)'],
            [{ model: 5, max_tokens: 50, messages }, 'model: must be a non-empty string'],
            [{ max_tokens: 50, messages }, 'model: field required (a string)'],
            [{ model, max_tokens: 50, messages: 'hi' }, 'messages: must be an array'],
        ];
        for (const [body, message] of cases) {
            const r = await post(body);
            assert.equal(r.status, 400, JSON.stringify(body));
            const e = JSON.parse(r.body);
            assert.equal(e.error.type, 'invalid_request_error');
            assert.equal(e.error.message, message, JSON.stringify(body));
        }
    }
    // deeper fields on a translated route keep their path and name the type
    const r = await post({ model: 'gpt-5', max_tokens: 50, temperature: '0.5', messages });
    assert.equal(JSON.parse(r.body).error.message, 'temperature: expected a number');
    const r2 = await post({ model: 'gpt-5', max_tokens: 50, messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] });
    assert.equal(JSON.parse(r2.body).error.message, 'messages.0.content.0.text: expected a string');
});
