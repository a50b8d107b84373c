# gateway_failover.sh - five clients through two gateways, the leader paused
# past its lease and one gateway killed mid-run: every client's request is
# acknowledged exactly once (a client that loses its gateway, or whose wait
# ends with 202, sends the same signed request again or polls its Location,
# through the other gateway), each is applied once (its result not a
# repeat, one DID each in InfoDID's index), and the replicas agree.
# The clients are curl; the requests are signed beforehand (br2k submit
# --dry-run with one key, here only to sign fast).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/gateway_helpers.bash"
APP=infodid
K=5 N=12

start_redis
start_devkafka
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_gateway a
start_gateway b
wait_for 15 ready_is "${GWURL[a]}" 200 || fail "gateway a not ready"
echo "$KEY" >"$T/client.key"
for i in $(seq "$K"); do
    for s in $(seq "$N"); do
        "$BIN/br2k" submit --dry-run --key-file "$T/client.key" --op register \
            --payload "{\"did\":\"did:example:c$i-$s\"}" --client "c$i" --seq "$s" \
            --ts 1700000000000 >"$T/req-c$i-$s.json"
    done
done

# client I: its N requests in order, first through gateway a (odd I) or b
client() {
    local i=$1 s g code url loc deadline
    local gws=("${GWURL[a]}" "${GWURL[b]}")
    g=$(((i + 1) % 2))
    for s in $(seq "$N"); do
        deadline=$((SECONDS + 60)) loc=
        while :; do
            [ "$SECONDS" -lt "$deadline" ] || { echo "c$i:$s not acknowledged in 60 s" >>"$T/failed"; return 1; }
            url=${gws[g]}
            if [ -z "$loc" ]; then
                code=$(curl -s -o "$T/c$i.body" -D "$T/c$i.h" -w '%{http_code}' -m 20 \
                    -H 'Content-Type: application/json' --data-binary "@$T/req-c$i-$s.json" \
                    "$url/v1/requests?wait_ms=2000") || code=000
            else
                code=$(curl -s -o "$T/c$i.body" -w '%{http_code}' -m 5 "$url$loc") || code=000
            fi
            case $code in
            200) break ;;
            202) loc=$(grep -i '^location:' "$T/c$i.h" | tr -d '\r' | cut -d' ' -f2) ;;
            404) sleep 0.1 ;; # polling: no result yet (back-off)
            *) g=$((1 - g)); echo "c$i:$s $code" >>"$T/switches"; sleep 0.1 ;;
            esac
        done
        [ "$(jq -r .status "$T/c$i.body")" = ok ] || { echo "c$i:$s: $(cat "$T/c$i.body")" >>"$T/failed"; return 1; }
        echo "c$i:$s" >>"$T/acks"
    done
}
: >"$T/acks"
cpids=()
for i in $(seq "$K"); do client "$i" & cpids+=($!); PIDS+=($!); done
acks_at_least() { [ "$(wc -l <"$T/acks")" -ge "$1" ]; }
wait_for 60 acks_at_least 10 || fail "clients stuck: $(wc -l <"$T/acks") acks"
old=$(leader_id); epoch=$(leader_epoch)
kill -STOP "${WPID[$old]}"
wait_for 15 epoch_is $((epoch + 1)) || fail "no new leader while $old is paused"
kill -CONT "${WPID[$old]}"
wait_for 60 acks_at_least 30 || fail "clients stuck after the pause: $(wc -l <"$T/acks") acks"
{ kill -KILL "${GWPID[a]}"; wait "${GWPID[a]}"; } 2>/dev/null || true
rc=0
for p in "${cpids[@]}"; do wait "$p" || rc=1; done
[ "$rc" = 0 ] || fail "a client failed: $(cat "$T/failed" 2>/dev/null)"
total=$((K * N))
[ "$(wc -l <"$T/acks")" = "$total" ] && [ "$(sort -u "$T/acks" | wc -l)" = "$total" ] ||
    fail "acks: $(wc -l <"$T/acks") lines, $(sort -u "$T/acks" | wc -l) distinct, expected $total"
for i in $(seq "$K"); do
    for s in $(seq "$N"); do
        r=$(result_get "c$i:$s")
        [ "$(jq -r '.status + " " + (.repeat | tostring)' <<<"$r")" = "ok false" ] || fail "c$i:$s: $r"
    done
done
wait_for 30 at "$(rc_ GET "br2k:{$SVC}:SSI")" w1 w2 w3 || { show w1 w2 w3; fail "replicas differ"; }
dids() { [ "$(rc_ HLEN "br2k:{$SVC}:ext:did")" = "$total" ]; }
wait_for 10 dids || fail "ext:did holds $(rc_ HLEN "br2k:{$SVC}:ext:did") DIDs, expected $total"
sw=$(wc -l <"$T/switches" 2>/dev/null || echo 0)
pass "$K clients, $total requests through 2 gateways: leader $old paused (epoch $epoch -> $((epoch + 1))), gateway a killed; each acknowledged once, applied once, replicas equal; $sw gateway switches"
rc=0
kill -TERM "${GWPID[b]}"; wait "${GWPID[b]}" || rc=$?
[ "$rc" = 0 ] || fail "gateway b exited $rc on SIGTERM (see its log)"
