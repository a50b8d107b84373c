# devkafka.sh - br2k-devkafka serves the Kafka protocol to kcat and to
# librdkafka (keys and headers included), and its fault commands are seen
# by a client, which recovers.
source "$(dirname "$0")/lib.sh"
TOPIC=br2k.default.requests

start_devkafka
grep -q "^bootstrap: $KAFKA\$" "$T/devkafka.out" || fail "bootstrap not printed on stdout"

# kcat lists the service topic with its single partition
kcat -L -b "$KAFKA" -t "$TOPIC" >"$T/meta.txt"
grep -q "topic \"$TOPIC\" with 1 partitions" "$T/meta.txt" || fail "kcat -L does not list $TOPIC"
pass "kcat -L lists $TOPIC"

# kcat round trip with key and headers
printf 'alice:{"op":"register"}\nbob:{"op":"update"}\n' |
    kcat -P -b "$KAFKA" -t "$TOPIC" -p 0 -K: -H br2k-schema=1 -H br2k-request-id=x:1
kcat -C -b "$KAFKA" -t "$TOPIC" -p 0 -o beginning -e -q -f '%o|%k|%h|%s\n' >"$T/kcat.txt"
diff -u - "$T/kcat.txt" <<'WANT' || fail "kcat round trip differs"
0|alice|br2k-schema=1,br2k-request-id=x:1|{"op":"register"}
1|bob|br2k-schema=1,br2k-request-id=x:1|{"op":"update"}
WANT
pass "kcat produce/consume with key and headers"

# librdkafka with BR2K's producer settings (idempotent, acks=all)
"$BUILD/tests/itest_devkafka" roundtrip "$KAFKA" "$TOPIC"
# ... and what librdkafka wrote, kcat reads (headers included)
kcat -C -b "$KAFKA" -t "$TOPIC" -p 0 -o 2 -c 1 -e -q -f '%k|%h|%s\n' >"$T/kcat2.txt"
[ "$(cat "$T/kcat2.txt")" = 'client-0|br2k-request-id=client-0:0,br2k-schema=1|{"n":0}' ] ||
    fail "kcat reads librdkafka's record differently: $(cat "$T/kcat2.txt")"
pass "librdkafka round trip, read back by kcat"

# faults: brokers down then up, injected produce errors
"$BUILD/tests/itest_devkafka" fault "$KAFKA" "$TOPIC" "$BIN/br2k-devkafka" "$KAFKA_CTL"
pass "faults seen and recovered from"

# bad control commands get a one-line error and a non-zero exit
out=$("$BIN/br2k-devkafka" ctl "$KAFKA_CTL" broker down 42) && fail "bad broker id accepted"
[ "$out" = "error invalid broker id '42'" ] || fail "unexpected reply '$out'"
out=$("$BIN/br2k-devkafka" ctl "$KAFKA_CTL" error Produce 1 NO_SUCH_ERROR) && fail "bad error accepted"
[ "$out" = "error unknown Kafka error 'NO_SUCH_ERROR'" ] || fail "unexpected reply '$out'"

# SIGTERM stops it cleanly (exit 0) and removes its control socket
kill -TERM "$KAFKA_PID"
rc=0; wait "$KAFKA_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "br2k-devkafka exited $rc on SIGTERM"
[ ! -e "$KAFKA_CTL" ] || fail "control socket left behind"
pass "clean stop on SIGTERM"
