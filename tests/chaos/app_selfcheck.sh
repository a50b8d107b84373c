#!/usr/bin/env bash
# app_selfcheck.sh - the checks of `chaos.sh --app node|python` can fail:
# chaos_client check on hand-made replicas of the two example applications
# (their state files, as the examples write them) must pass on consistent
# ones and report, with exit 1, a mint applied twice, a put applied twice,
# an acknowledged request lost and a replica that differs. No stack needed.
set -euo pipefail
BUILD=${BR2K_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
C=$BUILD/tests/chaos_client
[ -x "$C" ] || { echo "FAIL: $C is missing" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
python3 - <<'PY'
import json, os
def canon(o): return json.dumps(o, sort_keys=True, separators=(",", ":"))
reqs, seen, bal, kv, off = [], {}, {}, {}, 0
for c in ("p-0", "p-1"):
    for s in range(1, 11):
        rid = "%s:%d" % (c, s)
        seen[rid] = {"v": 1, "id": rid, "offset": off, "op": "mint", "status": "ok", "repeat": False}
        bal[c] = bal.get(c, 0) + s % 7 + 1  # chaos_client's amount(s)
        kv["%s/%d" % (c, s)] = {"owner": c, "value": "v%d" % s, "version": 1}
        reqs.append("%s\t%d\tok\t%d\t1\t2\t1\t1\t0\t-" % (c, s, off))
        off += 1
open("requests.tsv", "w").write("\n".join(reqs) + "\n")
open("faults.tsv", "w").write("")
node = {"lpi": off - 1, "balances": bal, "supply": sum(bal.values()), "seen": seen, "applied": off, "rejected": 0}
py = {"lpi": off - 1, "kv": kv, "seen": seen, "applied": off, "rejected": 0}
def write(d, f, st):
    os.makedirs(d)
    open(os.path.join(d, f), "w").write(canon(st))
for i in range(3):
    write("node%d" % i, "ledger.json", node)
    write("python%d" % i, "kv.json", py)
# the same mint applied twice on one replica (balance and supply above)
t = json.loads(canon(node)); t["balances"]["p-0"] += 3; t["supply"] += 3
write("node-twice", "ledger.json", t)
# a put applied twice (version 2)
t = json.loads(canon(py)); t["kv"]["p-1/4"]["version"] = 2
write("python-twice", "kv.json", t)
# an acknowledged put lost (its key and request id gone)
t = json.loads(canon(py)); del t["kv"]["p-0/3"]; del t["seen"]["p-0:3"]; t["applied"] -= 1
write("python-lost", "kv.json", t)
PY
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
# run APP WANT_RC PATTERN DIR...: the check's exit status and a report line
run() {
    local app=$1 want=$2 pat=$3 rc=0; shift 3
    "$C" check --app "$app" --requests requests.tsv --faults faults.tsv --json r.json \
        --ext-dids -1 --ext-active -1 "$@" >out 2>err || rc=$?
    [ "$rc" = "$want" ] || { cat out err; echo "FAIL: $app $*: exit $rc, expected $want" >&2; exit 1; }
    grep -Eq "$pat" out || { cat out err; echo "FAIL: $app $*: no line matching '$pat'" >&2; exit 1; }
    echo "ok: $app ${*}: exit $rc, $(grep -E "$pat" out | tr -s ' ' | cut -c1-80)"
}
run node 0 "result +PASS$" node0 node1 node2
run python 0 "result +PASS$" python0 python1 python2
run node 1 "applied twice \(must be 0\) +1$" node0 node1 node-twice
run python 1 "applied twice \(must be 0\) +1$" python0 python1 python-twice
run python 1 "acknowledged but lost \(must be 0\) +1$" python0 python-lost
run node 1 "replicas consistent \(SR\) +NO " node0 node-twice
echo "app_selfcheck: the node and python checks find a request applied twice, a lost one and a divergent replica"
