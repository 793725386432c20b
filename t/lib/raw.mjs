// poe-gateway: MIT licence. Helpers for the hostile-client and fault tests: raw TCP exchanges, hand-made HTTP/2 frames,
// and what /proc says about a process (resident memory, open descriptors).
import fs from 'node:fs';
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let sanitized;
/**
 * 1 when `bin` was built with AddressSanitizer (-DSANITIZE=ON): its resident memory then includes the shadow and the
 * quarantine of freed blocks, and memory bounds in tests are scaled by `memoryScale()`.
 */
export function isSanitized(bin) {
    if (sanitized === undefined) sanitized = fs.readFileSync(bin).includes('__asan_init');
    return sanitized;
}
export const memoryScale = (bin) => (isSanitized(bin) ? 4 : 1);

/** VmRSS of a process in KiB. */
export function rssKiB(pid) {
    return Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
}

/** The number of open file descriptors of a process. */
export function fdCount(pid) {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Polls until `cond()` is true or `ms` have passed; returns the last value of cond(). */
export async function waitFor(cond, ms, step = 50) {
    const t0 = Date.now();
    let v;
    while (!(v = await cond()) && Date.now() - t0 < ms) await sleep(step);
    return v;
}

/**
 * A raw TCP connection that records everything: `data` (a Buffer of all bytes received), `closed`, `closedAt` (ms
 * since the connection was made), `error` (the socket error code, if any). `write` never throws on a dead socket.
 */
export async function connect(port, host = '127.0.0.1') {
    const sock = net.connect(port, host);
    const c = {
        sock,
        data: Buffer.alloc(0),
        closed: false,
        closedAt: null,
        error: null,
        t0: Date.now(),
        get text() { return this.data.toString('latin1'); },
        write(bytes) {
            if (this.closed || sock.destroyed) return false;
            return sock.write(bytes);
        },
        /** Waits until the peer closed, or `ms` passed; returns `closed`. */
        async waitClose(ms) {
            await waitFor(() => this.closed, ms, 20);
            return this.closed;
        },
        /** Waits until the bytes received match `re`, or `ms` passed. */
        async waitData(re, ms) {
            await waitFor(() => re.test(this.text) || this.closed, ms, 10);
            return re.test(this.text);
        },
        /** Resolves once the socket can take more (or after 200 ms, or at once if it is gone). */
        drain() {
            if (this.closed || !sock.writableNeedDrain) return Promise.resolve();
            return new Promise((resolve) => {
                const done = () => {
                    clearTimeout(timer);
                    sock.off('drain', done);
                    sock.off('close', done);
                    resolve();
                };
                const timer = setTimeout(done, 200);
                sock.on('drain', done);
                sock.on('close', done);
            });
        },
        destroy() { sock.destroy(); },
    };
    sock.on('data', (d) => (c.data = Buffer.concat([c.data, d])));
    sock.on('close', () => {
        c.closed = true;
        c.closedAt = Date.now() - c.t0;
    });
    sock.on('error', (e) => (c.error = e.code));
    await new Promise((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
    });
    c.t0 = Date.now();
    return c;
}

/** The status codes of every HTTP/1.x response head in `text`. */
export function statuses(text) {
    return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

// ---- HTTP/2 frames (RFC 9113), made by hand so that a test can send what no client library would ----

export const H2 = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };
export const H2_FLAGS = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 };

export function h2frame(type, flags, stream, payload = Buffer.alloc(0)) {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream & 0x7fffffff, 5);
    return Buffer.concat([head, payload]);
}

/** The client connection preface and an empty SETTINGS frame. */
export const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2frame(H2.SETTINGS, 0, 0)]);

/** An HPACK integer with an n-bit prefix (RFC 7541 §5.1), the prefix's other bits being `first`. */
function hpackInt(value, n, first = 0) {
    const max = (1 << n) - 1;
    if (value < max) return Buffer.from([first | value]);
    const out = [first | max];
    for (value -= max; value >= 128; value >>= 7) out.push((value & 127) | 128);
    out.push(value);
    return Buffer.from(out);
}

function hpackString(s) {
    const b = Buffer.from(s);
    return Buffer.concat([hpackInt(b.length, 7), b]); // no Huffman
}

/** An HPACK literal header field without indexing, with a new name. */
export function hpackLiteral(name, value) {
    return Buffer.concat([Buffer.from([0x00]), hpackString(name), hpackString(value)]);
}

/**
 * An HPACK header block for a request: :method (GET or POST from the static table), :scheme http, :path and
 * :authority as literals without indexing, then `extra` ([name, value] pairs). Nothing enters the dynamic table, so
 * the block can be sent any number of times.
 */
export function hpackRequest(method, path, extra = []) {
    return Buffer.concat([
        Buffer.from([method === 'POST' ? 0x83 : 0x82, 0x86, 0x04]), hpackString(path),
        Buffer.from([0x01]), hpackString('localhost'),
        ...extra.map(([n, v]) => hpackLiteral(n, v)),
    ]);
}

/** The whole frames in `data` (server frames after the preface): [{type, flags, stream, length, payload}]. */
export function h2frames(data) {
    const out = [];
    for (let off = 0; off + 9 <= data.length;) {
        const length = data.readUIntBE(off, 3);
        if (off + 9 + length > data.length) break;
        out.push({ type: data[off + 3], flags: data[off + 4], stream: data.readUInt32BE(off + 5) & 0x7fffffff, length,
            payload: data.subarray(off + 9, off + 9 + length) });
        off += 9 + length;
    }
    return out;
}

/** Finds the first GOAWAY frame in `data` (a Buffer of server frames after the preface): {lastStream, code} or null. */
export function findGoaway(data) {
    let off = 0;
    while (off + 9 <= data.length) {
        const len = data.readUIntBE(off, 3), type = data[off + 3];
        if (off + 9 + len > data.length) break;
        if (type === H2.GOAWAY && len >= 8)
            return { lastStream: data.readUInt32BE(off + 9) & 0x7fffffff, code: data.readUInt32BE(off + 13) };
        off += 9 + len;
    }
    return null;
}
