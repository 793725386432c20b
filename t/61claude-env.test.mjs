// poe-gateway: MIT licence. `poe-gateway claude-env`: the URL (public_url, Tailscale CLI or socket, host:port), the
// model variables, --json, and the master key printed only when asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { MASTER_KEY, PGW_BIN, SOURCE_DIR, certs, runGateway, startGateway, startMock, tmpdir } from './lib/harness.mjs';
import { runClaude } from './lib/claude.mjs';

const SECRET = "sk-claude-env-0123456789abcdef-it's";
const SHIPPED = path.join(SOURCE_DIR, 'conf/gateway.yaml.template');
const NO_TAILSCALE = { PATH: '/usr/bin:/bin', TS_SOCKET: '/nonexistent/tailscaled.sock' };

/** A config with the gateway: section given, routes from the shipped file. */
function config(gateway) {
    const dir = tmpdir('pgw-claude-env-');
    const text = fs.readFileSync(SHIPPED, 'utf8').replace(/^gateway:[\s\S]*$/m, `gateway:\n${gateway}\n`);
    const file = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(file, text);
    return { dir, file };
}

/** A directory holding a fake `tailscale` that prints `json` (or exits `code`), to put first on PATH. */
function fakeTailscale(json, code = 0) {
    const dir = tmpdir('pgw-fake-ts-');
    const script = path.join(dir, 'tailscale');
    fs.writeFileSync(script, `#!/bin/sh\n[ "$1 $2" = "status --json" ] || exit 3\ncat <<'EOF'\n${JSON.stringify(json)}\nEOF\nexit ${code}\n`);
    fs.chmodSync(script, 0o755);
    return `${dir}:${process.env.PATH}`;
}

function run(args, env = {}, cwd) {
    return runGateway(['claude-env', ...args], { env: { ...NO_TAILSCALE, ...env }, cwd: cwd ?? tmpdir('pgw-cwd-') });
}

const exported = (stdout, name) => stdout.match(new RegExp(`^export ${name}='([^']*)'$`, 'm'))?.[1];

test('without public_url or Tailscale: http://host:port from the config', async () => {
    const { file } = config('  host: 127.0.0.1\n  port: 4123');
    const r = await run(['--config', file], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(exported(r.stdout, 'ANTHROPIC_BASE_URL'), 'http://127.0.0.1:4123');
    assert.match(r.stdout, /^# Claude Code settings/m);

    const wildcard = config('  host: 0.0.0.0\n  port: 4124');
    const w = await run(['--config', wildcard.file], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(exported(w.stdout, 'ANTHROPIC_BASE_URL'), `http://${os.hostname()}:4124`, 'a wildcard host becomes this machine\'s name');
});

test('the model variables name configured routes, newest first', async () => {
    const r = await run(['--config', SHIPPED], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(exported(r.stdout, 'ANTHROPIC_DEFAULT_OPUS_MODEL'), 'claude-opus-4-8');
    assert.equal(exported(r.stdout, 'ANTHROPIC_DEFAULT_SONNET_MODEL'), 'claude-sonnet-4-6');
    assert.equal(exported(r.stdout, 'ANTHROPIC_DEFAULT_HAIKU_MODEL'), 'claude-haiku-4-5-20251001');

    const dir = tmpdir();
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, `model_list:
  - model_name: claude-sonnet-4-5
    litellm_params: {model: anthropic/claude-sonnet-4.5}
  - model_name: claude-sonnet-4-6
    litellm_params: {model: anthropic/claude-sonnet-4.6}
  - model_name: claude-sonnet-*
    litellm_params: {model: anthropic/*}
  - model_name: gpt-5
    litellm_params: {model: openai/GPT-5}
`);
    const s = await run(['--config', file], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(exported(s.stdout, 'ANTHROPIC_DEFAULT_SONNET_MODEL'), 'claude-sonnet-4-6');
    // no opus or haiku route, and no wildcard that would take Claude Code's own ids for them: the best route there is
    assert.equal(exported(s.stdout, 'ANTHROPIC_DEFAULT_OPUS_MODEL'), 'claude-sonnet-4-6');
    assert.equal(exported(s.stdout, 'ANTHROPIC_DEFAULT_HAIKU_MODEL'), 'claude-sonnet-4-6');
    assert.equal(exported(s.stdout, 'ANTHROPIC_SMALL_FAST_MODEL'), 'claude-sonnet-4-6');
    assert.equal(exported(s.stdout, 'ANTHROPIC_MODEL'), 'claude-sonnet-4-6');

    // with a claude-* catch-all, Claude Code's own choices reach a route: only the families' newest are named
    const shipped = await run(['--config', SHIPPED], { LITELLM_MASTER_KEY: SECRET });
    for (const name of ['ANTHROPIC_MODEL', 'ANTHROPIC_SMALL_FAST_MODEL']) assert.equal(exported(shipped.stdout, name), undefined, name);
});

test('without a catch-all every model Claude Code asks for is a configured route: the real CLI answers', async () => {
    // the config: one Claude route. Claude Code's default model, and its background model, are not it.
    const mock = await startMock();
    const only = 'claude-sonnet-4-5-20250929';
    const gw = await startGateway({ env: { SSL_CERT_FILE: certs().ca }, config: `model_list:
  - model_name: ${only}
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
` });
    try {
        const r = await run(['--with-key', '--json', '--config', gw.configPath], { LITELLM_MASTER_KEY: MASTER_KEY });
        assert.equal(r.code, 0, r.stderr);
        const { env } = JSON.parse(r.stdout);
        for (const name of ['ANTHROPIC_MODEL', 'ANTHROPIC_DEFAULT_OPUS_MODEL', 'ANTHROPIC_DEFAULT_SONNET_MODEL',
            'ANTHROPIC_DEFAULT_HAIKU_MODEL', 'ANTHROPIC_SMALL_FAST_MODEL']) assert.equal(env[name], only, name);

        // the config has no gateway.port: the URL is the test gateway's, the rest is claude-env's
        const out = await runClaude(['-p', 'say hi'], { env: { ...env, ANTHROPIC_BASE_URL: gw.url } });
        assert.equal(out.code, 0, `claude exited ${out.code}\nstdout: ${out.stdout}\nstderr: ${out.stderr}`);
        assert.match(out.stdout, /mock reply to: [\s\S]*say hi/);
        assert.ok(!/issue with the selected model/.test(out.stdout + out.stderr));
        assert.ok(!/ 404 /.test(gw.output.stderr), `a model no route serves was asked for:\n${gw.output.stderr}`);
    } finally {
        await gw.stop();
        await mock.stop();
    }
});

test('--port: the port the gateway\'s command line gave wins over gateway.port', async () => {
    const { file } = config('  host: 127.0.0.1\n  port: 4123');
    const r = await run(['--config', file, '--port', '4999'], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(exported(r.stdout, 'ANTHROPIC_BASE_URL'), 'http://127.0.0.1:4999');
    for (const bad of ['0', '65536', 'x']) assert.equal((await run(['--config', file, '--port', bad])).code, 2, bad);
});

test('the Tailscale name from `tailscale status --json`', async () => {
    const { file } = config('  host: 0.0.0.0\n  port: 4000');
    const PATH = fakeTailscale({ BackendState: 'Running', Self: { DNSName: 'poe-gw.tail1234.ts.net.', HostName: 'poe-gw' } });
    const r = await run(['--config', file], { PATH, LITELLM_MASTER_KEY: SECRET });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(exported(r.stdout, 'ANTHROPIC_BASE_URL'), 'http://poe-gw.tail1234.ts.net:4000');
    assert.match(r.stdout, /Tailscale/);

    // logged out, or failing: back to host:port
    for (const fake of [fakeTailscale({ BackendState: 'NeedsLogin', Self: { DNSName: '' } }),
        fakeTailscale({ BackendState: 'Running', Self: { DNSName: 'x.ts.net.' } }, 1)]) {
        const f = await run(['--config', file], { PATH: fake, LITELLM_MASTER_KEY: SECRET });
        assert.equal(exported(f.stdout, 'ANTHROPIC_BASE_URL'), `http://${os.hostname()}:4000`);
    }
});

test('the Tailscale name from tailscaled\'s socket when there is no CLI (the compose setup)', async () => {
    const dir = tmpdir('pgw-ts-sock-');
    const socket = path.join(dir, 'tailscaled.sock');
    const seen = [];
    const server = http.createServer((req, res) => {
        seen.push({ url: req.url, host: req.headers.host });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ BackendState: 'Running', Self: { DNSName: 'poe-gateway.tail9.ts.net.' } }));
    });
    await new Promise((resolve) => server.listen(socket, resolve));
    try {
        const { file } = config('  host: 127.0.0.1\n  port: 4000');
        const r = await run(['--config', file, '--json'], { PATH: '/usr/bin:/bin', TS_SOCKET: socket, LITELLM_MASTER_KEY: SECRET });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout).env.ANTHROPIC_BASE_URL, 'http://poe-gateway.tail9.ts.net:4000');
        assert.deepEqual(seen, [{ url: '/localapi/v0/status', host: 'local-tailscaled.sock' }]);
    } finally {
        server.close();
    }
});

test('gateway.public_url wins over Tailscale', async () => {
    const { file } = config('  port: 4000\n  public_url: https://gw.example.ts.net/');
    const PATH = fakeTailscale({ BackendState: 'Running', Self: { DNSName: 'other.ts.net.' } });
    const r = await run(['--config', file], { PATH, LITELLM_MASTER_KEY: SECRET });
    assert.equal(exported(r.stdout, 'ANTHROPIC_BASE_URL'), 'https://gw.example.ts.net');
});

test('--json is a settings.json env block', async () => {
    const r = await run(['--json', '--config', SHIPPED], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(r.code, 0, r.stderr);
    const settings = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(settings), ['env']);
    assert.deepEqual(Object.keys(settings.env), ['ANTHROPIC_BASE_URL', 'ANTHROPIC_AUTH_TOKEN', 'ANTHROPIC_DEFAULT_OPUS_MODEL',
        'ANTHROPIC_DEFAULT_SONNET_MODEL', 'ANTHROPIC_DEFAULT_HAIKU_MODEL', 'CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY']);
    // the /model picker lists every route, those under their claude-via-poe- alias too
    assert.equal(settings.env.CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY, '1');
    assert.equal(settings.env.ANTHROPIC_AUTH_TOKEN, '<master key>');
    assert.match(r.stderr, /LITELLM_MASTER_KEY/, 'the hint says where the key lives');
});

test('the key is printed only with --with-key', async () => {
    for (const args of [[], ['--json'], ['--shell']]) {
        const r = await run([...args, '--config', SHIPPED], { LITELLM_MASTER_KEY: SECRET });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!r.stdout.includes(SECRET) && !r.stderr.includes(SECRET), `no key with ${args}`);
        assert.ok(r.stdout.includes('<master key>'));
    }
    const r = await run(['--with-key', '--config', SHIPPED], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(r.code, 0, r.stderr);
    // the shell output evaluates to exactly the key, quote included
    const script = `eval "$(cat)"; printf '%s\\n%s' "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN"`;
    const evaluated = execFileSync('sh', ['-c', script], { input: r.stdout, encoding: 'utf8' });
    assert.equal(evaluated, `http://127.0.0.1:4000\n${SECRET}`);
    const j = await run(['--json', '--with-key', '--config', SHIPPED], { LITELLM_MASTER_KEY: SECRET });
    assert.equal(JSON.parse(j.stdout).env.ANTHROPIC_AUTH_TOKEN, SECRET);
});

test('--with-key reads the generated key from the state directory, or an --env-file', async () => {
    const home = tmpdir('pgw-home-');
    const generated = 'sk-pgw-generated-0123456789abcdef';
    const env = { HOME: home, LITELLM_MASTER_KEY: null };
    const none = await run(['--with-key', '--config', SHIPPED], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no master key yet/);

    fs.mkdirSync(path.join(home, '.local/state/poe-gateway'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(home, '.local/state/poe-gateway/master_key'), `${generated}\n`, { mode: 0o600 });
    const without = await run(['--config', SHIPPED], env);
    assert.ok(!without.stdout.includes(generated));
    assert.match(without.stdout, /master_key/, 'the hint names the file');
    const withKey = await run(['--with-key', '--config', SHIPPED], env);
    assert.equal(exported(withKey.stdout, 'ANTHROPIC_AUTH_TOKEN'), generated);

    const envFile = path.join(tmpdir(), 'env');
    fs.writeFileSync(envFile, 'LITELLM_MASTER_KEY=sk-from-the-env-file-0123456789\n');
    const fromFile = await run(['--with-key', '--config', SHIPPED, '--env-file', envFile], env);
    assert.equal(exported(fromFile.stdout, 'ANTHROPIC_AUTH_TOKEN'), 'sk-from-the-env-file-0123456789');
});

test('claude-env --help, and errors', async () => {
    const h = await run(['--help']);
    assert.equal(h.code, 0);
    for (const opt of ['--shell', '--json', '--with-key', '--port', '--config', '--env-file']) assert.ok(h.stdout.includes(opt), opt);
    assert.equal((await run(['--bogus'])).code, 2);
    const missing = await run(['--config', '/nonexistent/gateway.yaml']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nonexistent/);
    assert.ok(fs.existsSync(PGW_BIN));
});
