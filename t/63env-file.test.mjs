// poe-gateway: MIT licence. SIGHUP reads the env file again: a key added to .env works, a key removed or changed stops
// working, and the process's own environment still wins over the file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { certs, request, runGateway, sleep, startGateway, startMock, tmpdir } from './lib/harness.mjs';

const MASTER_OLD = 'sk-leaked-master-0123456789abcdef', MASTER_NEW = 'sk-rotated-master-0123456789abcdef';
const BOB = 'bob-from-dotenv-0123456789', CAROL_ENV = 'carol-from-environment-0123456789',
    CAROL_FILE = 'carol-from-dotenv-0123456789';

let mock, gw, dir;
const config = (mockUrl) => `model_list:
  - model_name: claude-sonnet-4-5-20250929
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: ${mockUrl}
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  keys:
    - name: bob
      key: os.environ/BOB_KEY
    - name: carol
      key: os.environ/CAROL_KEY
`;

before(async () => {
    mock = await startMock();
    dir = tmpdir('pgw-dotenv-');
    fs.writeFileSync(path.join(dir, '.env'), `LITELLM_MASTER_KEY=${MASTER_OLD}\nCAROL_KEY=${CAROL_FILE}\n`);
    gw = await startGateway({ config: config(mock.httpsUrl), cwd: dir,
        env: { SSL_CERT_FILE: certs().ca, LITELLM_MASTER_KEY: null, CAROL_KEY: CAROL_ENV } });
});
after(async () => {
    assert.equal((await gw.stop()).code, 0, gw.output.stderr.slice(-2000));
    await mock.stop();
});

const models = async (key) => (await request(`${gw.url}/v1/models`, { headers: { 'x-api-key': key } })).status;

async function reload(envText) {
    const before = (gw.output.stderr.match(/reload(ed| refused)/g) || []).length;
    fs.writeFileSync(path.join(dir, '.env'), envText);
    gw.child.kill('SIGHUP');
    for (let i = 0; i < 250; i++) {
        if ((gw.output.stderr.match(/reload(ed| refused)/g) || []).length > before) return;
        await sleep(20);
    }
    throw new Error('no reload line in the log');
}

/** Each worker takes the new configuration on its next loop turn: asks until `key` gets `status` (a few turns at most). */
async function settles(key, status) {
    let got;
    for (let i = 0; i < 50 && (got = await models(key)) !== status; i++) await sleep(20);
    return got;
}

test('SIGHUP re-reads .env: a key added works, a rotated master key and a removed key stop working', async () => {
    assert.equal(await models(MASTER_OLD), 200);
    assert.equal(await models(BOB), 401);
    // a variable referenced only by a gateway.keys entry is not said to break routes
    assert.match(gw.output.stderr, /environment variable BOB_KEY is referenced by .* but not set; gateway\.keys entries that use it match no request \(401\)\n/);
    assert.doesNotMatch(gw.output.stderr, /BOB_KEY[^\n]*routes that need it answer 503/);

    await reload(`LITELLM_MASTER_KEY=${MASTER_NEW}\nBOB_KEY=${BOB}\nCAROL_KEY=${CAROL_FILE}\n`);
    assert.match(gw.output.stderr, /reloaded /);
    assert.equal(await settles(BOB, 200), 200, 'the key added to .env works after SIGHUP');
    assert.equal(await models(MASTER_NEW), 200);
    assert.equal(await models(MASTER_OLD), 401, 'the old master key is refused after SIGHUP');
    // the process's environment wins over .env, at start and after a reload
    assert.equal(await models(CAROL_ENV), 200);
    assert.equal(await models(CAROL_FILE), 401);

    await reload(`LITELLM_MASTER_KEY=${MASTER_NEW}\n`);
    assert.equal(await settles(BOB, 401), 401, 'the key removed from .env stops working after SIGHUP');
    assert.equal(await models(MASTER_NEW), 200);
    assert.equal(await models(CAROL_ENV), 200);
});

test('a malformed .env is refused on SIGHUP; the running keys stay', async () => {
    await reload(`LITELLM_MASTER_KEY=${MASTER_OLD}\nthis line is not KEY=value\n`);
    assert.match(gw.output.stderr, /reload refused, the running configuration stays: \.env:2: /);
    assert.equal(await models(MASTER_NEW), 200);
    assert.equal(await models(MASTER_OLD), 401);
});

test('the server and every subcommand take --env-file; --check-config checks a config whose secrets live there', async () => {
    const d = tmpdir('pgw-envfile-');
    fs.writeFileSync(path.join(d, 'gateway.yaml'), config('https://localhost:9'));
    fs.writeFileSync(path.join(d, 'env'), 'POE_API_KEY=poe-from-env-file-0123456789\nLITELLM_MASTER_KEY=sk-from-env-file-0123456789\n' +
        'BOB_KEY=bob-from-env-file-0123456789\nCAROL_KEY=carol-from-env-file-0123456789\n');
    // the working directory has no .env: without --env-file the variables are missing
    const without = await runGateway(['--check-config', '--config', 'gateway.yaml'], { cwd: d });
    assert.equal(without.code, 2, without.stderr);
    const r = await runGateway(['--check-config', '--config', 'gateway.yaml', '--env-file', 'env'], { cwd: d });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\.\.\.6789 from POE_API_KEY/);
    assert.match(r.stdout, /master key: .* from LITELLM_MASTER_KEY/);
    assert.ok(!r.stdout.includes('poe-from-env-file-0123456789'), 'the key is masked');
    for (const sub of ['claude-env', 'doctor', 'healthcheck']) {
        const h = await runGateway([sub, '--help'], { cwd: d });
        assert.equal(h.code, 0, `${sub} --help`);
        assert.match(h.stdout, /--env-file FILE/, `${sub} takes --env-file`);
    }
    const h = await runGateway(['--help'], { cwd: d });
    assert.match(h.stdout, /--env-file FILE/);
    const ce = await runGateway(['claude-env', '--config', 'gateway.yaml', '--env-file', 'env', '--with-key'], { cwd: d });
    assert.equal(ce.code, 0, ce.stderr);
    assert.match(ce.stdout, /ANTHROPIC_AUTH_TOKEN='sk-from-env-file-0123456789'/);
});
