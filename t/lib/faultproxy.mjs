// poe-gateway: MIT licence. A fault-injecting TCP proxy for the tests: it sits between the gateway and the mock Poe and,
// below HTTP and TLS, breaks the upstream's answer at a chosen byte.
//
// How it works: every accepted connection gets a plan when it opens: the next one queued by `queue()`, else one from
// `draw()` (the test's seeded generator), else `pass`. A plan names a fault and the byte of the upstream → gateway
// direction where it strikes (`at`: that many bytes are relayed first, so a cut can fall inside the TLS handshake, inside
// a response head, mid-event, or right after the last byte of an answer):
//
//   { kind: 'pass' }                          relay everything
//   { kind: 'close', at }                     FIN to the gateway after `at` bytes (the upstream side is dropped)
//   { kind: 'reset', at }                     RST to the gateway after `at` bytes (socket.resetAndDestroy, Node ≥ 18.3)
//   { kind: 'stall', at, ms }                 relay nothing more for `ms` ms (Infinity: until the gateway gives up)
//   { kind: 'trickle', at, bps, ms }          relay at `bps` bytes/s for `ms` ms, then at full speed
//
// With `boundary: true` the fault waits for the end of the upstream's read that reaches byte `at`: it falls between two
// of the upstream's writes (whole TLS records, whole frames), as when a server process dies between writes.
//
// The gateway → upstream direction is always relayed as it comes. Bytes from the upstream wait in a queue while a plan
// holds them back, and the upstream socket is paused meanwhile so that the mock feels the back-pressure. `sniff` (a
// global RegExp) is matched against plain-text gateway → upstream bytes (HTTP/1.1 upstreams) to note which requests a
// connection carried and at which downstream byte each one was sent; over TLS it never matches.
//
// `closeAll()` closes (FIN) every open connection, as an upstream does when it restarts or drops idle connections.
//
// `connections()` reads back, per connection: the plan, bytes each way, when the fault struck (`struckAt`, ms since the
// epoch, and the byte count then), how it ended (`end`: 'close' or 'reset' when the plan cut it, 'closed' by closeAll(),
// else who closed first: 'upstream', 'gateway', 'error'), and the sniffed marks.
import net from 'node:net';

/** A small seeded PRNG (mulberry32): returns a function giving floats in [0, 1). */
export function prng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

const TRICKLE_TICK_MS = 50;
const HIGH_WATER = 256 * 1024; /* queued upstream bytes past which the upstream socket is paused */

/**
 * Starts a proxy on 127.0.0.1 (a free port) to `target` ({host, port}). Resolves to the proxy's handle: `port`,
 * `queue(...plans)` (for the next connections, in order), `setDraw(fn)` (fn() → plan; null: `pass`),
 * `connections()`, `open()` (connections the gateway holds open now), `closeAll()` (FIN on every open connection) and
 * `close()` (destroys every connection and stops listening).
 */
export async function startFaultProxy({ target, sniff = null }) {
    const queued = [];
    let draw = null, nextId = 1;
    const conns = [];
    const live = new Set();
    const closers = new Set();

    const server = net.createServer((down) => {
        const plan = queued.length ? queued.shift() : draw ? draw() : { kind: 'pass' };
        const rec = { id: nextId++, plan, openedAt: Date.now(), closedAt: null, up: 0, down: 0, struckAt: null, struckDown: null,
            end: null, marks: [] };
        conns.push(rec);
        live.add(down);
        const up = net.connect(target.port, target.host ?? '127.0.0.1');
        const pending = [];
        let pendingBytes = 0, mode = 'pass', timer = null, upEnded = false, over = false;

        // the relay is over (the gateway side may stay open a while: a FIN'd or stalled connection until the gateway leaves)
        const stop = (how) => {
            if (over) return;
            over = true;
            rec.end ??= how;
            clearTimeout(timer);
            clearInterval(timer);
            up.destroy();
        };
        const strike = () => {
            rec.struckAt = Date.now();
            rec.struckDown = rec.down;
            switch (plan.kind) {
            case 'close':
                stop('close');
                down.end();
                // a closed server reads no more: what the gateway still sends is dropped; let it go after a while
                setTimeout(() => down.destroy(), 10000).unref();
                break;
            case 'reset': {
                stop('reset');
                // once the relayed bytes are in the kernel, so that exactly `at` of them went out before the RST
                const rst = () => down.destroyed || down.resetAndDestroy();
                if (down.writableLength === 0) rst();
                else {
                    down.once('drain', rst);
                    setTimeout(rst, 5000).unref();
                }
                break;
            }
            case 'stall':
                mode = 'hold';
                if (Number.isFinite(plan.ms)) timer = setTimeout(() => { mode = 'pass'; pump(); }, plan.ms);
                break;
            case 'trickle': {
                mode = 'trickle';
                const until = Date.now() + plan.ms, perTick = Math.max(1, Math.round(plan.bps * TRICKLE_TICK_MS / 1000));
                timer = setInterval(() => {
                    if (Date.now() >= until) {
                        clearInterval(timer);
                        mode = 'pass';
                    }
                    pump(perTick);
                }, TRICKLE_TICK_MS);
                break;
            }
            }
        };
        const armed = () => plan.kind !== 'pass' && rec.struckAt === null;
        // relays what the plan lets through now: all of it, none (held), or `budget` bytes (one trickle tick)
        const pump = (budget = 0) => {
            if (armed() && rec.down >= plan.at) strike();
            while (pending.length && !over && mode !== 'hold' && !(mode === 'trickle' && budget <= 0)) {
                const buf = pending[0];
                let n = buf.length;
                if (armed() && !plan.boundary) n = Math.min(n, plan.at - rec.down);
                if (mode === 'trickle') n = Math.min(n, budget);
                if (n < buf.length) pending[0] = buf.subarray(n);
                else pending.shift();
                pendingBytes -= n;
                budget -= n;
                rec.down += n;
                if (n > 0) down.write(buf.subarray(0, n));
                if (armed() && rec.down >= plan.at) strike();
            }
            if (over) return;
            if (pendingBytes < HIGH_WATER && up.isPaused()) up.resume();
            if (upEnded && pending.length === 0 && mode === 'pass') {
                stop('upstream');
                down.end();
            }
        };

        up.on('data', (buf) => {
            pending.push(buf);
            pendingBytes += buf.length;
            if (pendingBytes >= HIGH_WATER) up.pause();
            pump();
        });
        up.on('end', () => {
            upEnded = true;
            pump();
        });
        up.on('error', () => {
            if (over) return;
            stop('error');
            down.destroy();
        });
        down.on('data', (buf) => {
            rec.up += buf.length;
            if (over) return;
            if (sniff)
                for (const m of buf.toString('latin1').matchAll(sniff)) rec.marks.push({ mark: m[0], down: rec.down, at: Date.now() });
            up.write(buf);
        });
        down.on('end', () => {
            stop('gateway');
            down.end();
        });
        down.on('error', () => stop('error'));
        down.on('close', () => {
            live.delete(down);
            stop('gateway');
            rec.closedAt = Date.now();
        });
        // closeAll(): an upstream that closes its connections (as after an idle timeout or a restart)
        const closer = () => {
            stop('closed');
            down.end();
        };
        closers.add(closer);
        down.on('close', () => closers.delete(closer));
        pump(); // a plan striking at byte 0 strikes before anything is relayed
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
    });
    return {
        port: server.address().port,
        queue(...plans) { queued.push(...plans); },
        setDraw(fn) { draw = fn; },
        connections() { return conns; },
        open() { return live.size; },
        closeAll() { for (const c of closers) c(); },
        async close() {
            for (const s of live) s.destroy();
            await new Promise((resolve) => server.close(resolve));
        },
    };
}
