// poe-gateway: MIT licence. gateway.auth: tailscale: a caller without a key is identified by tailscaled's LocalAPI whois
// (a fake LocalAPI on a unix socket here); the tailnet login becomes the key name, with that key's rules.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { MASTER_KEY, certs, request, sleep, startGateway, startMock, tmpdir } from './lib/harness.mjs';

let mock, gw, fake, whois = [], known = true;
const socketPath = path.join(tmpdir('pgw-ts-'), 'tailscaled.sock');
const config = (socket) => `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: MOCK
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  auth: tailscale
  tailscale_socket: ${socket}
  keys:
    - name: alice@example.com
      key: os.environ/UNUSED_ALICE_KEY
      models: ["claude-haiku-*"]
`;

before(async () => {
    fake = http.createServer((req, res) => {
        whois.push({ url: req.url, host: req.headers.host });
        if (!req.url.startsWith('/localapi/v0/whois?addr=') || !known) {
            res.writeHead(404).end('no match for IP:port');
            return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ Node: { Name: 'laptop.tail1234.ts.net.' }, UserProfile: { ID: 1, LoginName: 'alice@example.com', DisplayName: 'Alice' } }));
    });
    await new Promise((r) => fake.listen(socketPath, r));
    mock = await startMock();
    gw = await startGateway({ config: config(socketPath).replace('MOCK', mock.httpsUrl), env: { SSL_CERT_FILE: certs().ca } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
    fake.close();
});

const post = (model, headers = {}) => request(`${gw.url}/v1/messages`, { method: 'POST',
    headers: { 'anthropic-version': '2023-06-01', 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }) });

test('no key needed on the tailnet: the login is the key name, and the login\'s rules apply', async () => {
    const r = await post('claude-haiku-4-5');
    assert.equal(r.status, 200, r.body);
    assert.equal(whois.length, 1);
    assert.match(whois[0].url, /^\/localapi\/v0\/whois\?addr=127\.0\.0\.1:\d+$/);
    assert.equal(whois[0].host, 'local-tailscaled.sock');
    await sleep(100);
    assert.match(gw.output.stderr, /"POST \/v1\/messages HTTP\/1\.1" 200 route=claude-\* key=alice@example\.com/);

    const denied = await post('claude-opus-4-5');
    assert.equal(denied.status, 403);
    assert.match(JSON.parse(denied.body).error.message, /alice@example\.com/);
    for (let i = 0; i < 6; i++) assert.equal((await post('claude-haiku-4-5')).status, 200);
    assert.ok(whois.length <= 2, `${whois.length} whois calls: the answer is cached per peer address, per worker`);

    // a key still works, and wins over the tailnet identity
    assert.equal((await post('claude-opus-4-5', { 'x-api-key': MASTER_KEY })).status, 200);
    // /models and /health take the tailnet identity too
    assert.equal((await request(`${gw.url}/v1/models`)).status, 200);
});

test('a peer tailscaled does not know gets 401; without the socket, keys are required', async () => {
    known = false;
    const g = await startGateway({ config: config(socketPath).replace('MOCK', mock.httpsUrl), env: { SSL_CERT_FILE: certs().ca } });
    try {
        const r = await request(`${g.url}/v1/models`);
        assert.equal(r.status, 401);
        assert.equal(JSON.parse(r.body).error.type, 'authentication_error');
    } finally {
        await g.stop();
        known = true;
    }
    const absent = await startGateway({ config: config('/nonexistent/tailscaled.sock').replace('MOCK', mock.httpsUrl) });
    try {
        assert.equal((await request(`${absent.url}/v1/models`)).status, 401);
        assert.equal((await request(`${absent.url}/v1/models`, { headers: { 'x-api-key': MASTER_KEY } })).status, 200);
    } finally {
        await absent.stop();
    }
});
