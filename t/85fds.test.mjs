// poe-gateway: MIT licence. Descriptor exhaustion (#15): clients opening more idle connections than the gateway has
// descriptors for, then leaving. The gateway must take no more than gateway.max_connections (by default what its
// descriptor limit allows, with room left for upstream connections), leave the rest queued without spinning, close
// what it cannot queue (when it runs out of descriptors below its cap), recover once the clients leave (no socket left
// in CLOSE-WAIT, health answered), and stop on SIGTERM however flooded it is.
//
// CPU is measured as the gateway's own CPU ticks (utime + stime from /proc/PID/stat) over a window, which a busy machine
// does not inflate; the bounds on time below only stop a test that would otherwise hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { request, startGateway } from './lib/harness.mjs';
import { acceptedSockets, connect, fdCount, sleep, statuses, waitFor } from './lib/raw.mjs';

// Idle connections: ten times the descriptor limit below, and within what the two workers' listen queues hold (1,024
// each) besides what the gateway takes. A flood this much larger than the limit makes the two workers of a gateway that
// leaves EMFILE to libuv race for its spare descriptor, the race the issue saw.
const FLOOD = 1500;
const NOFILE = 128;
const HANG_MS = 15000; // how long a step may take before the test calls it hung
const IDLE_CPU_TICKS = 20; // out of 200 (two seconds of one core): a spinning accept loop burns nearly all of them

// upstream never called: these tests only open connections and ask /health/liveliness. idle_timeout is long so that
// nothing here is rescued by the idle sweep.
const config = (gateway = '') => `model_list:
  - model_name: claude-sonnet-4-5-20250929
    litellm_params:
      model: anthropic/claude-sonnet-4.5
      api_base: https://localhost:9
      api_key: os.environ/POE_API_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
gateway:
  idle_timeout: 300
${gateway}`;

/** The process's CPU time so far, in clock ticks (every thread). */
function cpuTicks(pid) {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of proc(5))
}

/** CPU ticks the process spends over `ms` of wall time. */
async function cpuOver(pid, ms) {
    const t0 = cpuTicks(pid);
    await sleep(ms);
    return cpuTicks(pid) - t0;
}

/** The TCP sockets on local port `port` in state CLOSE-WAIT (the peer has closed, this side has not). */
function closeWait(port) {
    let n = 0;
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
        for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
            const f = line.trim().split(/\s+/);
            if (f.length > 3 && parseInt(f[1].split(':')[1], 16) === port && f[3] === '08') ++n;
        }
    }
    return n;
}

/** Opens `n` connections that send nothing; resolves once every one is connected (accepted or queued by the kernel). */
async function flood(port, n) {
    const socks = await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        s.closedByPeer = false;
        s.on('error', () => {});
        s.on('end', () => (s.closedByPeer = true));
        s.once('connect', () => resolve(s));
        s.once('error', reject);
    })));
    return { socks, destroy: () => socks.forEach((s) => s.destroy()) };
}

async function liveliness(gw) {
    const r = await request(`${gw.url}/health/liveliness`, { timeout: HANG_MS });
    assert.equal(r.status, 200, r.body);
}

/** Sends SIGTERM and resolves the exit, or null when the gateway is still running after HANG_MS. */
async function stopWithin(gw) {
    gw.child.kill('SIGTERM');
    let timer;
    const exit = await Promise.race([gw.exited, new Promise((resolve) => (timer = setTimeout(resolve, HANG_MS, null)))]);
    clearTimeout(timer);
    if (exit === null) gw.child.kill('SIGKILL');
    return exit;
}

/** The gateway stopped by itself, with 0, and its sanitizers (in an ASan+UBSan build) found nothing. */
function assertCleanExit(gw, exit, what = 'SIGTERM') {
    assert.deepEqual(exit, { code: 0, signal: null }, `${what}:\n${gw.output.stderr.slice(-2000)}`);
    assert.doesNotMatch(gw.output.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/);
}

/** Runs `fn` with a gateway; kills it whatever happens. */
async function withGateway(opts, fn) {
    const gw = await startGateway(opts);
    try {
        return await fn(gw);
    } finally {
        if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
    }
}

const count = (text, re) => (text.match(new RegExp(re, 'g')) || []).length;

test('a flood past the descriptor limit waits at max_connections: no spin, no CLOSE-WAIT left, health answered', async () => {
    // soft 100, hard 128: the gateway raises its soft limit to the hard one and derives its cap from that: with two
    // workers, 64 client connections (half the limit, since the reserve of 64 + 32 a worker would take more than half)
    const CAP = 64;
    await withGateway({ config: config(), nofile: { soft: 100, hard: NOFILE } }, async (gw) => {
        const pid = gw.child.pid;
        const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
        const f = await flood(gw.port, FLOOD);
        try {
            // the sign that the gateway has taken all it will (a gateway without a cap never gives it: then the checks
            // below run after HANG_MS)
            const capped = await waitFor(() => /reached gateway\.max_connections/.test(gw.output.stderr), HANG_MS);
            const ticks = await cpuOver(pid, 2000);
            assert.ok(ticks < IDLE_CPU_TICKS, `the gateway burns ${ticks} CPU ticks in 2 s with ${FLOOD} connections open`);
            // exactly its cap, the rest left queued, and descriptors to spare for upstream connections
            assert.equal(acceptedSockets(pid, gw.port), CAP, 'client connections the gateway holds');
            assert.ok(fdCount(pid) < NOFILE - 16, `the gateway holds ${fdCount(pid)} of its ${NOFILE} descriptors`);
            assert.ok(capped, `reaching the cap was not logged:\n${gw.output.stderr.slice(-2000)}`);
        } finally {
            f.destroy();
        }
        await liveliness(gw);
        assert.ok(await waitFor(() => closeWait(gw.port) === 0, HANG_MS), `${closeWait(gw.port)} sockets stay in CLOSE-WAIT`);
        const ticks = await cpuOver(pid, 2000);
        assert.ok(ticks < IDLE_CPU_TICKS, `the gateway burns ${ticks} CPU ticks in 2 s once the clients have left`);
        assertCleanExit(gw, await stopWithin(gw));
        assert.match(limits, /Max open files\s+128\s+128/, 'the soft descriptor limit is raised to the hard one');
        assert.match(gw.output.stderr, /raised the descriptor limit \(RLIMIT_NOFILE\) from 100 to 128/);
        assert.match(gw.output.stderr, new RegExp(`accepting up to ${CAP} client connections \\(the default`));
        assert.equal(count(gw.output.stderr, 'reached gateway\\.max_connections'), 1, 'the cap is logged once, not per accept');
    });
});

test('out of descriptors below max_connections: the queue is closed, no spin, one warning, then recovery', async () => {
    await withGateway({ config: config('  max_connections: 5000\n'), nofile: { soft: NOFILE, hard: NOFILE } }, async (gw) => {
        const pid = gw.child.pid;
        const f = await flood(gw.port, FLOOD);
        try {
            // the gateway takes what its descriptors allow and closes the rest rather than leave them hanging
            assert.ok(await waitFor(() => f.socks.some((s) => s.closedByPeer), HANG_MS),
                `no queued connection was closed:\n${gw.output.stderr.slice(-2000)}`);
            const ticks = await cpuOver(pid, 2000);
            assert.ok(ticks < IDLE_CPU_TICKS, `the gateway burns ${ticks} CPU ticks in 2 s while out of descriptors`);
        } finally {
            f.destroy();
        }
        // a probe that came while descriptors were still short would be closed like the flood: wait until the
        // gateway has closed the connections whose clients left
        assert.ok(await waitFor(() => acceptedSockets(pid, gw.port) === 0, HANG_MS),
            `the gateway holds ${acceptedSockets(pid, gw.port)} connections`);
        await liveliness(gw);
        assert.ok(await waitFor(() => closeWait(gw.port) === 0, HANG_MS), `${closeWait(gw.port)} sockets stay in CLOSE-WAIT`);
        const ticks = await cpuOver(pid, 2000);
        assert.ok(ticks < IDLE_CPU_TICKS, `the gateway burns ${ticks} CPU ticks in 2 s once the clients have left`);
        assertCleanExit(gw, await stopWithin(gw));
        assert.match(gw.output.stderr, /gateway\.max_connections 5000 is more than the descriptor limit/);
        assert.equal(count(gw.output.stderr, 'out of file descriptors'), 1, 'the shortage is logged once, not per accept');
        assert.match(gw.output.stderr, /accepting connections again after [\d.]+ s; \d+ queued connection\(s\) were closed/);
    });
});

for (const [what, gateway] of [['at max_connections', ''], ['out of descriptors', '  max_connections: 5000\n']]) {
    test(`SIGTERM stops a gateway flooded with idle connections (${what})`, async () => {
        await withGateway({ config: config(gateway), nofile: { soft: NOFILE, hard: NOFILE } }, async (gw) => {
            const f = await flood(gw.port, FLOOD);
            try {
                // the flood has reached the gateway's limit (or, on a gateway that spins, had every chance to)
                await waitFor(() => /reached gateway\.max_connections|out of file descriptors/.test(gw.output.stderr), HANG_MS);
                assertCleanExit(gw, await stopWithin(gw), 'SIGTERM while flooded');
            } finally {
                f.destroy();
            }
        });
    });
}

test('max_connections: the connection past the cap is served only once another closes', async () => {
    const CAP = 4;
    await withGateway({ config: config(`  max_connections: ${CAP}\n`) }, async (gw) => {
        const probe = 'GET /health/liveliness HTTP/1.1\r\nHost: gw\r\n\r\n';
        const held = [];
        try {
            // CAP connections, each answered once (so the gateway has certainly taken them), then left open and idle
            for (let i = 0; i < CAP; i++) {
                const c = await connect(gw.port);
                held.push(c);
                c.write(probe);
                assert.ok(await c.waitData(/\r\n\r\n/, HANG_MS), `connection ${i + 1} of ${CAP} was not served`);
                assert.deepEqual(statuses(c.text), [200]);
            }
            const extra = await connect(gw.port);
            held.push(extra);
            extra.write(probe);
            // the gateway sees it and leaves it in the listen queue
            const capped = await waitFor(() => /reached gateway\.max_connections/.test(gw.output.stderr), HANG_MS);
            await sleep(300);
            assert.equal(extra.text, '', `connection ${CAP + 1} was served past the cap of ${CAP}`);
            assert.ok(capped, `connection ${CAP + 1} did not meet the cap:\n${gw.output.stderr.slice(-2000)}`);
            // room: the health probe waiting in the queue is answered
            held[0].destroy();
            assert.ok(await extra.waitData(/\r\n\r\n/, HANG_MS), `connection ${CAP + 1} was not served once another closed`);
            assert.deepEqual(statuses(extra.text), [200]);
        } finally {
            held.forEach((c) => c.destroy());
        }
        assertCleanExit(gw, await stopWithin(gw));
        assert.match(gw.output.stderr, new RegExp(`accepting up to ${CAP} client connections \\(gateway\\.max_connections\\)`));
    });
});
