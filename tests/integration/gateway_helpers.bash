# gateway_helpers.bash - helpers of the gateway tests (sourced after lib.sh
# and core_helpers.bash): start br2k-gateway, sign a request with `cast
# wallet sign` alone (no BR2K binary: the canonical form of
# schemas/README.md built with jq -cS), and call it with curl.
KEY=${KEY:-0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}
declare -A GWPID GWURL

# start_gateway NAME [ARGS]: sets GWPID[NAME], GWURL[NAME] once /healthz answers
start_gateway() {
    local name=$1; shift
    local port; port=$(free_port)
    "$BIN/br2k-gateway" --listen "127.0.0.1:$port" --id "$name" --service "$SVC" \
        --redis "$REDIS" --kafka "$KAFKA" "$@" >>"$T/gateway-$name.log" 2>&1 &
    GWPID[$name]=$!; PIDS+=("${GWPID[$name]}")
    GWURL[$name]=http://127.0.0.1:$port
    wait_for 10 curl -sf "${GWURL[$name]}/healthz" || fail "gateway $name did not start"
}

# signed CLIENT SEQ OP PAYLOAD-JSON: the signed request JSON on stdout (its
# "signer": the key's address in lowercase, part of what is signed)
signed() {
    local canon sig signer
    signer=$("$CAST" wallet address --private-key "$KEY" | tr '[:upper:]' '[:lower:]')
    canon=$(jq -cS -n --arg c "$1" --argjson s "$2" --arg op "$3" --argjson p "$4" \
        --arg signer "$signer" '{v:1,id:{client:$c,seq:$s},op:$op,payload:$p,signer:$signer,ts:1700000000000}')
    sig=$("$CAST" wallet sign --private-key "$KEY" "$canon")
    jq -c --arg sig "$sig" '. + {sig:$sig}' <<<"$canon"
}

# post URL BODY [CURL ARGS]: POST to URL/v1/requests; the body of the
# answer in $T/body, prints the HTTP status
post() {
    local url=$1 body=$2; shift 2
    curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "$body" "$@" "$url/v1/requests"
}

# expect STATUS CODE WHAT: the last answer ($T/body, status $got) was the
# JSON error CODE with HTTP STATUS
expect_error() {
    local want=$1 code=$2 what=$3
    [ "$got" = "$want" ] || fail "$what: HTTP $got, expected $want: $(cat "$T/body")"
    [ "$(jq -r .error.code "$T/body")" = "$code" ] ||
        fail "$what: error $(cat "$T/body"), expected code $code"
    [ -n "$(jq -r .error.message "$T/body")" ] || fail "$what: no message"
}

log_end() { log_offsets "$TOPIC" | cut -d' ' -f2; }
ready_is() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/readyz")" = "$2" ]; }
