// poe-gateway: MIT licence. The real Claude Code CLI, as the tests run it: where tools/deps.sh --test installs it, and
// one `claude -p` run against a gateway, in a fresh working directory and HOME of its own.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SOURCE_DIR, tmpdir } from './harness.mjs';

export const CLAUDE = path.join(SOURCE_DIR, 't/node_modules/@anthropic-ai/claude-code-linux-x64/claude');

/** The message for a test to fail with when the CLI is not installed, or null. */
export const claudeMissing = () => (fs.existsSync(CLAUDE) ? null : `Claude Code is not installed at ${CLAUDE}: run tools/deps.sh --test`);

/**
 * Runs `claude ...args` with only PATH, a fresh HOME and `env` in its environment (no auto-update; with `quiet`, the
 * default, no non-essential traffic either), in `cwd` (a fresh directory unless given), killed after `timeoutMs`.
 * Resolves {code, stdout, stderr} once it exits.
 */
export function runClaude(args, { env = {}, cwd = tmpdir('pgw-cc-work-'), quiet = true, timeoutMs = 120000 } = {}) {
    return new Promise((resolve) => {
        const child = spawn(CLAUDE, args, {
            cwd,
            env: { PATH: process.env.PATH, HOME: tmpdir('pgw-cc-home-'), DISABLE_AUTOUPDATER: '1',
                ...(quiet ? { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' } : {}), ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '', stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.on('exit', (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}
