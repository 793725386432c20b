// poe-gateway: MIT licence. SIGHUP reads the env file again: a key added to .env works, a key removed or changed stops
// working, and the process's own environment still wins over the file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { certs, request, sleep, startGateway, startMock, tmpdir } from './lib/harness.mjs';

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
