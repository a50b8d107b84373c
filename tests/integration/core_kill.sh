# core_kill.sh - the leader killed (SIGKILL) while requests keep coming,
# most likely in the middle of a batch: a new leader (epoch + 1) takes
# over; nothing is lost (every request has its result, SSI reaches the end)
# and nothing is applied twice (each survivor counted every record once,
# same digest). The killed worker, restarted, either refuses to continue
# (in-flight mark, I6) or catches up to the same digest.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"

start_redis
start_devkafka
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"

produce 5000 1000 load >"$T/produce.out" &
prod=$!; PIDS+=("$prod")
sleep 2
old=$(leader_id); epoch=$(leader_epoch)
kill -KILL "${WPID[$old]}"
wait "${WPID[$old]}" 2>/dev/null || true
wait_for 10 epoch_is $((epoch + 1)) || { show w1 w2 w3; fail "no new epoch"; }
new=$(leader_id)
pass "$old killed at LPI $(metric "$old" lpi): $new leads with epoch $((epoch + 1))"

wait "$prod" || fail "producer failed"
last=$(cat "$T/produce.out")
rest=()
for w in w1 w2 w3; do [ "$w" = "$old" ] || rest+=("$w"); done
wait_for 30 at "$last" "${rest[@]}" || { show w1 w2 w3; fail "survivors did not converge at $last"; }
[ "$(rc_ GET "br2k:{$SVC}:SSI")" = "$last" ] || fail "SSI is not $last"
n=$(result_count "")
[ "$n" -eq 5000 ] || fail "$n results for 5000 requests"
for w in "${rest[@]}"; do stop_worker "$w"; done
for w in "${rest[@]}"; do
    [ "$(noop_count "$w")" = $((last + 1)) ] || fail "$w applied $(noop_count "$w") records"
done
pass "nothing lost, nothing applied twice: ${rest[*]} at $last, 5000 results"

# a client that lost its answer in the kill sends the same request id again:
# the id's first result stays stored, and the client gets the result of its
# own record (the no-op application keeps no request-id table, so the
# resent record is applied on its own at its offset; an application with
# one, like InfoDID, answers a repeat: core_e2e.sh, core_badinput.sh)
for w in "${rest[@]}"; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader after the restart"
first=$(result_get load:10)
[ -n "$first" ] || fail "no stored result for load:10"
again=$(printf '{"v":1,"id":{"client":"load","seq":10},"op":"noop","payload":{},"ts":0,"sig":"0x"}' |
    "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --wait-ms 20000 2>&1) || fail "retry: $again"
if [ "$LOG_BACKEND" = redis ]; then # the same bytes: the log keeps one copy
    [ "$(echo "$again" | jq -cS .)" = "$(echo "$first" | jq -cS .)" ] ||
        fail "the retry got another result: $again, first $first"
    pass "a retry with the same request id and bytes gets the first result (one copy in the log)"
else
    off=$(echo "$again" | jq .offset)
    [ "$off" -gt "$(echo "$first" | jq .offset)" ] && [ "$(echo "$again" | jq -r .id)" = load:10 ] ||
        fail "the resend got another record's result: $again, first $first"
    [ "$(result_get load:10 | jq -cS .)" = "$(echo "$first" | jq -cS .)" ] ||
        fail "the first result of load:10 changed: $(result_get load:10)"
    [ "$(rc_ GET "br2k:{$SVC}:result:load:10@$off" | jq -cS .)" = "$(echo "$again" | jq -cS .)" ] ||
        fail "the resend's result is not under its offset $off"
    pass "a retry with the same request id: the first result stays, the client gets its own record's (offset $off)"
fi
# on Kafka the retry is a record of its own (applied as a repeat); the Redis
# Streams log does not append a known request id again
[ "$LOG_BACKEND" = redis ] || last=$((last + 1))
wait_for 30 at "$last" "${rest[@]}" || { show "${rest[@]}"; fail "survivors did not apply the retry"; }
for w in "${rest[@]}"; do stop_worker "$w"; done

start_worker "$old"
done_or_dead() { at "$last" "$old" || ! kill -0 "${WPID[$old]}" 2>/dev/null; }
wait_for 30 done_or_dead || true
rc=0
if kill -0 "${WPID[$old]}" 2>/dev/null && at "$last" "$old"; then
    pass "$old was killed between batches: restarted and caught up"
else
    kill -0 "${WPID[$old]}" 2>/dev/null && { show "$old"; fail "$old neither caught up nor stopped"; }
    wait "${WPID[$old]}" || rc=$?
    [ "$rc" -eq 3 ] || { show "$old"; fail "$old neither caught up nor refused (exit $rc)"; }
    grep -q "interrupted in the middle of records" "$T/$old.log" || fail "no clear I6 error"
    pass "$old was killed mid-batch: on restart it refuses to go on (I6, exit 3)"
fi
