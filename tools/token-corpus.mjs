// poe-gateway: MIT licence. Builds t/assets/token-corpus/: real Claude Code request bodies, and how many tokens a model
// reads from each once the gateway has translated it for an openai/ route, counted with real tokenizers. The unit test
// t/00unit/src/translate/estimate.c checks the gateway's estimate against these counts (docs/mapping.md#the-token-estimate).
//
//   cmake --build build                         # the gateway and the mock Poe
//   npm install --prefix /tmp/tok @anthropic-ai/tokenizer@0.0.4 gpt-tokenizer@3.4.0
//   TOKENIZERS=/tmp/tok/node_modules node tools/token-corpus.mjs
//
// How: the real Claude Code CLI (t/node_modules) runs a few sessions against the gateway and the mock Poe, on a
// pass-through route, so the mock records each body as Claude Code sent it (the mock's scripted answers make it call
// Write and Read on files of several kinds: code, lock files full of hashes, CJK and emoji prose, a hex dump, a server
// log; and one longer session reading six files in turn). Each body is then
// sent to the gateway's openai/ route, whose translation the mock records, and whose count_tokens answer is the estimate.
// The tokens a model reads are counted on that translation:
//   o200k   GPT-5's tokenizer (gpt-tokenizer's o200k_base), with OpenAI's documented chat overheads: 3 per message, 3
//           to prime the reply; tools as name, description and parameters JSON, 3 each (JSON is longer than the
//           format OpenAI renders tools in, so this errs high).
//   claude  @anthropic-ai/tokenizer: Anthropic's published tokenizer, which is Claude 2's. Claude 3 and later tokenize
//           differently and their tokenizer is not published, so this is an approximation; the count adds the 346
//           tokens of the tool-use system prompt Anthropic documents for Claude 4 models with tools.
// Both count the text the model reads; neither knows a provider's hidden framing, so they are the best offline
// stand-ins for "exact", not Poe's own figures (usage.input_tokens from Poe's /v1/messages, which needs a Poe key).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { MASTER_KEY, SOURCE_DIR, anthropicStream, certs, defaultConfig, request, startGateway, startMock, tmpdir } from '../t/lib/harness.mjs';

const OUT = path.join(SOURCE_DIR, 't/assets/token-corpus');
const CLAUDE = path.join(SOURCE_DIR, 't/node_modules/@anthropic-ai/claude-code-linux-x64/claude');
const TOOL_PROMPT_TOKENS = 346; // Claude 4 models, tool_choice auto (Anthropic's tool-use pricing table)

if (!process.env.TOKENIZERS) {
    console.error('set TOKENIZERS to a node_modules folder holding @anthropic-ai/tokenizer and gpt-tokenizer (see the opening comment)');
    process.exit(2);
}
const req = createRequire(path.join(process.env.TOKENIZERS, 'x.js'));
const { countTokens: claudeCount } = req('@anthropic-ai/tokenizer');
const o200k = req('gpt-tokenizer/cjs/encoding/o200k_base');
const versions = ['@anthropic-ai/tokenizer', 'gpt-tokenizer'].map((p) => `${p}@${req(`${p}/package.json`).version}`);

/** Tokens a model reads from a chat/completions body, by a tokenizer `count(text)`. */
function readTokens(cc, count) {
    const t = (s) => (typeof s === 'string' && s.length ? count(s) : 0);
    let n = 3; // the reply's priming
    for (const m of cc.messages) {
        n += 3 + t(m.role) + t(m.name) + t(m.tool_call_id) + t(m.reasoning_content);
        if (typeof m.content === 'string') n += t(m.content);
        else for (const part of m.content ?? []) n += t(part.text);
        for (const call of m.tool_calls ?? []) n += 3 + t(call.id) + t(call.function.name) + t(call.function.arguments);
    }
    for (const tool of cc.tools ?? [])
        n += 3 + t(tool.function.name) + t(tool.function.description) + t(JSON.stringify(tool.function.parameters ?? {}));
    return n;
}

function runClaude(gw, prompt, work, home) {
    return new Promise((resolve) => {
        const child = spawn(CLAUDE, ['-p', prompt, '--model', 'claude-sonnet-4-5-20250929', '--allowedTools', 'Write Read',
            '--permission-mode', 'acceptEdits'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'],
            env: { PATH: process.env.PATH, HOME: home, ANTHROPIC_BASE_URL: gw.url, ANTHROPIC_AUTH_TOKEN: MASTER_KEY,
                CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1' } });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('exit', (code) => resolve({ code, out }));
    });
}

// files Claude Code is made to read, chosen for how differently tokenizers treat them
function makeFiles(work) {
    const cjk = Array.from({ length: 60 }, (_, i) =>
        `第${i}節：ゲートウェイは要求を変換し、応答をストリームで返します。모델은 도구를 호출합니다 🚀✨ — naïve café, Ω≈ç√∫ ${i}`).join('\n');
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    const hex = Array.from({ length: 200 }, (_, i) => `${(i * 16).toString(16).padStart(8, '0')}: ` +
        Array.from({ length: 16 }, () => rnd().toString(16).padStart(2, '0')).join(' ')).join('\n');
    // a lock file as npm writes it: names, versions, URLs and sha512 integrity hashes (base64)
    const lock = Array.from({ length: 300 }, (_, i) => {
        const name = `pkg-${i.toString(36)}-util`, version = `${i % 9}.${i % 13}.${i % 7}`;
        const integrity = Buffer.from(Array.from({ length: 64 }, rnd)).toString('base64');
        return `    "node_modules/${name}": {\n      "version": "${version}",\n      "resolved": ` +
            `"https://registry.npmjs.org/${name}/-/${name}-${version}.tgz",\n      "integrity": "sha512-${integrity}",\n` +
            '      "dev": true,\n      "license": "MIT"\n    },';
    }).join('\n');
    fs.writeFileSync(path.join(work, 'notes-cjk.md'), cjk + '\n');
    fs.writeFileSync(path.join(work, 'dump.hex'), hex + '\n');
    fs.writeFileSync(path.join(work, 'package-lock.json'), `{\n  "packages": {\n${lock}\n  }\n}\n`);
    // a server log, the kind of file a developer asks Claude Code to look into: times, addresses, ids, numbers
    const uuid = () => Array.from({ length: 16 }, rnd).map((x) => x.toString(16).padStart(2, '0')).join('')
        .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
    const log = Array.from({ length: 600 }, (_, i) => `2026-12-06T06:${String(10 + (i >> 6)).padStart(2, '0')}:` +
        `${String(i % 60).padStart(2, '0')}.${String((i * 37) % 1000).padStart(3, '0')}Z info [access] 10.0.${i % 7}.${rnd()} ` +
        `"POST /v1/messages?beta=true HTTP/1.1" ${i % 11 ? 200 : 529} route=claude-sonnet-4-5-20250929 key=alice ` +
        `dur_ms=${rnd() * 13}.${i % 10} bytes=${rnd() * 977} in=${rnd() * 131} out=${rnd() * 7} session=${uuid()}`).join('\n');
    fs.writeFileSync(path.join(work, 'gateway.log'), log + '\n');
    return {
        code: path.join(SOURCE_DIR, 'src/translate/translate_stream.c'),
        lock: path.join(SOURCE_DIR, 't/package-lock.json'),
        cjk: path.join(work, 'notes-cjk.md'),
        hex: path.join(work, 'dump.hex'),
        biglock: path.join(work, 'package-lock.json'),
        log: path.join(work, 'gateway.log'),
    };
}

const mock = await startMock();
const gw = await startGateway({ config: defaultConfig(mock), env: { SSL_CERT_FILE: certs().ca } });
const match = { path: '/v1/messages$', model: 'claude-sonnet-4.5' }; // not count_tokens, which the CLI also sends
const sse = { 'content-type': 'text/event-stream' };
const answer = (blocks, stopReason) => ({ match, headers: sse, chunks: anthropicStream({ blocks, stopReason }) });
const bodies = []; // [name, body as Claude Code sent it]
try {
    const work = tmpdir('pgw-corpus-work-');
    const files = makeFiles(work);
    const sessions = [
        ['first-turn', 'say hi', [answer([{ type: 'text', text: 'Hi!' }])]],
        ['write-result', 'create hello.txt containing hi', [
            answer([{ type: 'text', text: 'Creating it.' }, { type: 'tool_use', id: 'toolu_w1', name: 'Write',
                input: { file_path: path.join(work, 'hello.txt'), content: 'hi\n' } }], 'tool_use'),
            answer([{ type: 'text', text: 'Done.' }])]],
        ...Object.entries(files).map(([kind, file]) => [`read-${kind}`, `summarise ${path.basename(file)}`, [
            answer([{ type: 'tool_use', id: `toolu_r_${kind}`, name: 'Read', input: { file_path: file } }], 'tool_use'),
            answer([{ type: 'text', text: 'Summary.' }])]]),
        // a longer session: one file after another, every result kept in the history
        ['long-session', 'read these files one by one', [
            ...['src/translate/translate_stream.c', 'src/upstream/upstream.c', 'src/relay/passthrough.c', 'src/serve/metrics.c',
                't/lib/harness.mjs'].map((f, i) => answer([{ type: 'text', text: `Reading ${f}.` },
                { type: 'tool_use', id: `toolu_l${i}`, name: 'Read', input: { file_path: path.join(SOURCE_DIR, f) } }], 'tool_use')),
            answer([{ type: 'tool_use', id: 'toolu_l9', name: 'Read', input: { file_path: files.biglock } }], 'tool_use'),
            answer([{ type: 'text', text: 'All read.' }])]],
    ];
    for (const [name, prompt, script] of sessions) {
        await mock.reset();
        await mock.script(...script);
        const r = await runClaude(gw, prompt, work, tmpdir('pgw-corpus-home-'));
        if (r.code !== 0) throw new Error(`${name}: claude exited ${r.code}\n${r.out}`);
        const turns = (await mock.requests()).filter((q) => q.path === '/v1/messages' && JSON.parse(q.body).model === 'claude-sonnet-4.5');
        if (turns.length !== script.length) throw new Error(`${name}: ${turns.length} turns\n${r.out}\n${turns.at(-1).body.slice(-3000)}`);
        bodies.push([name, turns.at(-1).body]); // the last turn holds the tool result, when there is one
    }

    fs.rmSync(OUT, { recursive: true, force: true });
    fs.mkdirSync(OUT, { recursive: true });
    const rows = [];
    for (const [i, [name, sent]] of bodies.entries()) {
        // the body as Claude Code sent it, asking for the openai/ route (the model name is the only change)
        const body = sent.replace('"model":"claude-sonnet-4.5"', '"model":"gpt-5"');
        const file = `${String(i + 1).padStart(2, '0')}-${name}.json`;
        fs.writeFileSync(path.join(OUT, file), body);
        const headers = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
        const est = await request(`${gw.url}/v1/messages/count_tokens`, { method: 'POST', headers, body });
        if (est.status !== 200) throw new Error(`${file}: count_tokens ${est.status} ${est.body}`);
        await mock.reset();
        const whole = JSON.parse(body);
        whole.stream = false;
        const sentUp = await request(`${gw.url}/v1/messages`, { method: 'POST', headers, body: JSON.stringify(whole) });
        if (sentUp.status !== 200) throw new Error(`${file}: messages ${sentUp.status} ${sentUp.body}`);
        const cc = JSON.parse((await mock.requests()).find((q) => q.path === '/v1/chat/completions').body);
        const counts = { o200k: readTokens(cc, (s) => o200k.encode(s).length),
            claude: readTokens(cc, claudeCount) + ((cc.tools ?? []).length ? TOOL_PROMPT_TOKENS : 0) };
        const estimate = JSON.parse(est.body).input_tokens;
        rows.push([file, counts.o200k, counts.claude, estimate, Buffer.byteLength(body)]);
    }
    const lines = [`# file\to200k\tclaude\testimate_when_recorded\tbytes\t(${versions.join(', ')}; tools/token-corpus.mjs)`,
        ...rows.map((r) => r.join('\t'))];
    fs.writeFileSync(path.join(OUT, 'counts.tsv'), lines.join('\n') + '\n');
    for (const [file, o, c, e] of rows)
        console.log(`${file}: estimate ${e}, o200k ${o} (x${(e / o).toFixed(2)}), claude ${c} (x${(e / c).toFixed(2)})`);
    const worst = Math.min(...rows.map(([, o, c, e]) => e / Math.max(o, c)));
    console.log(`worst estimate / exact: ${worst.toFixed(3)}`);
} finally {
    await gw.stop();
    await mock.stop();
}
