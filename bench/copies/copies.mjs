// poe-gateway: MIT licence. The benchmark's side of bench/copies/copies.c (the LD_PRELOAD shim that counts copies of
// request bodies): building it, marking a body, reading its counts. bench/run.mjs's `copies` section uses them.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const HERE = path.dirname(new URL(import.meta.url).pathname);

/** The marker the body's text is made of: 16 bytes, no JSON escape in it, and not a prefix of itself shifted. */
export const MARK = 'pgw-body-marker.';

/** Compiles copies.c into `dir`; returns the shared object's path. */
export function buildCopies(dir) {
    const so = path.join(dir, 'copies.so');
    execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', so, path.join(HERE, 'copies.c'), '-ldl', '-lpthread']);
    return so;
}

/**
 * A copy of the request `body` (an object) with the same shape and the same length once serialised: every string of 64
 * characters or more is replaced with the marker repeated to its length (its last, partial marker is not counted).
 * Short strings (the model, types, names) are left as they are, so that routing and translation see the same request.
 */
export function markBody(body) {
    const mark = (v) => {
        if (typeof v === 'string') return v.length >= 64 ? MARK.repeat(Math.ceil(v.length / MARK.length)).slice(0, v.length) : v;
        if (Array.isArray(v)) return v.map(mark);
        if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mark(x)]));
        return v;
    };
    return mark(body);
}

/** How many whole markers `text` holds. */
export const countMarks = (text) => text.split(MARK).length - 1;

const MAX_LIBS = 30, NAME_LEN = 48, SLOT = NAME_LEN + 24, SIZE = 16 + MAX_LIBS * SLOT;

/** Creates the counts file the shim maps (PGW_COPIES_OUT); returns its path. */
export function createCountsFile(dir) {
    const file = path.join(dir, 'copies.counts');
    fs.writeFileSync(file, Buffer.alloc(SIZE));
    return file;
}

/** The counts so far: {ready (the shim mapped the file), libs: {name: {marks, copies, largest}}}. */
export function readCounts(file) {
    const b = fs.readFileSync(file);
    const ready = b.readBigUInt64LE(0) === 0x31736569706f63n;
    const libs = {};
    const n = Number(b.readBigUInt64LE(8));
    for (let i = 0; i < n && i < MAX_LIBS; ++i) {
        const at = 16 + i * SLOT;
        const name = b.toString('latin1', at, at + NAME_LEN).replace(/\0.*$/s, '');
        libs[name] = { marks: Number(b.readBigUInt64LE(at + NAME_LEN)), copies: Number(b.readBigUInt64LE(at + NAME_LEN + 8)),
            largest: Number(b.readBigUInt64LE(at + NAME_LEN + 16)) };
    }
    return { ready, libs };
}

/**
 * What `after` adds to `before`, per request: for each shared object, the body's bytes it copied over the body's
 * (markers copied / markers sent), and its copies a request. Returns {copies (the sum), by: {name: {copies, calls}}}.
 */
export function copiesPerRequest(before, after, marksPerBody, requests) {
    const by = {};
    let total = 0;
    for (const [name, a] of Object.entries(after.libs)) {
        const b = before.libs[name] ?? { marks: 0, copies: 0 };
        const marks = a.marks - b.marks, calls = a.copies - b.copies;
        if (marks === 0) continue;
        by[name] = { copies: marks / (marksPerBody * requests), calls: calls / requests };
        total += marks;
    }
    return { copies: total / (marksPerBody * requests), by };
}
