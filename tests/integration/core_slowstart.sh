# core_slowstart.sh - a worker that starts while the broker is slow to serve
# its first read waits it out (hardening issue, item 3). On start a worker
# reads the record at its LPI back to check it is the one it applied (I1);
# a read that times out on a busy broker is a condition to wait out while
# the log still holds the record, not a reason to stop. The broker's
# slowness is made exact with br2k-devkafka's fault channel: its next
# Fetch requests fail (retriable), so the first read takes longer than one
# read window of the worker.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"

start_redis
start_devkafka
start_worker w1
wait_for 15 has_leader || fail "no leader"
produce 50 0 first >/dev/null || fail "producer failed"
wait_for 30 at 49 w1 || { show w1; fail "w1 did not apply 50 records"; }
stop_worker w1

# about 25 s of failed fetches (librdkafka backs off 500 ms after each)
"$BIN/br2k-devkafka" ctl "$KAFKA_CTL" error Fetch 50 REQUEST_TIMED_OUT >/dev/null ||
    fail "cannot inject Fetch errors"
start_worker w1
read_back() { # record 49 read back, or w1 gone (then the wait is over)
    grep -q "record 49 matches the digest" "$T/w1.log" || ! kill -0 "${WPID[w1]}" 2>/dev/null
}
wait_for 120 read_back && grep -q "record 49 matches the digest" "$T/w1.log" || {
    tail -5 "$T/w1.log" >&2
    fail "w1 did not read record 49 back after the slow start"
}
kill -0 "${WPID[w1]}" 2>/dev/null || fail "w1 stopped during the slow start"
grep -q "record 49 of log '$TOPIC' not read after .* reading it again" "$T/w1.log" ||
    fail "the read was never slow: the fault did not take (no 'reading it again' warning)"
produce 10 0 more >/dev/null || fail "producer failed"
wait_for 30 at 59 w1 || { show w1; fail "w1 did not go on after the slow start"; }
stop_worker w1
pass "w1 waited out a slow broker on start (record 49 read again), then applied 10 more"
