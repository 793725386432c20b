// poe-gateway: MIT licence. A few seconds of the benchmark harness (bench/run.mjs --smoke), so that it cannot rot: every
// section runs on both route kinds against the gateway and the upstream direct, and the numbers must be sane; issue #18's
// figures (the anchors, system calls counted by perf, the gateway with HTTP/1.1 upstreams) each have a row. The full
// run (bench/run.sh) is not part of the suite. Needs wrk, h2load (nghttp2-client), taskset, a C compiler, and haproxy and
// nginx (the anchors) and perf (linux-perf; tools/deps.sh --test installs them), as root (perf counts tracepoints).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MOCK_POE_BIN, PGW_BIN, SOURCE_DIR, tmpdir } from './lib/harness.mjs';
import { cpuTicks, runnable, sleep } from '../bench/lib.mjs';

test('bench/run.mjs --smoke measures both routes, direct and through the gateway, without an error', { timeout: 240000 }, async () => {
    const json = path.join(tmpdir('pgw-bench-smoke-'), 'smoke.json');
    const { code, stdout, stderr } = await new Promise((resolve) => {
        const child = spawn(process.execPath, [path.join(SOURCE_DIR, 'bench/run.mjs'), '--smoke', '--gateway', PGW_BIN, '--mock', MOCK_POE_BIN,
            '--json', json], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
        let out = '', err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('exit', (c) => resolve({ code: c, stdout: out, stderr: err }));
    });
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.deepEqual(r.failures, [], 'a scenario failed its check');
    assert.deepEqual(r.exits, { gateway: 0, mock: 0, 'gateway-h1': 0 }, 'a gateway or the mock did not stop cleanly');
    assert.match(stdout, /### Throughput/);

    for (const section of ['throughput', 'latency', 'h2']) {
        for (const kind of ['pass', 'trans']) {
            for (const target of ['direct', 'gateway']) {
                const rows = r[section].filter((x) => x.kind === kind && x.target === target);
                assert.ok(rows.length > 0, `${section} ${kind} ${target}: no result`);
                for (const row of rows) {
                    const what = `${section} ${kind} ${target} ${row.mode} c=${row.c}`;
                    // a run that served nothing is run again only if it was starved of CPU (bench/run.mjs, starved()):
                    // what reaches here served nothing with its processes asleep (a stall) or starved five times over
                    assert.ok(row.rps > 0, `${what}: ${row.rps} req/s; waiting for a CPU ${JSON.stringify(row.runs.map((x) => x.wait_share))}`);
                    assert.equal(row.errors, 0, `${what}: errors ${JSON.stringify(row.runs.map((x) => x.errorDetail ?? x.errors))}`);
                    if (section !== 'h2') assert.ok(row.p50_us > 0 && row.p99_us >= row.p50_us, `${what}: latency ${row.p50_us} / ${row.p99_us}`);
                    if (target === 'gateway' && section === 'throughput') assert.ok(row.cpu_us_per_req > 0, `${what}: CPU per request`);
                }
            }
        }
    }
    for (const section of ['paced', 'concurrency']) {
        for (const kind of ['pass', 'trans']) {
            for (const target of ['direct', 'gateway']) {
                const row = r[section].find((x) => x.kind === kind && x.target === target);
                const what = `${section} ${kind} ${target}`;
                assert.ok(row, `${what}: no result`);
                assert.ok(row.streams > 0 && row.complete === row.streams, `${what}: ${row.complete}/${row.streams} streams complete`);
                assert.equal(row.errors, 0, `${what}: errors ${JSON.stringify(row.run?.errors ?? row.runs?.map((x) => x.errors))}`);
                assert.ok(row.ttfe_p50_us > 0 && row.delivery_p50_us > 0, `${what}: time to first event ${row.ttfe_p50_us}, delivery ${row.delivery_p50_us}`);
                assert.ok(Number.isFinite(row.gap_p99_us), `${what}: gap ${row.gap_p99_us}`);
            }
        }
    }
    // the anchors (bench/anchors.mjs) relay the same requests: answered, without errors, with their CPU measured
    for (const target of ['haproxy', 'nginx']) {
        for (const kind of ['pass', 'trans']) {
            const rows = r.throughput.filter((x) => x.kind === kind && x.target === target);
            assert.equal(rows.length, 2, `throughput ${kind} ${target}: ${rows.length} results`);
            for (const row of rows) {
                assert.ok(row.rps > 0 && row.errors === 0 && row.cpu_us_per_req > 0, `throughput ${kind} ${target} ${row.mode}: ${JSON.stringify(row)}`);
            }
        }
    }
    assert.match(stdout, /### Anchors: CPU per request/);
    // issue #18's figures (bench/README.md): the gateway with HTTP/1.1 upstream connections, streamed, beside the HTTP/2 one
    for (const kind of ['pass', 'trans']) {
        const rows = r.throughput.filter((x) => x.kind === kind && x.target === 'gateway-h1');
        assert.equal(rows.length, 1, `throughput ${kind} gateway-h1: ${rows.length} results`);
        const [row] = rows, what = `throughput ${kind} gateway-h1 ${row.mode} c=${row.c}`;
        assert.equal(row.mode, 'stream', what);
        assert.ok(row.rps > 0, `${what}: ${row.rps} req/s; waiting for a CPU ${JSON.stringify(row.runs.map((x) => x.wait_share))}`);
        assert.equal(row.errors, 0, `${what}: errors ${JSON.stringify(row.runs.map((x) => x.errorDetail))}`);
        assert.ok(row.p50_us > 0 && row.p99_us >= row.p50_us, `${what}: latency ${row.p50_us} / ${row.p99_us}`);
        assert.ok(row.upstream_connections_max >= 1, `${what}: no connection to the mock's plain port seen`);
        // its paced streams, all at once, each on its own upstream connection
        const c = r.concurrency.find((x) => x.kind === kind && x.target === 'gateway-h1');
        assert.ok(c && c.streams > 0 && c.complete === c.streams && c.errors === 0, `concurrency ${kind} gateway-h1: ${JSON.stringify(c && { ...c, run: undefined })}`);
        assert.ok(c.ttfe_p50_us > 0 && c.ttfe_p99_us >= c.ttfe_p50_us, `concurrency ${kind} gateway-h1: time to first event ${c.ttfe_p50_us} / ${c.ttfe_p99_us}`);
    }
    // system calls per request, counted by perf in the same rounds: a run that served nothing is a stall (as above)
    for (const target of ['gateway', 'haproxy', 'nginx']) {
        const row = r.syscalls.find((x) => x.target === target);
        assert.ok(row, `syscalls ${target}: no result${r.syscalls_unavailable ? ` (${r.syscalls_unavailable})` : ''}`);
        assert.equal(row.error, undefined, `syscalls ${target}: ${row.error}`);
        assert.ok(row.requests > 0 && row.syscalls_per_req > 0, `syscalls ${target}: ${row.syscalls_per_req} a request over ${row.requests}`);
        const by = Object.entries(row.syscalls_by_per_req);
        assert.ok(by.length > 1 && by.some(([k, v]) => k !== 'other' && v > 0), `syscalls ${target}: breakdown ${JSON.stringify(row.syscalls_by_per_req)}`);
    }
    assert.match(stdout, /### Syscalls per streamed pass-through request/);
    // every target of issue #18 has a row, each measured (met or MISSED); the copies of the body one per route and protocol
    assert.match(stdout, /### Targets \(issue #18\)/);
    const rows18 = r.targets_issue18;
    for (const re of [/pass-through CPU\/req vs haproxy/, /translation CPU\/req vs nginx/, /copies of the request body/, /syscalls per streamed/,
        /p99 \/ p50 .*pass-through.*HTTP\/2 upstream/, /p99 \/ p50 .*pass-through.*HTTP\/1.1 upstream/, /p99 \/ p50 .*translation.*HTTP\/2 upstream/,
        /p99 \/ p50 .*translation.*HTTP\/1.1 upstream/, /concurrent streams to an HTTP\/1.1 upstream, pass-through/,
        /concurrent streams to an HTTP\/1.1 upstream, translation/]) assert.ok(rows18.some((x) => re.test(x.measure)), `issue #18: no row ${re}`);
    for (const row of rows18)
        assert.ok(['met', 'MISSED'].includes(row.status) && row.value, `issue #18 ${row.measure}: ${row.status} ${row.measured}`);
    assert.equal(rows18.filter((x) => /copies of the request body/.test(x.measure)).length, 4, 'issue #18: a row of copies per route and protocol');
    const conc = r.concurrency.filter((x) => x.target === 'gateway');
    for (const row of conc) {
        assert.ok(row.rss_max_kb > 0, 'gateway RSS sampled');
        assert.ok(row.upstream_connections_max >= 1, 'the gateway reached the upstream over at least one connection');
    }
    assert.ok(r.idle.gateway.start_kb > 0);
    // the copies of the request body (bench/copies): counted on both routes and both client protocols, and sane. Every
    // route hands the body to OpenSSL, whose record layer copies it before encrypting it in place, so a count under
    // half a copy means the shim saw nothing (not preloaded, or the marker lost); twenty copies of 48 KB would be a
    // runaway buffer, not a figure
    assert.match(stdout, /### Copies of the request body/);
    for (const kind of ['pass', 'trans']) {
        for (const protocol of ['http/1.1', 'h2c']) {
            const row = r.copies.find((x) => x.kind === kind && x.protocol === protocol);
            assert.ok(row, `copies ${kind} ${protocol}: no result`);
            assert.ok(row.copies > 0.5 && row.copies < 20, `copies ${kind} ${protocol}: ${JSON.stringify(row)}`);
            assert.ok(Object.entries(row.by).some(([lib, x]) => lib.startsWith('libssl') && x.copies > 0.5),
                `copies ${kind} ${protocol}: OpenSSL's copy not seen: ${JSON.stringify(row)}`);
            if (kind !== 'pass') continue; // the translation's own output grows in h2o buffers too (a copy libh2o makes)
            // libh2o's share, which the gateway sizes from the declared length (src/serve/bodies.c): over HTTP/1.1 only
            // what came with the head is copied once (a read of 8 or 16 KB; 1.26 copies before, as the input doubled);
            // over h2c each DATA frame is copied into the stream's body, once (2.46 before, as that buffer doubled), and
            // the connection's input moves a partial frame now and then
            const h2o = Object.entries(row.by).filter(([lib]) => lib.startsWith('libh2o')).reduce((a, [, x]) => a + x.copies, 0);
            assert.ok(h2o < (protocol === 'h2c' ? 1.75 : 0.5), `copies ${kind} ${protocol}: libh2o copies the body ${h2o} times: ${JSON.stringify(row)}`);
        }
    }
});

test('the harness tells a process starved of CPU from one that sleeps (what decides whether an empty run is run again)', async () => {
    // on one core: a busy loop, and a SCHED_IDLE busy loop that it starves; and a process that sleeps
    const spawnOn = (args) => spawn('taskset', ['-c', '0', ...args], { stdio: 'ignore' });
    const hog = spawnOn(['sh', '-c', 'while :; do :; done']);
    const starvedChild = spawnOn(['chrt', '-i', '0', 'sh', '-c', 'while :; do :; done']);
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
        await sleep(100);
        const cpu0 = cpuTicks(starvedChild.pid);
        let starvedRunnable = 0, sleeperRunnable = 0;
        for (let i = 0; i < 10; ++i) {
            starvedRunnable += runnable(starvedChild.pid);
            sleeperRunnable += runnable(sleeper.pid);
            await sleep(50);
        }
        assert.equal(sleeperRunnable, 0, 'a sleeping process was seen runnable');
        assert.ok(starvedRunnable >= 8, `a starved process was seen runnable in ${starvedRunnable} of 10 samples`);
        assert.ok(cpuTicks(starvedChild.pid) - cpu0 <= 10, 'the SCHED_IDLE loop was not starved: the test proves nothing');
    } finally {
        for (const c of [hog, starvedChild, sleeper]) c.kill('SIGKILL');
    }
});
