#!/usr/bin/env node
// poe-gateway: MIT licence. The benchmark harness (bench/README.md): the gateway against the upstream direct and
// against claude-code-router, on both route kinds, with a table on stdout and every figure in a JSON file.
//
// Processes: the mock Poe (t/mock-poe, scripted answers, no request record) is the upstream; the gateway runs one
// worker; claude-code-router runs from bench/node_modules in a temporary HOME. Each is pinned with taskset (the
// layout is printed and kept in the JSON). Load: wrk with bench/post.lua (HTTP/1.1, what Claude Code speaks), h2load
// (HTTP/2 cleartext), and bench/sseprobe.c for paced streams, whose events carry the upstream's send time.
//
// Every figure is the median over --runs runs; runs of the three systems are interleaved so that drift on the machine
// touches them alike. Before each run the harness waits until the machine is quiet (others may share it), and it
// records how busy the machine was during the run.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, CLK_TCK, MASTER_KEY, PASS_MODEL, POE_KEY, ROOT, TRANS_MODEL, buildProbe, cpuTicks, fmt, log, makeCerts, rssKB,
    run as runProgram, sleep, spawnLogged, startGateway as startGatewayProcess, startMock as startMockProcess, runnable, waitFor, waitNs } from './lib.mjs';
import { claudeCode, tiny, upstreamAnswer } from './requests.mjs';
import { anchorBinaries, startHaproxy, startNginx } from './anchors.mjs';
import { countSyscalls, settled as perfSettled, syscallCounting } from './syscalls.mjs';
import { buildCopies, copiesPerRequest, countMarks, createCountsFile, markBody, MARK, readCounts } from './copies/copies.mjs';

const { values: opt } = parseArgs({
    options: {
        gateway: { type: 'string', default: process.env.PGW_BIN || path.join(ROOT, 'build-bench/poe-gateway') },
        mock: { type: 'string', default: process.env.MOCK_POE_BIN || path.join(ROOT, 'build-bench/t/mock-poe/mock-poe') },
        runs: { type: 'string' },
        duration: { type: 'string' },
        json: { type: 'string' },
        smoke: { type: 'boolean', default: false },
        'no-ccr': { type: 'boolean', default: false },
        'no-anchors': { type: 'boolean', default: false },
        base: { type: 'string' },
        only: { type: 'string' },
        threads: { type: 'string', default: '1' },
        'sut-cpu': { type: 'string' },
        'upstream-cpu': { type: 'string' },
        'load-cpu': { type: 'string' },
        'paced-streams': { type: 'string' },
        'h1-streams': { type: 'string' },
        concurrency: { type: 'string' },
        nice: { type: 'string' },
        sched: { type: 'string' },
        help: { type: 'boolean', default: false },
    },
});
if (opt.help) {
    console.log(`usage: node bench/run.mjs [--smoke] [--runs N] [--duration SECONDS] [--json FILE] [--no-ccr] [--no-anchors]
       [--only throughput,syscalls,latency,h2,paced,concurrency,copies] [--concurrency 8,32,128] [--paced-streams 1000,2000,5000]
       [--h1-streams 500] [--threads N]
       [--sut-cpu LIST] [--upstream-cpu LIST] [--load-cpu LIST] [--sched fifo|nice] [--nice N]
       [--gateway BIN] [--mock BIN] [--base BIN]
bash bench/run.sh installs what is missing, builds, and runs this with its arguments.`);
    process.exit(0);
}

opt.gateway = path.resolve(opt.gateway); // the gateway runs in its own directory
opt.mock = path.resolve(opt.mock);
if (opt.base) opt.base = path.resolve(opt.base); // another build of the gateway, measured in the same runs (throughput)
const SMOKE = opt.smoke;
const RUNS = Number(opt.runs ?? (SMOKE ? 1 : 3));
const DURATION = Number(opt.duration ?? (SMOKE ? 1 : 3));
const WITH_CCR = !opt['no-ccr'] && !SMOKE;
const WITH_ANCHORS = !opt['no-anchors'];
const SECTIONS = new Set((opt.only ?? 'throughput,syscalls,latency,h2,paced,concurrency,copies').split(','));
if (SECTIONS.has('throughput')) SECTIONS.add('syscalls'); // counted beside the CPU figures they explain
const NCPU = os.cpus().length;
// The smoke run pins nothing by default: its figures are not compared, and on a machine shared with other work a process
// pinned to a core that a SCHED_FIFO task holds (another benchmark) gets 5% of it (see starved()).
const ALL_CPUS = `0-${NCPU - 1}`;
const CPUS = {
    sut: opt['sut-cpu'] ?? (SMOKE ? ALL_CPUS : '0'),
    upstream: opt['upstream-cpu'] ?? (SMOKE ? ALL_CPUS : NCPU > 1 ? '1' : '0'),
    load: opt['load-cpu'] ?? (SMOKE ? ALL_CPUS : NCPU > 2 ? '2' : NCPU > 1 ? '1' : '0'),
};
const PACE = SMOKE ? { chunks: 8, paceMs: 5 } : { chunks: 64, paceMs: 20 };
const CONCURRENCY = (opt.concurrency ?? (SMOKE ? '8' : '8,32,128')).split(',').map(Number);
const PACED_N = (opt['paced-streams'] ?? (SMOKE ? '40' : '1000,2000,5000')).split(',').map(Number).filter((n) => n > 0);
/** The concurrencies of a target of issue #18 (`prefs`) among those run, or the highest one run when none is (the smoke run's 8). */
const targetCs = (prefs) => {
    const cs = CONCURRENCY.filter((c) => prefs.includes(c));
    return cs.length ? cs : [Math.max(...CONCURRENCY)];
};
const TAIL_C = targetCs([32, 128]); // p99 / p50, and the HTTP/1.1 upstream's throughput rows
const SYSCALL_C = targetCs([32])[0];
/** Paced streams at once to the gateway whose routes are HTTP/1.1 (issue #18: 500, all answered). */
const H1_STREAMS = Number(opt['h1-streams'] ?? (SMOKE ? 40 : 500));
// On a machine shared with other work (a CI runner, other users), the benchmark's C programs run SCHED_FIFO
// (chrt -f 50): they then take their core the moment they wake, where a low niceness still waits behind a running task
// for milliseconds. Linux keeps 5% of each second for everything else (sched_rt_runtime_us). claude-code-router runs at
// nice -19 instead: Node's helper threads pinned to one core with it under SCHED_FIFO starve each other (it was seen
// spinning at 100% while the gateway's worker, also FIFO on that core, never ran). Both need root; --sched nice runs
// everything at --nice (default -19); the smoke run changes neither.
const SCHED = opt.sched ?? (process.getuid() === 0 && !SMOKE ? 'fifo' : 'none');
const NICE = opt.nice ?? (SCHED === 'nice' ? '-19' : '0');
const JSON_OUT = opt.json ?? path.join(BENCH_DIR, 'results', SMOKE ? 'smoke.json' : 'latest.json');

const median = (xs) => {
    const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (v.length === 0) return null;
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

// ---- processes (started and waited for by bench/lib.mjs, which kills them when the harness exits) ----

/** The command line that runs `bin` pinned to `cpus` with the benchmark's scheduling; chrt, nice and taskset exec, so the pid is bin's. */
const pinned = (cpus, bin, args, { fifo = true } = {}) => (SCHED === 'fifo' && fifo ? ['chrt', ['-f', '50', 'taskset', '-c', cpus, bin, ...args]]
    : ['nice', ['-n', SCHED === 'fifo' ? '-19' : NICE, 'taskset', '-c', cpus, bin, ...args]]);

/** Runs a program to completion (killed after 10 minutes); resolves {code, stdout, stderr, pid}. */
const run = (cmd, args, o = {}) => runProgram(cmd, args, { timeoutMs: 600000, ...o });

/** Spawns `bin` pinned to `cpus`; output goes to `logFile`. */
function spawnPinned(cpus, bin, args, { env, cwd, logFile, fifo = true }) {
    const [cmd, cmdArgs] = pinned(cpus, bin, args, { fifo });
    return spawnLogged(cmd, cmdArgs, { env, cwd, logFile });
}

const portOpen = (port) => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
});

function freePort() {
    return new Promise((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/** Busy and total jiffies of the whole machine. */
function machineTicks() {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
}

/**
 * Waits (up to 5 s) until the machine is under 10% busy for 300 ms; returns the busy share last seen, which the
 * JSON keeps with the run. The smoke run does not wait: it shares the machine with the rest of the test suite.
 */
async function waitQuiet() {
    if (SMOKE) return null;
    let share = 1;
    for (let i = 0; i < 16; ++i) {
        const a = machineTicks();
        await sleep(300);
        const b = machineTicks();
        share = (b.busy - a.busy) / Math.max(1, b.total - a.total);
        if (share < 0.1) break;
    }
    return share;
}

// ---- setup ----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgw-bench-'));
const certs = makeCerts(tmp);

for (const bin of [opt.gateway, opt.mock]) if (!fs.existsSync(bin)) throw new Error(`${bin} not found: build first (bash bench/run.sh does)`);
const ANCHOR_BINS = anchorBinaries();
if (WITH_ANCHORS && (!ANCHOR_BINS.haproxy || !ANCHOR_BINS.nginx))
    throw new Error('haproxy and nginx are the anchors of the throughput table: apt-get install haproxy nginx-light (bash bench/run.sh does it), or --no-anchors');
for (const tool of ['wrk', 'h2load', 'taskset', 'cc']) {
    try { execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }); } catch {
        throw new Error(`${tool} is not installed (apt-get install wrk nghttp2-client util-linux gcc; bash bench/run.sh does it)`);
    }
}
const PROBE = buildProbe(tmp);

const bodyFiles = new Map();
/** The file holding a request body: size 'cc' (Claude Code, ~50 KB) or 'tiny', for `model`, streamed or not. */
function bodyFile(size, model, stream) {
    const key = `${size}-${model}-${stream}`;
    if (!bodyFiles.has(key)) {
        const file = path.join(tmp, `body-${bodyFiles.size}.json`);
        fs.writeFileSync(file, JSON.stringify((size === 'cc' ? claudeCode : tiny)({ model, stream })));
        bodyFiles.set(key, file);
    }
    return bodyFiles.get(key);
}

const startMock = () => startMockProcess({ dir: tmp, certs, bin: opt.mock, spawnAs: (bin, args, o) => spawnPinned(CPUS.upstream, bin, args, o) });
const startGateway = (mock) => startGatewayProcess({ dir: tmp, mock, certs, bin: opt.gateway, threads: opt.threads,
    spawnAs: (bin, args, o) => spawnPinned(CPUS.sut, bin, args, o) });

async function startCcr(mock) {
    const cli = path.join(BENCH_DIR, 'node_modules/@musistudio/claude-code-router/dist/cli.js');
    if (!fs.existsSync(cli)) throw new Error(`claude-code-router is not installed: (cd bench && npm ci)`);
    const version = JSON.parse(fs.readFileSync(path.join(path.dirname(cli), '../package.json'), 'utf8')).version;
    const home = path.join(tmp, 'ccr-home');
    const port = await freePort();
    fs.mkdirSync(path.join(home, '.claude-code-router'), { recursive: true });
    // Configured as its README says: one provider per Poe endpoint; "provider,model" in a request's model picks it.
    fs.writeFileSync(path.join(home, '.claude-code-router/config.json'), JSON.stringify({
        APIKEY: MASTER_KEY,
        LOG: false,
        HOST: '127.0.0.1',
        PORT: port,
        NON_INTERACTIVE_MODE: true,
        API_TIMEOUT_MS: 600000,
        Providers: [
            { name: 'poe', api_base_url: `https://localhost:${mock.https}/v1/chat/completions`, api_key: POE_KEY, models: ['GPT-5'] },
            { name: 'poe-anthropic', api_base_url: `https://localhost:${mock.https}/v1/messages`, api_key: POE_KEY,
                models: ['claude-sonnet-4.5'], transformer: { use: ['Anthropic'] } },
        ],
        Router: { default: 'poe-anthropic,claude-sonnet-4.5' },
    }, null, 2));
    const logFile = path.join(tmp, 'ccr.log');
    const env = { PATH: process.env.PATH, HOME: home, NODE_EXTRA_CA_CERTS: certs.ca };
    const child = spawnPinned(CPUS.sut, process.execPath, [cli, 'start'], { env, cwd: home, logFile, fifo: false });
    await waitFor('claude-code-router', () => portOpen(port), child, logFile, 30000);
    return { child, pid: child.pid, port, version, logFile };
}

// ---- load generators ----

const headerLines = (h) => Object.entries(h).map(([k, v]) => `${k}: ${v}`);

async function wrk({ url, body, headers, c, duration, onSpawn }) {
    const env = { ...process.env, BENCH_BODY: body, BENCH_HEADERS: headerLines(headers).join('\n') };
    const r = await run(...pinned(CPUS.load, 'wrk', ['-t1', `-c${c}`, `-d${duration}s`, '--timeout', '10s', '-s',
        path.join(BENCH_DIR, 'post.lua'), url]), { env, onSpawn });
    const m = r.stdout.match(/^BENCH (.*)$/m);
    if (!m) throw new Error(`wrk failed (${r.code}): ${r.stdout}${r.stderr}`);
    const j = JSON.parse(m[1]);
    const errors = Object.values(j.errors).reduce((a, b) => a + b, 0);
    return { rps: j.requests / (j.duration_us / 1e6), requests: j.requests, errors, errorDetail: j.errors, latency_us: j.latency_us };
}

async function h2load({ url, body, headers, c, m, duration, onSpawn }) {
    const args = ['-t1', '-c', String(c), '-m', String(m), '-D', String(duration), ...(SMOKE ? [] : ['--warm-up-time', '1']),
        '-d', body, ...headerLines(headers).flatMap((h) => ['-H', h]), url];
    const r = await run(...pinned(CPUS.load, 'h2load', args), { onSpawn });
    const fin = r.stdout.match(/finished in ([\d.]+)(?:m|u)?s, ([\d.]+) req\/s/); // h2load prints 998.42ms under a second
    const req = r.stdout.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/);
    const st = r.stdout.match(/status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/);
    if (!fin || !req || !st) throw new Error(`h2load failed (${r.code}): ${r.stdout}${r.stderr}`);
    // "failed" includes the non-2xx answers and the "errored" ones (h2load's manual); streams cut off when the
    // duration ends are neither done nor failed
    const errors = Number(req[5]);
    return { rps: Number(fin[2]), requests: Number(req[4]), errors, protocol: (r.stdout.match(/Application protocol: (\S+)/) || [])[1],
        errorDetail: { failed: Number(req[5]), errored: Number(req[6]), timeout: Number(req[7]), non2xx: Number(st[2]) + Number(st[3]) + Number(st[4]) } };
}

/** What ends a stream well: the Anthropic stream's last event, or the chat/completions terminator (direct, translation). */
const endMarker = (t, kind) => (t.raw && kind === 'trans' ? '[DONE]' : 'message_stop');

async function probe({ url, body, headers, streams, concurrency, staggerUs, expectEvents, endMarker, timeoutMs = 60000 }) {
    const args = ['--url', url, '--body', body, ...headerLines(headers).flatMap((h) => ['-H', h]),
        '--streams', String(streams), '--concurrency', String(concurrency), '--stagger-us', String(staggerUs),
        '--expect-events', String(expectEvents), '--end-marker', endMarker, '--timeout-ms', String(timeoutMs)];
    const r = await run(...pinned(CPUS.load, PROBE, args));
    if (r.code !== 0) throw new Error(`sseprobe failed (${r.code}): ${r.stdout}${r.stderr}`);
    const j = JSON.parse(r.stdout);
    j.errorCount = Object.values(j.errors).reduce((a, b) => a + b, 0);
    return j;
}

/** How many established TCP connections `pid` has to the upstream's `port` (its TLS one by default; from ss, by owner). */
async function upstreamConnsOf(pid, port = mock.https) {
    const r = await run('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`]);
    return r.stdout.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
}

/**
 * Runs `fn(onSpawn)` while watching the CPU of the named pids and of the machine, and (with `upstreamConns`, a pid) the
 * most connections that process had open to the upstream at once. `onSpawn` takes the load generator's pid. The result
 * gets `wait_share`: for each process (the load generator as `load`), the share of the run its threads spent runnable
 * but waiting for a CPU: from the kernel's count, or, when more, the share of 50 ms samples that found a thread
 * runnable less the share of the run it spent on a CPU (the kernel counts a wait only once it ends).
 */
async function measured(pids, fn, { upstreamConns = Object.entries(pids).find(([k]) => k !== 'upstream')?.[1], upstreamPort } = {}) {
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuTicks(pid)]));
    const waitBefore = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, waitNs(pid)]));
    let stop = false, connsMax = 0, loadPid = null, loadWait = 0, loadCpu = 0, samples = 0;
    const runnableSamples = { load: 0 };
    const stateSampler = setInterval(() => {
        ++samples;
        for (const [k, pid] of Object.entries(pids)) runnableSamples[k] = (runnableSamples[k] ?? 0) + runnable(pid);
        if (!loadPid) return;
        runnableSamples.load += runnable(loadPid);
        const w = waitNs(loadPid), c = cpuTicks(loadPid);
        if (w >= 0) loadWait = w;
        if (c >= 0) loadCpu = c;
    }, 50);
    const sampler = upstreamConns && (async () => {
        while (!stop) {
            connsMax = Math.max(connsMax, await upstreamConnsOf(upstreamConns, upstreamPort));
            await sleep(200);
        }
    })();
    const m0 = machineTicks(), t0 = process.hrtime.bigint();
    const result = await fn((pid) => (loadPid = pid)).finally(() => { stop = true; clearInterval(stateSampler); });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9, m1 = machineTicks();
    const share = (waited, cpuSecs, k) => Math.max(waited / 1e9 / secs, samples ? runnableSamples[k] / samples - cpuSecs / secs : 0);
    result.wait_share = Object.fromEntries(Object.entries(pids).map(([k, pid]) =>
        [k, share(waitNs(pid) - waitBefore[k], (cpuTicks(pid) - before[k]) / CLK_TCK, k)]));
    if (loadPid) result.wait_share.load = share(loadWait, loadCpu / CLK_TCK, 'load'); /* from its last sample, up to 50 ms before it ended */
    if (sampler) {
        await sampler;
        result.upstream_connections_max = connsMax;
    }
    result.cpu_s = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (cpuTicks(pid) - before[k]) / CLK_TCK]));
    result.machine_busy = (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total);
    result.wall_s = secs;
    return result;
}

// ---- the systems under test ----

let mock, gw, gwH1, ccr, haproxy, nginx, base;
const targets = [];

function defineTargets() {
    const directHeaders = { 'x-api-key': POE_KEY, authorization: `Bearer ${POE_KEY}`, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
    const clientHeaders = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };
    targets.push({
        name: 'direct',
        // the same scripted answer the gateway would get, straight from the upstream, over plain HTTP
        url: (kind) => `http://127.0.0.1:${mock.http}${kind === 'pass' ? '/v1/messages' : '/v1/chat/completions'}`,
        h2url: (kind) => `http://127.0.0.1:${mock.http}${kind === 'pass' ? '/v1/messages' : '/v1/chat/completions'}`,
        model: (kind) => (kind === 'pass' ? PASS_MODEL : TRANS_MODEL),
        headers: directHeaders,
        pid: null,
        raw: true, // answers as the upstream does
    });
    targets.push({
        name: 'gateway',
        url: () => `http://127.0.0.1:${gw.port}/v1/messages`,
        h2url: () => `http://127.0.0.1:${gw.port}/v1/messages`,
        model: (kind) => (kind === 'pass' ? PASS_MODEL : TRANS_MODEL),
        headers: clientHeaders,
        pid: gw.pid,
    });
    // the same gateway build with its routes to the mock's plain port: HTTP/1.1 keep-alive upstream connections, as
    // many as requests in flight (gateway.upstream_connections); streamed throughput rows and the 500 paced streams only
    targets.push({
        name: 'gateway-h1',
        url: () => `http://127.0.0.1:${gwH1.port}/v1/messages`,
        model: (kind) => (kind === 'pass' ? PASS_MODEL : TRANS_MODEL),
        headers: clientHeaders,
        pid: gwH1.pid,
        h1Upstream: true,
        upstreamPort: mock.http,
    });
    if (base) {
        targets.push({ name: 'base', url: () => `http://127.0.0.1:${base.port}/v1/messages`, model: (kind) => (kind === 'pass' ? PASS_MODEL : TRANS_MODEL),
            headers: clientHeaders, pid: base.pid, anchor: true });
    }
    for (const [name, a] of [['haproxy', haproxy], ['nginx', nginx]]) {
        if (!a) continue;
        // the same request and key as the gateway's clients; the proxy swaps the key and keeps the path
        targets.push({
            name,
            url: (kind) => `http://127.0.0.1:${a.port}${kind === 'pass' ? '/v1/messages' : '/v1/chat/completions'}`,
            model: (kind) => (kind === 'pass' ? PASS_MODEL : TRANS_MODEL),
            headers: clientHeaders,
            pid: a.pid,
            raw: true,
            anchor: true,
        });
    }
    if (ccr) {
        targets.push({
            name: 'ccr',
            url: () => `http://127.0.0.1:${ccr.port}/v1/messages`,
            model: (kind) => (kind === 'pass' ? 'poe-anthropic,claude-sonnet-4.5' : 'poe,GPT-5'),
            headers: clientHeaders,
            pid: ccr.pid,
        });
    }
}

let answersNow = null;
async function setAnswers(kind) {
    if (answersNow === kind) return;
    await mock.control('POST', '/_mock/reset');
    const responses = ['/v1/messages', '/v1/chat/completions'].map((p) => upstreamAnswer({ path: p, kind, ...PACE }));
    await mock.control('POST', '/_mock/script', { responses });
    answersNow = kind;
}

/** One request with fetch, checked: a scenario whose answer is wrong is not measured. */
async function check(t, kind, size, stream) {
    const body = fs.readFileSync(bodyFile(size, t.model(kind), stream), 'utf8');
    const res = await fetch(t.url(kind), { method: 'POST', headers: t.headers, body });
    const text = await res.text();
    const direct = t.raw;
    let ok = res.status === 200;
    if (ok && stream) ok = direct && kind === 'trans' ? text.includes('[DONE]') : text.includes('event: message_stop') && text.includes('text_delta');
    if (ok && !stream) {
        try {
            const j = JSON.parse(text);
            ok = direct && kind === 'trans' ? j.object === 'chat.completion' : j.type === 'message' && j.content?.[0]?.type === 'text';
        } catch { ok = false; }
    }
    if (!ok) throw new Error(`${t.name} ${kind} ${size} stream=${stream}: unexpected answer ${res.status}: ${text.slice(0, 600)}`);
}

const pidsFor = (t) => Object.fromEntries([['upstream', mock.pid], ...(t.pid ? [[t.name, t.pid]] : [])]);

// ---- the sections ----

const results = { throughput: [], syscalls: [], latency: [], h2: [], paced: [], concurrency: [], copies: [], failures: [] };
/** The systems of the sections that compare the gateway with the upstream and claude-code-router (not the anchors). */
const peers = () => targets.filter((t) => !t.anchor && !t.h1Upstream);

/**
 * Whether a run that served nothing was starved rather than stalled: one of its processes (the system under test, the
 * upstream, the load generator) spent a quarter of the run or more runnable but waiting for a CPU, which other work on
 * the machine took (seen: another benchmark's SCHED_FIFO gateway on the core this one was pinned to left it 5% of it,
 * and an ASan build served nothing in the smoke run's second). A gateway that stalls waits for nothing: its processes
 * and the load generator sleep, and the run stands as it is.
 */
const starved = (r) => r.requests === 0 && Object.values(r.wait_share ?? {}).some((w) => w >= 0.25);
const MAX_RERUNS = 4;

/**
 * Runs `fn(target)` RUNS times for every target, interleaved, and gives each target's list of results. A starved run
 * is run again, MAX_RERUNS times at most (`reruns` in the JSON counts them).
 */
async function interleaved(list, fn) {
    const out = new Map(list.map((t) => [t.name, []]));
    for (let i = 0; i < RUNS; ++i) {
        for (const t of list) {
            const quiet = await waitQuiet();
            let r = await fn(t), reruns = 0;
            while (starved(r) && reruns < MAX_RERUNS) {
                log(`  ${t.name}: served nothing while starved of CPU (waiting ${JSON.stringify(r.wait_share)} of the run); again`);
                r = await fn(t);
                r.reruns = ++reruns;
            }
            r.quiet_before = quiet;
            out.get(t.name).push(r);
        }
    }
    return out;
}

async function scenario(section, desc, list, fn, summarize) {
    log(`${section}: ${desc}`);
    const ok = [];
    for (const t of list) {
        try {
            await desc.check(t);
            ok.push(t);
        } catch (e) {
            results.failures.push({ section, ...desc.key, target: t.name, error: String(e.message ?? e) });
            log(`  ${t.name}: FAILED ${e.message}`);
        }
    }
    const runs = await interleaved(ok, fn);
    for (const [name, rs] of runs) results[section].push({ ...desc.key, target: name, runs: rs, ...summarize(rs) });
}

const sumThroughput = (rs) => ({
    rps: median(rs.map((r) => r.rps)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    p50_us: median(rs.map((r) => r.latency_us?.p50)),
    p99_us: median(rs.map((r) => r.latency_us?.p99)),
    cpu_us_per_req: median(rs.map((r) => {
        const k = Object.keys(r.cpu_s).find((x) => x !== 'upstream');
        return k ? (r.cpu_s[k] * 1e6) / r.requests : NaN;
    })),
    sut_cpu_share: median(rs.map((r) => {
        const k = Object.keys(r.cpu_s).find((x) => x !== 'upstream');
        return k ? r.cpu_s[k] / r.wall_s : NaN;
    })),
    upstream_cpu_us_per_req: median(rs.map((r) => (r.cpu_s.upstream * 1e6) / r.requests)),
    machine_busy: median(rs.map((r) => r.machine_busy)),
    upstream_connections_max: rs.some((r) => r.upstream_connections_max !== undefined) ? Math.max(...rs.map((r) => r.upstream_connections_max ?? 0)) : null,
});

async function sectionThroughput() {
    for (const mode of ['stream', 'whole']) {
        await setAnswers(mode);
        for (const kind of ['pass', 'trans']) {
            for (const c of CONCURRENCY) {
                const stream = mode === 'stream';
                const list = targets.filter((t) => !t.h1Upstream || (stream && TAIL_C.includes(c)));
                await scenario('throughput', { key: { kind, mode, size: 'cc', c }, check: (t) => check(t, kind, 'cc', stream),
                    toString: () => `${kind} ${mode} 50KB c=${c}` }, list, (t) => measured(pidsFor(t), (onSpawn) =>
                    wrk({ url: t.url(kind), body: bodyFile('cc', t.model(kind), stream), headers: t.headers, c, duration: DURATION, onSpawn }),
                    { upstreamPort: t.upstreamPort }), sumThroughput);
            }
        }
    }
}

/** A run's system calls per request, and a's over b's in the same round (the median of the rounds' is the figure). */
const syscallsPerReq = (r, name) => (r?.syscalls && r.requests > 0 ? (name ? r.syscalls.by[name] ?? 0 : r.syscalls.total) / r.requests : NaN);
const pairedSyscalls = (a, b) => median(a.runs.map((r, i) => syscallsPerReq(r) / syscallsPerReq(b.runs[i])));

const sumSyscalls = (rs) => {
    const ok = rs.filter((r) => r.syscalls && r.requests > 0);
    const names = [...new Set(ok.flatMap((r) => Object.keys(r.syscalls.by)))];
    return {
        ...(ok.length ? sumThroughput(ok) : {}),
        requests: ok.reduce((a, r) => a + r.requests, 0),
        syscalls_per_req: median(ok.map((r) => syscallsPerReq(r))),
        // every call counted, most frequent first ("other": calls not in bench/syscalls.mjs's list)
        syscalls_by_per_req: Object.fromEntries(names.map((n) => [n, median(ok.map((r) => syscallsPerReq(r, n)))]).sort((a, b) => b[1] - a[1])),
        ...(rs.some((r) => r.syscalls_error) ? { error: rs.find((r) => r.syscalls_error).syscalls_error } : {}),
    };
};

/**
 * System calls per streamed pass-through request (wrk, c=SYSCALL_C) of the gateway, the anchors and the other gateway
 * builds, in rounds of their own: perf's counters cost each call a little, which the CPU figures must not carry. When
 * perf cannot count here, the section says so as a failure, and the targets say "not measured".
 */
async function sectionSyscalls() {
    // the smoke run leaves out the HTTP/1.1-upstream gateway (one figure per system is enough to prove the harness)
    const list = targets.filter((t) => t.pid && t.name !== 'ccr' && !(SMOKE && t.h1Upstream));
    const counting = syscallCounting();
    if (!counting.ok) {
        log(`syscalls: NOT MEASURED: ${counting.reason}`);
        results.syscalls_unavailable = counting.reason;
        results.failures.push({ section: 'syscalls', error: `not measured: ${counting.reason}` });
        return;
    }
    await setAnswers('stream');
    let n = 0;
    const c = SYSCALL_C;
    await scenario('syscalls', { key: { kind: 'pass', mode: 'stream', size: 'cc', c }, check: (t) => check(t, 'pass', 'cc', true),
        toString: () => `pass stream 50KB c=${c}, perf stat` }, list, async (t) => {
        try {
            const { result, syscalls } = await countSyscalls(t.pid, counting.names, path.join(tmp, `perf-${++n}.csv`), () =>
                measured(pidsFor(t), (onSpawn) => wrk({ url: t.url('pass'), body: bodyFile('cc', t.model('pass'), true), headers: t.headers, c,
                    duration: DURATION, onSpawn }), { upstreamPort: t.upstreamPort }));
            result.syscalls = syscalls;
            return result;
        } catch (e) {
            if (!e.perf) throw e;
            log(`  ${t.name}: syscalls NOT MEASURED: ${e.message}`);
            return { requests: 0, errors: 0, syscalls_error: e.message };
        }
    }, sumSyscalls);
    for (const r of results.syscalls) if (r.error) results.failures.push({ section: 'syscalls', target: r.target, error: `not measured: ${r.error}` });
}

async function sectionLatency() {
    await setAnswers('stream');
    for (const size of SMOKE ? ['tiny'] : ['cc', 'tiny']) {
        for (const kind of ['pass', 'trans']) {
            await scenario('latency', { key: { kind, mode: 'stream', size, c: 1 }, check: (t) => check(t, kind, size, true),
                toString: () => `${kind} ${size} c=1` }, peers(), (t) => measured(pidsFor(t), (onSpawn) =>
                wrk({ url: t.url(kind), body: bodyFile(size, t.model(kind), true), headers: t.headers, c: 1, duration: DURATION, onSpawn })),
            sumThroughput);
        }
    }
}

async function sectionH2() {
    await setAnswers('stream');
    const c = SMOKE ? 2 : 4, m = SMOKE ? 4 : 32;
    for (const kind of ['pass', 'trans']) {
        await scenario('h2', { key: { kind, mode: 'stream', size: 'cc', c: c * m, connections: c }, check: (t) => check(t, kind, 'cc', true),
            toString: () => `${kind} h2c ${c}x${m}` }, targets.filter((t) => t.h2url), (t) => measured(pidsFor(t), (onSpawn) =>
            h2load({ url: t.h2url(kind), body: bodyFile('cc', t.model(kind), true), headers: t.headers, c, m, duration: DURATION, onSpawn })),
        (rs) => ({ rps: median(rs.map((r) => r.rps)), errors: rs.reduce((a, r) => a + r.errors, 0), protocol: rs[0]?.protocol }));
    }
}

const pick = (rs, what, p) => median(rs.map((r) => r[what]?.[p]));
const sumPaced = (rs) => ({
    streams: rs.reduce((a, r) => a + r.streams, 0),
    complete: rs.reduce((a, r) => a + r.complete, 0),
    errors: rs.reduce((a, r) => a + r.errorCount, 0),
    ttfe_p50_us: pick(rs, 'ttfe', 'p50') / 1e3, ttfe_p99_us: pick(rs, 'ttfe', 'p99') / 1e3,
    delivery_p50_us: pick(rs, 'delivery', 'p50') / 1e3, delivery_p99_us: pick(rs, 'delivery', 'p99') / 1e3,
    gap_p50_us: pick(rs, 'gap', 'p50') / 1e3, gap_p99_us: pick(rs, 'gap', 'p99') / 1e3,
    worst_gap_ms: Math.max(...rs.map((r) => r.worst_gap)) / 1e6,
});

async function sectionPaced() {
    await setAnswers('paced');
    const conc = SMOKE ? 4 : 16, streams = SMOKE ? 8 : 48;
    for (const kind of ['pass', 'trans']) {
        await scenario('paced', { key: { kind, mode: 'paced', size: 'cc', c: conc, chunks: PACE.chunks, pace_ms: PACE.paceMs },
            check: async () => {}, toString: () => `${kind} paced ${PACE.chunks}x${PACE.paceMs}ms c=${conc}` }, peers(), (t) =>
            measured(pidsFor(t), () => probe({ url: t.url(kind), body: bodyFile('cc', t.model(kind), true), headers: t.headers,
                streams, concurrency: conc, staggerUs: Math.round((PACE.paceMs * 1000) / conc), expectEvents: PACE.chunks,
                endMarker: endMarker(t, kind) })), sumPaced);
    }
}

/**
 * `n` paced streams of route `kind` at once to `t`, opened over half a second, all held to the end: a row of
 * results.concurrency, with the RSS and the upstream connections of the system sampled every 50 ms.
 */
async function concurrentStreams(t, kind, n) {
    await waitQuiet();
    const watchPid = t.pid ?? mock.pid;
    let rssMax = 0, upMax = 0, stop = false;
    const rss0 = rssKB(watchPid);
    const sampler = (async () => {
        while (!stop) {
            rssMax = Math.max(rssMax, rssKB(watchPid) || 0);
            if (t.pid) upMax = Math.max(upMax, await upstreamConnsOf(t.pid, t.upstreamPort));
            await sleep(50);
        }
    })();
    let r;
    try {
        // connections open over 0.5 s (SYN backlogs stay small) and their ticks spread over the pace interval
        r = await measured(pidsFor(t), () => probe({ url: t.url(kind), body: bodyFile('cc', t.model(kind), true),
            headers: t.headers, streams: n, concurrency: n, staggerUs: Math.max(1, Math.round(500000 / n)),
            expectEvents: PACE.chunks, endMarker: endMarker(t, kind), timeoutMs: 30000 }), { upstreamConns: false });
    } catch (e) {
        r = { error: String(e.message ?? e) };
    }
    stop = true;
    await sampler;
    const cpu = r.cpu_s?.[t.pid ? t.name : 'upstream'];
    const row = { kind, streams: n, target: t.name, rss_before_kb: rss0, rss_max_kb: rssMax, rss_of: t.pid ? t.name : 'upstream',
        cpu_us_per_event: r.events ? (cpu * 1e6) / r.events : null, cpu_share: cpu !== undefined ? cpu / r.wall_s : null,
        upstream_connections_max: t.name === 'direct' ? null : upMax, ...(r.error ? { error: r.error } : sumPaced([r])), run: r };
    results.concurrency.push(row);
    log(`  ${t.name}: ${row.complete}/${n} complete, ${row.errors} errors, rss ${(rssMax / 1024).toFixed(1)} MB, upstream conns ${upMax}, worst gap ${row.worst_gap_ms?.toFixed(1)} ms`);
    await sleep(SMOKE ? 100 : 500);
    return row;
}

/**
 * Issue #18: how many times the gateway copies a request body between the client's socket and the upstream's TLS, per
 * route kind and client protocol. A gateway of its own runs with bench/copies/copies.c preloaded (it counts the copies
 * whose source holds the marked body's bytes, by the shared object that made them) and gets COPIES_N requests with the
 * Claude Code request's shape and size, its text marked (bench/copies/copies.mjs). A measurement, not a timing: the
 * figure is the same on a busy machine.
 */
const COPIES_N = SMOKE ? 40 : 400;
async function sectionCopies() {
    await setAnswers('stream');
    const counts = createCountsFile(tmp);
    const env = { LD_PRELOAD: buildCopies(tmp), PGW_COPIES_OUT: counts, PGW_COPIES_MARK: MARK,
        // an ASan build wants its runtime first among the preloaded objects; the shim passes every call on to it
        ...(process.env.ASAN_OPTIONS !== undefined ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:verify_asan_link_order=0` } : { ASAN_OPTIONS: 'verify_asan_link_order=0' }) };
    const g = await startGatewayProcess({ dir: tmp, mock, certs, bin: opt.gateway, threads: opt.threads, name: 'gateway-copies', extraEnv: env,
        spawnAs: (bin, args, o) => spawnPinned(CPUS.sut, bin, args, o) });
    const t = { ...targets.find((x) => x.name === 'gateway'), url: () => `http://127.0.0.1:${g.port}/v1/messages` };
    try {
        for (const kind of ['pass', 'trans']) {
            const text = JSON.stringify(markBody(claudeCode({ model: t.model(kind), stream: true })));
            const file = path.join(tmp, `body-copies-${kind}.json`);
            fs.writeFileSync(file, text);
            const marks = countMarks(text);
            for (const protocol of ['http/1.1', 'h2c']) {
                const what = `copies ${kind} ${protocol}`;
                log(`copies: ${kind} ${protocol}, ${COPIES_N} requests of ${fmt(text.length)} bytes`);
                try {
                    const res = await fetch(t.url(), { method: 'POST', headers: t.headers, body: text });
                    const answer = await res.text();
                    if (res.status !== 200 || !answer.includes('message_stop')) throw new Error(`unexpected answer ${res.status}: ${answer.slice(0, 600)}`);
                    const before = readCounts(counts);
                    if (!before.ready) throw new Error('the shim did not map its counts file (not preloaded?)');
                    const args = ['-t1', '-n', String(COPIES_N), ...(protocol === 'h2c' ? ['-c', '2', '-m', '4'] : ['--h1', '-c', '4']),
                        '-d', file, ...headerLines(t.headers).flatMap((h) => ['-H', h]), t.url()];
                    const r = await run(...pinned(CPUS.load, 'h2load', args));
                    const req = r.stdout.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/);
                    if (!req || Number(req[4]) !== COPIES_N) throw new Error(`h2load failed (${r.code}): ${r.stdout}${r.stderr}`);
                    const c = copiesPerRequest(before, readCounts(counts), marks, COPIES_N);
                    results.copies.push({ kind, protocol, requests: COPIES_N, body_bytes: text.length, marked_bytes: marks * MARK.length, ...c });
                } catch (e) {
                    results.failures.push({ section: 'copies', kind, protocol, target: 'gateway', error: String(e.message ?? e) });
                    log(`  ${what}: FAILED ${e.message}`);
                }
            }
        }
    } finally {
        g.child.kill('SIGTERM');
        const { code } = await g.child.exited;
        if (code !== 0) results.failures.push({ section: 'copies', target: 'gateway', error: `the gateway with the shim exited with ${code}` });
    }
}

async function sectionConcurrency() {
    await setAnswers('paced');
    for (const n of PACED_N) {
        for (const kind of ['pass', 'trans']) {
            log(`concurrency: ${kind} ${n} paced streams`);
            for (const t of peers()) await concurrentStreams(t, kind, n);
        }
    }
    // issue #18: the gateway whose routes are HTTP/1.1 holds one upstream connection per stream
    const h1 = targets.find((t) => t.h1Upstream);
    for (const kind of ['pass', 'trans']) {
        log(`concurrency: ${kind} ${H1_STREAMS} paced streams, HTTP/1.1 upstream`);
        await concurrentStreams(h1, kind, H1_STREAMS);
    }
}

// ---- the report ----

function table(title, header, rows) {
    const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
    const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join(' | ')} |`;
    return [`\n### ${title}\n`, line(header), `|${w.map((n, i) => (i === 0 ? ':' : '') + '-'.repeat(n + 1) + (i === 0 ? '' : ':')).join('|')}|`,
        ...rows.map(line)].join('\n');
}

const find = (section, key) => results[section].find((r) => Object.entries(key).every(([k, v]) => r[k] === v));
const KIND = { pass: 'pass-through', trans: 'translation' };

function targetsTable() {
    const rows = [];
    const t = (measure, target, measuredText, pass) => rows.push([measure, target, measuredText, pass === null ? 'n/a' : pass ? 'met' : 'MISSED']);
    for (const kind of ['pass', 'trans']) {
        const g = find('throughput', { kind, mode: 'stream', c: 32, target: 'gateway' }), c = find('throughput', { kind, mode: 'stream', c: 32, target: 'ccr' });
        const ratio = g && c && c.rps ? g.rps / c.rps : null;
        t(`50 KB streamed c=32, ${KIND[kind]}: gateway / ccr req/s`, '≥ 50×', ratio ? `${fmt(ratio, 1)}× (${fmt(g.rps)} / ${fmt(c.rps, 1)})` : '-', ratio ? ratio >= 50 : null);
    }
    for (const kind of ['pass', 'trans']) {
        for (const size of ['cc', 'tiny']) {
            const g = find('latency', { kind, size, target: 'gateway' }), d = find('latency', { kind, size, target: 'direct' });
            if (!g || !d) continue;
            const a50 = g.p50_us - d.p50_us, a99 = g.p99_us - d.p99_us;
            if (size === 'cc') t(`added latency c=1, 50 KB, ${KIND[kind]}`, 'p50 ≤ 300 µs, p99 ≤ 1000 µs', `p50 ${fmt(a50)} µs, p99 ${fmt(a99)} µs`, a50 <= 300 && a99 <= 1000);
            else t(`added latency c=1, tiny, ${KIND[kind]}`, 'p50 ≤ 60 µs', `p50 ${fmt(a50)} µs`, a50 <= 60);
        }
    }
    for (const kind of ['pass', 'trans']) {
        const g = find('paced', { kind, target: 'gateway' }), d = find('paced', { kind, target: 'direct' });
        if (!g || !d) continue;
        const ttfe = g.ttfe_p99_us - d.ttfe_p99_us, gap = g.gap_p99_us - d.gap_p99_us;
        t(`added time to first event / gap, ${KIND[kind]}`, 'p99 ≤ 200 µs / p99 ≤ 20 µs', `${fmt(ttfe)} µs / ${fmt(gap, 1)} µs`, ttfe <= 200 && gap <= 20);
    }
    for (const kind of ['pass', 'trans']) {
        const r = results.concurrency.find((x) => x.kind === kind && x.streams === 2000 && x.target === 'gateway');
        if (!r) continue;
        const ok = r.complete === r.streams && r.errors === 0 && r.worst_gap_ms < 1000 && r.rss_max_kb <= 64 * 1024;
        t(`2,000 paced streams, ${KIND[kind]}`, 'no stall, no error; RSS ≤ 64 MB',
            `${r.complete}/${r.streams} complete, ${r.errors} errors, worst gap ${fmt(r.worst_gap_ms)} ms, RSS ${fmt(r.rss_max_kb / 1024, 1)} MB`, ok);
    }
    {
        const p = find('throughput', { kind: 'pass', mode: 'stream', c: 32, target: 'gateway' }), q = find('throughput', { kind: 'trans', mode: 'stream', c: 32, target: 'gateway' });
        if (p && q) {
            t('pass-through / translation req/s (50 KB streamed c=32)', '≥ 2×', `${fmt(p.rps / q.rps, 2)}× (CPU per request: ${fmt(q.cpu_us_per_req / p.cpu_us_per_req, 2)}×)`, p.rps / q.rps >= 2);
        }
    }
    for (const kind of ['pass', 'trans']) {
        const r = results.concurrency.find((x) => x.kind === kind && x.streams === 1000 && x.target === 'gateway');
        if (!r) continue;
        const perWorker = r.upstream_connections_max / Number(opt.threads);
        t(`upstream connections at 1,000 streams, ${KIND[kind]}`, '≤ 1 per worker', `${r.upstream_connections_max} for ${opt.threads} worker(s)`, perWorker <= 1);
    }
    return table('Targets (issue #7)', ['measure', 'target', 'measured', ''], rows);
}

/** CPU per request of one wrk run (the process that is not the upstream). */
const cpuPerReq = (r) => {
    const k = Object.keys(r.cpu_s).find((x) => x !== 'upstream');
    return k ? (r.cpu_s[k] * 1e6) / r.requests : NaN;
};

/** The median over runs of a's CPU per request over b's in the same round (the runs are interleaved: see interleaved). */
const pairedRatio = (a, b) => median(a.runs.map((r, i) => (b.runs[i] ? cpuPerReq(r) / cpuPerReq(b.runs[i]) : NaN)));

/**
 * CPU per request of the gateway against the anchors (and --base), on the same requests in the same run; the ratios,
 * medians of the rounds' ratios, are the figures.
 */
function anchorsTable() {
    const rows = [];
    for (const mode of ['stream', 'whole']) for (const kind of ['pass', 'trans']) for (const c of CONCURRENCY) {
        const at = (n) => find('throughput', { kind, mode, c, target: n });
        const g = at('gateway'), h = at('haproxy'), n = at('nginx'), b = at('base');
        if (!g) continue;
        const ratio = (a) => (a ? `${fmt(pairedRatio(g, a), 2)}×` : '-');
        rows.push([`${KIND[kind]}, ${mode === 'stream' ? 'streamed' : 'whole'}, c=${c}`, `${fmt(g.cpu_us_per_req)} µs`,
            h ? `${fmt(h.cpu_us_per_req)} µs` : '-', n ? `${fmt(n.cpu_us_per_req)} µs` : '-', ratio(h), ratio(n),
            `${fmt(g.p50_us)} / ${fmt(g.p99_us)}`, ...(base ? [b ? `${fmt(b.cpu_us_per_req)} µs` : '-', ratio(b)] : [])]);
    }
    return table('Anchors: CPU per request, 50 KB Claude Code request (wrk, HTTP/1.1; the proxies swap the key and relay to the same upstream over TLS)',
        ['scenario', 'gateway', 'haproxy (h2 upstream)', 'nginx (h1 keep-alive)', 'gateway / haproxy', 'gateway / nginx', 'gateway p50 / p99 µs',
            ...(base ? ['base', 'gateway / base'] : [])], rows);
}

/**
 * Every target of issue #18, each row met, MISSED or NOT MEASURED (with why: a section not run, an anchor left out, perf
 * unable to count); the rows, with their raw numbers, go to the JSON as `targets_issue18`.
 */
function issue18Table() {
    const rows = [];
    const t = (measure, target, measuredText, pass, value = null) => rows.push({ measure, target, measured: measuredText,
        status: pass === null ? 'NOT MEASURED' : pass ? 'met' : 'MISSED', value });
    const notRun = (section) => (SECTIONS.has(section) ? 'no result (see FAILED scenarios)' : `section ${section} not run (--only)`);
    const missingAnchor = () => (WITH_ANCHORS ? notRun('throughput') : 'no anchors (--no-anchors)');

    for (const c of targetCs([8, 32])) {
        const at = (kind, n) => find('throughput', { kind, mode: 'stream', c, target: n });
        const g = at('pass', 'gateway'), h = at('pass', 'haproxy'), n = at('pass', 'nginx');
        const measure = `pass-through CPU/req vs haproxy (and nginx), streamed c=${c}`;
        if (g && h && n) {
            const rh = pairedRatio(g, h), rn = pairedRatio(g, n);
            t(measure, '≤ 1.0× (≤ nginx)', `${fmt(rh, 2)}× (${fmt(rn, 2)}×)`, rh <= 1 && rn <= 1, { vs_haproxy: rh, vs_nginx: rn });
        } else t(measure, '≤ 1.0× (≤ nginx)', `not measured: ${missingAnchor()}`, null);
        const gt = at('trans', 'gateway'), nt = at('trans', 'nginx');
        if (gt && nt) {
            const r = pairedRatio(gt, nt);
            t(`translation CPU/req vs nginx, streamed c=${c}`, '≤ 1.5×', `${fmt(r, 2)}×`, r <= 1.5, { vs_nginx: r });
        } else t(`translation CPU/req vs nginx, streamed c=${c}`, '≤ 1.5×', `not measured: ${missingAnchor()}`, null);
    }
    // counted by sectionCopies, per route kind and client protocol (who makes each copy: copiesTable)
    for (const r of results.copies) {
        t(`copies of the request body, client socket → upstream TLS, ${KIND[r.kind]}, ${r.protocol}`, '≤ 2', fmt(r.copies, 2), r.copies <= 2,
            { copies: r.copies, by: r.by });
    }
    if (!results.copies.length) t('copies of the request body, client socket → upstream TLS', '≤ 2', `not measured: ${notRun('copies')}`, null);
    {
        const at = (n) => find('syscalls', { target: n });
        const g = at('gateway'), h = at('haproxy'), n = at('nginx');
        const measure = `syscalls per streamed pass-through request vs haproxy, c=${SYSCALL_C}`;
        // perf unable to count is loud (the run fails: see sectionSyscalls); a section left out is not
        if (results.syscalls_unavailable || g?.error || h?.error) t(measure, '≤ haproxy', `perf could not count: ${results.syscalls_unavailable ?? g?.error ?? h?.error}`, null);
        else if (!g || !h) t(measure, '≤ haproxy', `not measured: ${WITH_ANCHORS ? notRun('syscalls') : 'no anchors (--no-anchors)'}`, null);
        else if (!(g.syscalls_per_req > 0) || !(h.syscalls_per_req > 0)) t(measure, '≤ haproxy', 'not measured: no request served', null);
        else {
            const r = pairedSyscalls(g, h);
            t(measure, '≤ haproxy', `${fmt(g.syscalls_per_req, 1)} vs ${fmt(h.syscalls_per_req, 1)} (${fmt(r, 2)}×)${n?.syscalls_per_req ? `; nginx ${fmt(n.syscalls_per_req, 1)}` : ''}`,
                r <= 1, { gateway: g.syscalls_per_req, haproxy: h.syscalls_per_req, nginx: n?.syscalls_per_req ?? null, ratio: r });
        }
    }
    for (const c of TAIL_C) {
        for (const kind of ['pass', 'trans']) {
            for (const [target, upstream] of [['gateway', 'HTTP/2'], ['gateway-h1', 'HTTP/1.1']]) {
                const g = find('throughput', { kind, mode: 'stream', c, target });
                const measure = `p99 / p50 of request time, ${KIND[kind]}, streamed c=${c} (${upstream} upstream)`;
                if (!g || !(g.p50_us > 0)) {
                    t(measure, '≤ 5', `not measured: ${notRun('throughput')}`, null);
                    continue;
                }
                const r = g.p99_us / g.p50_us;
                t(measure, '≤ 5', `${fmt(r, 1)} (${fmt(g.p50_us)} / ${fmt(g.p99_us)} µs)`, r <= 5, { ratio: r, p50_us: g.p50_us, p99_us: g.p99_us });
            }
        }
    }
    for (const kind of ['pass', 'trans']) {
        const r = results.concurrency.find((x) => x.target === 'gateway-h1' && x.kind === kind);
        const measure = `${fmt(H1_STREAMS)} concurrent streams to an HTTP/1.1 upstream, ${KIND[kind]}`;
        if (!r) t(measure, 'all answered', `not measured: ${notRun('concurrency')}`, null);
        else if (r.error) t(measure, 'all answered', `FAILED: ${r.error.split('\n')[0]}`, false, { error: r.error });
        else {
            t(measure, 'all answered', `${r.complete}/${r.streams} complete, ${r.errors} errors; first event p50 / p99 ${fmt(r.ttfe_p50_us / 1000, 1)} / ${fmt(r.ttfe_p99_us / 1000, 1)} ms`,
                r.complete === r.streams && r.errors === 0, { streams: r.streams, complete: r.complete, errors: r.errors, ttfe_p50_us: r.ttfe_p50_us, ttfe_p99_us: r.ttfe_p99_us });
        }
    }
    results.targets_issue18 = rows;
    return table('Targets (issue #18)', ['measure', 'target', 'measured', ''], rows.map((r) => [r.measure, r.target, r.measured, r.status]));
}

/** System calls per streamed pass-through request of each system, in the same rounds, with the most frequent ones. */
function syscallsTable() {
    const h = find('syscalls', { target: 'haproxy' }), n = find('syscalls', { target: 'nginx' });
    const ratio = (r, a) => {
        const x = a && a !== r ? pairedSyscalls(r, a) : NaN;
        return Number.isFinite(x) ? `${fmt(x, 2)}×` : '-';
    };
    const rows = results.syscalls.map((r) => [r.target, r.error ? `NOT MEASURED: ${r.error}` : fmt(r.syscalls_per_req, 1), ratio(r, h), ratio(r, n),
        Object.entries(r.syscalls_by_per_req ?? {}).slice(0, 6).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(', '), fmt(r.rps)]);
    if (results.syscalls_unavailable) rows.push(['(all)', `NOT MEASURED: ${results.syscalls_unavailable}`, '-', '-', '-', '-']);
    return table(`Syscalls per streamed pass-through request (perf stat, wrk c=${SYSCALL_C}, 50 KB; the breakdown in the JSON)`,
        ['system', 'syscalls / request', 'vs haproxy', 'vs nginx', 'most frequent, per request', 'req/s'], rows);
}

/** The copies of the request body (sectionCopies), with the shared objects that make them. */
function copiesTable() {
    const rows = results.copies.map((r) => [`${KIND[r.kind]}, ${r.protocol}`, fmt(r.copies, 2),
        Object.entries(r.by).sort((a, b) => b[1].copies - a[1].copies).map(([n, x]) => `${n} ${fmt(x.copies, 2)} (${fmt(x.calls, 1)} calls)`).join(', ')]);
    return table(`Copies of the request body (bytes of it copied / its bytes; ${fmt(results.copies[0].body_bytes)}-byte body, ${results.copies[0].requests} requests)`,
        ['route, client', 'copies', 'by whom (copies, calls a request)'], rows);
}

function report() {
    const out = [];
    const names = targets.map((t) => t.name);
    const peerNames = peers().map((t) => t.name); // the systems of the latency section
    const thr = [];
    for (const mode of ['stream', 'whole']) for (const kind of ['pass', 'trans']) for (const c of CONCURRENCY) {
        const row = [`${KIND[kind]}, ${mode === 'stream' ? 'streamed' : 'whole'}, c=${c}`];
        for (const n of names) {
            const r = find('throughput', { kind, mode, c, target: n });
            row.push(r ? `${fmt(r.rps, r.rps < 100 ? 1 : 0)}${r.errors ? ` (${r.errors} err)` : ''}` : '-');
        }
        const g = find('throughput', { kind, mode, c, target: 'gateway' });
        row.push(g ? `${fmt(g.cpu_us_per_req)} µs, ${fmt(g.sut_cpu_share * 100)}%` : '-');
        row.push(g?.upstream_connections_max ?? '-');
        if (ccr) {
            const cc = find('throughput', { kind, mode, c, target: 'ccr' });
            row.push(cc ? `${fmt(cc.cpu_us_per_req)} µs` : '-');
            row.push(g && cc && cc.rps ? `${fmt(g.rps / cc.rps, 1)}×` : '-');
        }
        thr.push(row);
    }
    if (thr.length && results.throughput.length)
        out.push(table('Throughput, 50 KB Claude Code request (req/s, wrk, HTTP/1.1)', ['scenario', ...names, 'gateway CPU/req, core busy', 'gateway upstream conns', ...(ccr ? ['ccr CPU/req', 'gateway/ccr'] : [])], thr));

    const lat = [];
    for (const size of ['cc', 'tiny']) for (const kind of ['pass', 'trans']) {
        const d = find('latency', { kind, size, target: 'direct' });
        if (!d) continue;
        const row = [`${KIND[kind]}, ${size === 'cc' ? '50 KB' : 'tiny'}`, `${fmt(d.p50_us)} / ${fmt(d.p99_us)}`];
        for (const n of peerNames.filter((x) => x !== 'direct')) {
            const r = find('latency', { kind, size, target: n });
            row.push(r ? `${fmt(r.p50_us)} / ${fmt(r.p99_us)}` : '-', r ? `+${fmt(r.p50_us - d.p50_us)} / +${fmt(r.p99_us - d.p99_us)}` : '-');
        }
        lat.push(row);
    }
    if (lat.length)
        out.push(table('Latency at c=1, streamed (µs, p50 / p99; "added" is minus direct)', ['request',
            'direct', ...peerNames.filter((x) => x !== 'direct').flatMap((n) => [n, `${n} added`])], lat));

    const h2 = [];
    for (const kind of ['pass', 'trans']) {
        const row = [KIND[kind]];
        for (const n of names.filter((x) => x !== 'ccr')) {
            const r = find('h2', { kind, target: n });
            row.push(r ? `${fmt(r.rps)}${r.errors ? ` (${r.errors} err)` : ''}` : '-');
        }
        h2.push(row);
    }
    if (results.h2.length) {
        const k = results.h2[0];
        out.push(table(`HTTP/2 (h2load, h2c, ${k.connections} connections × ${k.c / k.connections} streams, 50 KB streamed; req/s)`, ['route', ...names.filter((x) => x !== 'ccr')], h2));
    }

    const paced = [];
    for (const kind of ['pass', 'trans']) {
        const d = find('paced', { kind, target: 'direct' });
        for (const n of names) {
            const r = find('paced', { kind, target: n });
            if (!r) continue;
            const add = (a, b) => (d && n !== 'direct' ? ` (+${fmt(a - b, 0)})` : '');
            paced.push([`${KIND[kind]}, ${n}`, `${r.complete}/${r.streams}`, r.errors,
                `${fmt(r.ttfe_p50_us)} / ${fmt(r.ttfe_p99_us)}${add(r.ttfe_p99_us, d?.ttfe_p99_us)}`,
                `${fmt(r.delivery_p50_us)} / ${fmt(r.delivery_p99_us)}${add(r.delivery_p99_us, d?.delivery_p99_us)}`,
                `${fmt(r.gap_p50_us, 1)} / ${fmt(r.gap_p99_us, 1)}${d && n !== 'direct' ? ` (+${fmt(r.gap_p99_us - d.gap_p99_us, 1)})` : ''}`]);
        }
    }
    if (paced.length) {
        const k = results.paced[0];
        out.push(table(`Paced streams (${k.chunks} events ${k.pace_ms} ms apart, ${k.c} at a time; µs, p50 / p99, "+" is p99 minus direct)`,
            ['route, system', 'complete', 'errors', 'time to first event', 'event delivery', 'added gap'], paced));
    }

    const conc = results.concurrency.map((r) => [`${KIND[r.kind]}, ${r.target}`, fmt(r.streams), r.error ? 'FAILED' : `${r.complete}`, r.errors ?? '-',
        r.worst_gap_ms !== undefined ? fmt(r.worst_gap_ms) : '-', r.ttfe_p99_us !== undefined ? fmt(r.ttfe_p99_us / 1000, 1) : '-',
        `${fmt(r.rss_before_kb / 1024, 1)} → ${fmt(r.rss_max_kb / 1024, 1)}${r.rss_of === 'upstream' ? ' (upstream)' : ''}`,
        r.cpu_us_per_event ? `${fmt(r.cpu_us_per_event, 1)} µs, ${fmt(r.cpu_share * 100)}%` : '-', r.upstream_connections_max ?? '-']);
    if (conc.length)
        out.push(table(`Concurrent paced streams (${PACE.chunks} events ${PACE.paceMs} ms apart, all at once)`, ['route, system', 'streams', 'complete', 'errors',
            'worst gap ms', 'first event p99 ms', 'RSS MB idle → max', 'CPU per event, core busy', 'upstream conns'], conc));

    if (results.idle) {
        out.push(table('Idle', ['system', 'RSS at start (MB)', 'RSS after the runs (MB)'], Object.entries(results.idle).map(([k, v]) =>
            [k, fmt(v.start_kb / 1024, 1), v.end_kb ? fmt(v.end_kb / 1024, 1) : '-'])));
    }
    if (results.throughput.some((r) => ['haproxy', 'nginx', 'base'].includes(r.target))) out.push(anchorsTable());
    if (results.copies.length) out.push(copiesTable());
    if (results.syscalls.length || results.syscalls_unavailable) out.push(syscallsTable());
    if (!SMOKE && results.throughput.length) out.push(targetsTable());
    out.push(issue18Table());
    if (results.failures.length) out.push(`\nFAILED scenarios:\n${results.failures.map((f) => `- ${JSON.stringify(f)}`).join('\n')}`);
    return out.join('\n');
}

// ---- main ----

async function main() {
    const started = new Date();
    mock = await startMock();
    gw = await startGateway(mock);
    results.idle = { gateway: { start_kb: rssKB(gw.pid) } };
    gwH1 = await startGatewayProcess({ dir: tmp, mock, certs, bin: opt.gateway, threads: opt.threads, name: 'gateway-h1', upstream: 'http',
        spawnAs: (bin, args, o) => spawnPinned(CPUS.sut, bin, args, o) });
    if (opt.base) {
        fs.mkdirSync(path.join(tmp, 'base'));
        base = await startGatewayProcess({ dir: path.join(tmp, 'base'), mock, certs, bin: opt.base, threads: opt.threads,
            spawnAs: (bin, args, o) => spawnPinned(CPUS.sut, bin, args, o) });
    }
    if (WITH_ANCHORS) {
        const spawnAs = (bin, args, o) => spawnPinned(CPUS.sut, bin, args, o);
        haproxy = await startHaproxy({ dir: tmp, mock, certs, port: await freePort(), bin: ANCHOR_BINS.haproxy, spawnAs });
        nginx = await startNginx({ dir: tmp, mock, certs, port: await freePort(), bin: ANCHOR_BINS.nginx, spawnAs });
    }
    if (WITH_CCR) {
        ccr = await startCcr(mock);
        await sleep(1000);
        results.idle.ccr = { start_kb: rssKB(ccr.pid) };
    }
    defineTargets();
    results.machine = {
        cpus: NCPU, model: os.cpus()[0]?.model, mem_gb: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(),
        os: (fs.readFileSync('/etc/os-release', 'utf8').match(/PRETTY_NAME="([^"]+)"/) || [])[1],
        virtualization: (() => { try { return execFileSync('systemd-detect-virt', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { return 'unknown'; } })(),
    };
    results.config = {
        runs: RUNS, duration_s: DURATION, smoke: SMOKE, cpus: CPUS, sched: SCHED, nice: Number(NICE), gateway_threads: Number(opt.threads), pace: PACE,
        ccr_version: ccr?.version ?? null, haproxy_version: haproxy?.version ?? null, nginx_version: nginx?.version ?? null, node: process.version,
        gateway_commit: (() => { try { return execFileSync('git', ['-C', ROOT, 'describe', '--always', '--dirty']).toString().trim(); } catch { return null; } })(),
        wrk: (() => { try { return execFileSync('sh', ['-c', 'wrk -v 2>&1 | head -1']).toString().trim(); } catch { return null; } })(),
        h2load: (() => { try { return execFileSync('sh', ['-c', 'h2load --version 2>&1 | head -1']).toString().trim(); } catch { return null; } })(),
    };
    log(`bench: layout gateway/ccr on cpu ${CPUS.sut}, upstream on cpu ${CPUS.upstream}, load on cpu ${CPUS.load}; ${RUNS} runs of ${DURATION} s`);

    // warm-up: connections to the upstream, TLS sessions, caches (the smoke run's checks do enough of it)
    await setAnswers('stream');
    for (const t of SMOKE ? [] : targets) for (const kind of ['pass', 'trans'])
        await wrk({ url: t.url(kind), body: bodyFile('cc', t.model(kind), true), headers: t.headers, c: 8, duration: 1 }).catch(() => {});

    if (SECTIONS.has('throughput')) await sectionThroughput();
    if (SECTIONS.has('syscalls')) await sectionSyscalls();
    if (SECTIONS.has('latency')) await sectionLatency();
    if (SECTIONS.has('h2')) await sectionH2();
    if (SECTIONS.has('paced')) await sectionPaced();
    if (SECTIONS.has('concurrency')) await sectionConcurrency();
    if (SECTIONS.has('copies')) await sectionCopies();

    await sleep(SMOKE ? 200 : 1000);
    results.idle.gateway.end_kb = rssKB(gw.pid);
    if (ccr) results.idle.ccr.end_kb = rssKB(ccr.pid);
    results.started = started.toISOString();
    results.seconds = Math.round((Date.now() - started.getTime()) / 1000);

    const text = report();
    console.log(`## poe-gateway benchmark, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC\n`);
    console.log(`Machine: ${results.machine.cpus} × ${results.machine.model}, ${results.machine.mem_gb} GB, ${results.machine.os}, kernel ${results.machine.kernel}, virtualization ${results.machine.virtualization}.`);
    console.log(`Layout: gateway (${opt.threads} worker) and claude-code-router on cpu ${CPUS.sut}; mock upstream on cpu ${CPUS.upstream}; load generators on cpu ${CPUS.load}; scheduling ${SCHED === 'fifo' ? 'SCHED_FIFO' : `nice ${NICE}`}. Medians of ${RUNS} run(s) of ${DURATION} s.`);
    console.log(text);

    await perfSettled(); // the counting perfs exit on their own (bench/syscalls.mjs)
    const gwExit = gw.child.exitCode, gwH1Exit = gwH1.child.exitCode;
    for (const c of [ccr?.child, haproxy?.child, nginx?.child, base?.child, gw.child, gwH1.child, mock.child]) if (c && c.exitCode === null) c.kill('SIGTERM');
    const exits = await Promise.all([gw.child.exited, mock.child.exited, gwH1.child.exited, haproxy?.child.exited, nginx?.child.exited]);
    results.exits = { gateway: gwExit ?? exits[0].code, mock: exits[1].code, 'gateway-h1': gwH1Exit ?? exits[2].code };
    fs.mkdirSync(path.dirname(JSON_OUT), { recursive: true });
    fs.writeFileSync(JSON_OUT, JSON.stringify(results, null, 1));
    log(`bench: results in ${JSON_OUT}; logs in ${tmp}`);
    if (results.failures.length || gwExit !== null || gwH1Exit !== null) process.exitCode = 1;
}

main().catch((e) => {
    log(`bench: ${e.stack ?? e}`);
    log(`bench: logs in ${tmp}`);
    process.exit(1); // the exit handler kills what is still running
});
