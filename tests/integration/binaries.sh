# binaries.sh - every binary answers --help and --version, and a bad
# option or value is a one-line error naming it, with exit status 2.
source "$(dirname "$0")/lib.sh"
for b in br2k br2k-worker br2k-backupd br2k-registryd br2k-gateway br2k-devkafka; do
    "$BIN/$b" --help >"$T/help.txt" || fail "$b --help failed"
    grep -q "^Usage: $b" "$T/help.txt" || fail "$b --help has no usage line"
    [ "$("$BIN/$b" --version)" = "$b 0.1.0" ] || fail "$b --version"
    rc=0; "$BIN/$b" --no-such-flag 2>"$T/err.txt" || rc=$?
    [ "$rc" -eq 2 ] || fail "$b: bad flag exit status $rc"
    [ "$(wc -l <"$T/err.txt")" -eq 1 ] || fail "$b: error is not one line"
    grep -q "unknown option '--no-such-flag'" "$T/err.txt" || fail "$b: $(cat "$T/err.txt")"
    rc=0; BR2K_LOG_LEVEL=loud "$BIN/$b" --help 2>"$T/err.txt" >/dev/null || rc=$?
    [ "$rc" -eq 2 ] || fail "$b: bad BR2K_LOG_LEVEL accepted"
    grep -q "invalid value 'loud' for 'log-level' (from BR2K_LOG_LEVEL)" "$T/err.txt" || fail "$b: $(cat "$T/err.txt")"
    pass "$b"
done
grep -q "about 5 MiB" <("$BIN/br2k-devkafka" --help) || fail "devkafka --help does not state its limits"
