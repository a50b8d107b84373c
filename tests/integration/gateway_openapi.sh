# gateway_openapi.sh - schemas/gateway.openapi.yaml parses with the pinned
# npm `yaml` package, is OpenAPI 3, names every route that br2k-gateway
# --help lists (with its method), and every path and method it names is
# served by a running gateway (never 404 not_found or 405). And the rate
# limit per remote address: 429 rate_limited with Retry-After past the burst.
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

# the rate per remote address (--rate-addr 1 --burst-addr 3): past the burst,
# 429 with Retry-After and a JSON error, on any route
port2=$(free_port)
"$BIN/br2k-gateway" --listen "127.0.0.1:$port2" --kafka 127.0.0.1:1 --redis 127.0.0.1:1 \
    --timeout-ms 200 --rate-addr 1 --burst-addr 3 >"$T/gateway2.log" 2>&1 &
PIDS+=($!)
wait_for 10 curl -sf "http://127.0.0.1:$port2/healthz" || fail "gateway 2 did not start"
n429=0
for i in $(seq 8); do
    got=$(curl -s -D "$T/h" -o "$T/body" -w '%{http_code}' "http://127.0.0.1:$port2/healthz")
    if [ "$got" = 429 ]; then
        n429=$((n429 + 1))
        grep -qi '^retry-after: 1' "$T/h" || fail "429 without Retry-After: $(cat "$T/h")"
        [ "$(jq -r .error.code "$T/body")" = rate_limited ] || fail "429: $(cat "$T/body")"
        grep -q "127.0.0.1 is over 1 requests a second" "$T/body" || fail "429: $(cat "$T/body")"
    fi
done
# (the start-up probe took one of the 3 tokens: 8 quick requests get the 2
# left plus one a second, so some are refused unless the 8 take over 5 s)
[ "$n429" -ge 1 ] || fail "no 429 from 8 requests at --rate-addr 1 --burst-addr 3"
pass "rate per address: $n429 of 8 quick requests refused with 429 rate_limited + Retry-After"
