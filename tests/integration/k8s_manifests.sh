# k8s_manifests.sh - the Kubernetes manifests (deploy/k8s), the Grafana
# dashboard and schemas/metrics.md are consistent with the binaries, without
# a cluster: tests/integration/k8s_check.js renders each overlay (with
# kubectl/kustomize too when present), validates every document with the
# kubernetes-models classes and checks env names, options, references,
# probes, selectors and BR2K's deployment rules.
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || fail "node is missing: run scripts/install-deps"
for m in yaml kubernetes-models @kubernetes-models/strimzi-kafka-operator; do
    [ -d "$SRC/node_modules/$m" ] || fail "npm package $m is missing: run scripts/install-deps"
done
for b in br2k br2k-worker br2k-backupd br2k-registryd br2k-gateway; do
    [ -x "$BIN/$b" ] || fail "$BIN/$b is not built"
done
node "$SRC/tests/integration/k8s_check.js" --src "$SRC" --bin "$BIN" || fail "k8s_check.js found problems (FAIL lines above)"
pass "k8s manifests"
