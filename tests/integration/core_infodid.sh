# core_infodid.sh - the worker hosting InfoDID: 3 replicas, requests that
# InfoDID rejects (not signed) while the leader is paused past its lease:
# every request gets a rejected result, all replicas count the same
# rejections and reach the same digest. (Signed requests end to end:
# core_e2e.sh.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
APP=infodid

start_redis
start_devkafka
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
produce 1500 500 unsigned >"$T/produce.out" &
prod=$!; PIDS+=("$prod")
sleep 1
old=$(leader_id); epoch=$(leader_epoch)
kill -STOP "${WPID[$old]}"
wait_for 10 epoch_is $((epoch + 1)) || { show w1 w2 w3; fail "no new epoch"; }
sleep 0.5
kill -CONT "${WPID[$old]}"
wait "$prod" || fail "producer failed"
last=$(cat "$T/produce.out")
wait_for 30 at "$last" w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $last"; }
wait_for 5 role_is "$old" follower || fail "$old did not step down"
r=$(result_get unsigned:1499)
echo "$r" | grep -q '"status":"rejected"' || fail "unexpected result: $r"
n=$(result_count "")
[ "$n" -eq 1500 ] || fail "$n results for 1500 requests"
for w in w1 w2 w3; do stop_worker "$w"; done
pass "infodid: leader $old paused, 3 replicas at $last with one digest, 1500 rejected results"
