# storage_s3.sh - the storage interface (common/backup/storage.h) on real back ends:
# file:// in a temporary directory (and on a full file system, as root), and
# s3:// against s3rver (npm @20minutes/s3rver, which checks SigV4
# signatures) on a free loopback port: the same checks for both, then a
# wrong secret, a missing bucket, a paused server and a stopped one, each
# reported in one clear line.
source "$(dirname "$0")/lib.sh"
DRV=$BUILD/tests/itest_storage
S3RVER_CLI=$SRC/node_modules/@20minutes/s3rver/lib/cli.js
[ -x "$DRV" ] || fail "$DRV is not built"
[ -f "$S3RVER_CLI" ] || fail "node_modules/@20minutes/s3rver is missing (npm ci)"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN BR2K_S3_SESSION_TOKEN
unset BR2K_S3_ACCESS_KEY_ID BR2K_S3_SECRET_ACCESS_KEY BR2K_S3_MAX_KEYS

# a tmpfs mounted below is unmounted before lib.sh's cleanup
FULL=$T/full
trap 'rc=$?; set +e; mountpoint -q "$FULL" 2>/dev/null && umount "$FULL"; (exit $rc); cleanup' EXIT

# ---- file:// ----
"$DRV" suite "file://$T/files/objs" >"$T/file-suite.log" 2>&1 ||
    { cat "$T/file-suite.log" >&2; fail "file:// suite"; }
pass "file:// suite: $(tail -n 1 "$T/file-suite.log")"

mkdir -p "$FULL"
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: file:// full disk: needs root to mount a small tmpfs (uid $(id -u))"
elif ! mount -t tmpfs -o size=256k br2k-itest "$FULL" 2>"$T/mount.log"; then
    echo "skip: file:// full disk: cannot mount a tmpfs here: $(head -n 1 "$T/mount.log")"
else
    "$DRV" fill "file://$FULL/objs" >"$T/fill.log" 2>&1 ||
        { cat "$T/fill.log" >&2; fail "file:// full disk"; }
    grep '^full disk:' "$T/fill.log"
    umount "$FULL"
    pass "file:// full disk: clear ENOSPC error, nothing left behind"
fi

# ---- s3:// against s3rver ----
# s3rver's continuation tokens use DES: Node 17+ needs OpenSSL's legacy provider
S3_PORT=$(free_port)
ENDPOINT=http://127.0.0.1:$S3_PORT
mkdir -p "$T/s3rver"
node --openssl-legacy-provider \
    -e 'require(process.argv[1]).parseAsync(process.argv.slice(2), {from: "user"})' \
    "$S3RVER_CLI" -d "$T/s3rver" -a 127.0.0.1 -p "$S3_PORT" --configure-bucket br2k-test \
    >"$T/s3rver.log" 2>&1 &
S3_PID=$!; PIDS+=("$S3_PID")
wait_for 30 curl -sf "$ENDPOINT/br2k-test?list-type=2" || fail "s3rver did not start"
pass "s3rver on $ENDPOINT (pid $S3_PID)"

# s3rver's one account: access key S3RVER, secret S3RVER
export BR2K_S3_ACCESS_KEY_ID=S3RVER BR2K_S3_SECRET_ACCESS_KEY=S3RVER
URL_A="s3://br2k-test/run-a?endpoint=$ENDPOINT&region=us-east-1&path_style=1"
# pages of 2 keys: listing 12 objects takes 6 requests with continuation tokens
BR2K_S3_MAX_KEYS=2 "$DRV" suite "$URL_A" >"$T/s3-suite.log" 2>&1 ||
    { cat "$T/s3-suite.log" >&2; fail "s3:// suite"; }
pass "s3:// suite (pages of 2): $(tail -n 1 "$T/s3-suite.log")"
[ "$(grep -c 'continuation-token=' "$T/s3rver.log")" -ge 5 ] ||
    fail "the listings did not page with continuation tokens"

# a nested prefix, default page size, the AWS_* variables as fallback
URL_B="s3://br2k-test/svc/run-b?endpoint=$ENDPOINT"
env -u BR2K_S3_ACCESS_KEY_ID -u BR2K_S3_SECRET_ACCESS_KEY \
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
    "$DRV" suite "$URL_B" >"$T/s3-suite-b.log" 2>&1 ||
    { cat "$T/s3-suite-b.log" >&2; fail "s3:// suite with a nested prefix"; }
pass "s3:// suite (nested prefix, AWS_* credentials): $(tail -n 1 "$T/s3-suite-b.log")"

# another client sees our objects under PREFIX/NAME (curl signs on its own)
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
got=$(curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
    -H "x-amz-content-sha256: $EMPTY_SHA" "$ENDPOINT/br2k-test/svc/run-b/a.b.c") ||
    fail "curl cannot GET svc/run-b/a.b.c"
[ "$got" = dots ] || fail "svc/run-b/a.b.c holds '$got'"
pass "objects are stored as PREFIX/NAME"

# a wrong secret, an unknown access key: refused by s3rver, said clearly
BR2K_S3_SECRET_ACCESS_KEY=wrong "$DRV" put-fails "$URL_A" io \
    "storage: s3://br2k-test/run-a: put 'refused.seal': access denied by the server (SignatureDoesNotMatch): check BR2K_S3_ACCESS_KEY_ID / BR2K_S3_SECRET_ACCESS_KEY" ||
    fail "wrong secret"
BR2K_S3_ACCESS_KEY_ID=NOSUCHKEY "$DRV" list-fails "$URL_A" io \
    "access denied by the server (InvalidAccessKeyId): check BR2K_S3_ACCESS_KEY_ID / BR2K_S3_SECRET_ACCESS_KEY" ||
    fail "unknown access key"
pass "wrong credentials reported clearly"

# no credentials at all: refused at open, naming the variables
env -u BR2K_S3_ACCESS_KEY_ID -u BR2K_S3_SECRET_ACCESS_KEY "$DRV" open-fails "$URL_A" inval \
    "no credentials: set BR2K_S3_ACCESS_KEY_ID and BR2K_S3_SECRET_ACCESS_KEY" ||
    fail "missing credentials"
pass "missing credentials refused at open"

# a bucket that does not exist
"$DRV" put-fails "s3://no-such-bucket/x?endpoint=$ENDPOINT" io \
    "bucket 'no-such-bucket' does not exist at $ENDPOINT (NoSuchBucket)" ||
    fail "missing bucket"
pass "missing bucket reported clearly"

# a server that accepts connections but never answers: fails in about 20 s
kill -STOP "$S3_PID"
start=$SECONDS
"$DRV" put-fails "$URL_A" io "cannot reach endpoint $ENDPOINT: Timeout was reached" ||
    { kill -CONT "$S3_PID"; fail "paused server"; }
took=$((SECONDS - start))
kill -CONT "$S3_PID"
[ "$took" -le 35 ] || fail "a dead server took ${took} s to be noticed"
pass "a paused server is reported within ${took} s"

# the server stopped: cannot reach
kill -TERM "$S3_PID"
wait "$S3_PID" 2>/dev/null || true
"$DRV" put-fails "$URL_A" io \
    "storage: s3://br2k-test/run-a: put 'refused.seal': cannot reach endpoint $ENDPOINT: Couldn't connect to server" ||
    fail "stopped server"
pass "a stopped server is reported as unreachable"
