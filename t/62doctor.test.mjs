// poe-gateway: MIT licence. `poe-gateway doctor` against the mock Poe: all green, then each way a setup goes wrong.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MASTER_KEY, POE_KEY, SOURCE_DIR, certs, defaultConfig, runGateway, startGateway, startMock, tmpdir } from './lib/harness.mjs';

let mock;
before(async () => {
    mock = await startMock();
});
after(async () => {
    await mock.stop();
});

async function freePort() {
    const srv = net.createServer();
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { port } = srv.address();
    await new Promise((resolve) => srv.close(resolve));
    return port;
}

/** Runs doctor on `config` (YAML text) with the test CA trusted and both keys set unless `env` says otherwise. */
async function doctor(config, { env = {}, args = [] } = {}) {
    const dir = tmpdir('pgw-doctor-');
    const file = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(file, config);
    const r = await runGateway(['doctor', '--config', file, ...args], {
        env: { SSL_CERT_FILE: certs().ca, POE_API_KEY: POE_KEY, LITELLM_MASTER_KEY: MASTER_KEY, ...env }, cwd: dir });
    r.lines = r.stdout.split('\n').filter((l) => /^[✔✘] /.test(l));
    r.failed = r.lines.filter((l) => l.startsWith('✘'));
    return r;
}

const gatewaySection = (port) => `gateway:\n  host: 127.0.0.1\n  port: ${port}\n`;

test('all green against the mock: exit 0, one ✔ line per check', async () => {
    const r = await doctor(defaultConfig(mock, gatewaySection(await freePort())));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.failed, []);
    const text = r.lines.join('\n');
    assert.match(text, /^✔ .*gateway\.yaml loads \(4 routes\)$/m);
    assert.match(text, /^✔ environment variable POE_API_KEY is set$/m);
    assert.match(text, /^✔ environment variable LITELLM_MASTER_KEY is set$/m);
    assert.match(text, /^✔ the master key is set \(LITELLM_MASTER_KEY\)$/m);
    assert.match(text, /^✔ 127\.0\.0\.1:\d+ is free to listen on$/m);
    assert.match(text, new RegExp(`^✔ ${mock.httpsUrl.replace(/[.]/g, '\\.')} is reachable \\(\\d+ models in its catalog\\)$`, 'm'));
    assert.match(text, /^✔ the key is valid \(POE_API_KEY for .*\): 1000000 points left$/m);
    assert.match(text, /^✔ anthropic\/claude-sonnet-4\.5 \(route claude-sonnet-4-5-20250929\) is in Poe's catalog$/m);
    assert.match(text, /^✔ openai\/GPT-5 \(route gpt-5\) is in Poe's catalog and supports tools$/m);
    assert.ok(!/claude-\*/.test(text), 'wildcard routes are skipped');
    assert.match(r.stdout, /^doctor: all \d+ checks passed$/m);
    for (const secret of [POE_KEY, MASTER_KEY]) assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'no key printed');
    // no points spent: only the catalog and the balance were asked for
    const paths = (await mock.requests()).map((q) => q.path);
    assert.ok(paths.every((p) => p === '/v1/models' || p === '/usage/current_balance'), paths.join(' '));
});

test('--json: the same checks as one object', async () => {
    const r = await doctor(defaultConfig(mock, gatewaySection(await freePort())), { args: ['--json'] });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.ok(report.checks.length >= 8);
    for (const c of report.checks) {
        assert.deepEqual(Object.keys(c), ['check', 'ok', 'message', 'fix']);
        assert.equal(c.ok, true);
        assert.equal(c.fix, null);
    }
    assert.deepEqual([...new Set(report.checks.map((c) => c.check))],
        ['config', 'environment', 'master key', 'listen', 'upstream', 'poe key', 'bot']);

    const bad = await doctor(defaultConfig(mock, gatewaySection(await freePort())), { args: ['--json'], env: { POE_API_KEY: null } });
    assert.equal(bad.code, 1);
    const badReport = JSON.parse(bad.stdout);
    assert.equal(badReport.ok, false);
    const failed = badReport.checks.filter((c) => !c.ok);
    assert.equal(failed.length, 1);
    assert.equal(failed[0].check, 'environment');
    assert.match(failed[0].fix, /POE_API_KEY/);
});

test('a missing environment variable', async () => {
    const r = await doctor(defaultConfig(mock, gatewaySection(await freePort())), { env: { POE_API_KEY: null } });
    assert.equal(r.code, 1);
    assert.deepEqual(r.failed, ['✘ environment variable POE_API_KEY is referenced by the configuration but not set']);
    assert.match(r.stdout, /^ {4}fix: add POE_API_KEY=\.\.\. to \.env .*https:\/\/poe\.com\/api\/keys$/m);
    assert.match(r.stdout, /^doctor: 1 of \d+ checks failed$/m);
});

test('a key Poe refuses', async () => {
    const other = await startMock({ apiKey: 'a-different-key' });
    try {
        const r = await doctor(defaultConfig(other, gatewaySection(await freePort())));
        assert.equal(r.code, 1);
        assert.equal(r.failed.length, 1, r.stdout);
        assert.match(r.failed[0], /^✘ Poe refused the key \(POE_API_KEY for https:\/\/localhost:\d+\): 401$/);
        assert.match(r.stdout, /fix: create a key at https:\/\/poe\.com\/api\/keys and set POE_API_KEY to it/);
    } finally {
        await other.stop();
    }
});

test('a key with no points left', async () => {
    await mock.reset();
    await mock.script({ match: { path: '/usage/current_balance' }, status: 200, body: '{"current_point_balance":0}' });
    const r = await doctor(defaultConfig(mock, gatewaySection(await freePort())));
    await mock.reset();
    assert.equal(r.code, 1);
    assert.deepEqual(r.failed.map((l) => l.replace(/localhost:\d+/, 'localhost')),
        ['✘ the key is valid but has no points left (POE_API_KEY for https://localhost)']);
});

test('an unknown bot, and an openai/ bot without tools', async () => {
    const extra = `  - model_name: mystery
    litellm_params:
      model: openai/No-Such-Bot
      api_base: ${mock.httpsUrl}/v1
      api_key: os.environ/POE_API_KEY
  - model_name: grok
    litellm_params:
      model: openai/Grok-4
      api_base: ${mock.httpsUrl}/v1
      api_key: os.environ/POE_API_KEY
`;
    const config = defaultConfig(mock, gatewaySection(await freePort())).replace('general_settings:', `${extra}general_settings:`);
    const r = await doctor(config);
    assert.equal(r.code, 1);
    assert.deepEqual(r.failed, ['✘ openai/No-Such-Bot (route mystery) is not in Poe\'s catalog']);
    assert.match(r.stdout, /fix: change litellm_params\.model of route mystery \(line \d+\) to a bot Poe lists/);
    assert.match(r.stdout, /^✔ openai\/Grok-4 \(route grok\) is in Poe's catalog and supports tools$/m, 'names match case-insensitively');

    // the same bot, in a catalog that does not list tools for it
    const catalog = JSON.parse((await (await fetch(`${mock.httpUrl}/v1/models`)).text()));
    for (const m of catalog.data) if (m.id === 'grok-4') m.supported_features = [];
    await mock.reset();
    await mock.script({ match: { path: '/v1/models' }, status: 200, body: JSON.stringify(catalog) });
    const t = await doctor(config);
    await mock.reset();
    assert.equal(t.code, 1);
    assert.ok(t.failed.includes('✘ openai/Grok-4 (route grok) does not list tools among its features'), t.stdout);
    assert.match(t.stdout, /fix: Claude Code always sends tools/);
});

test('a model Poe no longer lists: doctor flags it and names the newest of its family', async () => {
    // Poe retires claude-sonnet-4.5 (and its dated id with it): the catalog lists claude-sonnet-4.6 and no 4.5
    const catalog = JSON.parse((await (await fetch(`${mock.httpUrl}/v1/models`)).text()));
    catalog.data = catalog.data.filter((m) => m.id !== 'claude-sonnet-4.5');
    assert.ok(catalog.data.some((m) => m.id === 'claude-sonnet-4.6'));
    const dated = `  - model_name: claude-sonnet-4-5
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
      api_base: ${mock.httpsUrl}
      api_key: os.environ/POE_API_KEY
`;
    const config = defaultConfig(mock, gatewaySection(await freePort())).replace('general_settings:', `${dated}general_settings:`);
    await mock.reset();
    await mock.script({ match: { path: '/v1/models' }, status: 200, body: JSON.stringify(catalog) });
    const r = await doctor(config);
    await mock.reset();
    assert.equal(r.code, 1, r.stdout);
    assert.deepEqual(r.failed, ['✘ anthropic/claude-sonnet-4.5 (route claude-sonnet-4-5-20250929) is not in Poe\'s catalog',
        '✘ anthropic/claude-sonnet-4-5-20250929 (route claude-sonnet-4-5) is not in Poe\'s catalog']);
    assert.match(r.stdout, /fix: Poe no longer lists it: change litellm_params\.model of route claude-sonnet-4-5-20250929 \(line \d+\) to anthropic\/claude-sonnet-4\.6, the newest claude-sonnet Poe lists$/m);
    assert.match(r.stdout, /fix: Poe no longer lists it: change litellm_params\.model of route claude-sonnet-4-5 \(line \d+\) to anthropic\/claude-sonnet-4\.6, the newest claude-sonnet Poe lists$/m);
    assert.match(r.stdout, /^✔ anthropic\/claude-haiku-4\.5 \(route claude-haiku-4-5-20251001\) is in Poe's catalog$/m);
});

test('the shipped template names bots Poe\'s catalog lists', async () => {
    // its routes pointed at the mock, whose catalog is shaped like Poe's (docs/peers.md#poes-catalog)
    const shipped = fs.readFileSync(path.join(SOURCE_DIR, 'conf/gateway.yaml.template'), 'utf8')
        .replaceAll('https://api.poe.com', mock.httpsUrl).replace(/^gateway:[\s\S]*$/m, gatewaySection(await freePort()));
    const r = await doctor(shipped);
    assert.equal(r.code, 0, r.stdout);
    const bots = r.lines.filter((l) => / \(route [^)]+\) is in Poe's catalog/.test(l));
    for (const m of ['claude-opus-4.8', 'claude-sonnet-4.6', 'claude-haiku-4.5'])
        assert.ok(bots.some((l) => l.startsWith(`✔ anthropic/${m} `)), `${m}: ${r.stdout}`);
});

test('a bot named by its display name: doctor finds it as the gateway does', async () => {
    // Poe resolves a bot's display name as well as its id, and so does the gateway (src/upstream/catalog.c): doctor must not call
    // such a route's bot missing. The mock's display names differ from the ids only in case, so one is renamed here.
    const catalog = JSON.parse((await (await fetch(`${mock.httpUrl}/v1/models`)).text()));
    const gemini = catalog.data.find((m) => m.id === 'gemini-2.5-pro');
    gemini.metadata.display_name = 'Gemini 2.5 Pro';
    const extra = `  - model_name: gemini
    litellm_params:
      model: openai/Gemini 2.5 Pro
      api_base: ${mock.httpsUrl}/v1
      api_key: os.environ/POE_API_KEY
`;
    const config = defaultConfig(mock, gatewaySection(await freePort())).replace('general_settings:', `${extra}general_settings:`);
    await mock.reset();
    await mock.script({ match: { path: '/v1/models' }, status: 200, body: JSON.stringify(catalog) });
    const r = await doctor(config);
    await mock.reset();
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(r.failed, []);
    assert.match(r.stdout, /^✔ openai\/Gemini 2\.5 Pro \(route gemini\) is in Poe's catalog as gemini-2\.5-pro and supports tools$/m);
});

test('an unreachable upstream', async () => {
    const closed = await freePort();
    const config = defaultConfig(null, gatewaySection(await freePort())).replaceAll('https://localhost:9', `https://localhost:${closed}`);
    const r = await doctor(config);
    assert.equal(r.code, 1);
    assert.equal(r.failed.length, 1, r.stdout);
    assert.match(r.failed[0], new RegExp(`^✘ https://localhost:${closed} is not reachable: `));
    assert.match(r.stdout, /fix: check this machine's DNS, firewall and proxy/);
    assert.ok(!/poe key|catalog/.test(r.lines.join('\n')), 'no key or bot checks against an origin that did not answer');
});

test('the master key: placeholder, missing on a non-loopback host, generated on loopback', async () => {
    const port = await freePort();
    const placeholder = await doctor(defaultConfig(mock, gatewaySection(port)), { env: { LITELLM_MASTER_KEY: 'changeme' } });
    assert.equal(placeholder.code, 1);
    assert.deepEqual(placeholder.failed, ['✘ the master key (LITELLM_MASTER_KEY) is a placeholder']);
    assert.match(placeholder.stdout, /openssl rand -hex 24/);

    const noKey = defaultConfig(mock, `gateway:\n  host: 0.0.0.0\n  port: ${port}\n`).replace(/general_settings:\n.*\n/, '');
    const open = await doctor(noKey, { env: { LITELLM_MASTER_KEY: null } });
    assert.equal(open.code, 1);
    assert.deepEqual(open.failed, ['✘ no master key is configured and gateway.host 0.0.0.0 is not loopback: the gateway refuses to start']);

    const loopback = await doctor(defaultConfig(mock, gatewaySection(port)).replace(/general_settings:\n.*\n/, ''),
        { env: { LITELLM_MASTER_KEY: null } });
    assert.equal(loopback.code, 0, loopback.stdout);
    assert.match(loopback.stdout, /^✔ no master key is configured; on 127\.0\.0\.1 the gateway uses the one it generates in .*master_key$/m);
});

test('the listen address: taken by another program, or by a running poe-gateway', async () => {
    const srv = net.createServer();
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const taken = srv.address().port;
    try {
        const r = await doctor(defaultConfig(mock, gatewaySection(taken)));
        assert.equal(r.code, 1);
        assert.deepEqual(r.failed, [`✘ 127.0.0.1:${taken} is in use by another program`]);
        assert.match(r.stdout, new RegExp(`fix: stop what listens there \\(ss -ltnp 'sport = :${taken}' shows it\\)`));
    } finally {
        srv.close();
    }
    const gw = await startGateway({ config: defaultConfig(mock) });
    try {
        const r = await doctor(defaultConfig(mock, gatewaySection(gw.port)));
        assert.equal(r.code, 0, r.stdout);
        assert.match(r.stdout, new RegExp(`^✔ 127\\.0\\.0\\.1:${gw.port} is in use by a running poe-gateway$`, 'm'));
    } finally {
        await gw.stop();
    }
});

test('a configuration that does not load stops there', async () => {
    const r = await doctor('model_list:\n  - model_name: a\n    litellm_params: [\n');
    assert.equal(r.code, 1);
    assert.equal(r.lines.length, 1);
    assert.match(r.lines[0], /^✘ the configuration does not load: .*gateway\.yaml:\d+:\d+: /);
    assert.match(r.stdout, /fix: correct the place named, then run: poe-gateway --check-config --config /);
    const h = await runGateway(['doctor', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--json/);
});
