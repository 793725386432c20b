// poe-gateway: MIT licence. What the benchmark (bench/run.mjs) and the soak (bench/soak.mjs) share: the processes they
// start (the mock Poe and the gateway, configured alike, with the test certificates), how they wait for them, and
// readers of /proc. Every process started here is killed when the harness exits, however it exits.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

export const BENCH_DIR = path.dirname(new URL(import.meta.url).pathname);
export const ROOT = path.resolve(BENCH_DIR, '..');
export const MASTER_KEY = 'sk-bench-master-0123456789abcdef';
export const POE_KEY = 'bench-poe-key';
/** The gateway's two routes: a pass-through and a translated one. */
export const PASS_MODEL = 'claude-sonnet-4-5-20250929';
export const TRANS_MODEL = 'gpt-5';
export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

// ---- processes ----

const children = [];
process.on('exit', () => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

export const alive = (child) => child.exitCode === null && child.signalCode === null;

/** Spawns `cmd`, its stdout and stderr to `logFile`; `child.exited` resolves {code, signal}. */
export function spawnLogged(cmd, args, { env, cwd, logFile }) {
    const fd = fs.openSync(logFile, 'w');
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    children.push(child);
    child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    return child;
}

/** Polls `check` until it returns something truthy (returned), `child` exits or `ms` pass (thrown, with the log's tail). */
export async function waitFor(what, check, child, logFile, ms = 20000) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
        const v = await check();
        if (v) return v;
        if (!alive(child)) break;
        await sleep(50);
    }
    throw new Error(`${what} did not start:\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
}

/** Waits until `child`'s log matches `re`; returns the match. */
export const waitForLine = (what, re, child, logFile, ms) => waitFor(what, () => fs.readFileSync(logFile, 'utf8').match(re), child, logFile, ms);

/**
 * Runs a program to completion; resolves {code, signal, stdout, stderr, pid}. `onStderrLine` sees stderr a line at a
 * time as it comes; `onSpawn` gets the pid once it runs; past `timeoutMs` the program is killed.
 */
export function run(cmd, args, { env, timeoutMs, onStderrLine, onSpawn } = {}) {
    return new Promise((resolve) => {
        const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(child);
        if (onSpawn) onSpawn(child.pid);
        let stdout = '', stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        readline.createInterface({ input: child.stderr }).on('line', (line) => {
            stderr += `${line}\n`;
            if (onStderrLine) onStderrLine(line);
        });
        const timer = timeoutMs && setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        // after the exit, once the streams have delivered what they hold
        child.on('exit', (code, signal) => { clearTimeout(timer); setImmediate(() => resolve({ code, signal, stdout, stderr, pid: child.pid })); });
    });
}

/** One HTTP request on its own connection (no keep-alive: a pooled connection would count among a process's fds). */
export function request(port, method, p, { headers = {}, body } = {}) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method, path: p, agent: false, headers: { connection: 'close', ...headers } }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode, text }));
        });
        req.on('error', reject);
        req.setTimeout(10000, () => req.destroy(new Error(`${method} ${p}: no answer in 10 s`)));
        req.end(body);
    });
}

// ---- set-up ----

/** The test certificates (t/gen-cert.sh) in `dir`/certs: {ca, cert, key} paths. */
export function makeCerts(dir) {
    const certDir = path.join(dir, 'certs');
    execFileSync('bash', [path.join(ROOT, 't/gen-cert.sh'), certDir], { stdio: 'ignore' });
    return { ca: path.join(certDir, 'ca.pem'), cert: path.join(certDir, 'server.pem'), key: path.join(certDir, 'server.key') };
}

/** Compiles bench/sseprobe.c into `dir`; returns the binary's path. */
export function buildProbe(dir) {
    const probe = path.join(dir, 'sseprobe');
    execFileSync('cc', ['-O2', '-o', probe, path.join(BENCH_DIR, 'sseprobe.c')]);
    return probe;
}

/**
 * Starts the mock Poe (`bin`) on free ports with the certificates, no request record; `spawnAs` starts it (default
 * spawnLogged; the benchmark pins it). Resolves {child, pid, http, https, logFile, control(method, path, body)}.
 */
export async function startMock({ dir, certs, bin, spawnAs = spawnLogged }) {
    const logFile = path.join(dir, 'mock.log');
    const child = spawnAs(bin, ['--http-port', '0', '--https-port', '0', '--cert', certs.cert, '--key', certs.key, '--api-key', POE_KEY,
        '--no-record', '--backlog', '8192', '--idle-timeout', '600'], { env: process.env, logFile });
    const m = await waitForLine('mock-poe', /listening http=(\d+) https=(\d+)/, child, logFile);
    const mock = { child, pid: child.pid, http: Number(m[1]), https: Number(m[2]), logFile };
    mock.control = async (method, p, body) => {
        const res = await request(mock.http, method, p, { body: body && JSON.stringify(body) });
        if (res.status !== 200) throw new Error(`mock ${p}: ${res.status} ${res.text}`);
        return JSON.parse(res.text);
    };
    return mock;
}

/**
 * The gateway's configuration: PASS_MODEL and TRANS_MODEL at the mock's TLS port (HTTP/2), or with `upstream: 'http'` at
 * its plain port (HTTP/1.1 keep-alive, gateway.upstream_connections as default), no upstream shaping.
 */
export function gatewayConfig(mock, extra = '', { upstream = 'https' } = {}) {
    const base = upstream === 'http' ? `http://127.0.0.1:${mock.http}` : `https://localhost:${mock.https}`;
    return `model_list:
  - model_name: ${PASS_MODEL}
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: ${base}
      api_key: os.environ/POE_API_KEY
  - model_name: ${TRANS_MODEL}
    litellm_params:
      model: openai/GPT-5
      api_base: ${base}/v1
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  idle_timeout: 600
  # Poe allows a key 500 requests a minute and the gateway shapes its upstream traffic to that by default; the
  # harnesses load the gateway itself, so the shaping is off (older gateways warn about the unknown key)
  upstream_rpm: 0
${extra}`;
}

/**
 * Starts the gateway (`bin`) with gatewayConfig (and `extraConfig`, lines of its gateway: section; `upstream` as there)
 * in `dir`/`name`, `threads` workers, trusting the test CA; `spawnAs` as for startMock; `extraEnv` joins its
 * environment. Resolves once it listens and (for up to 5 s) has fetched Poe's catalog: {child, pid, port, logFile}.
 */
export async function startGateway({ dir, mock, certs, bin, threads, spawnAs = spawnLogged, extraConfig = '', name = 'gateway', upstream = 'https',
    extraEnv = {} }) {
    const gwDir = path.join(dir, name);
    fs.mkdirSync(gwDir);
    const config = path.join(gwDir, 'gateway.yaml');
    fs.writeFileSync(config, gatewayConfig(mock, extraConfig, { upstream }));
    const logFile = path.join(gwDir, 'gateway.log');
    const env = { PATH: process.env.PATH, HOME: gwDir, LITELLM_MASTER_KEY: MASTER_KEY, POE_API_KEY: POE_KEY, SSL_CERT_FILE: certs.ca };
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) if (process.env[k]) env[k] = process.env[k];
    Object.assign(env, extraEnv);
    const child = spawnAs(bin, ['--config', config, '--port', '0', '--threads', String(threads)], { env, cwd: gwDir, logFile });
    const m = await waitForLine('poe-gateway', /listening on http:\/\/[^ ]+:(\d+)/, child, logFile);
    await waitForLine('poe-gateway catalog', /catalog\]/, child, logFile, 5000).catch(() => {});
    return { child, pid: child.pid, port: Number(m[1]), logFile };
}

// ---- /proc ----

/** User and system CPU of `pid` in clock ticks (CLK_TCK a second); NaN once it is gone. */
export function cpuTicks(pid) {
    try {
        const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
        return Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch { return NaN; }
}

/** VmRSS and thread count of `pid`. */
export function procStatus(pid) {
    try {
        const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
        return { rss_kb: Number(s.match(/VmRSS:\s+(\d+)/)?.[1]), threads: Number(s.match(/Threads:\s+(\d+)/)?.[1]) };
    } catch { return { rss_kb: NaN, threads: NaN }; }
}

export const rssKB = (pid) => procStatus(pid).rss_kb;

/**
 * Nanoseconds the threads of `pid` have spent waiting for a CPU while runnable (the second field of each thread's
 * /proc/PID/task/TID/schedstat), summed; NaN once the process is gone. The kernel adds a wait when the thread gets the
 * CPU, so a thread kept waiting to the end of a run does not show here: see runnable.
 */
export function waitNs(pid) {
    try {
        let sum = 0;
        for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
            try { sum += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]); } catch { /* thread gone */ }
        }
        return sum;
    } catch { return NaN; }
}

/** Whether a thread of `pid` is runnable (running or waiting for a CPU: state R) right now. */
export function runnable(pid) {
    try {
        return fs.readdirSync(`/proc/${pid}/task`).some((tid) => {
            try {
                const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
                return s[s.lastIndexOf(')') + 2] === 'R';
            } catch { return false; }
        });
    } catch { return false; }
}

export function fdCount(pid) {
    try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return NaN; }
}

/** A number for a table: thousands separated, `digits` decimals; '-' for none. */
export function fmt(x, digits = 0) {
    if (x === null || x === undefined || Number.isNaN(x)) return '-';
    return Number(x).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// ---- the tiny pass-through bed of bench/ledger.mjs and bench/redis.mjs ----

/** `cmd args` as run pinned to `cpu` by taskset: the arguments of run() or spawnLogged(). */
export const pinned = (cpu, cmd, args) => ['taskset', ['-c', cpu, cmd, ...args]];
/** A spawnAs (startMock, startGateway) that pins to `cpu`. */
export const spawnPinned = (cpu) => (cmd, args, o) => spawnLogged(...pinned(cpu, cmd, args), o);
export const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * A temporary directory named `prefix`..., the test certificates, the mock Poe (`mockBin`, pinned to cpu 1) answering
 * every /v1/messages with the streamed answer, and the tiny pass-through request written to a file: {dir, certs,
 * mock, body, headers} (headers as post.lua takes them).
 */
export async function tinyPassthroughBed(prefix, mockBin, { tiny, upstreamAnswer }) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const certs = makeCerts(dir);
    const mock = await startMock({ dir, certs, bin: path.resolve(mockBin), spawnAs: spawnPinned('1') });
    await mock.control('POST', '/_mock/script', { responses: [upstreamAnswer({ path: '/v1/messages', kind: 'stream' })] });
    const body = path.join(dir, 'tiny.json');
    fs.writeFileSync(body, JSON.stringify(tiny({ model: PASS_MODEL })));
    const headers = `x-api-key: ${MASTER_KEY}\nanthropic-version: 2023-06-01\ncontent-type: application/json`;
    return { dir, certs, mock, body, headers };
}
