// poe-gateway: MIT licence. Deployment, checked without a Docker engine: the compose file, the Dockerfile, .env.template,
// the native install with its systemd unit, the healthcheck subcommand and SIGHUP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { MASTER_KEY, POE_KEY, PGW_BIN, SOURCE_DIR, certs, defaultConfig, request, runGateway, sleep, startGateway, startMock,
    tmpdir } from './lib/harness.mjs';

const read = (f) => fs.readFileSync(path.join(SOURCE_DIR, f), 'utf8');
const compose = YAML.parse(read('docker-compose.yml'));
const TEMPLATE = 'conf/gateway.yaml.template';
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
    // without a profile (the replicas profile is t/99replicas-deploy's)
    assert.deepEqual(Object.keys(compose.services).filter((n) => !compose.services[n].profiles).sort(), ['config', 'gateway', 'tailscale']);
    const ts = compose.services.tailscale, gw = compose.services.gateway;

    assert.match(ts.image, /^tailscale\/tailscale(:|$)/);
    assert.match(ts.environment.TS_AUTHKEY, /^\$\{TAILSCALE_AUTHKEY\b/);
    assert.equal(String(ts.environment.TS_AUTH_ONCE), 'true', 'a spent or expired auth key does not stop a restart');
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
    assert.deepEqual(gw.depends_on, { config: { condition: 'service_completed_successfully' },
        tailscale: { condition: 'service_healthy' } });
    assert.equal(ts.env_file, undefined, 'the Poe key stays out of the Tailscale container');
    for (const s of [ts, gw]) {
        assert.equal(s.restart, 'unless-stopped');
        assert.ok(Array.isArray(s.healthcheck.test) && s.healthcheck.test[0] === 'CMD', 'exec-form healthcheck');
    }
    for (const [name, s] of Object.entries(compose.services)) {
        assert.equal(s.logging?.driver, 'json-file', `${name}: logs rotated`);
        assert.match(String(s.logging.options['max-size']), /^\d+[kmg]$/, `${name}: max-size`);
        assert.ok(Number(s.logging.options['max-file']) >= 1, `${name}: max-file`);
    }
    assert.deepEqual(gw.healthcheck.test.slice(1), ['poe-gateway', 'healthcheck']);
    // the socket the gateway's claude-env reads is tailscaled's, on the CLI's default path
    const socket = ts.environment.TS_SOCKET;
    assert.equal(socket, '/var/run/tailscale/tailscaled.sock');
    const shared = ts.volumes.find((v) => v.endsWith(':/var/run/tailscale'));
    assert.ok(shared && gw.volumes.includes(`${shared}:ro`), 'socket volume shared read-only');
});

test('docker-compose.yml: the gateway gets the keys it reads, never the Tailscale auth key', () => {
    const gw = compose.services.gateway;
    assert.equal(gw.env_file, undefined, 'an env_file would hand it every line of .env');
    const names = new Set();
    const walk = (v) => {
        if (typeof v === 'string') v.match(/^os\.environ\/(\w+)$/)?.slice(1).forEach((n) => names.add(n));
        else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(YAML.parse(read(TEMPLATE)));
    assert.deepEqual(Object.keys(gw.environment).sort(), [...names].sort());
    for (const [k, v] of Object.entries(gw.environment)) assert.equal(v, `\${${k}:-}`, k);
    assert.ok(!JSON.stringify(gw).includes('TAILSCALE_AUTHKEY'));
});

test('docker-compose.yml: conf/gateway.yaml is the user\'s, made from the template by the config service', () => {
    // git pull never merges into it: not tracked, ignored; the template is what the repository ships
    const git = (...args) => spawnSync('git', ['-C', SOURCE_DIR, ...args], { encoding: 'utf8' });
    assert.equal(git('ls-files', '--error-unmatch', TEMPLATE).status, 0, 'the template is tracked');
    assert.notEqual(git('ls-files', '--error-unmatch', 'conf/gateway.yaml').status, 0, 'conf/gateway.yaml is not tracked');
    assert.equal(git('check-ignore', '-q', 'conf/gateway.yaml').status, 0, 'conf/gateway.yaml is ignored');
    assert.match(read('.dockerignore'), /^conf\/gateway\.yaml$/m, 'the image gets the template, never a local copy');

    const gw = compose.services.gateway, init = compose.services.config;
    assert.ok(gw.volumes.includes('./conf/gateway.yaml:/etc/poe-gateway/gateway.yaml:ro'));
    assert.equal(init.restart, 'no');
    assert.equal(init.network_mode, 'none');
    const mount = init.volumes.find((v) => v.startsWith('./conf:'));
    assert.ok(mount, 'the config service sees ./conf');
    const inside = mount.split(':')[1];
    assert.deepEqual(init.command.slice(0, 2), ['sh', '-c']);

    // its command, run on a copy of ./conf: the template is copied when the file is missing, never over the user's
    const dir = tmpdir('pgw-compose-conf-');
    fs.copyFileSync(path.join(SOURCE_DIR, TEMPLATE), path.join(dir, 'gateway.yaml.template'));
    const script = init.command[2].replaceAll(inside, dir);
    assert.notEqual(script, init.command[2]);
    const run = () => execFileSync('sh', ['-c', script], { encoding: 'utf8' });
    run();
    const made = path.join(dir, 'gateway.yaml');
    assert.equal(fs.readFileSync(made, 'utf8'), read(TEMPLATE));
    assert.equal(fs.statSync(made).mode & 0o777, 0o644, 'readable by the gateway\'s user in the container');
    assert.equal(fs.statSync(made).uid, fs.statSync(path.join(dir, 'gateway.yaml.template')).uid, 'owned like the template');
    fs.writeFileSync(made, 'model_list: []\n# mine\n');
    run();
    assert.equal(fs.readFileSync(made, 'utf8'), 'model_list: []\n# mine\n');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['gateway.yaml', 'gateway.yaml.template']);
    fs.rmSync(dir, { recursive: true, force: true });
});

test('docker-compose.yml is valid for Compose (docker-compose config, which needs no engine)', () => {
    const r = spawnSync('docker-compose', ['--project-directory', SOURCE_DIR, '-f', path.join(SOURCE_DIR, 'docker-compose.yml'),
        'config', '-q'], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tmpdir() } });
    assert.equal(r.error, undefined, 'docker-compose is installed (tools/deps.sh --test)');
    assert.equal(r.status, 0, r.stderr);
});

test('environment names agree: compose, .env.template and the config template', () => {
    const template = templateVars();
    const fromCompose = composeVars(read('docker-compose.yml'));
    const fromConfig = new Set();
    const walk = (v) => {
        if (typeof v === 'string') {
            const m = v.match(/^os\.environ\/(\w+)$/);
            if (m) fromConfig.add(m[1]);
        } else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(YAML.parse(read(TEMPLATE)));
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
    const probe = read('src/cli/cmd_healthcheck.c').match(/#define HEALTH_PATH "([^"]+)"/)[1];
    assert.equal(probe, '/health/liveliness');
    assert.ok(read('handlers/routes.c').includes(`H2O_STRLIT("${probe}")`), `${probe} is routed`);
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

test('SIGHUP reloads the configuration and keeps serving (systemctl reload must not kill the gateway)', async () => {
    const gw = await startGateway();
    try {
        gw.child.kill('SIGHUP');
        for (let i = 0; i < 50 && !/reloaded /.test(gw.output.stderr); ++i) await sleep(50);
        assert.match(gw.output.stderr, /reloaded .* \(configuration 2\)/);
        assert.equal(gw.child.exitCode, null);
        const r = await request(`${gw.url}/health/liveliness`);
        assert.equal(r.status, 200);
    } finally {
        const { code } = await gw.stop();
        assert.equal(code, 0);
    }
});

/** The unit's own check by systemd-analyze, when this machine has it (ExecStart must exist: `bin` replaces it). */
function systemdVerify(unit, bin, dir) {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) return;
    const staged = path.join(dir, 'poe-gateway.service');
    fs.writeFileSync(staged, unit.replace(/^ExecStart=\S+/m, `ExecStart=${bin}`));
    const v = spawnSync('systemd-analyze', ['verify', staged], { encoding: 'utf8', timeout: 30000 });
    assert.equal(v.status, 0, v.stderr);
    assert.ok(!/poe-gateway\.service:\d+:/.test(v.stderr), `systemd-analyze verify: ${v.stderr}`);
}

test('cmake --install --prefix: binary, config (kept on reinstall) and a hardened systemd unit', () => {
    const buildDir = path.dirname(PGW_BIN);
    const cache = fs.readFileSync(path.join(buildDir, 'CMakeCache.txt'), 'utf8');
    const configured = cache.match(/^CMAKE_INSTALL_PREFIX:PATH=(.*)$/m)[1];
    const sysconfSetting = cache.match(/^CMAKE_INSTALL_SYSCONFDIR:PATH=(.*)$/m)?.[1] ?? 'etc';
    // A build dir configured as the README says (absolute /etc) would install the config there whatever --prefix is:
    // stage everything under DESTDIR, so the test never writes outside its temporary directory.
    const stage = tmpdir('pgw-install-');
    const prefix = '/opt/pgw-test';
    const install = () => execFileSync('cmake', ['--install', buildDir, '--prefix', prefix],
        { encoding: 'utf8', env: { ...process.env, DESTDIR: stage } });
    install();
    const bin = path.join(stage, prefix, 'bin/poe-gateway');
    fs.accessSync(bin, fs.constants.X_OK);
    assert.match(execFileSync(bin, ['--version'], { encoding: 'utf8' }), /^poe-gateway /);
    const confDir = path.isAbsolute(sysconfSetting) ? path.join(stage, sysconfSetting) : path.join(stage, prefix, sysconfSetting);
    const conf = path.join(confDir, 'poe-gateway/gateway.yaml');
    assert.equal(fs.readFileSync(conf, 'utf8'), read(TEMPLATE));

    const unit = fs.readFileSync(path.join(stage, prefix, 'lib/systemd/system/poe-gateway.service'), 'utf8');
    // the unit is made at configure time, so it names the configured prefix, not this staging install's
    const sysconf = path.isAbsolute(sysconfSetting) ? sysconfSetting : path.join(configured, sysconfSetting);
    const lines = unit.split('\n');
    const has = (l) => assert.ok(lines.includes(l), `unit has ${l}`);
    has(`ExecStart=${configured}/bin/poe-gateway --config ${sysconf}/poe-gateway/gateway.yaml`);
    has(`EnvironmentFile=${sysconf}/poe-gateway/env`);
    has('ExecReload=/bin/kill -HUP $MAINPID');
    for (const l of ['DynamicUser=yes', 'StateDirectory=poe-gateway', 'Environment=XDG_STATE_HOME=%S', 'NoNewPrivileges=yes',
        'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'CapabilityBoundingSet=', 'RestartPreventExitStatus=2',
        'WantedBy=multi-user.target']) has(l);
    assert.ok(!/@[A-Z_]+@/.test(unit), 'every @VAR@ was substituted');
    systemdVerify(unit, bin, stage);

    // a second install keeps the edited config and puts the shipped one beside it
    fs.writeFileSync(conf, `${read(TEMPLATE)}\n# edited\n`);
    install();
    assert.match(fs.readFileSync(conf, 'utf8'), /# edited\n$/);
    assert.equal(fs.readFileSync(`${conf}.dist`, 'utf8'), read(TEMPLATE));
    fs.rmSync(stage, { recursive: true, force: true });
});

/** The lines of the README's code block that follows `heading`. */
function readmeBlock(heading) {
    const readme = read('README.md');
    const at = readme.indexOf(heading);
    assert.ok(at >= 0, heading);
    const m = readme.slice(at).match(/```sh\n([\s\S]*?)```/);
    return m[1].split('\n').filter((l) => l.trim()).map((l) => l.replace(/\s+#.*$/, ''));
}

test('the README\'s native install, as written (staged with DESTDIR instead of the real /)', () => {
    const lines = readmeBlock('### Native install with systemd');
    const configure = lines.find((l) => l.startsWith('cmake -S . -B build'));
    const build = lines.find((l) => l.startsWith('cmake --build build'));
    assert.ok(configure && build && lines.includes('cmake --install build'), lines.join('\n'));
    assert.ok(lines.includes('bash tools/deps.sh') && lines.includes('systemctl enable --now poe-gateway'));

    // configure exactly as written, into a fresh directory; the binary is this suite's (building it again is slow)
    const dir = tmpdir('pgw-configure-');
    const args = configure.split(/\s+/).slice(1).map((a) => (a === 'build' ? dir : a));
    execFileSync('cmake', args, { cwd: SOURCE_DIR, encoding: 'utf8' });
    assert.match(build, /--target poe-gateway$/);
    fs.copyFileSync(PGW_BIN, path.join(dir, 'poe-gateway'));
    fs.chmodSync(path.join(dir, 'poe-gateway'), 0o755);
    const stage = tmpdir('pgw-stage-');
    execFileSync('cmake', ['--install', dir], { encoding: 'utf8', env: { ...process.env, DESTDIR: stage } });

    const unit = fs.readFileSync(path.join(stage, 'usr/local/lib/systemd/system/poe-gateway.service'), 'utf8');
    assert.match(unit, /^EnvironmentFile=\/etc\/poe-gateway\/env$/m);
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/poe-gateway --config \/etc\/poe-gateway\/gateway\.yaml$/m);
    const bin = path.join(stage, 'usr/local/bin/poe-gateway');
    systemdVerify(unit, bin, stage);
    const etc = path.join(stage, 'etc/poe-gateway');
    assert.equal(fs.readFileSync(path.join(etc, 'gateway.yaml'), 'utf8'), read(TEMPLATE));

    // the env file line, then the README's doctor and claude-env lines read it (claude-env here: doctor would go to Poe)
    const installEnv = lines.find((l) => l.startsWith('install -m 600 .env.template /etc/poe-gateway/env'));
    assert.ok(installEnv);
    execFileSync('install', ['-m', '600', path.join(SOURCE_DIR, '.env.template'), path.join(etc, 'env')]);
    assert.equal(fs.statSync(path.join(etc, 'env')).mode & 0o777, 0o600);
    fs.appendFileSync(path.join(etc, 'env'), 'LITELLM_MASTER_KEY=sk-from-etc-env-0123456789abcdef\n');
    const r = spawnSync(bin, ['claude-env', '--with-key', '--config', path.join(etc, 'gateway.yaml'), '--env-file', path.join(etc, 'env')],
        { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: stage, TS_SOCKET: '/nonexistent' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^export ANTHROPIC_AUTH_TOKEN='sk-from-etc-env-0123456789abcdef'$/m);
    assert.ok(lines.includes('poe-gateway doctor --config /etc/poe-gateway/gateway.yaml --env-file /etc/poe-gateway/env'));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(stage, { recursive: true, force: true });
});

test('the README\'s compose quick start: .env made readable by its owner alone, the master-key line fills it', () => {
    const lines = readmeBlock('### Quick start: Docker Compose and Tailscale');
    assert.equal(lines[0], 'install -m 600 .env.template .env');
    assert.ok(!/cp \.env\.template/.test(read('README.md') + read('.env.template') + read('docker-compose.yml')), 'no world-readable copy');
    const sed = lines[1];
    assert.match(sed, /^sed -i /);
    const dir = tmpdir('pgw-quickstart-');
    fs.copyFileSync(path.join(SOURCE_DIR, '.env.template'), path.join(dir, '.env.template'));
    fs.chmodSync(path.join(dir, '.env.template'), 0o644);
    execFileSync('bash', ['-c', lines[0]], { cwd: dir });
    assert.equal(fs.statSync(path.join(dir, '.env')).mode & 0o777, 0o600);
    execFileSync('bash', ['-c', sed], { cwd: dir });
    assert.equal(fs.statSync(path.join(dir, '.env')).mode & 0o777, 0o600, 'sed -i keeps the mode');
    const env = fs.readFileSync(path.join(dir, '.env'), 'utf8');
    assert.match(env, /^LITELLM_MASTER_KEY=sk-[0-9a-f]{48}$/m);
    assert.equal((env.match(/^LITELLM_MASTER_KEY=/gm) || []).length, 1);
    for (const l of ['docker compose up -d --build', 'docker compose exec gateway poe-gateway doctor']) assert.ok(lines.includes(l), l);
});

test('every poe-gateway subcommand line in the README parses', async () => {
    const readme = read('README.md');
    const invocations = new Set();
    for (const m of readme.matchAll(/poe-gateway (claude-env|doctor|healthcheck)((?: --?[a-z][-a-z]*(?: [^\s`|#-][^\s`|#]*)?)*)/g))
        invocations.add(`${m[1]}${m[2]}`);
    assert.ok(invocations.size >= 4, [...invocations].join('\n'));
    for (const expected of ['doctor', 'claude-env --with-key', 'healthcheck']) assert.ok(invocations.has(expected), expected);
    const mock = await startMock();
    try {
        const dir = tmpdir('pgw-readme-');
        const file = path.join(dir, 'gateway.yaml');
        fs.writeFileSync(file, defaultConfig(mock, 'gateway:\n  port: 0\n'));
        for (const inv of invocations) {
            // the README's paths are the installed ones: point them at the test's config and an empty env file
            const args = inv.split(' ').filter((a, i, all) => !['--config', '--env-file'].includes(a) &&
                !['--config', '--env-file'].includes(all[i - 1]));
            if (args[0] === 'healthcheck') args.push('--url', 'http://127.0.0.1:9/health/liveliness');
            else args.push('--env-file', path.join(dir, 'none'));
            const r = await runGateway([...args, '--config', file],
                { env: { SSL_CERT_FILE: certs().ca, POE_API_KEY: POE_KEY, LITELLM_MASTER_KEY: MASTER_KEY, TS_SOCKET: '/nonexistent' }, cwd: dir });
            assert.notEqual(r.code, 2, `poe-gateway ${inv}: ${r.stderr}`);
            assert.ok(!/unrecognized|invalid option/.test(r.stderr), `poe-gateway ${inv}: ${r.stderr}`);
        }
    } finally {
        await mock.stop();
    }
});
