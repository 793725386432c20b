// poe-gateway: MIT licence. Regenerates the seed corpus in fuzz/corpus/<target>/ from the test assets: golden requests,
// responses and streams, the focused unit-test bodies, and the config files. Each seed starts with the target's prefix
// bytes (flags, split sizes; see the comment at the top of each fuzz_<target>.c). Run it from anywhere:
//     node fuzz/make-corpus.mjs
// It rewrites the seed files it owns (names starting "seed-") and leaves the rest of each directory alone (libFuzzer
// may add files there when run with -merge).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(new URL('..', import.meta.url).pathname);
const corpus = path.join(root, 'fuzz/corpus');
const asset = (...p) => path.join(root, 't/assets', ...p);
const dirs = (p) => fs.readdirSync(p).filter((d) => fs.statSync(path.join(p, d)).isDirectory()).sort();

const seeds = {};
function add(target, name, prefix, body) {
    const bytes = Buffer.concat([Buffer.from(prefix), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
    const hash = crypto.createHash('sha1').update(bytes).digest('hex').slice(0, 8);
    (seeds[target] ??= new Map()).set(`seed-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}-${hash}`, bytes);
}

// C string literals of the unit tests: the first argument of run(...), run_opts(...) or FEED(t, out, ...), adjacent
// literals joined, C escapes decoded; single-quoted JSON becomes double-quoted where the test does so (q()).
function cLiterals(file, callRe, quoted) {
    const src = fs.readFileSync(path.join(root, file), 'latin1');
    const out = [];
    for (const m of src.matchAll(callRe)) {
        let i = m.index + m[0].length, s = '';
        for (;;) {
            while (/\s/.test(src[i])) i++;
            if (src[i] !== '"') break;
            i++;
            while (src[i] !== '"') {
                if (src[i] === '\\') {
                    const c = src[++i];
                    if (c === 'n') s += '\n';
                    else if (c === 't') s += '\t';
                    else if (c === 'r') s += '\r';
                    else if (c === 'x') {
                        const hex = src.slice(i + 1).match(/^[0-9a-fA-F]{1,2}/)[0];
                        s += String.fromCharCode(parseInt(hex, 16));
                        i += hex.length;
                    } else if (c === '0') s += '\0';
                    else s += c;
                    i++;
                } else s += src[i++];
            }
            i++;
        }
        if (s) out.push(Buffer.from(quoted ? s.replace(/'/g, '"') : s, 'latin1'));
    }
    return out;
}

// ---- translate_request: flags byte (bot, echo_reasoning, minimal_schema, extra_body), then the body
for (const d of dirs(asset('cases'))) {
    const body = fs.readFileSync(asset('cases', d, 'anthropic.json'));
    for (const flags of [0x00, 0x01, 0x02, 0x0c, 0x13])
        add('translate_request', `${d}-${flags}`, [flags], body);
}
cLiterals('t/00unit/src/translate/translate_request.c', /\brun(?:_opts)?\(|^\s*\{(?="\{')/gm, true).forEach((b, i) => add('translate_request', `unit-${i}`, [i % 4], b));

// ---- translate_stream: flags (buffer_tools, stops, tools, end mode, commit point), 4 split sizes, Poe's bytes
for (const d of dirs(asset('streams'))) {
    const up = fs.readFileSync(asset('streams', d, 'upstream.sse'));
    const opts = fs.existsSync(asset('streams', d, 'options')) ? fs.readFileSync(asset('streams', d, 'options'), 'utf8') : '';
    let flags = 0;
    if (/buffer_tools=1/.test(opts)) flags |= 1;
    if (/^stop=/m.test(opts)) flags |= 2;
    if (/^tool=/m.test(opts)) flags |= 4;
    if (/end=reset/.test(opts)) flags |= 1 << 3;
    if (/end=none/.test(opts)) flags |= 3 << 3;
    if (/web_search=1/.test(opts)) flags |= 1 << 7;
    add('translate_stream', d, [flags, 7, 1, 30, 3], up);
    add('translate_stream', `${d}-bytewise`, [flags | (2 << 5), 0, 0, 0, 0], up);
}

// ---- translate_response: flags (buffer_tools, stops, tools, status of an error body), the body
for (const d of dirs(asset('responses'))) {
    const up = fs.readFileSync(asset('responses', d, 'upstream.json'));
    const opts = fs.existsSync(asset('responses', d, 'options')) ? fs.readFileSync(asset('responses', d, 'options'), 'utf8') : '';
    add('translate_response', d, [/web_search=1/.test(opts) ? 0x80 : 0x00], up);
    add('translate_response', `${d}-err`, [0x04 | (9 << 3)], up);
}

// ---- sse: flags (max_event, bytewise), 4 split sizes, a stream: Poe's and the gateway's
for (const d of dirs(asset('streams'))) {
    add('sse', `${d}-up`, [0, 5, 1, 64, 2], fs.readFileSync(asset('streams', d, 'upstream.sse')));
    const exp = path.join(asset('streams', d, 'expected.sse'));
    if (fs.existsSync(exp)) add('sse', `${d}-exp`, [4, 0, 0, 0, 0], fs.readFileSync(exp));
}
add('sse', 'crlf-cr-comments', [1, 1, 2, 3, 4], 'retry: 10\r\n:comment\r\nevent: a\rdata: x\r\ndata:y\r\rid: 3\n\ndata\n\n');

// ---- usage: 4 split sizes, an Anthropic response body or one event's data
for (const d of dirs(asset('responses'))) add('usage', d, [3, 1, 7, 2], fs.readFileSync(asset('responses', d, 'expected.json')));
for (const d of dirs(asset('streams'))) {
    const exp = asset('streams', d, 'expected.sse');
    if (!fs.existsSync(exp)) continue;
    const datas = fs.readFileSync(exp, 'utf8').split('\n').filter((l) => l.startsWith('data: ') && l.includes('usage'));
    datas.forEach((l, i) => add('usage', `${d}-${i}`, [1, 2, 3, 4], l.slice(6)));
}

// ---- reqbody: client bodies as they are (both route kinds see them first)
for (const d of dirs(asset('cases'))) add('reqbody', d, [], fs.readFileSync(asset('cases', d, 'anthropic.json')));
cLiterals('t/00unit/src/translate/translate_request.c', /\brun(?:_opts)?\(|^\s*\{(?="\{')/gm, true).forEach((b, i) => add('reqbody', `unit-${i}`, [], b));
add('reqbody', 'escaped-model', [], '{"model":"cl\\"au\\\\de\\u0041","max_tokens":1,"messages":[]}');
add('reqbody', 'two-models', [], '{"model":"a","messages":[],"model":"b"}');

// ---- config: the YAML files as they are
add('config', 'gateway.yaml', [], fs.readFileSync(path.join(root, 'conf/gateway.yaml.template')));
for (const f of fs.readdirSync(asset('')).filter((f) => f.endsWith('.yaml')).sort()) add('config', f, [], fs.readFileSync(asset(f)));
add('config', 'everything', [], `model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: https://localhost:9/
      api_key: os.environ/POE_API_KEY
      rpm: 10
      timeout: 1.5
      stream_timeout: 2
      max_retries: 0
      ssl_verify: false
      http2_prior_knowledge: true
      extra_headers:
        x-a: b
  - model_name: gpt-5
    litellm_params:
      model: openai/GPT-5
      api_base: http://127.0.0.1:1/v1
      api_key: os.environ/UNSET_KEY
      echo_reasoning: true
      minimal_schema: true
      buffer_tools: true
      extra_body:
        reasoning_effort: low
        nested: {a: [1, 2.5, "x", null, true]}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
router_settings:
  timeout: 30
  num_retries: 3
gateway:
  host: 0.0.0.0
  port: 4000
  threads: 2
  log_level: debug
  state_dir: /tmp/x
  public_url: https://gw.example.ts.net
  max_body_bytes: 1048576
  idle_timeout: 5
  graceful_timeout: 1
  tls: {cert_file: /nonexistent.pem, key_file: /nonexistent.key}
  ssl_ca_file: /nonexistent-ca.pem
  keys:
    - name: alice
      key: os.environ/ALICE_KEY
      models: [claude-*, gpt-5]
      rpm: 5
    - name: bob
      key: sk-literal-bob-0123456789
unknown_section: {a: 1}
`);
add('config', 'fallbacks', [], `model_list:
  - {model_name: claude-sonnet-4-5, litellm_params: {model: anthropic/claude-sonnet-4.5}, model_info: {max_input_tokens: 200000, id: x}}
  - {model_name: via-openai, litellm_params: {model: openai/Claude-Sonnet-4.5}}
  - {model_name: "claude-*", litellm_params: {model: anthropic/*}}
router_settings:
  num_retries: 1
  allowed_fails: 2
  cooldown_time: 0.5
  fallbacks: [{"claude-sonnet-4-5": [via-openai, claude-opus-4-1]}, {"claude-*": [via-openai]}]
litellm_settings:
  context_window_fallbacks:
    - claude-sonnet-4-5: [claude-sonnet-4-5-1m]
  drop_params: true
`);
add('config', 'anchors', [], 'a: &x [1, 2]\nb: *x\nmodel_list:\n  - &r {model_name: m, litellm_params: {model: openai/b, extra_body: {k: &v [1]}}}\n  - *r\n');

// ---- metrics: the number of workers, then records of 4 bytes (worker/key/status, model number, tokens/flags)
const rec = (worker, key, status, model, tokens = 5, flags = 0) => [worker | key << 2 | status << 5, model & 255, model >> 8, tokens | flags];
add('metrics', 'few', [1], [rec(0, 0, 0, 4), rec(1, 1, 0, 4), rec(1, 4, 3, 2), rec(0, 1, 2, 0), rec(0, 2, 4, 3, 7, 0x40),
    rec(1, 2, 6, 5)].flat());
// a wildcard's flood of model names from one key on every worker, then other keys' requests
add('metrics', 'flood', [3], [...Array.from({ length: 40 }, (_, i) => rec(i % 4, 1, 0, 0, 1, 0x80)), rec(0, 2, 0, 9), rec(1, 0, 3, 10),
    rec(2, 5, 0, 9, 2, 0x40), rec(3, 6, 5, 11)].flat());
// floods from every key, so that keys' (other) series fill the tables and the last series takes the rest
add('metrics', 'every-key', [1], Array.from({ length: 64 }, (_, i) => rec(i % 2, i % 8, i % 8, 0, 3, 0x80 | (i > 32 ? 0x40 : 0))).flat());

let total = 0;
for (const [target, files] of Object.entries(seeds)) {
    const dir = path.join(corpus, target);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(dir)) if (f.startsWith('seed-')) fs.unlinkSync(path.join(dir, f));
    for (const [name, bytes] of files) fs.writeFileSync(path.join(dir, name), bytes);
    total += files.size;
    console.log(`${target}: ${files.size} seeds`);
}
console.log(`${total} seeds in ${path.relative(process.cwd(), corpus) || '.'}`);
