// poe-gateway: MIT licence. A real redis-server for the tests of shared state (#20): started on a free port with no
// persistence, stopped (or killed) and started again on the same port, and redis-cli to look inside.
import { spawn, execFile } from 'node:child_process';
import net from 'node:net';
import { tmpdir } from './harness.mjs';

/** A port nobody listens on now (the kernel's choice, released again for the server to bind). */
function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

function launch(port, dir) {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--dir', dir, '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const ready = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`redis-server did not start in 10 s:\n${out}`)), 10000);
        child.stdout.on('data', () => {
            if (/Ready to accept connections/.test(out)) {
                clearTimeout(timer);
                resolve();
            }
        });
        exited.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${out}`));
        });
    });
    return { child, exited, ready };
}

/** Starts redis-server; `stop` kills it (SIGKILL by default: Redis gone at once, as in a crash); `start` brings it back. */
export async function startRedis() {
    const port = await freePort(), dir = tmpdir('pgw-redis-');
    let p = launch(port, dir);
    await p.ready;
    return {
        port,
        url: `redis://127.0.0.1:${port}/0`,
        async stop(signal = 'SIGKILL') {
            if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
            return p.exited;
        },
        /** Sends `signal` without waiting for an exit (SIGSTOP: Redis hangs with its sockets open; SIGCONT: it runs on). */
        signal(signal) {
            p.child.kill(signal);
        },
        async start() {
            p = launch(port, dir);
            await p.ready;
        },
        /** Runs redis-cli against it; resolves its output, trimmed. */
        cli(...args) {
            return new Promise((resolve, reject) => execFile('redis-cli', ['-p', String(port), ...args], (err, stdout) =>
                err ? reject(err) : resolve(stdout.trim())));
        },
    };
}
