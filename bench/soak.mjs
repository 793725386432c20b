#!/usr/bin/env node
// poe-gateway: MIT licence. The soak (bench/README.md, "Soak"; issue #8): many concurrent paced streams on both route
// kinds for minutes, clients giving up at random, while the gateway's memory and open files are watched.
//
// Processes: the mock Poe (t/mock-poe, paced stamped answers, no request record) is the upstream; the gateway runs one
// worker per core with `upstream_rpm: 0` (no Poe rate shaping); bench/sseprobe.c holds --streams streams open for
// --duration seconds, alternating the pass-through and the translation model, and abandons --abort-permille of them
// part-way (mid request, right after it, or after a random number of events). Nothing is pinned: the soak checks
// that the gateway stays correct and flat, not how fast it is.
//
// Every --sample seconds the harness reads the gateway's VmRSS, its open fds (/proc/PID/fd), its connections to the
// upstream (ss) and its /metrics. The verdict (exit status 1 when any check fails):
//   - no unexpected error among the streams the client did not abandon (connect, status, short or broken, timeout);
//   - RSS and open fds flat after the warm-up: the largest value of the last --window seconds of load is at most
//     --max-growth % above the largest value of the first --window seconds after the warm-up;
//   - once the load stops, nothing in flight (gateway and upstream) and the open fds back at the idle count, counting
//     pooled upstream connections apart (± --fd-slack);
//   - the gateway accounted for every request the client wrote whole: /metrics' requests_total per route equals the
//     client's count, and each one ended with a status (no 5xx; statuses other than 200 only for abandoned streams);
//   - the gateway and the mock are still running at the end and stop cleanly on SIGTERM.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { BENCH_DIR, CLK_TCK, MASTER_KEY, PASS_MODEL, ROOT, TRANS_MODEL, alive, buildProbe, cpuTicks, fdCount, fmt, log, makeCerts,
    procStatus, request, run, sleep, startGateway as startGatewayProcess, startMock as startMockProcess } from './lib.mjs';
import { claudeCode, upstreamAnswer } from './requests.mjs';

const ROUTES = [
    { kind: 'pass', name: 'pass-through', model: PASS_MODEL },
    { kind: 'trans', name: 'translation', model: TRANS_MODEL },
];

const { values: opt } = parseArgs({
    options: {
        gateway: { type: 'string', default: process.env.PGW_BIN || path.join(ROOT, 'build-bench/poe-gateway') },
        mock: { type: 'string', default: process.env.MOCK_POE_BIN || path.join(ROOT, 'build-bench/t/mock-poe/mock-poe') },
        duration: { type: 'string', default: '600' },
        streams: { type: 'string', default: '1000' },
        threads: { type: 'string', default: String(os.cpus().length) },
        chunks: { type: 'string', default: '64' },
        'pace-ms': { type: 'string', default: '50' },
        'abort-permille': { type: 'string', default: '50' },
        warmup: { type: 'string' },
        window: { type: 'string' },
        sample: { type: 'string', default: '5' },
        'max-growth': { type: 'string', default: '5' },
        'fd-slack': { type: 'string', default: '2' },
        settle: { type: 'string', default: '60' },
        'timeout-ms': { type: 'string', default: '30000' },
        seed: { type: 'string' },
        commit: { type: 'string' },
        'gateway-config': { type: 'string', default: '' },
        json: { type: 'string', default: path.join(BENCH_DIR, 'results', 'soak.json') },
        help: { type: 'boolean', default: false },
    },
});
if (opt.help) {
    console.log(`usage: node bench/soak.mjs [--duration SECONDS] [--streams N] [--threads N] [--chunks K] [--pace-ms MS]
       [--abort-permille N] [--warmup SECONDS] [--window SECONDS] [--sample SECONDS] [--max-growth PERCENT]
       [--fd-slack N] [--settle SECONDS] [--timeout-ms MS] [--seed N] [--json FILE] [--gateway BIN] [--mock BIN]
       [--commit NAME] [--gateway-config YAML]
Defaults: 600 s, 1000 streams, one gateway worker per core, 64 events 50 ms apart, 5% abandoned, warm-up 60 s,
windows of 60 s (both shrink for short runs), a sample every 5 s, 5% growth allowed. --commit names the build in the
report when the binaries do not come from this checkout (default: git describe --dirty of this checkout).
--gateway-config adds lines to the gateway's gateway: section, e.g. '  ledger: {enabled: false}' to soak without the ledger.
bash bench/soak.sh installs what is missing, builds, and runs this with its arguments.`);
    process.exit(0);
}

opt.gateway = path.resolve(opt.gateway); // the gateway runs in its own directory
opt.mock = path.resolve(opt.mock);
const DURATION = Number(opt.duration);
const STREAMS = Number(opt.streams);
const THREADS = Number(opt.threads);
const PACE = { chunks: Number(opt.chunks), paceMs: Number(opt['pace-ms']) };
const ABORT_PERMILLE = Number(opt['abort-permille']);
const SAMPLE_S = Number(opt.sample);
// the warm-up and the two windows compared: 60 s each by default, a fifth and a quarter of a short run
const WARMUP = Number(opt.warmup ?? Math.min(60, Math.round(DURATION / 5)));
const WINDOW = Number(opt.window ?? Math.min(60, Math.max(SAMPLE_S, Math.floor((DURATION - WARMUP) / 3))));
const MAX_GROWTH = Number(opt['max-growth']);
const FD_SLACK = Number(opt['fd-slack']);
const SEED = Number(opt.seed ?? Date.now() % 1000000);
if (WARMUP + 2 * WINDOW > DURATION) throw new Error(`--duration ${DURATION} is shorter than the warm-up (${WARMUP} s) and two windows of ${WINDOW} s`);

const cpuSeconds = (pid) => cpuTicks(pid) / CLK_TCK;

// ---- setup ----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgw-soak-'));
const certs = makeCerts(tmp);
for (const bin of [opt.gateway, opt.mock]) if (!fs.existsSync(bin)) throw new Error(`${bin} not found: build first (bash bench/soak.sh does)`);
const PROBE = buildProbe(tmp);
for (const r of ROUTES) {
    r.body = path.join(tmp, `body-${r.kind}.json`);
    fs.writeFileSync(r.body, JSON.stringify(claudeCode({ model: r.model, stream: true })));
}
const CLIENT_HEADERS = { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };

const startMock = () => startMockProcess({ dir: tmp, certs, bin: opt.mock });
const startGateway = (mock) => startGatewayProcess({ dir: tmp, mock, certs, bin: opt.gateway, threads: THREADS,
    extraConfig: opt['gateway-config'] ? `${opt['gateway-config']}\n` : '' });

let mock, gw;

/** The gateway's /metrics, parsed: requests by route and status, and the gauges. */
async function metrics() {
    const res = await request(gw.port, 'GET', '/metrics', { headers: { 'x-api-key': MASTER_KEY } });
    if (res.status !== 200) throw new Error(`/metrics: ${res.status} ${res.text.slice(0, 300)}`);
    const out = { requests: {}, gauges: {} };
    for (const line of res.text.split('\n')) {
        let m = line.match(/^poe_gateway_requests_total\{(.*)\} (\d+)$/);
        if (m) {
            const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
            const route = (out.requests[labels.route] ??= {});
            route[labels.status] = (route[labels.status] ?? 0) + Number(m[2]);
            continue;
        }
        m = line.match(/^(poe_gateway_(?:requests_in_flight|upstream_connections_active|upstream_retries_total|queued_requests)) (\d+)$/);
        if (m) out.gauges[m[1].replace('poe_gateway_', '')] = Number(m[2]);
    }
    return out;
}

/** Established TCP connections `pid` has to the upstream's TLS port (from ss, by owner). */
function upstreamConns(pid) {
    try {
        const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${mock.https} )`]).toString();
        return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
    } catch { return NaN; }
}

/** What the gateway holds right now; fds are read before /metrics is asked, so its connection is not among them. */
async function snapshot(t) {
    const s = { t: Math.round(t * 10) / 10, ...procStatus(gw.pid), fds: fdCount(gw.pid), upstream_conns: upstreamConns(gw.pid),
        cpu_s: cpuSeconds(gw.pid), mock_rss_kb: procStatus(mock.pid).rss_kb, mock_fds: fdCount(mock.pid) };
    try {
        s.mock_active = (await mock.control('GET', '/_mock/stats')).active; // upstream streams open at the mock
    } catch { /* the check after the load says it */ }
    try {
        const m = await metrics();
        s.in_flight = m.gauges.requests_in_flight;
        s.upstream_active = m.gauges.upstream_connections_active;
        s.metrics = m;
    } catch (e) {
        s.metrics_error = String(e.message ?? e);
    }
    return s;
}

/** One streamed request per route, checked: the soak does not start on a gateway that answers wrongly. */
async function check(route) {
    const res = await request(gw.port, 'POST', '/v1/messages', { headers: CLIENT_HEADERS, body: fs.readFileSync(route.body) });
    const stamps = (res.text.match(/@ts:\d{19}@/g) || []).length;
    if (res.status !== 200 || !res.text.includes('event: message_stop') || stamps !== PACE.chunks)
        throw new Error(`${route.name}: unexpected answer ${res.status} (${stamps} stamped events): ${res.text.slice(0, 600)}`);
}

/**
 * Counts the gateway's log lines from byte `start` on: access lines by route and status, the others by level and
 * message (numbers masked).
 */
async function readGatewayLog(file, start) {
    const access = {}, other = {};
    const rl = readline.createInterface({ input: fs.createReadStream(file, { start }) });
    for await (const line of rl) {
        const m = line.match(/^\S+ (\w+) \[access\] .*?" (\d+) route=(\S+)/);
        if (m) {
            const r = (access[m[3]] ??= {});
            r[m[2]] = (r[m[2]] ?? 0) + 1;
            continue;
        }
        const k = line.replace(/^\S+ /, '').replace(/\d+/g, 'N').slice(0, 200);
        other[k] = (other[k] ?? 0) + 1;
    }
    return { access, other };
}

// ---- the verdict ----

const pct = (a, b) => (b > 0 ? ((a - b) / b) * 100 : NaN);
const maxOf = (xs) => (xs.length ? Math.max(...xs) : NaN);
const sumValues = (o) => Object.values(o ?? {}).reduce((a, b) => a + b, 0);

function subtractCounts(after = {}, before = {}) {
    const out = {};
    for (const [route, st] of Object.entries(after)) {
        for (const [status, n] of Object.entries(st)) {
            const d = n - (before[route]?.[status] ?? 0);
            if (d !== 0) (out[route] ??= {})[status] = d;
        }
    }
    return out;
}

function table(header, rows) {
    const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
    const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join(' | ')} |`;
    return [line(header), `|${w.map((n, i) => (i === 0 ? ':' : '') + '-'.repeat(n + 1) + (i === 0 ? '' : ':')).join('|')}|`, ...rows.map(line)].join('\n');
}

// ---- main ----

async function main() {
    const started = new Date();
    mock = await startMock();
    gw = await startGateway(mock);
    await mock.control('POST', '/_mock/reset');
    await mock.control('POST', '/_mock/script', { responses: ['/v1/messages', '/v1/chat/completions'].map((p) => upstreamAnswer({ path: p, kind: 'paced', ...PACE })) });
    for (const r of ROUTES) await check(r);
    await sleep(1000);
    const idle = await snapshot(0);
    const logStart = fs.statSync(gw.logFile).size; // the access lines of the checks above are not the load's
    const mockBefore = await mock.control('GET', '/_mock/stats');
    log(`soak: gateway pid ${gw.pid} (${THREADS} workers), idle: RSS ${fmt(idle.rss_kb / 1024, 1)} MB, ${idle.fds} fds (${idle.upstream_conns} to the upstream)`);
    log(`soak: ${STREAMS} streams for ${DURATION} s, ${PACE.chunks} events ${PACE.paceMs} ms apart, ${ABORT_PERMILLE / 10}% abandoned, seed ${SEED}; warm-up ${WARMUP} s, windows ${WINDOW} s`);

    // the load, with a sample every SAMPLE_S seconds
    const samples = [];
    let progress = null;
    const probeErrors = [];
    const t0 = Date.now();
    const probeRun = run(PROBE, ['--url', `http://127.0.0.1:${gw.port}/v1/messages`, ...ROUTES.flatMap((r) => ['--body', r.body]),
        ...Object.entries(CLIENT_HEADERS).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
        '--duration-ms', String(DURATION * 1000), '--concurrency', String(STREAMS), '--stagger-us', String(Math.max(1, Math.round(500000 / STREAMS))),
        '--expect-events', String(PACE.chunks), '--end-marker', 'message_stop', '--timeout-ms', opt['timeout-ms'],
        '--abort-permille', String(ABORT_PERMILLE), '--seed', String(SEED), '--max-samples', '1000000',
        // progress every second: a line every SAMPLE_S seconds would race the sample taken at the same moment
        '--progress-ms', '1000', '--log-errors', '20'], {
        timeoutMs: (DURATION + 120) * 1000 + Number(opt['timeout-ms']),
        onStderrLine: (line) => {
            if (line.startsWith('{')) progress = JSON.parse(line);
            else probeErrors.push(line);
        },
    });
    let loadOver = false;
    probeRun.then(() => { loadOver = true; });
    for (let next = t0 + SAMPLE_S * 1000; !loadOver; next += SAMPLE_S * 1000) {
        while (!loadOver && Date.now() < next) await sleep(Math.min(200, next - Date.now()));
        if (loadOver) break;
        const s = await snapshot((Date.now() - t0) / 1000);
        s.client = progress;
        samples.push(s);
        log(`soak: ${fmt(s.t)} s: RSS ${fmt(s.rss_kb / 1024, 1)} MB, ${s.fds} fds (${s.upstream_conns} upstream), in flight ${s.in_flight ?? '-'}, ` +
            `upstream streams ${s.mock_active ?? '-'}, cpu ${fmt(s.cpu_s, 1)} s; client: ${progress ? `${progress.open} open, ${progress.complete} complete, ${progress.aborted} aborted, ${progress.errors} errors` : '-'}` +
            `${alive(gw.child) ? '' : '; THE GATEWAY EXITED'}`);
    }
    const probe = await probeRun;
    const loadSeconds = (Date.now() - t0) / 1000;
    let client;
    try { client = JSON.parse(probe.stdout); } catch { client = null; }
    for (const l of probeErrors) log(`soak: ${l}`);

    // after the load: wait until nothing is in flight anywhere (up to --settle seconds), then a few seconds more
    const settleStart = Date.now();
    let after;
    for (;;) {
        after = await snapshot((Date.now() - t0) / 1000);
        // the /metrics request that reads the gauge is itself in flight
        if ((after.in_flight <= 1 && after.mock_active === 0) || Date.now() - settleStart > Number(opt.settle) * 1000 || !alive(gw.child)) break;
        await sleep(1000);
    }
    await sleep(3000);
    after = await snapshot((Date.now() - t0) / 1000);
    const settleSeconds = (Date.now() - settleStart) / 1000;
    const mockAfter = await mock.control('GET', '/_mock/stats').catch(() => null);
    const gatewayAlive = alive(gw.child), mockAlive = alive(mock.child);

    for (const c of [gw.child, mock.child]) if (alive(c)) c.kill('SIGTERM');
    const [gwExit, mockExit] = await Promise.all([gw.child.exited, mock.child.exited]);
    const gwLog = await readGatewayLog(gw.logFile, logStart);

    // ---- checks ----
    const checks = [];
    const check_ = (name, ok, detail) => checks.push({ name, ok: Boolean(ok), detail });
    const errs = client ? sumValues(client.errors) : NaN;
    const aborted = client ? sumValues(client.aborted) : NaN;
    check_('the client ran to its end', probe.code === 0 && client, probe.code === 0 ? 'exit 0' : `exit ${probe.code} ${probe.signal ?? ''}: ${probe.stderr.slice(-500)}`);
    check_('no unexpected error among the streams not abandoned', errs === 0,
        client ? `${fmt(client.streams)} streams: ${fmt(client.complete)} complete, ${fmt(aborted)} abandoned, ${errs} errors ${JSON.stringify(client.errors)}` : '-');
    check_('every stream ended: complete, abandoned or failed', client && client.complete + aborted + errs === client.streams,
        client ? `${fmt(client.complete)} + ${fmt(aborted)} + ${errs} = ${fmt(client.streams)}` : '-');

    const load = samples.filter((s) => s.t <= loadSeconds);
    const first = load.filter((s) => s.t >= WARMUP && s.t < WARMUP + WINDOW);
    const last = load.filter((s) => s.t > DURATION - WINDOW && s.t <= DURATION);
    const growth = {};
    for (const [k, label] of [['rss_kb', 'RSS'], ['fds', 'open fds']]) {
        const a = maxOf(first.map((s) => s[k])), b = maxOf(last.map((s) => s[k]));
        growth[k] = { first_window_max: a, last_window_max: b, growth_pct: pct(b, a) };
        check_(`${label} flat after the warm-up (≤ ${MAX_GROWTH}%)`, first.length && last.length && pct(b, a) <= MAX_GROWTH,
            `max of ${WARMUP}–${WARMUP + WINDOW} s: ${fmt(a)}, max of ${DURATION - WINDOW}–${DURATION} s: ${fmt(b)} (${pct(b, a) >= 0 ? '+' : ''}${fmt(pct(b, a), 1)}%)`);
    }
    check_('nothing in flight after the load', after.in_flight <= 1 && after.mock_active === 0,
        `gateway in flight ${after.in_flight} (the /metrics request counts itself), upstream streams open ${after.mock_active}; settled in ${fmt(settleSeconds, 1)} s`);
    const fdsOwn = (s) => s.fds - s.upstream_conns;
    check_(`open fds back at idle (± ${FD_SLACK}, pooled upstream connections apart)`, Math.abs(fdsOwn(after) - fdsOwn(idle)) <= FD_SLACK,
        `idle ${idle.fds} (${idle.upstream_conns} upstream), after ${after.fds} (${after.upstream_conns} upstream)`);

    const counted = subtractCounts(after.metrics?.requests, idle.metrics?.requests);
    const perRoute = ROUTES.map((r, i) => {
        const b = client?.bodies?.[i] ?? {};
        const st = counted[r.model] ?? {};
        const total = sumValues(st);
        const non200 = total - (st['200'] ?? 0);
        const fiveXX = Object.entries(st).filter(([s]) => Number(s) >= 500).reduce((a, [, n]) => a + n, 0);
        const abortedAfterSent = b.aborted - b.aborted_write; // abandoned streams whose request the gateway could read whole
        return { route: r.name, model: r.model, client: b, gateway: st, gateway_total: total, non200, fiveXX, aborted_after_sent: abortedAfterSent,
            access_log: gwLog.access[r.model] ?? {} };
    });
    for (const r of perRoute) {
        check_(`${r.route}: the gateway counted every request written whole`, r.gateway_total === r.client.requests_sent,
            `client wrote ${fmt(r.client.requests_sent)} of ${fmt(r.client.started)}; gateway /metrics ${fmt(r.gateway_total)} ${JSON.stringify(r.gateway)}; access log ${JSON.stringify(r.access_log)}`);
        check_(`${r.route}: each ended with a status (no 5xx; not 200 only when abandoned)`, r.fiveXX === 0 && r.non200 <= r.aborted_after_sent && (r.gateway['200'] ?? 0) >= r.client.complete,
            `${fmt(r.gateway['200'] ?? 0)} × 200 for ${fmt(r.client.complete)} complete; ${fmt(r.non200)} other for ${fmt(r.aborted_after_sent)} abandoned after the request`);
    }
    check_('the gateway and the mock ran to the end and stopped cleanly', gatewayAlive && mockAlive && gwExit.code === 0 && mockExit.code === 0,
        `gateway ${gatewayAlive ? 'alive' : 'DEAD'}, exit ${gwExit.code ?? gwExit.signal}; mock ${mockAlive ? 'alive' : 'DEAD'}, exit ${mockExit.code ?? mockExit.signal}`);
    const pass = checks.every((c) => c.ok);

    // ---- report ----
    const machine = {
        cpus: os.cpus().length, model: os.cpus()[0]?.model, mem_gb: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(),
        os: (fs.readFileSync('/etc/os-release', 'utf8').match(/PRETTY_NAME="([^"]+)"/) || [])[1],
    };
    const commit = opt.commit ?? (() => { try { return execFileSync('git', ['-C', ROOT, 'describe', '--always', '--dirty']).toString().trim(); } catch { return null; } })();
    const at = (s) => (s ? `${fmt(s.rss_kb / 1024, 1)} MB, ${s.fds} fds` : '-');
    const warmEnd = load.filter((s) => s.t >= WARMUP)[0];
    const lastLoad = load[load.length - 1];
    const out = [];
    out.push(`## poe-gateway soak, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC (${commit ?? '?'})\n`);
    out.push(`Machine: ${machine.cpus} × ${machine.model}, ${machine.mem_gb} GB, ${machine.os}, kernel ${machine.kernel}.`);
    out.push(`Load: ${fmt(STREAMS)} concurrent streams for ${DURATION} s (${fmt(loadSeconds, 0)} s with the last streams' ends), the pass-through and the translation model in turn, ` +
        `${PACE.chunks} events ${PACE.paceMs} ms apart, ${ABORT_PERMILLE / 10}% abandoned by the client; gateway ${THREADS} worker(s); seed ${SEED}.\n`);
    out.push(table(['route', 'started', 'written whole', 'complete', 'abandoned', 'errors', 'gateway counted', 'gateway statuses'],
        perRoute.map((r) => [r.route, fmt(r.client.started), fmt(r.client.requests_sent), fmt(r.client.complete), fmt(r.client.aborted), fmt(r.client.errors),
            fmt(r.gateway_total), Object.entries(r.gateway).map(([s, n]) => `${s}: ${fmt(n)}`).join(', ')])));
    if (client) {
        out.push(`\nAbandoned: ${fmt(client.aborted.write)} mid-request, ${fmt(client.aborted.sent)} right after it, ${fmt(client.aborted.events)} after 0–${PACE.chunks - 1} events. ` +
            `Events read: ${fmt(client.events)}; first event p50 / p99 ${fmt(client.ttfe.p50 / 1e6, 1)} / ${fmt(client.ttfe.p99 / 1e6, 1)} ms; ` +
            `added gap p99 ${fmt(client.gap.p99 / 1e6, 2)} ms; worst gap ${fmt(client.worst_gap / 1e6)} ms.\n`);
    }
    out.push(table(['gateway', 'RSS', 'open fds', 'upstream conns'], [
        ['idle, before the load', `${fmt(idle.rss_kb / 1024, 1)} MB`, idle.fds, idle.upstream_conns],
        [`end of the warm-up (${fmt(warmEnd?.t)} s)`, warmEnd ? `${fmt(warmEnd.rss_kb / 1024, 1)} MB` : '-', warmEnd?.fds ?? '-', warmEnd?.upstream_conns ?? '-'],
        [`max of ${WARMUP}–${WARMUP + WINDOW} s`, `${fmt(growth.rss_kb.first_window_max / 1024, 1)} MB`, growth.fds.first_window_max, '-'],
        [`max of ${DURATION - WINDOW}–${DURATION} s`, `${fmt(growth.rss_kb.last_window_max / 1024, 1)} MB`, growth.fds.last_window_max, '-'],
        ['growth', `${fmt(growth.rss_kb.growth_pct, 1)}%`, `${fmt(growth.fds.growth_pct, 1)}%`, '-'],
        [`end of the load (${fmt(lastLoad?.t)} s)`, lastLoad ? `${fmt(lastLoad.rss_kb / 1024, 1)} MB` : '-', lastLoad?.fds ?? '-', lastLoad?.upstream_conns ?? '-'],
        [`after the load (+${fmt(settleSeconds, 0)} s)`, `${fmt(after.rss_kb / 1024, 1)} MB`, after.fds, after.upstream_conns],
    ]));
    const gwTotal = perRoute.reduce((a, r) => a + r.gateway_total, 0);
    out.push(`\nGateway CPU: ${fmt(after.cpu_s - idle.cpu_s, 0)} s over the run. Upstream (mock): ${mockAfter ? `${fmt(mockAfter.requests - mockBefore.requests)} requests ` +
        `(the gateway counted ${fmt(gwTotal)}), ${fmt(mockAfter.client_aborts - mockBefore.client_aborts)} cancelled by the gateway` : '-'}; ` +
        `mock RSS ${fmt(idle.mock_rss_kb / 1024, 1)} → ${fmt(after.mock_rss_kb / 1024, 1)} MB, fds ${idle.mock_fds} → ${after.mock_fds}.`);
    const otherLog = Object.entries(gwLog.other).filter(([k]) => !/^info \[(server|catalog)\]/.test(k)).sort((a, b) => b[1] - a[1]);
    if (otherLog.length) out.push(`Gateway log, other than access lines:\n${otherLog.slice(0, 15).map(([k, n]) => `  ${n} × ${k}`).join('\n')}`);
    out.push(`\n${table(['check', 'result', 'detail'], checks.map((c) => [c.name, c.ok ? 'ok' : 'FAILED', c.detail]))}`);
    out.push(`\nVerdict: ${pass ? 'PASS' : 'FAIL'}`);
    console.log(out.join('\n'));

    const result = { started: started.toISOString(), seconds: Math.round((Date.now() - started.getTime()) / 1000), machine, commit,
        config: { duration_s: DURATION, streams: STREAMS, threads: THREADS, pace: PACE, abort_permille: ABORT_PERMILLE, warmup_s: WARMUP, window_s: WINDOW,
            sample_s: SAMPLE_S, max_growth_pct: MAX_GROWTH, fd_slack: FD_SLACK, seed: SEED, node: process.version },
        verdict: pass ? 'pass' : 'fail', checks, client, client_stderr: probeErrors, per_route: perRoute, growth, idle, after, samples,
        mock: { before: mockBefore, after: mockAfter }, gateway_log_other: gwLog.other, exits: { gateway: gwExit, mock: mockExit }, logs: tmp };
    fs.mkdirSync(path.dirname(opt.json), { recursive: true });
    fs.writeFileSync(opt.json, JSON.stringify(result, null, 1));
    log(`soak: results in ${opt.json}; logs in ${tmp}`);
    if (!pass) process.exitCode = 1;
}

main().catch((e) => {
    log(`soak: ${e.stack ?? e}`);
    log(`soak: logs in ${tmp}`);
    process.exit(1); // the exit handler kills what is still running
});
