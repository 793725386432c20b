// poe-gateway: MIT licence. Per-route settings honoured end to end (rpm, extra_headers, router_settings), and a graceful
// stop that lets a stream in flight finish.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { MASTER_KEY, anthropicStream, certs, defaultConfig, parseSSE, request, sleep, startGateway, startMock } from './lib/harness.mjs';

let mock, gw;
before(async () => {
    mock = await startMock();
    const config = `model_list:
  - model_name: claude-limited
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
      rpm: 2
  - model_name: claude-headers
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
      extra_headers:
        x-team: platform
        x-from-env: os.environ/TEAM_HEADER
  - model_name: claude-router-defaults
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
  - model_name: claude-h2c
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpUrl}
      api_key: os.environ/POE_API_KEY
      http2_prior_knowledge: true
  - model_name: claude-http1
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpUrl}
      api_key: os.environ/POE_API_KEY
  - model_name: claude-v1-base
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${mock.httpsUrl}/v1
      api_key: os.environ/POE_API_KEY
router_settings:
  num_retries: 0
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
`;
    gw = await startGateway({ config, env: { SSL_CERT_FILE: certs().ca, TEAM_HEADER: 'from-env' } });
});
after(async () => {
    const { code } = await gw.stop();
    await mock.stop();
    assert.equal(code, 0, gw.output.stderr.slice(-4000));
});
beforeEach(() => mock.reset());

const headers = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
const post = (g, model, extra = {}) => request(`${g.url}/v1/messages`, { method: 'POST', headers,
    body: JSON.stringify({ model, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], ...extra }) });

test('rpm: requests over the route limit get 429 rate_limit_error with Retry-After, without reaching Poe', async () => {
    assert.equal((await post(gw, 'claude-limited')).status, 200);
    assert.equal((await post(gw, 'claude-limited')).status, 200);
    const r = await post(gw, 'claude-limited');
    assert.equal(r.status, 429);
    assert.equal(JSON.parse(r.body).error.type, 'rate_limit_error');
    assert.ok(Number(r.headers['retry-after']) >= 1 && Number(r.headers['retry-after']) <= 30, r.headers['retry-after']);
    assert.equal((await mock.requests()).length, 2);
    // other routes are not affected
    assert.equal((await post(gw, 'claude-headers')).status, 200);
});

test('extra_headers reach Poe, literal and from the environment', async () => {
    assert.equal((await post(gw, 'claude-headers')).status, 200);
    const [seen] = await mock.requests();
    assert.equal(seen.headers['x-team'], 'platform');
    assert.equal(seen.headers['x-from-env'], 'from-env');
});

test('router_settings.num_retries applies to routes without max_retries', async () => {
    await mock.script({ match: { path: '/v1/messages' }, status: 503, body: '{"type":"error","error":{"type":"overloaded_error","message":"busy"}}' });
    const r = await post(gw, 'claude-router-defaults');
    assert.equal(r.status, 503);
    assert.equal((await mock.requests()).length, 1);
});

test('http:// api_base: HTTP/1.1 keep-alive by default, h2c with http2_prior_knowledge', async () => {
    assert.equal((await post(gw, 'claude-http1')).status, 200);
    assert.equal((await post(gw, 'claude-h2c')).status, 200);
    const [h1, h2] = await mock.requests();
    assert.equal(h1.protocol, 'HTTP/1.1');
    assert.equal(h1.tls, false);
    assert.equal(h2.protocol, 'HTTP/2');
    assert.equal(h2.tls, false);
});

test('an anthropic/ route whose api_base ends in /v1 (as LiteLLM configs write it) does not double the version', async () => {
    assert.equal((await post(gw, 'claude-v1-base')).status, 200);
    const [seen] = await mock.requests();
    assert.equal(seen.path, '/v1/messages');
});

test('SIGTERM: readiness turns 503, the stream in flight finishes, then exit 0', async () => {
    const g = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca }, args: ['--threads', '1'] });
    const chunks = anthropicStream({ blocks: [{ type: 'text', text: 'a slow answer that outlives the signal' }] });
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, chunks, chunk_delay_ms: 100 });
    const http2 = await import('node:http2');
    const http = await import('node:http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const readiness = () => new Promise((resolve, reject) => {
        http.get(`${g.url}/health/readiness`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
        }).on('error', reject);
    });
    assert.equal(await readiness(), 200); /* opens the keep-alive connection used after the signal */
    const session = http2.connect(g.url);
    const stream = session.request({ ':method': 'POST', ':path': '/v1/messages', ...headers });
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => (body += d));
    const ended = new Promise((resolve) => stream.on('end', resolve));
    stream.end(JSON.stringify({ model: 'claude-sonnet-4-5-20250929', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'x' }] }));
    await sleep(300);
    g.child.kill('SIGTERM');
    await sleep(100);
    // a new request on the open connection sees the stop (h2o sends GOAWAY: refused, or 503 readiness)
    const ready = await new Promise((resolve) => {
        try {
            const s = session.request({ ':path': '/health/readiness' });
            s.on('response', (h) => resolve(h[':status']));
            s.on('error', () => resolve('refused'));
        } catch (e) {
            resolve(/GOAWAY/.test(e.message) ? 'goaway' : e.message);
        }
    });
    assert.ok(ready === 503 || ready === 'refused' || ready === 'goaway', String(ready));
    // on a keep-alive connection opened before the signal, readiness now says 503
    assert.equal(await readiness(), 503);
    agent.destroy();
    // and a new connection is refused: the listener is closed
    await assert.rejects(request(`${g.url}/health/readiness`, { timeout: 1000 }));
    await ended;
    session.close();
    assert.equal(body, chunks.join(''));
    const { code } = await g.exited;
    assert.equal(code, 0);
    assert.match(g.output.stderr, /SIGTERM: stopping/);
});
