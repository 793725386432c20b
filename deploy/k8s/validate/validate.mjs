// poe-gateway: MIT licence. Validates deploy/k8s's manifests against the Kubernetes API's schemas, offline (no cluster):
// kubernetes-models carries the OpenAPI schemas of each API group as JSON schemas and checks a resource with ajv.
//
//     cd deploy/k8s/validate && npm ci && node validate.mjs
//
// Every document of every deploy/k8s/*.yaml but kustomization.yaml is checked: types, required fields, enums and
// formats. The API's schemas allow fields they do not name, so a misspelt optional field passes here (the API server's
// strict field validation refuses it). Exits 1 when any is invalid, naming the resource and the field.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

const dir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
let checked = 0, failed = 0;
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'))) {
        if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
        const obj = doc.toJS();
        if (obj === null) continue;
        const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : [null, obj.apiVersion];
        const mod = await import(`kubernetes-models/${group ? `${group}/` : ''}${version}`);
        const Model = mod[obj.kind];
        const what = `${file}: ${obj.kind} ${obj.metadata?.name}`;
        if (!Model) throw new Error(`${what}: no schema for ${obj.apiVersion} ${obj.kind}`);
        try {
            new Model(obj).validate();
            console.log(`ok ${what}`);
        } catch (e) {
            console.log(`not ok ${what}: ${e.message}`);
            failed++;
        }
        checked++;
    }
}
console.log(`${checked - failed} passed, ${failed} failed`);
process.exit(failed || checked === 0 ? 1 : 0);

