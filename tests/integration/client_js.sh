# client_js.sh - the JavaScript client (producer/client-js, npm br2k-client)
# on a real stack: anvil with the registry, br2k-registryd recording the
# gateways, two br2k-gateways, three InfoDID workers. Five clients, each with
# its own key, know only the RPC URL and the contract address; they register
# a DID and update it, one request at a time, while the gateway they use (the
# first the registry lists) is killed (SIGKILL) and then the leader is paused
# past its lease. Every request gets
# its result and is applied exactly once (one stored result each, distinct
# first offsets, "repeat" only for resends), the replicas agree, and the
# clients re-discovered the gateways through the registry (the count is
# printed).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/gateway_helpers.bash"
APP=infodid
CLIENTS=5 PER_CLIENT=30
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
WRITER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
echo "$OWNER_KEY" >"$T/owner.key"; echo "$WRITER_KEY" >"$T/writer.key"; chmod 600 "$T"/*.key
command -v node >/dev/null || fail "node is not installed"

start_redis
start_devkafka
start_anvil
REG=$("$BIN/br2k" --eth-rpc "$ETH_RPC" registry deploy --key-file "$T/owner.key" \
    --writer-key-file "$T/writer.key" 2>"$T/deploy.log") || fail "deploy: $(cat "$T/deploy.log")"
"$BIN/br2k-registryd" --registry "$REG" --eth-rpc "$ETH_RPC" --redis "$REDIS" --service "$SVC" \
    --key-file "$T/writer.key" --poll-ms 20 >>"$T/registryd.log" 2>&1 &
PIDS+=($!)
start_gateway a
start_gateway b
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
want=$(printf '%s\n' "${GWURL[a]}" "${GWURL[b]}" | sort | paste -sd, -)
gws() { "$SRC/producer/client-js/bin/br2k-js" gateways --rpc "$ETH_RPC" --registry "$REG" 2>/dev/null | paste -sd, -; }
gws_are() { [ "$(gws)" = "$1" ]; }
wait_for 20 gws_are "$want" || fail "br2k-js gateways: '$(gws)', expected '$want'"
wait_for 15 ready_is "${GWURL[a]}" 200 || fail "gateway a not ready"
wait_for 15 ready_is "${GWURL[b]}" 200 || fail "gateway b not ready"
pass "br2k-js finds the gateways in the registry: $want"

# the clients: each registers its DID (seq 1), then adds one attribute per
# update (seq 2..N, so update N reports N-1 attributes); one request at a
# time per client, paced so that the faults below land mid-run
cat >"$T/drive.js" <<'JS'
'use strict';
const fs = require('node:fs');
// ethers as the package finds it (the repository's node_modules)
const { Wallet } = require(require.resolve('ethers', { paths: [process.env.CLIENT_JS] }));
const { Client, signRequest } = require(process.env.CLIENT_JS);
const [rpc, registry, nClients, perClient, progress] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function one(i) {
  const w = Wallet.createRandom();
  const c = new Client({ rpc, registry, deadlineMs: 60000, attemptMs: 1000, backoffMs: 100, backoffMaxMs: 1000 });
  const name = `js${i}`, did = `did:br2k:${w.address.toLowerCase()}`, out = [];
  for (let seq = 1; seq <= Number(perClient); seq++) {
    const req = seq === 1
      ? await signRequest(w, { client: name, seq, op: 'register', payload: { attrs: { name } } })
      : await signRequest(w, { client: name, seq, op: 'update', payload: { did, attrs: { [`a${seq}`]: String(seq) } } });
    const r = await c.submit(req);
    const good = r.id === `${name}:${seq}` && r.status === 'ok' &&
      (seq === 1 ? r.data.did === did : r.data.attrs === seq);
    if (!good) throw new Error(`${name}:${seq}: unexpected result ${JSON.stringify(r)}`);
    out.push({ id: r.id, offset: r.offset, repeat: r.repeat });
    fs.appendFileSync(progress, `${r.id}\n`);
    await sleep(60);
  }
  return { out, attempts: c.attempts, retries: c.retries, rediscoveries: c.rediscoveries };
}
Promise.all(Array.from({ length: Number(nClients) }, (_, i) => one(i))).then((all) => {
  const res = all.flatMap((a) => a.out);
  const sum = (k) => all.reduce((s, a) => s + a[k], 0);
  console.log(JSON.stringify({
    requests: Number(nClients) * Number(perClient), results: res.length,
    distinct_ids: new Set(res.map((r) => r.id)).size, distinct_offsets: new Set(res.map((r) => r.offset)).size,
    repeats: res.filter((r) => r.repeat).length,
    attempts: sum('attempts'), retries: sum('retries'), rediscoveries: sum('rediscoveries'),
  }));
}, (e) => { console.error(`drive: ${e.message}`); process.exit(1); });
JS
: >"$T/progress"
CLIENT_JS=$SRC/producer/client-js node "$T/drive.js" "$ETH_RPC" "$REG" "$CLIENTS" "$PER_CLIENT" \
    "$T/progress" >"$T/drive.out" 2>"$T/drive.log" &
drive=$!; PIDS+=("$drive")
total=$((CLIENTS * PER_CLIENT))
done_at_least() { [ "$(wc -l <"$T/progress")" -ge "$1" ]; }
# progress_to N: N results, or the clients ended (then say why)
progress_or_end() { done_at_least "$1" || ! kill -0 "$drive" 2>/dev/null; }
progress_to() {
    wait_for 60 progress_or_end "$1" || fail "the clients are stuck at $(wc -l <"$T/progress") results"
    kill -0 "$drive" 2>/dev/null || done_at_least "$total" || fail "the clients failed: $(tail -n 3 "$T/drive.log")"
}

progress_to $((total / 5))
# the one the clients use: the first the registry lists
victim=a; [ "${want%%,*}" = "${GWURL[a]}" ] || victim=b
kill -KILL "${GWPID[$victim]}"; wait "${GWPID[$victim]}" 2>/dev/null || true
pass "gateway $victim (${GWURL[$victim]}, first in the registry) killed after $(wc -l <"$T/progress") results"

progress_to $((total / 2))
old=$(leader_id); epoch=$(leader_epoch)
kill -STOP "${WPID[$old]}"
wait_for 15 epoch_is $((epoch + 1)) || { show w1 w2 w3; fail "no new epoch"; }
# a deliberate fault: the old leader stays paused one more second
sleep 1
kill -CONT "${WPID[$old]}"
pass "leader $old paused past its lease (epoch $epoch -> $((epoch + 1)), results so far $(wc -l <"$T/progress"))"

wait "$drive" || fail "the clients failed: $(tail -n 5 "$T/drive.log")"
sum=$(cat "$T/drive.out")
echo "clients: $sum"
for k in results distinct_ids distinct_offsets; do
    [ "$(jq -r ".$k" <<<"$sum")" = "$total" ] || fail "$k is not $total: $sum"
done
# the stored result of each request id is its first application (a resend
# has its own result under result:<id>@<offset>)
n=$(result_count js)
[ "$n" = "$total" ] || fail "$n stored results for $total requests"
first=$(result_all js | jq -s '[.[] | select(.repeat == false and .status == "ok")] | length')
[ "$first" = "$total" ] || fail "$first stored first results, expected $total"
rd=$(jq -r .rediscoveries <<<"$sum")
[ "$rd" -ge 1 ] || fail "no rediscovery through the registry: $sum"
pass "$total requests from $CLIENTS clients, each acknowledged once (distinct offsets);" \
    "$(jq -r .attempts <<<"$sum") attempts, $(jq -r .repeats <<<"$sum") answered as repeats," \
    "$rd rediscoveries through the registry"

ssi=$(rc_ GET "br2k:{$SVC}:SSI")
wait_for 30 at "$ssi" w1 w2 w3 || { show w1 w2 w3; fail "replicas differ"; }
pass "replicas w1 w2 w3 agree at SSI $ssi"
