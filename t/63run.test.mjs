// poe-gateway: MIT licence. tools/run.sh: the next step it prints, and --demo (the mock Poe beside the gateway, and the
// real Claude Code answering through them). It uses this suite's build directory, so it builds nothing new.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MASTER_KEY, PGW_BIN, SOURCE_DIR, defaultConfig, request, tmpdir } from './lib/harness.mjs';
import { runClaude } from './lib/claude.mjs';

const BUILD_DIR = path.dirname(PGW_BIN);
const STEP = /^ {4}cd (\S+) && eval "\$\((\S+) claude-env --with-key((?: \S+)*)\)" && claude$/m;

async function freePort() {
    const srv = net.createServer();
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { port } = srv.address();
    await new Promise((resolve) => srv.close(resolve));
    return port;
}

/** Runs tools/run.sh in its own process group; resolves helpers to wait on its output and its exit. */
function runScript(args, env) {
    const full = { PATH: process.env.PATH, PGW_BUILD_DIR: BUILD_DIR, ...env };
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) full[k] = process.env[k];
    const child = spawn('bash', [path.join(SOURCE_DIR, 'tools/run.sh'), ...args], { env: full, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out = { stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8').on('data', (d) => (out.stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out.stderr += d));
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const waitFor = async (stream, re) => {
        for (let i = 0; i < 1200; i++) { // the build step is a no-op here, but the machine may be busy
            const m = out[stream].match(re);
            if (m) return m;
            if (child.exitCode !== null) break;
            await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`run.sh: no ${re} in its ${stream}:\n${out.stdout}\n${out.stderr}`);
    };
    return { child, out, exited, waitFor };
}

test('run.sh prints the next step: the claude-env line, with the built binary, to run from the clone', async () => {
    const dir = tmpdir('pgw-run-');
    const config = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(config, defaultConfig());
    const env = { HOME: dir, LITELLM_MASTER_KEY: MASTER_KEY, POE_API_KEY: 'k' };
    const r = runScript(['--config', config, '--check-config', '--port', '4321'], env);
    const { code } = await r.exited;
    assert.equal(code, 0, r.out.stdout + r.out.stderr);
    const m = r.out.stdout.match(STEP);
    assert.ok(m, r.out.stdout);
    assert.equal(m[1], SOURCE_DIR);
    assert.equal(path.resolve(m[1], m[2]), PGW_BIN, 'the binary run.sh built');
    // the gateway's port came from the command line: so does claude-env's URL
    assert.equal(m[3], ' --port 4321');
    const url = execFileSync(PGW_BIN, ['claude-env', '--config', config, ...m[3].trim().split(' ')],
        { encoding: 'utf8', env: { PATH: process.env.PATH, TS_SOCKET: '/nonexistent', ...env } });
    assert.match(url, /^export ANTHROPIC_BASE_URL='http:\/\/127\.0\.0\.1:4321'$/m);
    // the gateway's own output comes after it
    assert.ok(r.out.stdout.indexOf('claude-env') < r.out.stdout.indexOf('routes ('), r.out.stdout);
});

test('run.sh --demo: the mock Poe beside the gateway, and Claude Code answers through them with no Poe key', async () => {
    const home = tmpdir('pgw-demo-home-');
    const port = await freePort();
    const r = runScript(['--demo', '--port', String(port)], { HOME: home });
    try {
        const mockPort = Number((await r.waitFor('stdout', /the mock Poe listens on 127\.0\.0\.1:(\d+)/))[1]);
        await r.waitFor('stderr', new RegExp(`listening on http://127\\.0\\.0\\.1:${port} `));
        const [, clone, bin, rest] = await r.waitFor('stdout', STEP);
        assert.equal(clone, SOURCE_DIR);
        const demoConfig = rest.trim().match(/^--config (\S+)$/)?.[1];
        assert.ok(demoConfig && fs.existsSync(demoConfig), rest);
        assert.ok(!/POE_API_KEY/.test(fs.readFileSync(demoConfig, 'utf8')), 'no Poe key needed');

        // the printed line, as a newcomer runs it, up to starting claude: what would claude get?
        const line = r.out.stdout.match(STEP)[0].trim().replace(/ && claude$/, '');
        const settings = execFileSync('bash', ['-c', `${line} && printf '%s\\n%s' "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN"`],
            { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home, TS_SOCKET: '/nonexistent' } }).split('\n');
        assert.equal(settings[0], `http://127.0.0.1:${port}`);
        assert.match(settings[1], /^sk-/, 'the master key the gateway generated');
        assert.equal(path.resolve(clone, bin), PGW_BIN);

        const answer = await runClaude(['-p', 'say hi'],
            { env: { ANTHROPIC_BASE_URL: settings[0], ANTHROPIC_AUTH_TOKEN: settings[1] } });
        assert.equal(answer.code, 0, `claude exited ${answer.code}\n${answer.stdout}\n${answer.stderr}`);
        assert.match(answer.stdout, /mock reply to: [\s\S]*say hi/);
        assert.match(r.out.stderr, /"POST \/v1\/messages\?beta=true HTTP\/1\.1" 200 /, r.out.stderr);

        // a signal to the script alone stops the gateway, then the mock, and leaves nothing behind
        process.kill(r.child.pid, 'SIGTERM');
        const { code } = await r.exited;
        assert.equal(code, 0, r.out.stderr);
        assert.match(r.out.stderr, /SIGTERM: stopping/);
        await assert.rejects(request(`http://127.0.0.1:${mockPort}/v1/models`, { timeout: 2000 }), 'the mock is stopped');
        assert.ok(!fs.existsSync(path.dirname(demoConfig)), 'the demo directory is removed');
    } finally {
        if (r.child.exitCode === null && r.child.signalCode === null) process.kill(-r.child.pid, 'SIGKILL');
    }
});
