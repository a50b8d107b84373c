# gateway_openapi.sh - schemas/gateway.openapi.yaml parses with the pinned
# npm `yaml` package, is OpenAPI 3, names every route that br2k-gateway
# --help lists (with its method), and every path and method it names is
# served by a running gateway (never 404 not_found or 405).
source "$(dirname "$0")/lib.sh"
SPEC=$SRC/schemas/gateway.openapi.yaml
NODE_PATH=$SRC/node_modules node -e '
const YAML = require("yaml"), fs = require("fs");
const doc = YAML.parse(fs.readFileSync(process.argv[1], "utf8"));
if (!/^3\./.test(doc.openapi)) throw new Error("not OpenAPI 3: " + doc.openapi);
for (const [p, ops] of Object.entries(doc.paths))
  for (const m of Object.keys(ops))
    if (["get","post","put","delete","patch","head"].includes(m)) console.log(m.toUpperCase() + " " + p);
' "$SPEC" >"$T/spec.routes" || fail "the spec does not parse"
# the routes the gateway says it serves: "  POST /v1/requests", "  GET  /healthz, /readyz"
"$BIN/br2k-gateway" --help | sed -n '/^Routes/,/^Errors/p' |
    sed -nE 's/^  (GET|POST) +([^ ]+).*/\1 \2/p' | sed -E 's#/CLIENT:SEQ#/{id}#' \
    >"$T/help.routes"
[ "$(wc -l <"$T/help.routes")" -ge 6 ] || fail "routes from --help: $(cat "$T/help.routes")"
while read -r m p; do
    grep -qx "$m $p" "$T/spec.routes" || fail "route $m $p is not in $SPEC"
done <"$T/help.routes"
# every route of the spec is served (a gateway with nothing behind it: the
# answers may be 503, never "no such route")
port=$(free_port)
"$BIN/br2k-gateway" --listen "127.0.0.1:$port" --kafka 127.0.0.1:1 --redis 127.0.0.1:1 \
    --timeout-ms 200 --wait-ms 0 >"$T/gateway.log" 2>&1 &
PIDS+=($!)
wait_for 10 curl -sf "http://127.0.0.1:$port/healthz" || fail "gateway did not start"
while read -r m p; do
    url=http://127.0.0.1:$port${p//\{id\}/x:1}
    args=(-X "$m")
    [ "$m" = POST ] && args+=(-H 'Content-Type: application/json' --data-binary '{}')
    got=$(curl -s -o "$T/body" -w '%{http_code}' "${args[@]}" "$url")
    case $got in 404 | 405)
        code=$(jq -r '.error.code // empty' "$T/body" 2>/dev/null || true)
        [ "$code" != not_found ] && [ "$code" != method_not_allowed ] || fail "$m $p: $got $code" ;;
    esac
done <"$T/spec.routes"
pass "OpenAPI spec: $(wc -l <"$T/spec.routes") routes, all served; the $(wc -l <"$T/help.routes") routes of --help are in it"
