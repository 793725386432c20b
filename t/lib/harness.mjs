// poe-gateway: MIT licence. Integration-test harness: spawns the gateway and the mock Poe on free ports, and speaks
// HTTP/1.1, h2c and h2 over TLS to them. Every helper fails loudly: a test never skips itself.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

export const SOURCE_DIR = process.env.PGW_SOURCE_DIR || path.resolve(new URL('../..', import.meta.url).pathname);
export const PGW_BIN = process.env.PGW_BIN || path.join(SOURCE_DIR, 'build/poe-gateway');
export const MOCK_POE_BIN = process.env.MOCK_POE_BIN || path.join(SOURCE_DIR, 'build/t/mock-poe/mock-poe');
export const MASTER_KEY = 'sk-test-master-0123456789abcdef';
export const POE_KEY = 'test-poe-key';

export function tmpdir(prefix = 'pgw-test-') {
    return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

let certDir;
/** Test CA and server certificate (made once per process by t/gen-cert.sh). */
export function certs() {
    if (!certDir) {
        certDir = tmpdir('pgw-certs-');
        execFileSync('bash', [path.join(SOURCE_DIR, 't/gen-cert.sh'), certDir], { stdio: 'inherit' });
    }
    return {
        dir: certDir,
        ca: path.join(certDir, 'ca.pem'),
        cert: path.join(certDir, 'server.pem'),
        key: path.join(certDir, 'server.key'),
    };
}

/** Spawns a program and resolves once a line of its output matches `re`, with the match. */
function spawnUntil(bin, args, opts, stream, re, what) {
    const child = spawn(bin, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8').on('data', (d) => (out.stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out.stderr += d));
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const ready = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what} did not start in 10 s:\n${out.stdout}${out.stderr}`)), 10000);
        const check = () => {
            const m = out[stream].match(re);
            if (m) {
                clearTimeout(timer);
                resolve(m);
            }
        };
        child[stream].on('data', check);
        exited.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${out.stdout}${out.stderr}`));
        });
    });
    return { child, out, exited, ready };
}

/** Starts the mock Poe: plain (HTTP/1.1 + h2c) and TLS (h2 + HTTP/1.1) listeners on free ports. */
export async function startMock({ apiKey = POE_KEY } = {}) {
    const c = certs();
    const p = spawnUntil(MOCK_POE_BIN, ['--http-port', '0', '--https-port', '0', '--cert', c.cert, '--key', c.key,
        '--api-key', apiKey], {}, 'stdout', /mock-poe listening http=(\d+) https=(\d+)/, 'mock-poe');
    const m = await p.ready;
    const mock = {
        httpPort: Number(m[1]),
        httpsPort: Number(m[2]),
        get httpUrl() { return `http://127.0.0.1:${this.httpPort}`; },
        get httpsUrl() { return `https://localhost:${this.httpsPort}`; },
        output: p.out,
        async control(method, pathname, body) {
            const res = await request(`${this.httpUrl}${pathname}`, { method, body: body && JSON.stringify(body) });
            if (res.status !== 200) throw new Error(`mock ${pathname}: ${res.status} ${res.body}`);
            return res.body ? JSON.parse(res.body) : null;
        },
        script(...responses) { return this.control('POST', '/_mock/script', { responses }); },
        requests() { return this.control('GET', '/_mock/requests'); },
        stats() { return this.control('GET', '/_mock/stats'); },
        reset() { return this.control('POST', '/_mock/reset'); },
        async stop() {
            p.child.kill('SIGTERM');
            return p.exited;
        },
    };
    return mock;
}

/**
 * Starts the gateway with `config` (YAML text) on a free port. `env` adds to a minimal environment (PATH, HOME in a
 * fresh temporary directory); the master key is set unless `env.LITELLM_MASTER_KEY` is null. `nofile` ({soft, hard})
 * starts it under that descriptor limit (RLIMIT_NOFILE), through `bash -c 'ulimit ...; exec ...'`, so that `child.pid`
 * is still the gateway's. `configFile` runs it on that file as it is instead of `config`; `port: null` leaves out the
 * `--port 0` (the gateway's own default applies: then the test must have made that port a free one).
 */
export async function startGateway({ config, configFile, env = {}, args = [], cwd, tls = false, nofile, port = 0 } = {}) {
    const dir = tmpdir('pgw-gw-');
    const configPath = configFile ?? path.join(dir, 'gateway.yaml');
    if (!configFile) fs.writeFileSync(configPath, config ?? defaultConfig());
    const fullEnv = { PATH: process.env.PATH, HOME: dir, LITELLM_MASTER_KEY: MASTER_KEY, POE_API_KEY: POE_KEY };
    for (const [k, v] of Object.entries(env)) {
        if (v === null) delete fullEnv[k];
        else fullEnv[k] = v;
    }
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) fullEnv[k] = process.env[k];
    let bin = PGW_BIN, argv = ['--config', configPath, ...(port === null ? [] : ['--port', String(port)]), '--threads', '2', ...args];
    if (nofile) {
        argv = ['-c', `ulimit -Sn ${Number(nofile.soft)} && ulimit -Hn ${Number(nofile.hard)} && exec "$0" "$@"`, bin, ...argv];
        bin = 'bash';
    }
    const p = spawnUntil(bin, argv, { env: fullEnv, cwd: cwd ?? dir }, 'stderr', /listening on (https?):\/\/([^ ]+):(\d+)/,
        'poe-gateway');
    const m = await p.ready;
    // openai/ routes (and anthropic/ ones, for the ledger's prices) make worker 0 fetch Poe's catalog at start; let that settle so tests see only their own requests
    const cfgText = fs.readFileSync(configPath, 'utf8');
    if (/model:\s*(openai|anthropic)\//.test(cfgText)) {
        for (let i = 0; i < 100 && !/\[catalog\] (loaded|cannot fetch|\S+ answered)/.test(p.out.stderr); i++)
            await new Promise((r) => setTimeout(r, 50));
    }
    return {
        dir,
        configPath,
        port: Number(m[3]),
        scheme: m[1],
        get url() { return `${this.scheme}://${this.scheme === 'https' ? 'localhost' : '127.0.0.1'}:${this.port}`; },
        output: p.out,
        child: p.child,
        exited: p.exited,
        /**
         * Stops the gateway and resolves its exit, after checking its whole output (the access log included) for the
         * keys it was given: the master and Poe keys, and every variable of its environment named *KEY* (#8). A leak
         * rejects, whatever the test was about.
         */
        async stop(signal = 'SIGTERM') {
            if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
            const exit = await p.exited;
            const text = p.out.stdout + p.out.stderr;
            for (const [name, value] of Object.entries(fullEnv))
                if (/KEY/.test(name) && typeof value === 'string' && value.length >= 8 && text.includes(value))
                    throw new Error(`the gateway wrote the value of ${name} to its output:\n${text.slice(Math.max(0, text.indexOf(value) - 300), text.indexOf(value) + 100)}`);
            return exit;
        },
    };
}

/** A gateway config routing to the mock: pass-through for claude-*, translation for gpt-5. */
export function defaultConfig(mock, extra = '') {
    const https = mock ? mock.httpsUrl : 'https://localhost:9';
    return `model_list:
  - model_name: claude-sonnet-4-5-20250929
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: ${https}
      api_key: os.environ/POE_API_KEY
  - model_name: claude-haiku-4-5-20251001
    litellm_params:
      model: anthropic/claude-haiku-4.5
      api_base: ${https}
      api_key: os.environ/POE_API_KEY
  - model_name: gpt-5
    litellm_params:
      model: openai/GPT-5
      api_base: ${https}/v1
      api_key: os.environ/POE_API_KEY
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: ${https}
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
${extra}`;
}

/**
 * One HTTP request. `protocol`: 'h1' (default), 'h2c' (HTTP/2 prior knowledge) or 'h2' (TLS with ALPN; trusts the
 * test CA). Resolves {status, headers, body, protocol}.
 */
export function request(url, { method = 'GET', headers = {}, body, protocol = 'h1', timeout = 30000 } = {}) {
    const u = new URL(url);
    if (protocol === 'h1') {
        return new Promise((resolve, reject) => {
            const mod = u.protocol === 'https:' ? https : http;
            const req = mod.request(u, { method, headers, ca: u.protocol === 'https:' ? fs.readFileSync(certs().ca) : undefined,
                timeout, agent: false }, (res) => {
                let data = '';
                res.setEncoding('utf8');
                res.on('data', (d) => (data += d));
                res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data, protocol: `HTTP/${res.httpVersion}` }));
                res.on('error', reject);
            });
            req.on('timeout', () => req.destroy(new Error('timeout')));
            req.on('error', reject);
            if (body !== undefined) req.write(body);
            req.end();
        });
    }
    return new Promise((resolve, reject) => {
        const origin = `${protocol === 'h2' ? 'https' : 'http'}://${u.host}`;
        const session = http2.connect(origin, protocol === 'h2' ? { ca: fs.readFileSync(certs().ca) } : {});
        session.on('error', reject);
        const stream = session.request({ ':method': method, ':path': u.pathname + u.search, ...lowerKeys(headers) });
        stream.setTimeout(timeout, () => stream.close(http2.constants.NGHTTP2_CANCEL));
        let status, resHeaders, data = '';
        stream.on('response', (h) => {
            status = h[':status'];
            resHeaders = h;
        });
        stream.setEncoding('utf8');
        stream.on('data', (d) => (data += d));
        stream.on('end', () => {
            session.close();
            resolve({ status, headers: resHeaders, body: data, protocol: 'HTTP/2', alpn: session.alpnProtocol });
        });
        stream.on('error', (e) => {
            session.close();
            reject(e);
        });
        if (body !== undefined) stream.write(body);
        stream.end();
    });
}

function lowerKeys(h) {
    return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

/** The three ways a client reaches the gateway: for a plain gateway h1 and h2c; for a TLS one h1 and h2. */
export function protocolsFor(gw) {
    return gw.scheme === 'https' ? ['h1', 'h2'] : ['h1', 'h2c'];
}

/** Runs the gateway binary to completion (for --check-config, --version, ...). */
export function runGateway(args, { env = {}, cwd } = {}) {
    return new Promise((resolve) => {
        const fullEnv = { PATH: process.env.PATH, HOME: tmpdir('pgw-home-'), ...env };
        for (const k of Object.keys(fullEnv)) if (fullEnv[k] === null) delete fullEnv[k];
        for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) fullEnv[k] = process.env[k];
        const child = spawn(PGW_BIN, args, { env: fullEnv, cwd: cwd ?? SOURCE_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '', stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
}

export const authHeaders = (key = MASTER_KEY) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' });

/**
 * The chunks of an Anthropic SSE stream for `blocks` (text or tool_use), each event its own chunk, as Poe's
 * /v1/messages would send them.
 */
export function anthropicStream({ id = 'msg_test', model = 'claude-sonnet-4-5-20250929', blocks, stopReason = 'end_turn',
    usage = { input_tokens: 50, output_tokens: 12, cache_read_input_tokens: 40, cache_creation_input_tokens: 5 } }) {
    const ev = (name, data) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    const out = [ev('message_start', { type: 'message_start', message: { id, type: 'message', role: 'assistant', model, content: [],
        stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } })];
    blocks.forEach((b, index) => {
        if (b.type === 'text') {
            out.push(ev('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }));
            for (const piece of b.text.match(/.{1,8}/gs) ?? [''])
                out.push(ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } }));
        } else {
            out.push(ev('content_block_start', { type: 'content_block_start', index,
                content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }));
            const json = JSON.stringify(b.input);
            for (const piece of json.match(/.{1,10}/gs))
                out.push(ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: piece } }));
        }
        out.push(ev('content_block_stop', { type: 'content_block_stop', index }));
    });
    out.push(ev('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null },
        usage: { output_tokens: usage.output_tokens } }));
    out.push(ev('message_stop', { type: 'message_stop' }));
    return out;
}

/** Parses an SSE body into [{event, data}] (data parsed as JSON). */
export function parseSSE(text) {
    const events = [];
    for (const block of text.split(/\n\n/)) {
        if (!block.trim()) continue;
        let event = '', data = '';
        for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        let parsed = data;
        try { parsed = JSON.parse(data); } catch { /* leave as text */ }
        events.push({ event, data: parsed });
    }
    return events;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One url_citation annotation, as OpenAI-compatible APIs attach the pages a searching answer cites to its message or delta. */
export const urlCitation = (url, title, start = 0, end = 0) =>
    ({ type: 'url_citation', url_citation: { url, title, start_index: start, end_index: end } });

/** The chunks of a chat/completions stream: `deltas` are choices[0].delta objects; then finish, usage, [DONE]. */
export function openaiStream({ deltas, finish = 'stop', usage = { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150 },
    model = 'gpt-5', done = true }) {
    const base = { id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 1764150000, model };
    const out = [`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant' }, finish_reason: null }] })}\n\n`];
    for (const d of deltas) out.push(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: d, finish_reason: null }] })}\n\n`);
    if (finish) out.push(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: finish }] })}\n\n`);
    if (usage) out.push(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`);
    if (done) out.push('data: [DONE]\n\n');
    return out;
}
