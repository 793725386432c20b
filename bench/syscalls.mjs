// poe-gateway: MIT licence. Counting the system calls a process makes over one load run, for bench/run.mjs
// (bench/README.md, "Syscalls per streamed request"), exactly and cheaply: `perf stat` on the kernel's syscall
// tracepoints, which count in the kernel (no ptrace, no record of each call, nothing to copy to user space).
//
// How it works: perf attaches to every thread of the process (threads it creates later inherit the counters) with the
// counters disabled (`-D -1`), and takes commands on a control pipe (`--control fd:3,4`). Once it acknowledges
// `enable`, every counter is on, and the load starts. When the load ends, `disable` (acknowledged too) stops them, so
// the window is the load run's, not perf's start-up or exit. `raw_syscalls:sys_enter` counts every call; one
// `syscalls:sys_enter_NAME` event per name in NAMES (those this kernel has) gives the breakdown, and `other` is the
// total less their sum, so that a call missing from the list still shows.
//
// perf writes the counts as it goes (`-I 100`: every 100 ms, and once more at `disable`, what was counted since the
// last time; `-x,` CSV to `-o FILE`), and they are summed from the file. Waiting for perf to write them at its exit
// would cost more than a second a run: detaching from each tracepoint waits for the kernel's RCU grace period. perf is
// therefore left to exit on its own after SIGINT; settled() waits for those still exiting.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const INTERVAL_MS = 100;

/** What an event-loop proxy calls (the gateway, HAProxy, nginx): socket I/O, the loop, timers, memory, threads. */
const NAMES = ['read', 'write', 'readv', 'writev', 'recvfrom', 'sendto', 'recvmsg', 'sendmsg', 'epoll_wait', 'epoll_pwait', 'epoll_ctl',
    'poll', 'ppoll', 'futex', 'accept', 'accept4', 'connect', 'socket', 'close', 'shutdown', 'setsockopt', 'getsockopt', 'getsockname',
    'getpeername', 'ioctl', 'fcntl', 'mmap', 'munmap', 'madvise', 'brk', 'mprotect', 'mremap', 'getpid', 'gettid', 'clock_gettime',
    'timerfd_settime', 'getrandom', 'rt_sigprocmask', 'sched_yield', 'openat', 'newfstatat', 'pipe2', 'eventfd2', 'splice',
    'io_uring_enter'];

/** The directory of the syscall tracepoints, or null when no tracefs is mounted (or readable). */
function tracepointDir() {
    for (const d of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
        const e = path.join(d, 'events/raw_syscalls/sys_enter');
        try {
            if (fs.existsSync(e)) return path.join(d, 'events');
        } catch { /* unreadable: try the next */ }
    }
    return null;
}

/**
 * Whether counting can work here: {ok: true, names} (the names of NAMES this kernel has a tracepoint for), or {ok: false,
 * reason}. It runs perf once on a short command, so that a missing permission shows before any load.
 */
export function syscallCounting() {
    try {
        execFileSync('sh', ['-c', 'command -v perf'], { stdio: 'ignore' });
    } catch {
        return { ok: false, reason: 'perf is not installed (apt-get install linux-perf)' };
    }
    const dir = tracepointDir();
    if (!dir) return { ok: false, reason: 'no tracefs with the raw_syscalls tracepoints (/sys/kernel/tracing)' };
    try {
        execFileSync('perf', ['stat', '-x,', '-e', 'raw_syscalls:sys_enter', '--', 'true'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
        return { ok: false, reason: `perf cannot count syscalls here: ${String(e.stderr ?? e.message).trim().split('\n').slice(0, 3).join(' ')}` };
    }
    return { ok: true, names: NAMES.filter((n) => fs.existsSync(path.join(dir, `syscalls/sys_enter_${n}`))) };
}

/**
 * Sums perf stat's interval output (`-I MS -x,`: time, count, unit, event, ...): {event: count}; "<not counted>" (the
 * process did not run in that interval, or the counters were off) is 0.
 */
function sumIntervals(text) {
    const counts = {};
    for (const line of text.split('\n')) {
        const f = line.trim().split(',');
        if (f.length < 4 || line.startsWith('#')) continue;
        counts[f[3]] = (counts[f[3]] ?? 0) + (/^\d+$/.test(f[1]) ? Number(f[1]) : 0);
    }
    return counts;
}

const exiting = new Set(); // perf processes told to exit, until they have
process.on('exit', () => { for (const p of exiting) p.kill('SIGKILL'); });

/** Waits until every perf this module started has exited. */
export async function settled() {
    await Promise.all([...exiting].map((p) => p.exited));
}

/**
 * Counts the system calls of `pid` (all its threads) while `fn()` runs: resolves {result: what fn resolved, syscalls:
 * {total, by: {name: count, ..., other}}}. `names` comes from syscallCounting(); `file` is where perf writes its counts.
 * Rejects with perf's reason (an Error with `perf: true`) when it cannot attach or answer (after 30 s), then without
 * running fn; an error of fn's goes through as it is.
 */
export async function countSyscalls(pid, names, file, fn) {
    const events = ['raw_syscalls:sys_enter', ...names.map((n) => `syscalls:sys_enter_${n}`)];
    const perf = spawn('perf', ['stat', '-x,', '-o', file, '-I', String(INTERVAL_MS), '-D', '-1', '--control', 'fd:3,4',
        ...events.flatMap((e) => ['-e', e]), '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    let stderr = '', acks = 0, waiter = null;
    /** An error of perf's (`perf: true`), with the first lines it wrote, as against one of fn's. */
    const perfError = (what) => Object.assign(new Error(`${what}: ${stderr.trim().split('\n').slice(0, 2).join(' ')}`), { perf: true });
    const exited = new Promise((resolve) => perf.on('exit', (code, signal) => resolve({ code, signal })));
    perf.exited = exited.then(() => exiting.delete(perf));
    exiting.add(perf);
    perf.stderr.on('data', (d) => (stderr += d));
    for (const s of [perf.stdio[3], perf.stdio[4]]) s.on('error', () => {}); // perf gone: its exit says why
    perf.on('error', (e) => (stderr += e.message));
    perf.stdio[4].on('data', (d) => {
        acks += (String(d).match(/ack/g) ?? []).length;
        if (waiter) waiter();
    });
    const command = async (cmd) => {
        const want = acks + 1;
        perf.stdio[3].write(`${cmd}\n`);
        await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(perfError(`perf did not acknowledge ${cmd} in 30 s`)), 30000);
            waiter = () => { if (acks >= want) { clearTimeout(timer); resolve(); } };
            exited.then(({ code }) => { clearTimeout(timer); reject(perfError(`perf exited (${code}) before acknowledging ${cmd}`)); });
        });
    };
    try {
        await command('enable');
    } catch (e) {
        perf.kill('SIGKILL');
        throw e;
    }
    let result, counts;
    try {
        result = await fn();
        await command('disable');
        // perf writes what it counted since its last interval right after the acknowledgement; and at the next interval
        await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS + 50));
        try {
            counts = sumIntervals(fs.readFileSync(file, 'utf8'));
        } catch (e) {
            throw perfError(`perf wrote no counts (${e.message})`);
        }
    } finally {
        perf.kill('SIGINT');
    }
    if (!('raw_syscalls:sys_enter' in counts)) throw perfError('perf counted nothing');
    const total = counts['raw_syscalls:sys_enter'];
    const by = {};
    let listed = 0;
    for (const n of names) {
        const v = counts[`syscalls:sys_enter_${n}`] ?? 0;
        if (v) by[n] = v;
        listed += v;
    }
    by.other = Math.max(0, total - listed);
    return { result, syscalls: { total, by } };
}
