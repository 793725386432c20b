// poe-gateway: MIT licence. What the ledger (#19) costs on the hot path, and what kill -9 under load loses of it.
//
//     node bench/ledger.mjs [--rounds 3] [--duration 5] [--c 16] [--gateway BIN] [--mock BIN]
//
// 1. CPU per request: the gateway (one worker, pinned to cpu 0) with gateway.ledger on and off, in alternating runs of
//    wrk (pinned with the mock to cpu 1) posting the tiny streamed pass-through request; CPU is the gateway's user +
//    system time (/proc) over the requests wrk completed. The medians of each side and their ratio are printed.
//    On a machine shared with other work this figure swings with the load of the moment, so:
// 2. Instructions per request: the same load against the gateway running under valgrind's callgrind, which counts the
//    instructions every thread of the gateway executes (the writer thread's SQLite work included) between a warm-up
//    and the end of the load: a figure other processes cannot disturb. Skipped without valgrind (--no-callgrind too).
// 3. Crash loss: the ledger on, wrk at full speed, kill -9 of the gateway half-way; then the requests the gateway had
//    finished (its access log, written just before the ledger's record) against the records the ledger kept (read back
//    with `poe-gateway usage`).
// Needs wrk and taskset (bash bench/run.sh installs them). Prints a JSON summary on stdout.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_DIR, CLK_TCK, MASTER_KEY, PASS_MODEL, ROOT, cpuTicks, log, makeCerts, run, sleep, spawnLogged, startGateway,
    median, pinned, spawnPinned, startMock, tinyPassthroughBed } from './lib.mjs';
import { tiny, upstreamAnswer } from './requests.mjs';

const { values: opt } = parseArgs({ options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    c: { type: 'string', default: '16' },
    'no-callgrind': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false }, // keep the temporary directory (the callgrind files) and say where
    gateway: { type: 'string', default: process.env.PGW_BIN || path.join(ROOT, 'build/poe-gateway') },
    mock: { type: 'string', default: process.env.MOCK_POE_BIN || path.join(ROOT, 'build/t/mock-poe/mock-poe') },
} });
const ROUNDS = Number(opt.rounds), DURATION = Number(opt.duration), C = Number(opt.c);
const { dir, certs, mock, body, headers } = await tinyPassthroughBed('pgw-bench-ledger-', opt.mock, { tiny, upstreamAnswer });

async function wrk(port, seconds, c = C) {
    const r = await run(...pinned('1', 'wrk', ['-t1', `-c${c}`, `-d${seconds}s`, '--timeout', '10s', '-s', path.join(BENCH_DIR, 'post.lua'),
        `http://127.0.0.1:${port}/v1/messages`]), { env: { ...process.env, BENCH_BODY: body, BENCH_HEADERS: headers } });
    const m = r.stdout.match(/^BENCH (.*)$/m);
    if (!m) throw new Error(`wrk failed (${r.code}): ${r.stdout}${r.stderr}`);
    return JSON.parse(m[1]);
}

let n = 0;
async function gateway(ledger, spawnAs = spawnPinned('0')) {
    const name = `gw${n++}`;
    const extra = ledger ? `  ledger:\n    path: ${path.join(dir, name, 'ledger.sqlite')}\n` : '  ledger:\n    enabled: false\n';
    const g = await startGateway({ dir, mock, certs, bin: path.resolve(opt.gateway), threads: 1, spawnAs, extraConfig: extra, name });
    g.ledger = path.join(dir, name, 'ledger.sqlite');
    return g;
}

// 1. CPU per request, on and off alternating
const cpu = { on: [], off: [] };
for (let round = 0; round < ROUNDS; round++) {
    for (const side of round % 2 ? ['on', 'off'] : ['off', 'on']) {
        const g = await gateway(side === 'on');
        await wrk(g.port, 1); // warm: connections, catalog, the ledger's first commit
        const t0 = cpuTicks(g.pid);
        const w = await wrk(g.port, DURATION);
        const ticks = cpuTicks(g.pid) - t0;
        const errors = Object.values(w.errors).reduce((a, b) => a + b, 0);
        if (errors) throw new Error(`${side}: wrk saw ${errors} errors`);
        const us = (ticks / CLK_TCK) * 1e6 / w.requests;
        cpu[side].push(us);
        log(`round ${round} ledger ${side}: ${w.requests} requests, ${(w.requests / DURATION).toFixed(0)} req/s, ${us.toFixed(1)} µs CPU/request`);
        g.child.kill('SIGTERM');
        await g.child.exited;
    }
}
const on = median(cpu.on), off = median(cpu.off);

// 2. instructions per request, under callgrind
const instructions = {};
const haveValgrind = (await run('sh', ['-c', 'command -v valgrind && command -v callgrind_control'])).code === 0;
if (haveValgrind && !opt['no-callgrind']) {
    const irOf = async (pid) => {
        const r = await run('callgrind_control', ['-e', 'Ir', String(pid)]);
        return [...r.stdout.matchAll(/^\s+Th \d+\s+([\d,]+)\s*$/gm)].reduce((sum, m) => sum + Number(m[1].replace(/,/g, '')), 0);
    };
    for (const side of ['off', 'on']) {
        const g = await gateway(side === 'on', (cmd, args, o) => spawnLogged('taskset', ['-c', '0', 'valgrind', '--tool=callgrind',
            `--callgrind-out-file=${path.join(dir, `callgrind.${side}`)}`, cmd, ...args], o));
        await wrk(g.port, 3, 4); // warm-up
        await run('callgrind_control', ['-z', String(g.pid)]);
        const w = await wrk(g.port, DURATION * 2, 4);
        const ir = await irOf(g.pid);
        instructions[side] = Math.round(ir / w.requests);
        log(`callgrind, ledger ${side}: ${w.requests} requests, ${instructions[side]} instructions/request`);
        g.child.kill('SIGTERM');
        await g.child.exited;
        // where they went: the request's end (the record, its cost) on the worker, and the writer thread
        const a = (await run('callgrind_annotate', ['--inclusive=yes', path.join(dir, `callgrind.${side}`)])).stdout;
        const fn = (name) => Number((a.match(new RegExp(`^ *([\\d,]+) \\([ \\d.]+%\\)  \\S+:${name} `, 'm')) ?? [0, '0'])[1].replace(/,/g, ''));
        instructions[`${side}_request_end`] = Math.round(fn('on_request_dispose') / w.requests);
        if (side === 'on') {
            instructions.on_writer = Math.round(fn('writer_main') / w.requests);
            const m = fs.readFileSync(g.logFile, 'utf8').match(/(\d+) records written in (\d+) commits/);
            instructions.on_records_per_commit = m ? Number((Number(m[1]) / Number(m[2])).toFixed(1)) : null;
        }
    }
    instructions.increase_percent = Number(((instructions.on / instructions.off - 1) * 100).toFixed(1));
    // the worker's share does not depend on the load; the writer's is a commit's cost shared by the records of a batch,
    // which under valgrind's slowness are few (one commit per 100 ms at most)
    instructions.worker_increase_percent = Number(((instructions.on_request_end - instructions.off_request_end) * 100 / instructions.off).toFixed(2));
}

// 3. kill -9 under load
const g = await gateway(true);
await wrk(g.port, 1);
const finished = () => (fs.readFileSync(g.logFile, 'utf8').match(/"POST \/v1\/messages HTTP\/1\.1" 200 /g) ?? []).length;
const load = wrk(g.port, 4);
await sleep(2000);
g.child.kill('SIGKILL');
await g.child.exited;
const w = await load;
const completed = finished();
const kept = await countRecords(g.ledger);
log(`kill -9 under load: the gateway had finished ${completed} requests (wrk read ${w.requests} in the run); the ledger kept ${kept}; lost ${completed - kept}`);

async function countRecords(file) {
    const r = await run(path.resolve(opt.gateway), ['usage', '--ledger', file, '--since', '1d', '--json']);
    if (r.code !== 0) throw new Error(`usage: ${r.stderr}`);
    return JSON.parse(r.stdout).total.requests;
}

console.log(JSON.stringify({ cpu_us_per_request: { ledger_on: cpu.on, ledger_off: cpu.off, median_on: on, median_off: off,
    increase_percent: Number(((on / off - 1) * 100).toFixed(1)) },
instructions_per_request: instructions,
kill9: { finished_by_gateway: completed, kept_in_ledger: kept, lost: completed - kept } }, null, 1));
mock.child.kill('SIGTERM');
if (opt.keep) log(`kept ${dir}`);
else fs.rmSync(dir, { recursive: true, force: true });
