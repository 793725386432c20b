// poe-gateway: MIT licence. The recipes for several replicas (#20), checked without a cluster or a Docker engine: the
// Kubernetes manifests in deploy/k8s agree with each other and with the gateway (its config loads, its probes answer,
// the grace period covers the drain), and the compose profile runs a second gateway beside the first, with Redis.
// Their schemas are checked by deploy/k8s/validate (its own npm packages, installed by tools/deps.sh --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { request, runGateway, startGateway, tmpdir, SOURCE_DIR } from './lib/harness.mjs';

const k8s = path.join(SOURCE_DIR, 'deploy/k8s');
const docs = (file) => YAML.parseAllDocuments(fs.readFileSync(path.join(k8s, file), 'utf8')).map((d) => d.toJS());
const kustomization = docs('kustomization.yaml')[0];
const all = kustomization.resources.flatMap(docs);
const find = (kind, name) => {
    const found = all.find((o) => o.kind === kind && (!name || o.metadata.name === name));
    assert.ok(found, `no ${kind} ${name ?? ''} in deploy/k8s`);
    return found;
};
const deployment = find('Deployment', 'poe-gateway');
const pod = deployment.spec.template.spec, container = pod.containers[0];
const configMap = find('ConfigMap', 'poe-gateway-config');
const gatewayYaml = configMap.data['gateway.yaml'];
const secret = docs('secret.example.yaml')[0];

test('deploy/k8s: every resource kustomization.yaml names exists, with 2+ replicas, a PDB and Redis', () => {
    for (const f of kustomization.resources) assert.ok(fs.existsSync(path.join(k8s, f)), f);
    assert.ok(deployment.spec.replicas >= 2);
    const labels = deployment.spec.template.metadata.labels;
    const matches = (sel) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    assert.ok(matches(deployment.spec.selector.matchLabels));
    assert.ok(matches(find('Service', 'poe-gateway').spec.selector), 'the Service selects the gateway pods');
    const pdb = find('PodDisruptionBudget');
    assert.ok(matches(pdb.spec.selector.matchLabels), 'the PDB covers the gateway pods');
    assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < deployment.spec.replicas);
    // the Redis the config names is the Service of redis.yaml, on its port
    const redisUrl = new URL(YAML.parse(gatewayYaml).gateway.redis);
    const redisService = find('Service', redisUrl.hostname);
    assert.equal(redisService.spec.ports[0].port, Number(redisUrl.port));
    const redis = find('StatefulSet');
    assert.ok(Object.entries(redisService.spec.selector).every(([k, v]) => redis.spec.template.metadata.labels[k] === v));
    // resources are sized, and the memory limit is a limit
    assert.ok(container.resources.requests.cpu && container.resources.requests.memory && container.resources.limits.memory);
});

test('deploy/k8s: the Secret holds every variable the config and Redis need; the config loads in the container\'s place', async () => {
    const conf = YAML.parse(gatewayYaml);
    const needed = new Set([...gatewayYaml.matchAll(/os\.environ\/([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]));
    needed.add('REDIS_PASSWORD');
    for (const name of needed) assert.ok(name in secret.stringData, `the Secret lacks ${name}`);
    assert.deepEqual(container.envFrom.map((e) => e.secretRef.name), [secret.metadata.name]);
    // the config path the container is given is where the ConfigMap is mounted
    const mount = container.volumeMounts.find((m) => m.name === pod.volumes.find((v) => v.configMap).name);
    assert.equal(container.args[container.args.indexOf('--config') + 1], `${mount.mountPath}/gateway.yaml`);
    assert.equal(conf.gateway.port, container.ports[0].containerPort);
    const dir = tmpdir('pgw-k8s-'), file = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(file, gatewayYaml);
    const env = Object.fromEntries(Object.keys(secret.stringData).map((k) => [k, `${k.toLowerCase()}-value-0123456789`]));
    const r = await runGateway(['--config', file, '--check-config'], { env });
    assert.equal(r.code, 0, r.stdout + r.stderr);
});

test('deploy/k8s: the probes are the gateway\'s own, and the grace period covers preStop plus graceful_timeout', async () => {
    const graceful = YAML.parse(gatewayYaml).gateway.graceful_timeout ?? 30;
    const preStop = Number(container.lifecycle.preStop.exec.command.at(-1));
    assert.ok(pod.terminationGracePeriodSeconds > preStop + graceful,
        `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= preStop ${preStop} + graceful_timeout ${graceful}`);
    // the ConfigMap's own config, with Redis unreachable here: liveness 200, readiness 200 and degraded (fail-open)
    const g = await startGateway({ config: gatewayYaml, args: ['--host', '127.0.0.1'],
        env: { REDIS_PASSWORD: 'redis-password-0123456789' } });
    try {
        const live = await request(`${g.url}${container.livenessProbe.httpGet.path}`);
        assert.equal(live.status, 200);
        const ready = await request(`${g.url}${container.readinessProbe.httpGet.path}`);
        assert.equal(ready.status, 200, ready.body);
        assert.equal(JSON.parse(ready.body).shared_state, 'degraded');
        for (const p of [container.livenessProbe, container.readinessProbe]) assert.equal(p.httpGet.port, container.ports[0].name);
    } finally {
        await g.stop();
    }
});

test('docker-compose.yml: the replicas profile adds a second gateway in the Tailscale namespace, and Redis', () => {
    const compose = YAML.parse(fs.readFileSync(path.join(SOURCE_DIR, 'docker-compose.yml'), 'utf8'));
    const inProfile = Object.keys(compose.services).filter((n) => compose.services[n].profiles?.includes('replicas')).sort();
    assert.deepEqual(inProfile, ['gateway-2', 'redis']);
    const first = compose.services.gateway, second = compose.services['gateway-2'], redis = compose.services.redis;
    // the same gateway, config and secrets as the first, in the same network namespace (SO_REUSEPORT shares port 4000)
    assert.equal(second.image, first.image);
    assert.equal(second.network_mode, first.network_mode);
    assert.deepEqual(second.environment, first.environment);
    assert.deepEqual(second.env_file, first.env_file);
    // the same config and tailnet socket; a state volume (the ledger) of its own, as SQLite wants one writer per file
    const state = (vs) => vs.find((v) => v.endsWith(':/var/lib/poe-gateway'));
    assert.deepEqual(second.volumes.filter((v) => v !== state(second.volumes)), first.volumes.filter((v) => v !== state(first.volumes)));
    if (state(first.volumes)) {
        assert.ok(state(second.volumes), 'gateway-2 keeps its state on a volume too');
        assert.notEqual(state(second.volumes).split(':')[0], state(first.volumes).split(':')[0]);
        assert.ok(state(second.volumes).split(':')[0] in compose.volumes);
    }
    assert.deepEqual(second.healthcheck.test, first.healthcheck.test);
    assert.ok('redis' in second.depends_on);
    assert.equal(redis.ports, undefined, 'Redis is published nowhere');
    assert.match(redis.image, /^(redis|valkey\/valkey):/);
});

test('deploy/k8s: every manifest is valid against the Kubernetes API\'s schemas', () => {
    const r = spawnSync(process.execPath, [path.join(k8s, 'validate/validate.mjs')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const checked = r.stdout.match(/^(\d+) passed, 0 failed$/m);
    assert.ok(checked && Number(checked[1]) >= 7, r.stdout);
});
