#!/usr/bin/env node
// k8s_check.js - render deploy/k8s's overlays and check them against the
// binaries, without a cluster.
//
//   node tests/integration/k8s_check.js --src DIR --bin DIR [--overlays dev,prod]
//
// For each overlay: render it (a small kustomize subset implemented below;
// when `kubectl` or `kustomize` is on the PATH the overlay is rendered by it
// too, and the two renderings must be equal, so that this renderer stays
// correct on machines without one), parse every document with `yaml`,
// validate it with the matching kubernetes-models (or Strimzi models) class,
// then check:
//   - every container env var is one its program reads (options from the
//     binary's --help, plus the names the C sources read with getenv), every
//     `--flag` of its args is one of the program's options, and the program
//     accepts the container's whole configuration (it is run with `--help`
//     and the resolved environment: a bad value is exit 2);
//   - every referenced ConfigMap (and key), Secret (and key), volume, PVC and
//     ServiceAccount exists in the same rendering; a prod Secret may be
//     missing only if it is a placeholder of the base that the overlay removes
//     (made out of band), and prod ships no placeholder;
//   - probes are real `br2k probe ready|live` commands (run here against an
//     unreachable Redis: live must answer 0, ready 1, never 2 = bad usage;
//     a `--process NAME` probe must name the container's program and is run
//     beside a process of that name); every Deployment and StatefulSet has
//     a liveness and a readiness probe;
//   - selectors match their pod templates, Services and PDBs select pods;
//   - the BR2K rules: workers one per node, id from the pod name, state dir on
//     a claim template, the PDB keeps exactly a majority for 1..9 replicas
//     (Kubernetes' rounding of percentages), registryd single and Recreate,
//     Redis with appendonly/appendfsync always, the topic settings of
//     shared/DESIGN.md, endpoints that name Services of the rendering;
//   - the Grafana dashboard and schemas/metrics.md cover every metrics field.
// Exit 0 when everything holds, 1 with one "FAIL:" line per problem.
'use strict';

const fs = require('fs');
const path = require('path');
const cp = require('child_process');

const args = process.argv.slice(2);
function arg(name, def) {
    const i = args.indexOf('--' + name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const SRC = path.resolve(arg('src', path.join(__dirname, '..', '..')));
const BIN = path.resolve(arg('bin', path.join(SRC, 'build', 'bin')));
const K8S = path.join(SRC, 'deploy', 'k8s');
const OVERLAYS = arg('overlays', 'dev,prod').split(',');

let YAML;
const failures = [];
let checks = 0;
function fail(msg) {
    failures.push(msg);
    console.log('FAIL: ' + msg);
}
function ok(msg) {
    checks++;
    console.log('ok: ' + msg);
}
const clone = (x) => JSON.parse(JSON.stringify(x));
const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

// ---------------------------------------------------------------- YAML

// Kubernetes reads YAML 1.1 (0440 is octal, yes/no are booleans): so do we.
function parseAll(text, where) {
    const docs = [];
    for (const d of YAML.parseAllDocuments(text, { version: '1.1' })) {
        if (d.errors && d.errors.length)
            throw new Error(`${where}: YAML error: ${d.errors[0].message}`);
        const v = d.toJS();
        if (v !== null && v !== undefined) docs.push(v);
    }
    return docs;
}
const readYaml = (file) => parseAll(fs.readFileSync(file, 'utf8'), path.relative(SRC, file));

// ---------------------------------------------------------------- renderer

// The kustomize subset used by deploy/k8s: resources (files, or directories
// with a kustomization.yaml), namespace, images (name/newName/newTag) and
// patches given by path holding strategic-merge patches (matched by kind and
// name; `$patch: delete` removes the resource; lists of containers, env,
// volumes, volumeMounts and ports merge by their key on built-in kinds, every
// other list is replaced, as kustomize does). Anything else is refused, so
// that a manifest never relies on what this renderer would get wrong.
const KUST_KEYS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding',
    'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass']);
const MERGE_KEYS = { containers: 'name', initContainers: 'name', env: 'name', volumes: 'name',
    volumeMounts: 'mountPath', ports: 'containerPort', imagePullSecrets: 'name' };
const builtin = (doc) => !String(doc.apiVersion).includes('.') || String(doc.apiVersion).includes('.k8s.io/');

function smpMerge(target, patch, isBuiltin) {
    for (const [k, pv] of Object.entries(patch)) {
        if (k === '$patch') continue;
        const tv = target[k];
        if (pv === null) delete target[k];
        else if (isObj(pv) && isObj(tv)) {
            if (pv.$patch === 'replace') {
                const r = clone(pv);
                delete r.$patch;
                target[k] = r;
            } else smpMerge(tv, pv, isBuiltin);
        } else if (Array.isArray(pv) && Array.isArray(tv) && isBuiltin && MERGE_KEYS[k]) {
            const key = MERGE_KEYS[k];
            for (const item of pv) {
                const hit = tv.find((t) => isObj(t) && isObj(item) && t[key] === item[key]);
                if (hit && item.$patch === 'delete') tv.splice(tv.indexOf(hit), 1);
                else if (hit) smpMerge(hit, item, isBuiltin);
                else tv.push(clone(item));
            }
        } else target[k] = clone(pv);
    }
}

function podSpecs(doc) {
    const s = doc.spec || {};
    if (s.template && s.template.spec) return [s.template.spec];
    if (s.jobTemplate && s.jobTemplate.spec && s.jobTemplate.spec.template)
        return [s.jobTemplate.spec.template.spec];
    return [];
}
function containersOf(doc) {
    const out = [];
    for (const ps of podSpecs(doc))
        for (const c of [...(ps.initContainers || []), ...(ps.containers || [])]) out.push(c);
    return out;
}

function splitImage(image) {
    // name[:tag][@digest]; a ':' before the last '/' is a registry port
    let digest = '';
    let rest = image;
    const at = rest.indexOf('@');
    if (at >= 0) { digest = rest.slice(at); rest = rest.slice(0, at); }
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
    return { name: rest, tag: '', digest };
}

function renderJs(dir) {
    const kfile = path.join(dir, 'kustomization.yaml');
    if (!fs.existsSync(kfile)) throw new Error(`${path.relative(SRC, dir)}: no kustomization.yaml`);
    const k = readYaml(kfile)[0] || {};
    for (const key of Object.keys(k))
        if (!KUST_KEYS.has(key))
            throw new Error(`${path.relative(SRC, kfile)}: '${key}' is not supported by the renderer of ` +
                'tests/integration/k8s_check.js (use resources, namespace, images, patches)');
    let docs = [];
    for (const r of k.resources || []) {
        const p = path.resolve(dir, r);
        if (fs.statSync(p).isDirectory()) docs.push(...renderJs(p));
        else docs.push(...readYaml(p));
    }
    for (const p of k.patches || []) {
        if (!isObj(p) || typeof p.path !== 'string' || Object.keys(p).length !== 1)
            throw new Error(`${path.relative(SRC, kfile)}: only 'patches: - path: FILE' is supported`);
        for (const patch of readYaml(path.resolve(dir, p.path))) {
            const name = patch.metadata && patch.metadata.name;
            const hits = docs.filter((d) => d.kind === patch.kind && d.metadata.name === name);
            if (hits.length !== 1)
                throw new Error(`${path.relative(SRC, path.resolve(dir, p.path))}: patch of ${patch.kind}/${name} ` +
                    `matches ${hits.length} resources`);
            if (patch.$patch === 'delete') docs = docs.filter((d) => d !== hits[0]);
            else smpMerge(hits[0], patch, builtin(hits[0]));
        }
    }
    if (k.namespace)
        for (const d of docs) if (!CLUSTER_SCOPED.has(d.kind)) d.metadata.namespace = k.namespace;
    for (const img of k.images || [])
        for (const d of docs)
            for (const c of containersOf(d)) {
                const s = splitImage(c.image || '');
                if (s.name !== img.name) continue;
                const tag = img.newTag !== undefined ? String(img.newTag) : s.tag;
                c.image = (img.newName || s.name) + (tag ? ':' + tag : '') + (img.digest ? '@' + img.digest : s.digest);
            }
    return docs;
}

function which(prog) {
    for (const d of (process.env.PATH || '').split(':'))
        if (d && fs.existsSync(path.join(d, prog))) return path.join(d, prog);
    return null;
}

function renderTool(dir) {
    const pref = process.env.BR2K_K8S_RENDERER || 'auto';
    if (pref === 'js') return null;
    let cmd = null;
    if (which('kustomize')) cmd = ['kustomize', ['build', dir]];
    else if (which('kubectl')) cmd = ['kubectl', ['kustomize', dir]];
    if (!cmd) return null;
    const r = cp.spawnSync(cmd[0], cmd[1], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd[0]} ${cmd[1].join(' ')}: ${(r.stderr || '').split('\n')[0]}`);
    return { tool: cmd[0], docs: parseAll(r.stdout, `${cmd[0]} output`) };
}

const idOf = (d) => `${d.kind}/${(d.metadata || {}).name}`;

function firstDiff(a, b, p) {
    if (isObj(a) && isObj(b)) {
        for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
            const d = firstDiff(a[k], b[k], `${p}.${k}`);
            if (d) return d;
        }
        return null;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
        for (let i = 0; i < Math.max(a.length, b.length); i++) {
            const d = firstDiff(a[i], b[i], `${p}[${i}]`);
            if (d) return d;
        }
        return null;
    }
    return JSON.stringify(a) === JSON.stringify(b) ? null : `${p}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

function render(overlay) {
    const dir = path.join(K8S, 'overlays', overlay);
    const mine = renderJs(dir);
    const tool = renderTool(dir);
    if (!tool) return { docs: mine, how: 'the JS renderer' };
    const byId = new Map(mine.map((d) => [idOf(d), d]));
    const theirs = new Map(tool.docs.map((d) => [idOf(d), d]));
    for (const id of new Set([...byId.keys(), ...theirs.keys()])) {
        if (!byId.has(id)) fail(`${overlay}: ${tool.tool} renders ${id}, the JS renderer does not`);
        else if (!theirs.has(id)) fail(`${overlay}: the JS renderer renders ${id}, ${tool.tool} does not`);
        else {
            const d = firstDiff(byId.get(id), theirs.get(id), id);
            if (d) fail(`${overlay}: JS renderer and ${tool.tool} differ at ${d}`);
        }
    }
    return { docs: tool.docs, how: `${tool.tool} (equal to the JS renderer)` };
}

// ---------------------------------------------------------------- models

const STRIMZI = '@kubernetes-models/strimzi-kafka-operator';
async function modelFor(doc) {
    const [group, version] = String(doc.apiVersion).includes('/')
        ? doc.apiVersion.split('/') : ['', doc.apiVersion];
    const mod = group.endsWith('strimzi.io')
        ? `${STRIMZI}/${group}/${version}/${doc.kind}`
        : `kubernetes-models/${group ? group + '/' : ''}${version}/${doc.kind}`;
    try {
        const m = await import(mod);
        return m[doc.kind] || m.default;
    } catch (e) {
        return null;
    }
}

// ---------------------------------------------------------------- binaries

// Names the C sources read with getenv(), per program (beyond the options).
// Each is checked to still occur in the sources. Test hooks (BR2K_TEST_*) and
// the AWS_* fallbacks are read too but do not belong in a manifest.
const GETENV = {
    'br2k-worker': ['BR2K_SERVICE_KEY', 'BR2K_SERVICE_KEY_FILE', 'BR2K_S3_ACCESS_KEY_ID',
        'BR2K_S3_SECRET_ACCESS_KEY', 'BR2K_S3_SESSION_TOKEN', 'BR2K_S3_MAX_KEYS',
        'BR2K_MAX_REQUEST_BYTES', 'BR2K_INFODID_CHECKPOINT_BYTES', 'BR2K_INFODID_ID_WINDOW'],
    'br2k-backupd': ['BR2K_SERVICE_KEY', 'BR2K_SERVICE_KEY_FILE', 'BR2K_S3_ACCESS_KEY_ID',
        'BR2K_S3_SECRET_ACCESS_KEY', 'BR2K_S3_SESSION_TOKEN', 'BR2K_S3_MAX_KEYS'],
    'br2k-registryd': ['BR2K_ETH_KEY'],
    'br2k-gateway': [],
    br2k: ['BR2K_SERVICE_KEY', 'BR2K_SERVICE_KEY_FILE'],
};
// every program connects to Redis through common/redis, which reads its ACL
// user and password (deploy/redis/acl) from the environment
for (const b of Object.keys(GETENV))
    GETENV[b].push('BR2K_REDIS_USER', 'BR2K_REDIS_PASSWORD', 'BR2K_REDIS_PASSWORD_FILE');

function cSources() {
    let all = '';
    const walk = (dir) => {
        for (const f of fs.readdirSync(dir, { withFileTypes: true })) {
            const p = path.join(dir, f.name);
            if (f.isDirectory()) walk(p); // common/ is in rooms (base/, log/, ...)
            else if (/\.[ch]$/.test(f.name)) all += fs.readFileSync(p, 'utf8');
        }
    };
    for (const d of ['common', 'worker', 'backupd', 'registryd', 'producer']) walk(path.join(SRC, d));
    return all;
}

function programInfo() {
    const info = {};
    const src = cSources();
    for (const b of Object.keys(GETENV)) {
        const exe = path.join(BIN, b);
        const r = cp.spawnSync(exe, ['--help'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
        if (r.status !== 0) throw new Error(`${exe} --help: exit ${r.status} ${r.error || r.stderr}`);
        const env = new Set();
        const flags = new Set();
        // the options section: from "Options" to the first blank line
        let inOpts = false;
        for (const line of r.stdout.split('\n')) {
            if (/^Options/.test(line)) { inOpts = true; continue; }
            if (inOpts && line.trim() === '') break;
            if (!inOpts) continue;
            let m = line.match(/^\s+--([a-z0-9-]+)/);
            if (m) flags.add(m[1]);
            m = line.match(/^\s+env (BR2K_[A-Z0-9_]+)/);
            if (m) env.add(m[1]);
        }
        if (!flags.size) throw new Error(`${b} --help: no options section`);
        for (const f of flags)
            if (!['help', 'version'].includes(f) && !env.has('BR2K_' + f.toUpperCase().replace(/-/g, '_')))
                throw new Error(`${b} --help: option --${f} shows no env name`);
        for (const n of GETENV[b]) {
            if (!src.includes(`"${n}"`)) throw new Error(`k8s_check.js lists ${n} for ${b}, but no C source names it`);
            env.add(n);
        }
        info[b] = { env, flags, help: r.stdout };
    }
    return info;
}

// ---------------------------------------------------------------- checks

function labelsMatch(selector, labels) {
    if (!isObj(selector)) return false;
    const ml = selector.matchLabels || (selector.matchExpressions ? {} : selector);
    if (selector.matchExpressions) return false; // not used here: keep it simple and strict
    return Object.keys(ml).length > 0 && Object.entries(ml).every(([k, v]) => (labels || {})[k] === v);
}

function checkOverlay(overlay, docs, progs, placeholders) {
    const W = (d, m) => fail(`${overlay}: ${idOf(d)}: ${m}`);
    const find = (kind, name) => docs.find((d) => d.kind === kind && d.metadata.name === name);
    const secretKeys = (s) => new Set([...Object.keys(s.data || {}), ...Object.keys(s.stringData || {})]);
    const nErr = failures.length;
    const templates = docs.filter((d) => podSpecs(d).length);

    // Secrets a workload needs but the overlay does not render: out of band
    const outOfBand = new Set();
    function secretRef(d, name, key, optional) {
        const s = find('Secret', name);
        if (s) {
            if (key !== undefined && !secretKeys(s).has(key)) W(d, `Secret ${name} has no key '${key}'`);
            return;
        }
        if (optional) return;
        const ph = placeholders.get(name);
        if (ph && (key === undefined || secretKeys(ph).has(key))) outOfBand.add(name);
        else W(d, `references Secret ${name}${key !== undefined ? ` (key ${key})` : ''}, which is not in the overlay` +
            (ph ? '' : ' nor a placeholder of the base'));
    }
    function configMapRef(d, name, key, optional) {
        const c = find('ConfigMap', name);
        if (!c) { if (!optional) W(d, `references ConfigMap ${name}, which is not in the overlay`); return null; }
        if (key !== undefined && !Object.prototype.hasOwnProperty.call(c.data || {}, key) && !optional)
            W(d, `ConfigMap ${name} has no key '${key}'`);
        return c;
    }

    for (const d of docs) {
        for (const ps of podSpecs(d)) {
            const tmplLabels = d.spec.template.metadata && d.spec.template.metadata.labels;
            if (!labelsMatch(d.spec.selector, tmplLabels))
                W(d, `spec.selector ${JSON.stringify(d.spec.selector)} does not match the pod template's labels`);
            if (ps.serviceAccountName && !find('ServiceAccount', ps.serviceAccountName))
                W(d, `ServiceAccount ${ps.serviceAccountName} is not in the overlay`);
            const vols = new Map((ps.volumes || []).map((v) => [v.name, v]));
            const claims = new Set(((d.spec.volumeClaimTemplates) || []).map((v) => v.metadata.name));
            for (const v of ps.volumes || []) {
                if (claims.has(v.name)) W(d, `volume ${v.name} shadows a volumeClaimTemplate`);
                if (v.secret) secretRef(d, v.secret.secretName, undefined, v.secret.optional);
                for (const it of (v.secret && v.secret.items) || []) secretRef(d, v.secret.secretName, it.key, v.secret.optional);
                if (v.configMap) configMapRef(d, v.configMap.name, undefined, v.configMap.optional);
                if (v.persistentVolumeClaim && !find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName))
                    W(d, `PersistentVolumeClaim ${v.persistentVolumeClaim.claimName} is not in the overlay`);
            }
            const aff = ps.affinity && ps.affinity.podAntiAffinity;
            for (const t of (aff && aff.requiredDuringSchedulingIgnoredDuringExecution) || [])
                if (!labelsMatch(t.labelSelector, tmplLabels)) W(d, 'pod anti-affinity does not select its own pods');
            for (const c of [...(ps.initContainers || []), ...(ps.containers || [])]) {
                for (const m of c.volumeMounts || [])
                    if (!vols.has(m.name) && !claims.has(m.name))
                        W(d, `container ${c.name}: volumeMount ${m.name} is neither a volume nor a volumeClaimTemplate`);
                for (const e of c.env || []) {
                    const vf = e.valueFrom || {};
                    if (vf.secretKeyRef) secretRef(d, vf.secretKeyRef.name, vf.secretKeyRef.key, vf.secretKeyRef.optional);
                    if (vf.configMapKeyRef) configMapRef(d, vf.configMapKeyRef.name, vf.configMapKeyRef.key, vf.configMapKeyRef.optional);
                }
                for (const ef of c.envFrom || []) {
                    if (ef.secretRef) secretRef(d, ef.secretRef.name, undefined, ef.secretRef.optional);
                    if (ef.configMapRef) configMapRef(d, ef.configMapRef.name, undefined, ef.configMapRef.optional);
                }
                checkProgram(d, ps, c);
            }
        }
    }

    // Resolve a container's environment as the kubelet would (Secrets: a dummy).
    function resolveEnv(d, c) {
        const env = {};
        for (const ef of c.envFrom || []) {
            if (ef.configMapRef) Object.assign(env, (find('ConfigMap', ef.configMapRef.name) || {}).data || {});
            if (ef.secretRef) {
                const s = find('Secret', ef.secretRef.name) || placeholders.get(ef.secretRef.name);
                for (const k of s ? secretKeys(s) : []) env[k] = 'secret';
            }
        }
        for (const e of c.env || []) {
            const vf = e.valueFrom || {};
            if (e.value !== undefined) env[e.name] = String(e.value);
            else if (vf.configMapKeyRef) env[e.name] = String(((find('ConfigMap', vf.configMapKeyRef.name) || {}).data || {})[vf.configMapKeyRef.key] || '');
            else if (vf.secretKeyRef) env[e.name] = 'secret';
            else if (vf.fieldRef && vf.fieldRef.fieldPath === 'metadata.name')
                env[e.name] = d.kind === 'StatefulSet' ? `${d.metadata.name}-0` : `${d.metadata.name}-abc12-xyz34`;
            else if (vf.fieldRef) env[e.name] = 'field';
        }
        return env;
    }

    function checkProgram(d, ps, c) {
        const prog = c.command && path.basename(String(c.command[0]));
        if (!/(^|\/)br2k(:|$)/.test(splitImage(c.image || '').name)) {
            for (const e of c.env || []) if (/^BR2K_/.test(e.name)) W(d, `container ${c.name} (not a BR2K image) sets ${e.name}`);
            return;
        }
        if (!prog || !progs[prog]) {
            W(d, `container ${c.name}: command ${JSON.stringify(c.command)} is not a BR2K program (${Object.keys(progs).join(', ')})`);
            return;
        }
        const p = progs[prog];
        const seen = new Set();
        for (const e of c.env || []) {
            if (seen.has(e.name)) W(d, `container ${c.name}: env ${e.name} is set twice`);
            seen.add(e.name);
            if (!p.env.has(e.name))
                W(d, `container ${c.name}: env ${e.name} is not read by ${prog} (it reads: ${[...p.env].sort().join(' ')})`);
        }
        for (const ef of c.envFrom || []) {
            const src = ef.configMapRef ? find('ConfigMap', ef.configMapRef.name) : null;
            for (const k of Object.keys((src && src.data) || {}))
                if (!p.env.has((ef.prefix || '') + k)) W(d, `container ${c.name}: envFrom brings ${k}, which ${prog} does not read`);
        }
        const argv = [...c.command.slice(1), ...(c.args || [])];
        for (const a of argv) {
            const m = String(a).match(/^--([a-z0-9-]+)/);
            if (m && !p.flags.has(m[1])) W(d, `container ${c.name}: ${prog} has no option --${m[1]}`);
        }
        // the program itself must accept this configuration
        const env = { PATH: process.env.PATH, ...resolveEnv(d, c) };
        const r = cp.spawnSync(path.join(BIN, prog), [...argv.map(String), '--help'], { encoding: 'utf8', env });
        if (r.status !== 0)
            W(d, `container ${c.name}: ${prog} refuses its configuration (exit ${r.status}): ${(r.stderr || '').trim()}`);
        // probes
        for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
            const pr = c[kind];
            if (!pr || !pr.exec) continue;
            const cmd = pr.exec.command || [];
            if (cmd[0] !== 'br2k') { W(d, `container ${c.name}: ${kind} runs ${cmd[0]}, not br2k`); continue; }
            const want = kind === 'readinessProbe' ? 'ready' : 'live';
            if (cmd[1] !== 'probe' || cmd[2] !== want) {
                W(d, `container ${c.name}: ${kind} is '${cmd.join(' ')}', expected 'br2k probe ${want}'`);
                continue;
            }
            if (!/^\s+probe ready\|live/m.test(progs.br2k.help)) {
                W(d, `container ${c.name}: ${kind}: br2k --help lists no 'probe ready|live' command`);
                continue;
            }
            // a daemon with no heartbeat is probed by its process: the name
            // must be the container's program
            const pi = cmd.indexOf('--process');
            const proc = pi >= 0 ? cmd[pi + 1] : null;
            if (pi >= 0 && proc !== prog) {
                W(d, `container ${c.name}: ${kind} probes --process ${proc}, but the container runs ${prog}`);
                continue;
            }
            // run it as the kubelet would, against a port where no Redis
            // listens (and, for --process, beside a process of that name)
            const port = cp.execFileSync(path.join(BIN, 'br2k'), ['util', 'free-port'], { encoding: 'utf8' }).trim();
            const penv = { ...env, BR2K_REDIS: `127.0.0.1:${port}` };
            const fake = proc ? fakeProcess(proc) : null;
            let pr2;
            try {
                pr2 = cp.spawnSync(path.join(BIN, 'br2k'), cmd.slice(1), { encoding: 'utf8', env: penv, timeout: 20000 });
            } finally {
                if (fake) fake.stop();
            }
            const expect = want === 'live' ? 0 : 1;
            if (pr2.status !== expect)
                W(d, `container ${c.name}: '${cmd.join(' ')}' with Redis unreachable exited ${pr2.status} ` +
                    `(expected ${expect}): ${(pr2.stderr || pr2.stdout || '').trim()}`);
            else if (proc && !/^(live|cannot reach Redis)/.test((pr2.stdout || '').trim()))
                W(d, `container ${c.name}: '${cmd.join(' ')}' answered '${(pr2.stdout || '').trim()}'`);
            if (pr.timeoutSeconds === undefined || pr.timeoutSeconds < 2)
                W(d, `container ${c.name}: ${kind} needs timeoutSeconds >= 2 (br2k probe waits up to 0.8 s per Redis step)`);
        }
    }

    // Services and PDBs select pods of the rendering
    for (const d of docs.filter((x) => x.kind === 'Service' && x.spec.selector)) {
        if (!templates.some((t) => labelsMatch(d.spec.selector, t.spec.template.metadata.labels)))
            W(d, `selector ${JSON.stringify(d.spec.selector)} selects no pod template`);
    }
    for (const d of docs.filter((x) => x.kind === 'PodDisruptionBudget')) {
        if (!templates.some((t) => labelsMatch(d.spec.selector, t.spec.template.metadata.labels)))
            W(d, `selector ${JSON.stringify(d.spec.selector)} selects no pod template`);
    }
    for (const d of docs.filter((x) => x.kind === 'StatefulSet')) {
        const svc = find('Service', d.spec.serviceName);
        if (!svc) W(d, `serviceName ${d.spec.serviceName} is not a Service of the overlay`);
        else if (svc.spec.clusterIP !== 'None') W(d, `serviceName ${d.spec.serviceName} is not headless`);
        else if (!labelsMatch(svc.spec.selector, d.spec.template.metadata.labels))
            W(d, `its Service ${svc.metadata.name} does not select its pods`);
    }

    checkBr2k(overlay, docs, find, W);

    if (overlay === 'prod')
        for (const s of docs.filter((x) => x.kind === 'Secret'))
            if ((s.metadata.annotations || {})['br2k.io/placeholder'] === 'true')
                W(s, 'a placeholder Secret in prod would overwrite the real one');
    if (failures.length === nErr)
        ok(`${overlay}: references, env names, options, probes, selectors` +
            (outOfBand.size ? `; Secrets expected out of band: ${[...outOfBand].sort().join(', ')}` : ''));
}

// How many of n pods a PodDisruptionBudget keeps available, as the
// disruption controller computes it: an integer as is, a percentage of n
// rounded up (minAvailable: ceil(p n); maxUnavailable: n - ceil(p n));
// null when the value is neither.
function pdbKeeps(spec, n) {
    const scaled = (v) => {
        if (typeof v === 'number' && Number.isInteger(v)) return v;
        const m = typeof v === 'string' && v.match(/^(\d+)%$/);
        return m ? Math.ceil((Number(m[1]) * n) / 100) : null;
    };
    if (spec.minAvailable !== undefined) {
        const k = scaled(spec.minAvailable);
        return k === null ? null : Math.min(k, n);
    }
    if (spec.maxUnavailable !== undefined) {
        const k = scaled(spec.maxUnavailable);
        return k === null ? null : Math.max(n - k, 0);
    }
    return null;
}

// A process named `name` (a copy of sleep(1) under that name) for the
// --process probes; stop() ends it.
function fakeProcess(name) {
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'br2k-k8s-'));
    const exe = path.join(dir, name);
    fs.copyFileSync(which('sleep') || '/bin/sleep', exe);
    fs.chmodSync(exe, 0o755);
    const child = cp.spawn(exe, ['60'], { stdio: 'ignore' });
    // wait until the kernel names it (the exec has happened)
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
        try {
            if (fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() === name.slice(0, 15)) break;
        } catch (e) { /* not yet */ }
        cp.spawnSync('sleep', ['0.05']);
    }
    return {
        stop() {
            child.kill('SIGKILL');
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}

function envValue(docs, c, name) {
    const e = (c.env || []).find((x) => x.name === name);
    if (!e) return undefined;
    if (e.value !== undefined) return String(e.value);
    const r = e.valueFrom && e.valueFrom.configMapKeyRef;
    if (!r) return undefined;
    const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === r.name);
    return cm && cm.data ? cm.data[r.key] : undefined;
}

function checkBr2k(overlay, docs, find, W) {
    const byCmd = (prog) => docs.filter((d) => podSpecs(d).length &&
        d.spec.template.spec.containers.some((c) => c.command && path.basename(c.command[0]) === prog));
    const main = (d) => d.spec.template.spec.containers[0];
    const [worker, ...more] = byCmd('br2k-worker');
    if (!worker || more.length) { fail(`${overlay}: expected exactly one workload running br2k-worker`); return; }
    if (worker.kind !== 'StatefulSet') W(worker, 'workers must be a StatefulSet (stable ids and volumes)');
    const ps = worker.spec.template.spec;
    const wc = ps.containers.find((c) => path.basename(c.command[0]) === 'br2k-worker');
    const anti = ((ps.affinity || {}).podAntiAffinity || {}).requiredDuringSchedulingIgnoredDuringExecution || [];
    if (!anti.some((t) => t.topologyKey === 'kubernetes.io/hostname'))
        W(worker, 'needs a required pod anti-affinity on kubernetes.io/hostname (one worker per node)');
    const id = (wc.env || []).find((e) => e.name === 'BR2K_ID');
    if (!id || !id.valueFrom || !id.valueFrom.fieldRef || id.valueFrom.fieldRef.fieldPath !== 'metadata.name')
        W(worker, 'BR2K_ID must come from the pod name (fieldRef metadata.name)');
    const argv = wc.args || [];
    const sd = argv.indexOf('--state-dir') >= 0 ? argv[argv.indexOf('--state-dir') + 1] : envValue(docs, wc, 'BR2K_STATE_DIR');
    const claims = new Set((worker.spec.volumeClaimTemplates || []).map((v) => v.metadata.name));
    if (!sd || !(wc.volumeMounts || []).some((m) => claims.has(m.name) && (sd === m.mountPath || sd.startsWith(m.mountPath + '/'))))
        W(worker, `the state dir ${sd} must be on a volumeClaimTemplate mount`);
    const grace = ps.terminationGracePeriodSeconds;
    if (!(grace >= 10 && grace <= 120)) W(worker, `terminationGracePeriodSeconds ${grace}: expected 10..120`);
    for (const n of ['BR2K_ETH_RPC', 'BR2K_REGISTRY'])
        if (!envValue(docs, wc, n)) W(worker, `${n} (recovery) must come from the ConfigMap`);
    if (!envValue(docs, wc, 'BR2K_SERVICE_KEY_FILE')) W(worker, 'BR2K_SERVICE_KEY_FILE (recovery) is not set');
    else {
        const f = envValue(docs, wc, 'BR2K_SERVICE_KEY_FILE');
        const m = (wc.volumeMounts || []).find((x) => f.startsWith(x.mountPath + '/'));
        const v = m && (ps.volumes || []).find((x) => x.name === m.name);
        if (!v || !v.secret) W(worker, `BR2K_SERVICE_KEY_FILE ${f} is not on a Secret volume`);
    }
    if (!wc.readinessProbe || !wc.livenessProbe) W(worker, 'needs readiness and liveness probes');
    const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget' && labelsMatch(d.spec.selector, worker.spec.template.metadata.labels));
    if (!pdb) W(worker, 'no PodDisruptionBudget selects the workers');
    else {
        // the budget must keep a majority at any scale, not only at the
        // rendered replica count (kubectl scale does not edit the PDB)
        const wrong = [];
        for (let n = 1; n <= 9; n++) {
            const keep = pdbKeeps(pdb.spec, n);
            if (keep !== Math.floor(n / 2) + 1) wrong.push(`${keep === null ? 'invalid' : keep} of ${n}`);
        }
        if (wrong.length)
            W(pdb, `${JSON.stringify({ minAvailable: pdb.spec.minAvailable, maxUnavailable: pdb.spec.maxUnavailable })} ` +
                `keeps ${wrong.join(', ')}: not exactly a majority (floor(N/2) + 1) for N in 1..9`);
    }
    // every long-running BR2K workload has both probes
    for (const d of docs.filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet'))
        for (const c of d.spec.template.spec.containers || [])
            for (const kind of ['livenessProbe', 'readinessProbe'])
                if (!c[kind]) W(d, `container ${c.name} has no ${kind}`);

    const [reg] = byCmd('br2k-registryd');
    if (!reg) fail(`${overlay}: no br2k-registryd`);
    else {
        if (reg.kind !== 'Deployment' || reg.spec.replicas !== 1 || (reg.spec.strategy || {}).type !== 'Recreate')
            W(reg, 'registryd owns the nonce: a Deployment with replicas 1 and strategy Recreate');
        const rc = main(reg);
        const kf = (rc.args || []).indexOf('--key-file');
        const file = kf >= 0 ? rc.args[kf + 1] : envValue(docs, rc, 'BR2K_KEY_FILE');
        const m = file && (rc.volumeMounts || []).find((x) => file.startsWith(x.mountPath + '/'));
        const v = m && (reg.spec.template.spec.volumes || []).find((x) => x.name === m.name);
        if (!v || !v.secret) W(reg, `the Ethereum key file ${file} must be on a Secret volume`);
    }
    // the gateway: the only thing end users reach. Its probes are HTTP
    // (/healthz live, /readyz ready) on the port it listens on; every Service
    // reachable from outside the cluster (LoadBalancer, NodePort,
    // externalIPs) and every Ingress leads to the gateway's pods only.
    const [gwd] = byCmd('br2k-gateway');
    if (!gwd) fail(`${overlay}: no br2k-gateway`);
    else {
        const gc = main(gwd);
        const li = (gc.args || []).indexOf('--listen');
        const listen = li >= 0 ? String(gc.args[li + 1]) : envValue(docs, gc, 'BR2K_LISTEN') || '127.0.0.1:8080';
        const lport = Number(listen.split(':').pop());
        if (!/^0\.0\.0\.0:/.test(listen)) W(gwd, `--listen ${listen}: a pod must listen on 0.0.0.0`);
        const named = (gc.ports || []).find((x) => x.containerPort === lport);
        if (!named) W(gwd, `no containerPort ${lport} (its --listen ${listen})`);
        for (const [kind, want] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
            const hg = (gc[kind] || {}).httpGet;
            if (!hg || hg.path !== want) { W(gwd, `${kind} must be httpGet ${want}`); continue; }
            if (hg.port !== lport && !(named && hg.port === named.name))
                W(gwd, `${kind} port ${hg.port} is not its --listen port ${lport}`);
        }
        const gwLabels = gwd.spec.template.metadata.labels;
        const templates = docs.filter((d) => podSpecs(d).length);
        let exposed = 0;
        for (const d of docs.filter((x) => x.kind === 'Service')) {
            const ext = ['LoadBalancer', 'NodePort'].includes(d.spec.type) || (d.spec.externalIPs || []).length;
            if (!ext) continue;
            if (!labelsMatch(d.spec.selector, gwLabels) ||
                templates.some((t) => t !== gwd && labelsMatch(d.spec.selector, t.spec.template.metadata.labels)))
                W(d, `exposed (${d.spec.type}) but does not select only the gateway's pods`);
            else exposed++;
            for (const pt of d.spec.ports || [])
                if (pt.targetPort !== lport && !(named && pt.targetPort === named.name))
                    W(d, `port ${pt.port} targets ${pt.targetPort}, not the gateway's ${lport}`);
        }
        for (const d of docs.filter((x) => x.kind === 'Ingress')) W(d, 'an Ingress: expose the gateway Service only');
        if (!exposed) W(gwd, 'no Service exposes the gateway');
    }
    const [bk] = byCmd('br2k-backupd');
    if (!bk) fail(`${overlay}: no br2k-backupd`);
    else {
        const st = envValue(docs, main(bk), 'BR2K_STORAGE');
        if (!st || !st.startsWith('s3://')) W(bk, `BR2K_STORAGE ${st}: expected s3://...`);
        if (!envValue(docs, main(bk), 'BR2K_SERVICE_PUBKEY')) W(bk, 'BR2K_SERVICE_PUBKEY must come from the ConfigMap');
    }

    // endpoints name Services / the Kafka cluster of this rendering
    const redis = envValue(docs, wc, 'BR2K_REDIS') || '';
    // HOST:PORT of a Service, or sentinel://POD.SERVICE:26379,.../NAME:
    // Sentinels in the pods of a headless Service (issue 16, I9)
    const sentinel = /^sentinel:\/\/([^/]+)\/[A-Za-z0-9_.-]+$/.exec(redis);
    const rhosts = sentinel ? sentinel[1].split(',') : [redis];
    const svcOf = (h) => {
        const labels = h.split(':')[0].split('.');
        return find('Service', labels[0]) || (sentinel && labels.length > 1 ? find('Service', labels[1]) : null);
    };
    const rsvc = svcOf(rhosts[0]);
    if (!rsvc) W(worker, `BR2K_REDIS ${redis} is not a Service of the overlay`);
    for (const h of rhosts.slice(1))
        if (svcOf(h) !== rsvc) W(worker, `BR2K_REDIS: ${h} is not in the Service of ${rhosts[0]}`);
    const rsts = docs.find((d) => d.kind === 'StatefulSet' && rsvc && labelsMatch(rsvc.spec.selector, d.spec.template.metadata.labels));
    if (rsvc && !rsts) W(rsvc, 'selects no Redis StatefulSet');
    if (rsts && sentinel) {
        const n = rsts.spec.replicas || 1;
        if (n < 3) W(rsts, `Redis with Sentinel needs 3 pods (a quorum of 2 survives one), not ${n}`);
        if (rhosts.length !== n) W(worker, `BR2K_REDIS names ${rhosts.length} Sentinels for ${n} Redis pods`);
        const sc = rsts.spec.template.spec.containers.find((c) => [...(c.command || []), ...(c.args || [])].join(' ').includes('redis-sentinel'));
        if (!sc) W(rsts, 'BR2K_REDIS is sentinel:// but no container runs redis-sentinel');
        const port = rhosts[0].split(':')[1] || '26379';
        if (sc && !(sc.ports || []).some((p) => String(p.containerPort) === port)) W(rsts, `container ${sc.name} does not expose the Sentinels' port ${port}`);
        if (rsvc.spec.clusterIP !== 'None') W(rsvc, 'the Sentinels are reached by pod name: the Service must be headless');
        const a = [...(main(rsts).command || []), ...(main(rsts).args || [])].map(String).join(' ');
        if (!/--min-replicas-to-write 1\b/.test(a)) W(rsts, 'Redis with replicas must run with --min-replicas-to-write 1');
    }
    if (rsts) {
        const a = [...(main(rsts).command || []), ...(main(rsts).args || [])].map(String).join(' ');
        if (!/--appendonly yes\b/.test(a) || !/--appendfsync always\b/.test(a))
            W(rsts, `Redis must run with --appendonly yes --appendfsync always (the epoch counter, I2): ${a}`);
        if (!(rsts.spec.volumeClaimTemplates || []).length) W(rsts, 'Redis needs a volume for its AOF');
    }
    const kafka = (envValue(docs, wc, 'BR2K_KAFKA') || '').split(',')[0].split(':')[0].split('.')[0];
    const kcr = docs.find((d) => d.kind === 'Kafka' && `${d.metadata.name}-kafka-bootstrap` === kafka);
    if (!kcr) W(worker, `BR2K_KAFKA host ${kafka} is not <name>-kafka-bootstrap of a Kafka resource`);
    else {
        const pools = docs.filter((d) => d.kind === 'KafkaNodePool' && (d.metadata.labels || {})['strimzi.io/cluster'] === kcr.metadata.name);
        const brokers = pools.filter((p) => (p.spec.roles || []).includes('broker')).reduce((n, p) => n + p.spec.replicas, 0);
        if (brokers < 3) W(kcr, `${brokers} brokers: replication 3 needs at least 3`);
        const cfg = kcr.spec.kafka.config || {};
        if (cfg['unclean.leader.election.enable'] !== false) W(kcr, 'unclean.leader.election.enable must be false');
        if (cfg['min.insync.replicas'] !== 2) W(kcr, 'min.insync.replicas must be 2');
        if (!kcr.spec.entityOperator || !kcr.spec.entityOperator.topicOperator) W(kcr, 'the topic operator is needed for the KafkaTopic');
    }
    const service = envValue(docs, wc, 'BR2K_SERVICE') || 'default';
    const topic = docs.find((d) => d.kind === 'KafkaTopic' && (d.spec.topicName || d.metadata.name) === `br2k.${service}.requests`);
    if (!topic) fail(`${overlay}: no KafkaTopic br2k.${service}.requests`);
    else {
        const want = { partitions: 1, replicas: 3 };
        for (const [k, v] of Object.entries(want)) if (topic.spec[k] !== v) W(topic, `${k} ${topic.spec[k]}, expected ${v}`);
        const wantCfg = { 'min.insync.replicas': 2, 'retention.ms': -1, 'retention.bytes': -1, 'unclean.leader.election.enable': false };
        for (const [k, v] of Object.entries(wantCfg))
            if ((topic.spec.config || {})[k] !== v) W(topic, `config ${k} ${JSON.stringify((topic.spec.config || {})[k])}, expected ${v}`);
        if (kcr && (topic.metadata.labels || {})['strimzi.io/cluster'] !== kcr.metadata.name)
            W(topic, `label strimzi.io/cluster must name the Kafka ${kcr.metadata.name}`);
    }
}

// ---------------------------------------------------------------- dashboard

function checkDashboard() {
    const n = failures.length;
    const keys = fs.readFileSync(path.join(SRC, 'schemas', 'redis-keys.md'), 'utf8');
    const sec = keys.split(/^## Metrics hash/m)[1].split(/^## /m)[0];
    const fields = [...sec.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    if (fields.length < 10) fail(`schemas/redis-keys.md: found only ${fields.length} metrics fields`);
    const dash = JSON.parse(fs.readFileSync(path.join(SRC, 'deploy', 'grafana', 'br2k.json'), 'utf8'));
    const panels = [];
    const walk = (ps) => { for (const p of ps || []) { panels.push(p); walk(p.panels); } };
    walk(dash.panels);
    const titles = new Set(panels.map((p) => p.title));
    const vars = new Set(((dash.templating || {}).list || []).map((v) => v.name));
    for (const v of ['service', 'worker']) if (!vars.has(v)) fail(`deploy/grafana/br2k.json: no dashboard variable '${v}'`);
    const used = new Set();
    for (const p of panels) {
        for (const t of p.targets || []) {
            const ds = t.datasource || p.datasource || {};
            if ((ds.type || '') !== 'redis-datasource') fail(`deploy/grafana/br2k.json: panel '${p.title}' target ${t.refId}: not the redis-datasource`);
            if (t.type !== 'command' || !t.command) fail(`deploy/grafana/br2k.json: panel '${p.title}': expected a "command" query`);
            if (t.keyName && !t.keyName.startsWith('br2k:{$service}:'))
                fail(`deploy/grafana/br2k.json: panel '${p.title}': key ${t.keyName} is not a br2k:{$service}: key`);
            if (t.keyName) used.add(t.keyName.replace('br2k:{$service}:', ''));
        }
    }
    for (const k of ['SSI', 'Service-State', 'epoch', 'leader', 'backup', 'backup-last', 'metrics-$worker'])
        if (!used.has(k)) fail(`deploy/grafana/br2k.json: no panel reads br2k:{$service}:${k}`);
    const md = fs.readFileSync(path.join(SRC, 'schemas', 'metrics.md'), 'utf8');
    // the workers' rows come before the gateway section, the gateway's after
    const [mdWorkers, mdGateway = ''] = md.split(/^## Gateway hash/m);
    const rowsOf = (text) => {
        const r = new Map();
        for (const m of text.matchAll(/^\| `([^`]+)` \|(.*)$/gm)) r.set(m[1], m[2]);
        return r;
    };
    const rows = rowsOf(mdWorkers);
    const gsec = (keys.split(/^## Gateway hash/m)[1] || '').split(/^## /m)[0];
    const gfields = [...gsec.matchAll(/^\| `([a-z_0-9<>]+)` \|/gm)].map((m) => m[1]);
    if (gfields.length < 10) fail(`schemas/redis-keys.md: found only ${gfields.length} gateway hash fields`);
    if (!vars.has('gateway')) fail(`deploy/grafana/br2k.json: no dashboard variable 'gateway'`);
    if (!used.has('gateway-$gateway')) fail('deploy/grafana/br2k.json: no panel reads br2k:{$service}:gateway-$gateway');
    const grows = rowsOf(mdGateway);
    for (const f of gfields) {
        const row = grows.get(f);
        if (!row) { fail(`schemas/metrics.md: gateway field '${f}' (schemas/redis-keys.md) is missing`); continue; }
        const named = [...row.split('|').map((x) => x.trim()).filter(Boolean).pop().matchAll(/"([^"]+)"/g)].map((m) => m[1]);
        if (!named.length) fail(`schemas/metrics.md: gateway field '${f}' names no dashboard panel ("Title")`);
        for (const t of named) if (!titles.has(t)) fail(`schemas/metrics.md: '${f}': panel "${t}" is not in deploy/grafana/br2k.json`);
    }
    for (const f of fields) {
        const row = rows.get(f);
        if (!row) { fail(`schemas/metrics.md: metrics field '${f}' (schemas/redis-keys.md) is missing`); continue; }
        const panel = row.split('|').map((s) => s.trim()).filter(Boolean).pop();
        const named = [...panel.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
        if (!named.length) fail(`schemas/metrics.md: '${f}' names no dashboard panel ("Title")`);
        for (const t of named) if (!titles.has(t)) fail(`schemas/metrics.md: '${f}': panel "${t}" is not in deploy/grafana/br2k.json`);
    }
    if (failures.length === n) ok(`dashboard and schemas/metrics.md cover the ${fields.length} metrics fields, the ${gfields.length} gateway fields and the service keys`);
}

// ---------------------------------------------------------------- main

(async () => {
    try {
        YAML = require(path.join(SRC, 'node_modules', 'yaml'));
    } catch (e) {
        console.log('FAIL: the npm package yaml is missing: run scripts/install-deps');
        process.exit(1);
    }
    process.chdir(SRC); // module resolution of dynamic imports: node_modules of the checkout
    const progs = programInfo();
    ok(`programs read: ${Object.entries(progs).map(([b, p]) => `${b} ${p.env.size} env names`).join(', ')}`);
    const placeholders = new Map();
    for (const d of renderJs(path.join(K8S, 'base')))
        if (d.kind === 'Secret' && (d.metadata.annotations || {})['br2k.io/placeholder'] === 'true')
            placeholders.set(d.metadata.name, d);
    for (const overlay of OVERLAYS) {
        let r;
        try {
            r = render(overlay);
        } catch (e) {
            fail(`${overlay}: ${e.message}`);
            continue;
        }
        const n = failures.length;
        for (const d of r.docs) {
            if (!d.apiVersion || !d.kind || !d.metadata || !d.metadata.name) { fail(`${overlay}: a document without apiVersion/kind/metadata.name`); continue; }
            const M = await modelFor(d);
            if (!M) { fail(`${overlay}: ${idOf(d)}: no model for ${d.apiVersion} ${d.kind}`); continue; }
            try {
                new M(d).validate();
            } catch (e) {
                fail(`${overlay}: ${idOf(d)}: invalid: ${e.message}`);
            }
        }
        if (failures.length === n) ok(`${overlay}: ${r.docs.length} documents rendered by ${r.how}, each valid for its model`);
        checkOverlay(overlay, r.docs, progs, placeholders);
    }
    checkDashboard();
    console.log(`k8s_check: ${checks} passed, ${failures.length} failed`);
    process.exit(failures.length ? 1 : 0);
})().catch((e) => {
    console.log('FAIL: ' + (e && e.message ? e.message : e));
    process.exit(1);
});
