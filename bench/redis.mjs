// poe-gateway: MIT licence. What sharing rates through Redis (#20, gateway.redis) costs a request: the gateway's CPU and
// Redis's, and the latency it adds.
//
//     node bench/redis.mjs [--rounds 3] [--duration 4] [--c 16] [--gateway BIN] [--mock BIN]
//
// The gateway (one worker, pinned to cpu 0) shapes the tiny streamed pass-through request at a rate it never reaches
// (upstream_rpm 1,000,000), so that every request takes its turn, with gateway.redis on (one EVALSHA a request) and off
// (the process's own bucket), in alternating runs of wrk (pinned with the mock and redis-server to cpu 1):
// 1. CPU per request at c=--c: the gateway's user + system time (/proc) over the requests wrk completed, and
//    redis-server's over the same requests;
// 2. latency at c=1: wrk's p50 and p99, on and off.
// Medians of the rounds are printed, and a JSON summary on stdout. Needs wrk, taskset and redis-server.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, CLK_TCK, MASTER_KEY, PASS_MODEL, POE_KEY, ROOT, cpuTicks, gatewayConfig, log, makeCerts, run, spawnLogged,
    median, pinned, spawnPinned, startMock, tinyPassthroughBed, waitForLine } from './lib.mjs';
import { tiny, upstreamAnswer } from './requests.mjs';

const { values: opt } = parseArgs({ options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '4' },
    c: { type: 'string', default: '16' },
    gateway: { type: 'string', default: process.env.PGW_BIN || path.join(ROOT, 'build/poe-gateway') },
    mock: { type: 'string', default: process.env.MOCK_POE_BIN || path.join(ROOT, 'build/t/mock-poe/mock-poe') },
} });
const ROUNDS = Number(opt.rounds), DURATION = Number(opt.duration), C = Number(opt.c);
const { dir, certs, mock, body, headers } = await tinyPassthroughBed('pgw-bench-redis-', opt.mock, { tiny, upstreamAnswer });

const redisPort = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
const redisLog = path.join(dir, 'redis.log');
const redis = spawnLogged(...pinned('1', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir]), { env: process.env, logFile: redisLog });
await waitForLine('redis-server', /Ready to accept connections/, redis, redisLog);

async function wrk(port, seconds, c) {
    const r = await run(...pinned('1', 'wrk', ['-t1', `-c${c}`, `-d${seconds}s`, '--timeout', '10s', '-s', path.join(BENCH_DIR, 'post.lua'),
        `http://127.0.0.1:${port}/v1/messages`]), { env: { ...process.env, BENCH_BODY: body, BENCH_HEADERS: headers } });
    const m = r.stdout.match(/^BENCH (.*)$/m);
    if (!m) throw new Error(`wrk failed (${r.code}): ${r.stdout}${r.stderr}`);
    const w = JSON.parse(m[1]);
    const errors = Object.values(w.errors).reduce((a, b) => a + b, 0);
    if (errors) throw new Error(`wrk saw ${errors} errors`);
    return w;
}

let n = 0;
async function gateway(shared) {
    const gwDir = path.join(dir, `gw${n++}`);
    fs.mkdirSync(gwDir);
    const config = path.join(gwDir, 'gateway.yaml');
    fs.writeFileSync(config, gatewayConfig(mock).replace('upstream_rpm: 0', `upstream_rpm: 1000000\n  upstream_burst: 1000000${
        shared ? `\n  redis: redis://127.0.0.1:${redisPort}/0` : ''}`));
    const logFile = path.join(gwDir, 'gateway.log');
    const env = { PATH: process.env.PATH, HOME: gwDir, LITELLM_MASTER_KEY: MASTER_KEY, POE_API_KEY: POE_KEY, SSL_CERT_FILE: certs.ca };
    const child = spawnPinned('0')(path.resolve(opt.gateway), ['--config', config, '--port', '0', '--threads', '1'], { env, cwd: gwDir, logFile });
    const m = await waitForLine('poe-gateway', /listening on http:\/\/[^ ]+:(\d+)/, child, logFile);
    if (shared) await waitForLine('poe-gateway redis', /shared state in use/, child, logFile, 5000);
    return { child, pid: child.pid, port: Number(m[1]) };
}

const cpu = { on: [], off: [] }, redisCpu = [], lat = { on: [], off: [] };
for (let round = 0; round < ROUNDS; round++) {
    for (const side of round % 2 ? ['on', 'off'] : ['off', 'on']) {
        const g = await gateway(side === 'on');
        await wrk(g.port, 1, C); // warm: connections, the catalog, the scripts
        const t0 = cpuTicks(g.pid), r0 = cpuTicks(redis.pid);
        const w = await wrk(g.port, DURATION, C);
        const us = ((cpuTicks(g.pid) - t0) / CLK_TCK) * 1e6 / w.requests;
        cpu[side].push(us);
        if (side === 'on') redisCpu.push(((cpuTicks(redis.pid) - r0) / CLK_TCK) * 1e6 / w.requests);
        const l = await wrk(g.port, DURATION, 1);
        lat[side].push(l.latency_us);
        log(`round ${round} redis ${side}: ${(w.requests / DURATION).toFixed(0)} req/s, ${us.toFixed(1)} µs gateway CPU/request; ` +
            `c=1 p50 ${l.latency_us.p50} µs, p99 ${l.latency_us.p99} µs`);
        g.child.kill('SIGTERM');
        await g.child.exited;
    }
}
const summary = {
    gateway_cpu_us_per_request: { off: median(cpu.off), on: median(cpu.on), added: median(cpu.on) - median(cpu.off) },
    redis_cpu_us_per_request: median(redisCpu),
    latency_c1_us: {
        off: { p50: median(lat.off.map((l) => l.p50)), p99: median(lat.off.map((l) => l.p99)) },
        on: { p50: median(lat.on.map((l) => l.p50)), p99: median(lat.on.map((l) => l.p99)) },
    },
};
summary.latency_c1_us.added_p50 = summary.latency_c1_us.on.p50 - summary.latency_c1_us.off.p50;
log(`gateway CPU/request: off ${summary.gateway_cpu_us_per_request.off.toFixed(1)} µs, on ${summary.gateway_cpu_us_per_request.on.toFixed(1)} µs; ` +
    `redis-server ${summary.redis_cpu_us_per_request.toFixed(1)} µs/request; c=1 p50 added ${summary.latency_c1_us.added_p50} µs`);
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(0);
