// poe-gateway: MIT licence. Start-up: command line, --check-config, .env, config errors, master key, graceful stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, POE_KEY, SOURCE_DIR, request, runGateway, startGateway, tmpdir, defaultConfig } from './lib/harness.mjs';

const SEED = path.join(SOURCE_DIR, 't/assets/litellm-config.yaml');
const SHIPPED = path.join(SOURCE_DIR, 'conf/gateway.yaml.template');
const KEYS = { POE_API_KEY: 'poe-0123456789abcdef-secret', LITELLM_MASTER_KEY: 'sk-master-0123456789abcdef-secret' };

test('--version and --help', async () => {
    const v = await runGateway(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^poe-gateway \d+\.\d+\.\d+\n$/);
    const h = await runGateway(['--help']);
    assert.equal(h.code, 0);
    for (const opt of ['--config', '--host', '--port', '--threads', '--log-level', '--check-config'])
        assert.ok(h.stdout.includes(opt), `help mentions ${opt}`);
    const bad = await runGateway(['--no-such-option']);
    assert.equal(bad.code, 2);
});

/** A directory laid out like a fresh clone: conf/gateway.yaml.template, and no conf/gateway.yaml yet. */
function freshClone() {
    const dir = tmpdir('pgw-clone-');
    fs.mkdirSync(path.join(dir, 'conf'));
    fs.copyFileSync(SHIPPED, path.join(dir, 'conf/gateway.yaml.template'));
    return dir;
}

test('--check-config on the shipped config prints routes with keys masked', async () => {
    const r = await runGateway(['--check-config'], { env: KEYS, cwd: freshClone() });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /claude-sonnet-4-6\s+anthropic\/claude-sonnet-4\.6/);
    assert.match(r.stdout, /claude-\*\s+anthropic\/\*/);
    assert.match(r.stdout, /gpt-5\s+openai\//);
    assert.match(r.stdout, /from POE_API_KEY/);
    for (const secret of Object.values(KEYS)) {
        assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'a key was printed');
    }
    assert.match(r.stdout, /^config: conf\/gateway\.yaml$/m, 'names the default config path');
});

test('the first start from a clone makes conf/gateway.yaml from the template; later starts leave it alone', async () => {
    const dir = freshClone();
    const mine = path.join(dir, 'conf/gateway.yaml');
    const first = await runGateway(['--check-config'], { env: KEYS, cwd: dir });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(fs.readFileSync(mine, 'utf8'), fs.readFileSync(SHIPPED, 'utf8'));
    assert.match(first.stderr, /created conf\/gateway\.yaml from conf\/gateway\.yaml\.template: it is yours to edit/);
    // edited by its owner, then the template changes (git pull): the start reads the owner's file, untouched
    const edited = fs.readFileSync(mine, 'utf8').replace(/^  port: 4000$/m, '  port: 4321');
    fs.writeFileSync(mine, edited);
    fs.appendFileSync(path.join(dir, 'conf/gateway.yaml.template'), '# a newer template\n');
    const r = await runGateway(['--check-config'], { env: KEYS, cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^listen: 127\.0\.0\.1:4321,/m);
    assert.equal(fs.readFileSync(mine, 'utf8'), edited);
    assert.ok(!/created /.test(r.stderr), r.stderr);
});

test('--check-config on the seed LiteLLM config', async () => {
    const r = await runGateway(['--check-config', '--config', SEED], { env: KEYS });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /claude-sonnet-4-5-20250929\s+openai\/Claude-Sonnet-4\.5 via https:\/\/api\.poe\.com\/v1/);
});

test('--check-config names an unset environment variable and exits 2', async () => {
    const r = await runGateway(['--check-config', '--config', SEED], { env: { LITELLM_MASTER_KEY: KEYS.LITELLM_MASTER_KEY } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /POE_API_KEY/);
});

test('config errors exit 2 with file:line:column', async () => {
    const dir = tmpdir();
    const cases = [
        ['model_list:\n  - model_name: a\n    litellm_params:\n      model: bedrock/x\n', /:4:\d+: .*prefix|provider/i],
        ['model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/x\n  - model_name: a\n    litellm_params:\n      model: openai/y\n',
            /:5:\d+: .*duplicate/i],
        ['model_list:\n  - model_name: a\n    litellm_params: [\n', /:\d+:\d+: /],
    ];
    for (const [yaml, re] of cases) {
        const file = path.join(dir, 'bad.yaml');
        fs.writeFileSync(file, yaml);
        const r = await runGateway(['--check-config', '--config', file], { env: KEYS });
        assert.equal(r.code, 2, yaml);
        assert.ok(r.stderr.startsWith(`${file}:`), r.stderr);
        assert.match(r.stderr, re);
        // a normal start refuses the same file the same way
        const s = await runGateway(['--config', file, '--port', '0'], { env: KEYS });
        assert.equal(s.code, 2);
        assert.ok(s.stderr.includes(`${file}:`), s.stderr);
    }
    const missing = await runGateway(['--check-config', '--config', path.join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.yaml/);
});

test('unknown LiteLLM sections are ignored with one warning each', async () => {
    const dir = tmpdir();
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, defaultConfig(null, 'litellm_settings:\n  drop_params: true\ncallbacks: ["x"]\n'));
    const r = await runGateway(['--check-config', '--config', file], { env: KEYS });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stderr.match(/litellm_settings/g) || []).length, 1, r.stderr);
    assert.equal((r.stderr.match(/callbacks/g) || []).length, 1, r.stderr);
});

test('.env in the working directory is loaded without overriding the environment', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, '.env'), `# comment\nPOE_API_KEY=from-dotenv-0123456789abcdef\nexport LITELLM_MASTER_KEY="sk-dotenv-master-0123456789"\n`);
    fs.copyFileSync(SEED, path.join(dir, 'seed.yaml'));
    const r = await runGateway(['--check-config', '--config', 'seed.yaml'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /from POE_API_KEY/);
    assert.ok(!r.stdout.includes('from-dotenv-0123456789abcdef'));
    // the environment wins over .env: an unset variable stays unset only if neither has it, so check the mask differs
    const r2 = await runGateway(['--check-config', '--config', 'seed.yaml'], { cwd: dir, env: { POE_API_KEY: 'env-wins-aaaaaaaaaaaaaaaa-zzzz' } });
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, /\.\.\.zzzz from POE_API_KEY/);
    assert.match(r.stdout, /\.\.\.cdef from POE_API_KEY/);
});

test('a start without a Poe key serves health and answers 503 naming the variable', async () => {
    const gw = await startGateway({ env: { POE_API_KEY: null } });
    try {
        assert.match(gw.output.stderr, /POE_API_KEY/);
        const live = await request(`${gw.url}/health/liveliness`);
        assert.equal(live.status, 200);
        const r = await request(`${gw.url}/v1/messages`, {
            method: 'POST',
            headers: { 'x-api-key': MASTER_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
            body: JSON.stringify({ model: 'claude-sonnet-4-5-20250929', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
        });
        assert.equal(r.status, 503);
        const body = JSON.parse(r.body);
        assert.equal(body.type, 'error');
        assert.equal(body.error.type, 'api_error');
        assert.match(body.error.message, /POE_API_KEY/);
    } finally {
        assert.equal((await gw.stop()).code, 0);
    }
});

test('no master key on loopback: one is generated, kept 0600, reused, never printed', async () => {
    const stateDir = tmpdir('pgw-state-');
    const extra = `gateway:\n  state_dir: ${stateDir}/nested\n`;
    const config = defaultConfig(null, extra).replace('general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n', '');
    const gw = await startGateway({ config, env: { LITELLM_MASTER_KEY: null } });
    const keyFile = path.join(stateDir, 'nested', 'master_key');
    let key;
    try {
        assert.ok(gw.output.stderr.includes(keyFile), 'the log says where the key is');
        const st = fs.statSync(keyFile);
        assert.equal(st.mode & 0o777, 0o600);
        key = fs.readFileSync(keyFile, 'utf8').trim();
        assert.ok(key.length >= 32);
        assert.ok(!gw.output.stderr.includes(key), 'the key was logged');
        const ok = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
        assert.equal(ok.status, 200);
        const no = await request(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
        assert.equal(no.status, 401);
    } finally {
        assert.equal((await gw.stop()).code, 0);
    }
    const gw2 = await startGateway({ config, env: { LITELLM_MASTER_KEY: null } });
    try {
        assert.equal(fs.readFileSync(keyFile, 'utf8').trim(), key, 'the key is kept across restarts');
        const ok = await request(`${gw2.url}/v1/models`, { headers: { 'x-api-key': key } });
        assert.equal(ok.status, 200);
    } finally {
        await gw2.stop();
    }
});

test('the master key\'s variable unset on loopback: the log says a key is generated, never that routes answer 503', async () => {
    // the shipped general_settings.master_key: os.environ/LITELLM_MASTER_KEY, with the variable unset
    const stateDir = tmpdir('pgw-state-');
    const gw = await startGateway({ config: defaultConfig(null, `gateway:\n  state_dir: ${stateDir}\n`), env: { LITELLM_MASTER_KEY: null } });
    try {
        const log = gw.output.stderr;
        assert.ok(!/LITELLM_MASTER_KEY[^\n]*answer 503/.test(log), log);
        assert.match(log, /LITELLM_MASTER_KEY is not set; generated a master key and kept it in .*master_key \(mode 0600\)/);
    } finally {
        assert.equal((await gw.stop()).code, 0);
    }
    // a route's variable still gets its warning
    const noPoe = await startGateway({ env: { POE_API_KEY: null } });
    try {
        assert.match(noPoe.output.stderr, /environment variable POE_API_KEY is referenced by .* but not set; routes that need it answer 503/);
    } finally {
        await noPoe.stop();
    }
});

test('.env readable by others: the gateway warns, naming the fix; mode 0600 is quiet', async () => {
    const dir = tmpdir('pgw-dotenv-mode-');
    const file = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(file, defaultConfig());
    const env = path.join(dir, '.env');
    fs.writeFileSync(env, 'POE_API_KEY=poe-from-dotenv-0123456789abcdef\n');
    fs.chmodSync(env, 0o644); // what `cp .env.template .env` leaves
    const open = await runGateway(['--check-config', '--config', file], { env: { LITELLM_MASTER_KEY: MASTER_KEY }, cwd: dir });
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stderr, /\.env holds secrets but other users may read it \(mode 0644\): chmod 600 \.env/);
    assert.ok(!open.stderr.includes('poe-from-dotenv'));
    fs.chmodSync(env, 0o600); // install -m 600 .env.template .env
    const closed = await runGateway(['--check-config', '--config', file], { env: { LITELLM_MASTER_KEY: MASTER_KEY }, cwd: dir });
    assert.equal(closed.code, 0, closed.stderr);
    assert.ok(!/other users may read/.test(closed.stderr), closed.stderr);
});

test('no master key on a non-loopback address: refuses to start', async () => {
    const config = defaultConfig().replace('general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n', '');
    const dir = tmpdir();
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, config);
    const r = await runGateway(['--config', file, '--host', '0.0.0.0', '--port', '0'], { env: { POE_API_KEY: POE_KEY } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /master key/i);
});

test('SIGTERM and SIGINT stop the gateway with exit 0; the port is released', async () => {
    for (const sig of ['SIGTERM', 'SIGINT']) {
        const gw = await startGateway();
        const r = await request(`${gw.url}/health/readiness`);
        assert.equal(r.status, 200);
        const t0 = Date.now();
        const { code } = await gw.stop(sig);
        assert.equal(code, 0, gw.output.stderr);
        assert.ok(Date.now() - t0 < 5000, 'stopped promptly with nothing in flight');
        assert.match(gw.output.stderr, /stopped/);
        await assert.rejects(request(`${gw.url}/health/readiness`, { timeout: 2000 }));
    }
});

test('--host, --port and --threads override the config', async () => {
    const gw = await startGateway({ args: ['--threads', '3', '--host', '127.0.0.1'] });
    try {
        assert.match(gw.output.stderr, /\(3 workers\)/);
        const r = await request(`${gw.url}/health/readiness`);
        assert.equal(JSON.parse(r.body).workers, 3);
    } finally {
        await gw.stop();
    }
});
