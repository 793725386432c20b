// poe-gateway: MIT licence. The /usage page (#19): a browser signs in with the master key (a login form, ?key=
// exchanged for an HttpOnly cookie; the key is never logged) and sees spend per developer per day as stacked bars drawn
// as inline SVG. Checked in a real headless browser (Debian's chromium): loaded, screenshot, two developers' bars.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MASTER_KEY, anthropicStream, certs, defaultConfig, request, startGateway, startMock, tmpdir } from './lib/harness.mjs';

const ALICE = 'alice-0123456789-page';
const BOB = 'bob-0123456789-page';
const usage = { input_tokens: 100000, output_tokens: 10000, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };

let mock, gw, dir;
before(async () => {
    mock = await startMock();
    dir = tmpdir('pgw-page-');
    gw = await startGateway({ env: { SSL_CERT_FILE: certs().ca, ALICE_KEY: ALICE, BOB_KEY: BOB }, config: defaultConfig(mock, `gateway:
  ledger:
    path: ${path.join(dir, 'ledger.sqlite')}
  budget: {daily: 100}
  keys:
    - {name: alice, key: os.environ/ALICE_KEY, budget: {daily: 1}}
    - {name: bob, key: os.environ/BOB_KEY}
`) });
    const post = (key, model, session) => request(`${gw.url}/v1/messages`, { method: 'POST',
        headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json', 'x-claude-code-session-id': session },
        body: JSON.stringify({ model, max_tokens: 8, stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
    await mock.script({ match: { path: '/v1/messages' }, headers: { 'content-type': 'text/event-stream' }, repeat: 3,
        chunks: anthropicStream({ blocks: [{ type: 'text', text: 'ok' }], usage }) });
    assert.equal((await post(ALICE, 'claude-sonnet-4-5-20250929', 'sess-alice')).status, 200);
    assert.equal((await post(ALICE, 'claude-haiku-4-5-20251001', 'sess-alice')).status, 200);
    assert.equal((await post(BOB, 'claude-sonnet-4-5-20250929', 'sess-bob')).status, 200);
});
after(async () => {
    assert.equal((await gw.stop()).code, 0);
    await mock.stop();
    assert.ok(!gw.output.stderr.includes(MASTER_KEY), 'the master key reached the log');
    fs.rmSync(dir, { recursive: true, force: true });
});

const html = { accept: 'text/html,application/xhtml+xml' };

test('sign-in: a login form, ?key= exchanged for an HttpOnly cookie, the key kept out of the log', async () => {
    let r = await request(`${gw.url}/usage`, { headers: html });
    assert.equal(r.status, 401);
    assert.match(r.headers['content-type'], /^text\/html/);
    assert.match(r.body, /<form method="get" action="\/usage"[^>]*><p><label>Master key <input type="password" name="key"/);
    r = await request(`${gw.url}/usage?key=not-the-key`, { headers: html });
    assert.equal(r.status, 401);
    assert.match(r.body, /That is not the master key/);
    r = await request(`${gw.url}/usage?key=${ALICE}`, { headers: html });
    assert.equal(r.status, 403, 'a developer key is not the master key');

    r = await request(`${gw.url}/usage?key=${MASTER_KEY}`, { headers: html });
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/usage');
    const setCookie = r.headers['set-cookie'][0];
    assert.match(setCookie, /^pgw_usage=\d+\.[0-9a-f]{64}; Path=\/usage; Max-Age=43200; HttpOnly; SameSite=Strict$/);
    assert.ok(!setCookie.includes(MASTER_KEY));
    const cookie = setCookie.split(';')[0];
    // the access log line is written when the request is disposed, just after the answer: wait for it
    for (let i = 0; i < 200 && !/"GET \/usage\?\[query hidden\] HTTP\/1\.1" 303 /.test(gw.output.stderr); i++)
        await new Promise((res) => setTimeout(res, 10));
    assert.match(gw.output.stderr, /"GET \/usage\?\[query hidden\] HTTP\/1\.1" 303 /);
    assert.ok(!gw.output.stderr.includes(MASTER_KEY));

    r = await request(`${gw.url}/usage`, { headers: { ...html, cookie } });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/html/);
    assert.doesNotMatch(r.body, /<script|<link|@import|url\(/, 'nothing external, no script');
    // the JSON is behind the cookie too, and a forged cookie is nothing
    assert.equal((await request(`${gw.url}/usage`, { headers: { cookie } })).status, 200);
    const forged = cookie.replace(/[0-9a-f]$/, (c) => (c === '0' ? '1' : '0'));
    assert.equal((await request(`${gw.url}/usage`, { headers: { ...html, cookie: forged } })).status, 401);
    assert.equal((await request(`${gw.url}/usage`, { headers: { cookie: forged } })).status, 401);
    const expired = `pgw_usage=1.${cookie.split('.')[1]}`;
    assert.equal((await request(`${gw.url}/usage`, { headers: { cookie: expired } })).status, 401);
});

function chromium(args) {
    return new Promise((resolve, reject) => {
        const profile = tmpdir('pgw-chromium-');
        execFile('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
            `--user-data-dir=${profile}`, '--window-size=1000,1400', ...args], { timeout: 60000, maxBuffer: 16 << 20 },
        (err, stdout, stderr) => {
            fs.rmSync(profile, { recursive: true, force: true });
            if (err) reject(new Error(`chromium: ${err.message}\n${stderr}`));
            else resolve(stdout);
        });
    });
}

test('a headless chromium loads the page: a screenshot, and the stacked bars of two developers', async () => {
    const url = `${gw.url}/usage?key=${encodeURIComponent(MASTER_KEY)}`; // the login form's request
    const shot = path.join(dir, 'usage.png');
    await chromium([`--screenshot=${shot}`, url]);
    const png = fs.readFileSync(shot);
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    assert.ok(png.length > 10000, `a screenshot of ${png.length} bytes is a blank page`);

    const dom = await chromium(['--dump-dom', url]);
    assert.match(dom, /<h1>poe-gateway usage<\/h1>/, 'the page after sign-in, not the login form');
    const today = new Date().toISOString().slice(0, 10);
    const bars = [...dom.matchAll(/<rect class="bar" data-key="([^"]+)" data-day="([^"]+)" x="[\d.]+" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)]
        .map((m) => ({ key: m[1], day: m[2], y: Number(m[3]), height: Number(m[5]) }));
    assert.deepEqual(bars.map((b) => [b.key, b.day]), [['alice', today], ['bob', today]]);
    assert.ok(bars.every((b) => b.height >= 1));
    assert.ok(bars[0].height > bars[1].height, 'alice spent more than bob');
    assert.ok(Math.abs(bars[1].y + bars[1].height - bars[0].y) < 0.2, 'stacked: bob sits on alice');
    assert.match(dom, /<tr class="budget"><td>key alice<\/td><td>day<\/td>/);
    assert.match(dom, /<tr class="budget"><td>the team \(upstream key [0-9a-f]{12}\)<\/td><td>day<\/td>/);
    assert.match(dom, /<td>claude-sonnet-4\.5<\/td><td class="n">2<\/td>/, 'per model');
    assert.match(dom, /<td>sess-alice<\/td><td class="n">2<\/td>/, 'top sessions');
    assert.match(dom, /Poe balance/);
});
