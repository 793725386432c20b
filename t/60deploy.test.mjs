// poe-gateway: MIT licence. Deployment, checked without a Docker engine: the compose file, the Dockerfile, .env.template,
// the native install with its systemd unit, the healthcheck subcommand and SIGHUP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { PGW_BIN, SOURCE_DIR, request, runGateway, sleep, startGateway, tmpdir } from './lib/harness.mjs';

const read = (f) => fs.readFileSync(path.join(SOURCE_DIR, f), 'utf8');
const compose = YAML.parse(read('docker-compose.yml'));
const dockerfile = read('Dockerfile');

/** Dockerfile stages: [{from, name, text}] with continuation lines joined. */
function stages() {
    const joined = dockerfile.replace(/\\\n/g, ' ');
    const out = [];
    for (const line of joined.split('\n')) {
        const m = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i);
        if (m) out.push({ from: m[1], name: m[2], lines: [] });
        else if (out.length && line.trim() && !line.trim().startsWith('#')) out.at(-1).lines.push(line.trim());
    }
    return out;
}

/** The packages of the stage's `apt-get install` line. */
function aptPackages(stage) {
    const run = stage.lines.find((l) => /apt-get install/.test(l));
    assert.ok(run, `stage ${stage.name ?? stage.from} installs packages`);
    const after = run.split(/apt-get install/)[1].split('&&')[0];
    return after.trim().split(/\s+/).filter((w) => !w.startsWith('-')).sort();
}

/** The base package list of tools/deps.sh (`packages=(...)`, before --test adds to it). */
function depsPackages() {
    const m = read('tools/deps.sh').match(/^packages=\(([^)]*)\)/m);
    assert.ok(m, 'tools/deps.sh has packages=(...)');
    return m[1].trim().split(/\s+/).sort();
}

/** The package that owns a file, trying the path as dpkg recorded it (with or without /usr: Debian 12 merged them). */
function debianPackageOf(file) {
    const real = fs.realpathSync(file);
    for (const p of new Set([file, real, real.replace(/^\/usr\//, '/'), file.replace(/^\/usr\//, '/')])) {
        const r = spawnSync('dpkg', ['-S', p], { encoding: 'utf8' });
        if (r.status === 0) return r.stdout.split(':')[0];
    }
    return null;
}

/** Variable names in a compose value: ${NAME}, ${NAME:-default}, ${NAME:?message}. */
function composeVars(text) {
    return new Set([...text.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]));
}

/** Names in .env.template, set (NAME=) or offered commented out (# NAME=). */
function templateVars() {
    return new Set([...read('.env.template').matchAll(/^#?\s*([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]));
}

test('docker-compose.yml: a Tailscale node and the gateway in its network namespace', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['gateway', 'tailscale']);
    const ts = compose.services.tailscale, gw = compose.services.gateway;

    assert.match(ts.image, /^tailscale\/tailscale(:|$)/);
    assert.match(ts.environment.TS_AUTHKEY, /^\$\{TAILSCALE_AUTHKEY\b/);
    assert.match(ts.environment.TS_HOSTNAME, /^\$\{TS_HOSTNAME:-poe-gateway\}$/);
    assert.equal(String(ts.environment.TS_USERSPACE), 'false');
    assert.ok(ts.devices.some((d) => d.startsWith('/dev/net/tun')), 'tun device');
    assert.ok(ts.cap_add.includes('NET_ADMIN'));
    const stateDir = ts.environment.TS_STATE_DIR;
    assert.ok(ts.volumes.some((v) => v.endsWith(`:${stateDir}`) && compose.volumes && v.split(':')[0] in compose.volumes),
        'Tailscale state in a named volume');

    assert.equal(gw.network_mode, 'service:tailscale');
    assert.equal(gw.ports, undefined, 'a service in another one\'s network namespace cannot publish ports');
    assert.ok(ts.ports.length > 0);
    for (const p of ts.ports) assert.match(String(p), /^127\.0\.0\.1:/, 'published on the host\'s loopback only');
    assert.equal(gw.build, '.');
    assert.deepEqual([gw.env_file].flat(), ['.env']);
    assert.equal(ts.env_file, undefined, 'the Poe key stays out of the Tailscale container');
    for (const s of [ts, gw]) {
        assert.equal(s.restart, 'unless-stopped');
        assert.ok(Array.isArray(s.healthcheck.test) && s.healthcheck.test[0] === 'CMD', 'exec-form healthcheck');
    }
    assert.deepEqual(gw.healthcheck.test.slice(1), ['poe-gateway', 'healthcheck']);
    assert.ok(gw.volumes.includes('./conf/gateway.yaml:/etc/poe-gateway/gateway.yaml:ro'));
    assert.ok(fs.existsSync(path.join(SOURCE_DIR, 'conf/gateway.yaml')));
    // the socket the gateway's claude-env reads is tailscaled's, on the CLI's default path
    const socket = ts.environment.TS_SOCKET;
    assert.equal(socket, '/var/run/tailscale/tailscaled.sock');
    const shared = ts.volumes.find((v) => v.endsWith(':/var/run/tailscale'));
    assert.ok(shared && gw.volumes.includes(`${shared}:ro`), 'socket volume shared read-only');
});

test('environment names agree: compose, .env.template and conf/gateway.yaml', () => {
    const template = templateVars();
    const fromCompose = composeVars(read('docker-compose.yml'));
    const fromConfig = new Set();
    const walk = (v) => {
        if (typeof v === 'string') {
            const m = v.match(/^os\.environ\/(\w+)$/);
            if (m) fromConfig.add(m[1]);
        } else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(YAML.parse(read('conf/gateway.yaml')));
    assert.ok(fromConfig.has('POE_API_KEY') && fromConfig.has('LITELLM_MASTER_KEY'));
    for (const v of [...fromCompose, ...fromConfig]) assert.ok(template.has(v), `.env.template names ${v}`);
    for (const v of template) assert.ok(fromCompose.has(v) || fromConfig.has(v), `${v} in .env.template is used`);
    for (const v of ['POE_API_KEY', 'LITELLM_MASTER_KEY', 'TAILSCALE_AUTHKEY', 'POE_GATEWAY_PORT']) {
        const m = read('.env.template').match(new RegExp(`((?:^#.*\\n)+)${v}=`, 'm'));
        assert.ok(m, `${v} has a comment above it`);
    }
    assert.match(read('.env.template'), /openssl rand/);
    assert.match(read('.gitignore'), /^\.env$/m);
    assert.match(read('.dockerignore'), /^\.env$/m, 'the secrets never enter the build context');
});

test('Dockerfile: build packages equal tools/deps.sh, runtime packages are Debian\'s and cover the binary', () => {
    const [build, runtime, ...rest] = stages();
    assert.equal(rest.length, 0);
    assert.equal(build.from, 'debian:bookworm-slim');
    assert.equal(runtime.from, 'debian:bookworm-slim');
    assert.deepEqual(aptPackages(build), depsPackages());

    const runtimePkgs = aptPackages(runtime);
    assert.ok(runtimePkgs.includes('ca-certificates'));
    for (const p of runtimePkgs) {
        // every name is a real Debian 12 package: installed here, since the -dev packages depend on them
        const r = spawnSync('dpkg-query', ['-W', '-f', '${Status}', p], { encoding: 'utf8' });
        assert.match(r.stdout, /install ok installed/, `${p} is a Debian package (dpkg-query)`);
        assert.ok(!p.endsWith('-dev'), `${p}: no -dev package at run time`);
    }
    // each library the binary links comes from one of them (or libc6; the sanitizer runtimes only in that build)
    const needed = [...execFileSync('readelf', ['-d', PGW_BIN], { encoding: 'utf8' }).matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
    assert.ok(needed.length > 3);
    const ldconfig = execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' });
    for (const so of needed) {
        const m = ldconfig.match(new RegExp(`^\\s+${so.replace(/[.+]/g, '\\$&')} \\(libc6,x86-64[^)]*\\) => (\\S+)$`, 'm'));
        assert.ok(m, `ldconfig knows ${so}`);
        const owner = debianPackageOf(m[1]);
        assert.ok(owner, `dpkg knows the file of ${so}`);
        if (/^(libc6|libasan\d+|libubsan\d+|libgcc-s1|libstdc\+\+6)$/.test(owner)) continue;
        assert.ok(runtimePkgs.includes(owner), `${so} is in ${owner}, which the runtime stage installs`);
    }

    const text = runtime.lines.join('\n');
    assert.match(text, /^USER\s+(?!root\b|0\b)\S+/m, 'runs as a non-root user');
    assert.match(text, /^EXPOSE\s+4000$/m);
    assert.match(text, /^COPY --from=build \S+ \/etc\/poe-gateway\/gateway\.yaml$/m);
    const health = text.match(/^HEALTHCHECK .*CMD (\[.*\])$/m);
    assert.ok(health, 'HEALTHCHECK in exec form');
    assert.deepEqual(JSON.parse(health[1]), ['poe-gateway', 'healthcheck']);
    const entry = JSON.parse(text.match(/^ENTRYPOINT (\[.*\])$/m)[1]);
    const cmd = JSON.parse(text.match(/^CMD (\[.*\])$/m)[1]);
    assert.deepEqual(entry, ['poe-gateway']);
    assert.deepEqual(cmd, ['--config', '/etc/poe-gateway/gateway.yaml', '--host', '0.0.0.0']);
    // the sources the build stage copies exist, and the build does not need the tests (no Node.js in the image)
    for (const m of build.lines.join('\n').matchAll(/^COPY (\S+) /gm)) assert.ok(fs.existsSync(path.join(SOURCE_DIR, m[1])), m[1]);
    assert.match(build.lines.join('\n'), /-DPGW_TESTS=OFF/);
    assert.match(read('CMakeLists.txt'), /if\(PGW_TESTS\)\s+enable_testing\(\)\s+add_subdirectory\(t\)/);
});

test('the healthcheck probes a path the gateway serves', () => {
    const probe = read('src/cmd_healthcheck.c').match(/#define HEALTH_PATH "([^"]+)"/)[1];
    assert.equal(probe, '/health/liveliness');
    assert.ok(read('src/routing.c').includes(`H2O_STRLIT("${probe}")`), `${probe} is routed`);
});

test('poe-gateway healthcheck: 0 against a running gateway, 1 when nothing answers', async () => {
    const gw = await startGateway();
    try {
        const ok = await runGateway(['healthcheck', '--config', gw.configPath, '--port', String(gw.port)]);
        assert.equal(ok.code, 0, ok.stdout + ok.stderr);
        assert.match(ok.stdout, new RegExp(`^healthy: http://127\\.0\\.0\\.1:${gw.port}/health/liveliness\\n$`));
        const url = await runGateway(['healthcheck', '--url', `${gw.url}/health/liveness`]);
        assert.equal(url.code, 0, url.stdout + url.stderr);
        const notFound = await runGateway(['healthcheck', '--url', `${gw.url}/no-such-path`]);
        assert.equal(notFound.code, 1);
        assert.match(notFound.stdout, /answered 404/);
    } finally {
        await gw.stop();
    }
    const down = await runGateway(['healthcheck', '--url', 'http://127.0.0.1:9/health/liveliness']);
    assert.equal(down.code, 1);
    assert.match(down.stdout, /^unhealthy: /);
    const bad = await runGateway(['healthcheck', '--no-such-option']);
    assert.equal(bad.code, 2);
});

test('SIGHUP is logged and ignored (systemctl reload must not kill the gateway)', async () => {
    const gw = await startGateway();
    try {
        gw.child.kill('SIGHUP');
        for (let i = 0; i < 50 && !/reload is not supported yet/.test(gw.output.stderr); ++i) await sleep(50);
        assert.match(gw.output.stderr, /SIGHUP: reload is not supported yet; restart to apply config changes/);
        assert.equal(gw.child.exitCode, null);
        const r = await request(`${gw.url}/health/liveliness`);
        assert.equal(r.status, 200);
    } finally {
        const { code } = await gw.stop();
        assert.equal(code, 0);
    }
});

test('cmake --install: binary, config (kept on reinstall) and a hardened systemd unit', () => {
    const buildDir = path.dirname(PGW_BIN);
    const prefix = tmpdir('pgw-install-');
    const install = () => execFileSync('cmake', ['--install', buildDir, '--prefix', prefix], { encoding: 'utf8' });
    install();
    const bin = path.join(prefix, 'bin/poe-gateway');
    fs.accessSync(bin, fs.constants.X_OK);
    assert.match(execFileSync(bin, ['--version'], { encoding: 'utf8' }), /^poe-gateway /);
    const conf = path.join(prefix, 'etc/poe-gateway/gateway.yaml');
    assert.equal(fs.readFileSync(conf, 'utf8'), read('conf/gateway.yaml'));

    const unitPath = path.join(prefix, 'lib/systemd/system/poe-gateway.service');
    const unit = fs.readFileSync(unitPath, 'utf8');
    // paths are the configured prefix's (the unit is made at configure time), not the --prefix of this staging install
    const cache = fs.readFileSync(path.join(buildDir, 'CMakeCache.txt'), 'utf8');
    const configured = cache.match(/^CMAKE_INSTALL_PREFIX:PATH=(.*)$/m)[1];
    const sysconf = path.isAbsolute(cache.match(/^CMAKE_INSTALL_SYSCONFDIR:PATH=(.*)$/m)?.[1] ?? 'etc')
        ? cache.match(/^CMAKE_INSTALL_SYSCONFDIR:PATH=(.*)$/m)[1] : path.join(configured, 'etc');
    const lines = unit.split('\n');
    const has = (l) => assert.ok(lines.includes(l), `unit has ${l}`);
    has(`ExecStart=${configured}/bin/poe-gateway --config ${sysconf}/poe-gateway/gateway.yaml`);
    has(`EnvironmentFile=${sysconf}/poe-gateway/env`);
    has('ExecReload=/bin/kill -HUP $MAINPID');
    for (const l of ['DynamicUser=yes', 'StateDirectory=poe-gateway', 'Environment=XDG_STATE_HOME=%S', 'NoNewPrivileges=yes',
        'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=', 'RestartPreventExitStatus=2',
        'WantedBy=multi-user.target']) has(l);
    assert.ok(!/@[A-Z_]+@/.test(unit), 'every @VAR@ was substituted');

    // systemd's own check, when this machine has it (it wants ExecStart to exist: point it at the staged binary)
    const analyze = spawnSync('systemd-analyze', ['--version']);
    if (analyze.status === 0) {
        const staged = path.join(prefix, 'poe-gateway.service');
        fs.writeFileSync(staged, unit.replace(`ExecStart=${configured}/bin/poe-gateway`, `ExecStart=${bin}`));
        const v = spawnSync('systemd-analyze', ['verify', staged], { encoding: 'utf8', timeout: 30000 });
        assert.equal(v.status, 0, v.stderr);
        assert.ok(!/poe-gateway\.service:\d+:/.test(v.stderr), `systemd-analyze verify: ${v.stderr}`);
    }

    // a second install keeps the edited config and puts the shipped one beside it
    fs.writeFileSync(conf, `${read('conf/gateway.yaml')}\n# edited\n`);
    install();
    assert.match(fs.readFileSync(conf, 'utf8'), /# edited\n$/);
    assert.equal(fs.readFileSync(`${conf}.dist`, 'utf8'), read('conf/gateway.yaml'));
    fs.rmSync(prefix, { recursive: true, force: true });
});

test('configured as the README says (-DCMAKE_INSTALL_SYSCONFDIR=/etc), the unit uses /etc/poe-gateway', () => {
    const dir = tmpdir('pgw-configure-');
    execFileSync('cmake', ['-S', SOURCE_DIR, '-B', dir, '-DCMAKE_BUILD_TYPE=RelWithDebInfo', '-DCMAKE_INSTALL_SYSCONFDIR=/etc',
        '-DPGW_TESTS=OFF'], { encoding: 'utf8' });
    const unit = fs.readFileSync(path.join(dir, 'poe-gateway.service'), 'utf8');
    assert.match(unit, /^EnvironmentFile=\/etc\/poe-gateway\/env$/m);
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/poe-gateway --config \/etc\/poe-gateway\/gateway\.yaml$/m);
    const script = fs.readFileSync(path.join(dir, 'cmake_install.cmake'), 'utf8');
    assert.ok(script.includes('/etc/poe-gateway'), 'the config installs to /etc/poe-gateway');
    assert.ok(!fs.existsSync(path.join(dir, 't')), 'PGW_TESTS=OFF leaves the tests out');
    fs.rmSync(dir, { recursive: true, force: true });
});
