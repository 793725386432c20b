// poe-gateway: MIT licence. The anchors of bench/run.mjs: HAProxy and nginx (Debian's packages) as the proxies teams put
// in front of an API, each doing the least a gateway must: take the client's request on HTTP/1.1, swap the key for the
// upstream's, and relay it to the upstream over TLS, the answer streamed back unbuffered. Their CPU per request is what
// the gateway's is compared with (bench/README.md, "Anchors").
//
// HAProxy 2.6: one thread, the upstream over HTTP/2 (`alpn h2`, as its documentation has it for an h2 server) with
// idle connections shared between requests (`http-reuse always`, which HTTP/2 servers are safe for). nginx 1.22: one
// worker, the upstream over HTTP/1.1 with a keep-alive pool (`keepalive` in the upstream block, `proxy_http_version
// 1.1` and an empty Connection header, as its documentation says for keep-alive to upstreams), TLS sessions reused,
// `proxy_buffering off` so that a stream is relayed as it comes. Both verify the upstream's certificate. The request
// path goes through unchanged, so the same proxy relays /v1/messages and /v1/chat/completions.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { POE_KEY, waitFor } from './lib.mjs';

/** The binaries, or null when one is not installed. */
export function anchorBinaries() {
    const which = (name) => {
        for (const p of [`/usr/sbin/${name}`, `/usr/local/sbin/${name}`])
            if (fs.existsSync(p)) return p;
        try { return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || null; } catch { return null; }
    };
    return { haproxy: which('haproxy'), nginx: which('nginx') };
}

const listening = (port) => () => {
    try {
        return fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').some((l) => {
            const f = l.trim().split(/\s+/);
            return f[1]?.endsWith(`:${port.toString(16).toUpperCase().padStart(4, '0')}`) && f[3] === '0A';
        });
    } catch { return false; }
};

/**
 * Starts HAProxy on `port` in front of the mock's TLS port; `spawnAs(bin, args, {cwd, logFile})` starts it (pinned).
 * Resolves {child, pid, port, version, logFile}.
 */
export async function startHaproxy({ dir, mock, certs, port, bin, spawnAs }) {
    const d = path.join(dir, 'haproxy');
    fs.mkdirSync(d, { recursive: true });
    const config = path.join(d, 'haproxy.cfg');
    fs.writeFileSync(config, `global
    nbthread 1
    maxconn 8000

defaults
    mode http
    timeout connect 10s
    timeout client 600s
    timeout server 600s
    http-reuse always

frontend clients
    bind 127.0.0.1:${port}
    http-request set-header x-api-key ${POE_KEY}
    http-request set-header authorization "Bearer ${POE_KEY}"
    default_backend poe

backend poe
    server mock 127.0.0.1:${mock.https} ssl verify required ca-file ${certs.ca} sni str(localhost) verifyhost localhost alpn h2
`);
    const logFile = path.join(d, 'haproxy.log');
    const child = spawnAs(bin, ['-db', '-f', config], { cwd: d, logFile });
    await waitFor('haproxy', listening(port), child, logFile, 10000);
    const version = execFileSync(bin, ['-v'], { encoding: 'utf8' }).split('\n')[0];
    return { child, pid: child.pid, port, version, logFile };
}

/**
 * Starts nginx on `port` in front of the mock's TLS port, as for startHaproxy. nginx runs a master and one worker; `pid`
 * is the worker's, which does the work.
 */
export async function startNginx({ dir, mock, certs, port, bin, spawnAs }) {
    const d = path.join(dir, 'nginx');
    fs.mkdirSync(path.join(d, 'logs'), { recursive: true });
    const config = path.join(d, 'nginx.conf');
    fs.writeFileSync(config, `daemon off;
user root;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/logs/error.log warn;
events { worker_connections 8000; }
http {
    access_log off;
    client_body_temp_path ${d}/body;
    proxy_temp_path ${d}/proxy;
    client_max_body_size 32m;
    client_body_buffer_size 1m;
    keepalive_requests 1000000;
    upstream poe {
        server 127.0.0.1:${mock.https};
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${port};
        location / {
            proxy_pass https://poe;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_set_header x-api-key ${POE_KEY};
            proxy_set_header authorization "Bearer ${POE_KEY}";
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate ${certs.ca};
            proxy_ssl_session_reuse on;
        }
    }
}
`);
    const logFile = path.join(d, 'nginx.log');
    const child = spawnAs(bin, ['-c', config, '-p', d], { cwd: d, logFile });
    await waitFor('nginx', listening(port), child, logFile, 10000);
    let worker = null;
    await waitFor('nginx worker', () => {
        try {
            worker = Number(execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).trim().split('\n')[0]) || null;
        } catch { worker = null; }
        return worker;
    }, child, logFile, 10000);
    const version = execFileSync('sh', ['-c', `${bin} -v 2>&1`], { encoding: 'utf8' }).trim();
    return { child, pid: worker, master: child.pid, port, version, logFile };
}
