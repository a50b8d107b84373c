# gateway_page.sh - the gateway's status page in headless Chromium (Debian's
# chromium): the DOM, after the page's script has fetched /v1/status, shows
# the real leader id and epoch (read from the lease), SSI, and one row per
# member with its role; a screenshot is kept under the build's
# tests/output/ and its path printed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/gateway_helpers.bash"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || fail "chromium is not installed (scripts/install-deps)"

start_redis
start_devkafka
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_gateway page
URL=${GWURL[page]}
# some records, so that SSI and the LPIs are not all -1
"$BUILD/tests/itest_core" produce "$KAFKA" "$TOPIC" 50 50 page >/dev/null
wait_for 20 at 49 w1 w2 w3 || { show w1 w2 w3; fail "replicas not at 49"; }

chrome() {
    # a profile of its own under $T; no network but the gateway on loopback
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$T/chrome" --virtual-time-budget=5000 "$@" 2>>"$T/chromium.log"
}
dom_ok() {
    leader=$(leader_id) epoch=$(leader_epoch) # the lease now (a new leader is fine)
    chrome --dump-dom "$URL/" >"$T/dom.html" || return 1
    [ "$leader $epoch" = "$(leader_id) $(leader_epoch)" ] || return 1
    grep -q "<span id=\"leader\">$leader</span>" "$T/dom.html" &&
        grep -q "<span id=\"epoch\">$epoch</span>" "$T/dom.html" &&
        grep -q '<span id="ssi">49</span>' "$T/dom.html" &&
        [ "$(grep -o '<tr class="member" data-id="w[123]">' "$T/dom.html" | wc -l)" = 3 ] &&
        grep -q "data-id=\"$leader\"><td>$leader</td><td class=\"leader\">leader</td><td>49</td><td>0</td>" "$T/dom.html" &&
        grep -q "<tr class=\"gateway\" data-id=\"page\"><td>page</td><td>$URL</td><td>yes</td>" "$T/dom.html"
}
wait_for 60 dom_ok || { cat "$T/dom.html" >&2; fail "the page does not show leader $leader epoch $epoch, SSI 49, 3 members and the gateway"; }
OUT=$BUILD/tests/output
mkdir -p "$OUT"
rm -f "$OUT/gateway-page.png"
chrome --window-size=1000,600 --screenshot="$OUT/gateway-page.png" "$URL/" >/dev/null
[ -s "$OUT/gateway-page.png" ] || fail "no screenshot"
[ "$(head -c 8 "$OUT/gateway-page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "the screenshot is not a PNG"
echo "screenshot: $OUT/gateway-page.png"
pass "status page in headless chromium: leader $leader, epoch $epoch, SSI 49, 3 member rows, the gateway row"
# SIGTERM: exit 0 (under ASan: nothing leaked by the status it served)
rc=0
kill -TERM "${GWPID[page]}"; wait "${GWPID[page]}" || rc=$?
[ "$rc" = 0 ] || fail "the gateway exited $rc on SIGTERM (see its log)"
