/* sender.c - ordered, restart-safe transaction sending; see sender.h. */
#include "chain/sender.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain/ethtx.h"
#include "base/clock.h"
#include "base/hex.h"
#include "base/log.h"
#include "chain/registry.h"
#include "redis/keys.h"
#include "base/sig.h"

#define MAX_HASHES 32      /* transactions sent at one nonce (first + bumps) */
#define STOP_GRACE_MS 5000 /* after SIGTERM, wait this long for the receipt */
/* the chain counts our nonce as used but none of our hashes has a receipt
 * for this long: another transaction of the key took the nonce */
#define REPLACED_AFTER_MS 3000
#define FEES_TTL_MS 1000 /* reuse the fees read this recently */

struct bk_sender {
    bk_rpc *rpc;
    bk_redis *r;
    bk_eth_key key;
    bk_sender_conf conf;
    uint64_t chain_id;
    char inflight_key[300];
    uint64_t next_nonce; /* one past our last mined transaction; 0: unknown */
    uint64_t tip, base;  /* fees read at fees_at (ms), reused for FEES_TTL_MS */
    long long fees_at;
};

/* A transaction in flight: every hash sent at its nonce and the last raw
 * transaction (re-broadcast after a restart, decoded to bump its fees). */
typedef struct inflight {
    uint64_t nonce;
    char id[128];
    uint8_t hashes[MAX_HASHES][32];
    int nhashes;
    uint8_t *raw; /* owned */
    size_t raw_len;
} inflight;

static void inflight_release(inflight *f) {
    free(f->raw);
    f->raw = NULL;
    f->raw_len = 0;
}

/* Case-insensitive substring test, for node error messages. */
static int has_word(const char *msg, const char *word) {
    size_t n = strlen(word);
    for (const char *p = msg; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == word[i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static void set_code(bk_send_result *res, const char *code) {
    snprintf(res->code, sizeof(res->code), "%s", code);
}

/* ---- the in-flight record in Redis ---- */

static int record_save(bk_sender *s, const inflight *f, bk_err *e) {
    if (s->r == NULL)
        return BK_OK;
    json_t *hashes = json_array();
    for (int i = 0; i < f->nhashes; i++) {
        char h[67];
        bk_hex_encode(f->hashes[i], 32, 1, h);
        json_array_append_new(hashes, json_string(h));
    }
    char *raw = bk_hex_encode_alloc(f->raw, f->raw_len, 1);
    json_t *o = json_pack("{s:I, s:s, s:o, s:s?}", "nonce", (json_int_t)f->nonce, "id",
                          f->id, "hashes", hashes, "raw", raw);
    free(raw);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "cannot encode the in-flight record");
    redisReply *rep = bk_redis_command(s->r, e, "SET %s %s", s->inflight_key, text);
    free(text);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot record the transaction in flight in '%s'",
                             s->inflight_key);
    freeReplyObject(rep);
    return BK_OK;
}

static int record_clear(bk_sender *s, bk_err *e) {
    if (s->r == NULL)
        return BK_OK;
    redisReply *rep = bk_redis_command(s->r, e, "DEL %s", s->inflight_key);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot clear '%s'", s->inflight_key);
    freeReplyObject(rep);
    return BK_OK;
}

/* Load the record: *found 0 when there is none. */
static int record_load(bk_sender *s, inflight *f, int *found, bk_err *e) {
    memset(f, 0, sizeof(*f));
    *found = 0;
    if (s->r == NULL)
        return BK_OK;
    redisReply *rep = bk_redis_command(s->r, e, "GET %s", s->inflight_key);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", s->inflight_key);
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return BK_OK;
    }
    json_error_t je;
    json_t *o = json_loads(rep->str, 0, &je);
    freeReplyObject(rep);
    json_t *hashes = json_object_get(o, "hashes");
    const char *raw = json_string_value(json_object_get(o, "raw"));
    const char *id = json_string_value(json_object_get(o, "id"));
    int rc = BK_ERR;
    if (!json_is_integer(json_object_get(o, "nonce")) || !json_is_array(hashes) ||
        raw == NULL || json_array_size(hashes) == 0 ||
        json_array_size(hashes) > MAX_HASHES) {
        bk_err_set(e, BK_E_PROTO, "malformed in-flight record in '%s'", s->inflight_key);
        goto out;
    }
    f->nonce = (uint64_t)json_integer_value(json_object_get(o, "nonce"));
    snprintf(f->id, sizeof(f->id), "%s", id ? id : "");
    for (size_t i = 0; i < json_array_size(hashes); i++) {
        const char *h = json_string_value(json_array_get(hashes, i));
        if (h == NULL || bk_hex_decode_exact(h, f->hashes[i], 32, e) != BK_OK) {
            bk_err_set(e, BK_E_PROTO, "malformed hash in '%s'", s->inflight_key);
            goto out;
        }
    }
    f->nhashes = (int)json_array_size(hashes);
    if (bk_hex_decode_alloc(raw, &f->raw, &f->raw_len, e) != BK_OK) {
        bk_err_prefix(e, "malformed raw transaction in '%s'", s->inflight_key);
        goto out;
    }
    *found = 1;
    rc = BK_OK;
out:
    json_decref(o);
    return rc;
}

/* ---- set-up ---- */

bk_sender *bk_sender_new(bk_rpc *rpc, bk_redis *r, const bk_eth_key *key,
                         const bk_sender_conf *conf, bk_err *e) {
    bk_sender *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    s->rpc = rpc;
    s->r = r;
    s->key = *key;
    s->conf = *conf;
    if (s->conf.poll_ms <= 0)
        s->conf.poll_ms = 100;
    if (s->conf.stuck_ms <= 0)
        s->conf.stuck_ms = 30000;
    if (s->conf.timeout_ms <= 0)
        s->conf.timeout_ms = 300000;
    if (r != NULL &&
        bk_key_registry_inflight(s->inflight_key, sizeof(s->inflight_key),
                                 conf->svc ? conf->svc : "default", e) != BK_OK) {
        bk_sender_free(s);
        return NULL;
    }
    s->chain_id = conf->chain_id;
    if (s->chain_id == 0 && bk_rpc_chain_id(rpc, &s->chain_id, e) != BK_OK) {
        bk_err_prefix(e, "cannot read the chain id");
        bk_sender_free(s);
        return NULL;
    }
    return s;
}

void bk_sender_free(bk_sender *s) {
    if (s == NULL)
        return;
    bk_eth_key_clear(&s->key);
    free(s);
}

uint64_t bk_sender_chain_id(const bk_sender *s) {
    return s->chain_id;
}

const uint8_t *bk_sender_address(const bk_sender *s) {
    return s->key.addr;
}

/* ---- helpers over the node ---- */

/* eth_getTransactionCount(addr, "latest"): transactions mined. */
static int mined_count(bk_sender *s, uint64_t *n, bk_err *e) {
    char a[43];
    json_t *res = NULL;
    bk_hex_encode(s->key.addr, 20, 1, a);
    if (bk_rpc_call(s->rpc, "eth_getTransactionCount", json_pack("[s,s]", a, "latest"),
                    &res, e) != BK_OK)
        return BK_ERR;
    int rc = bk_rpc_parse_qty(res, n, e);
    json_decref(res);
    return rc;
}

/* Describe the revert of the last RPC error into res; 1 when it was one. */
static int take_revert(bk_sender *s, bk_send_result *res) {
    uint8_t *rev = NULL;
    size_t len = 0;
    if (bk_rpc_last_revert(s->rpc, &rev, &len, NULL) != BK_OK)
        return 0;
    bk_reg_revert_describe(rev, len, res->revert_name, sizeof(res->revert_name),
                           res->revert_line, sizeof(res->revert_line), res->revert_args,
                           NULL);
    free(rev);
    set_code(res, BK_SEND_REVERTED);
    return 1;
}

/* After a mined transaction reverted: replay it with eth_call on the state
 * before its block to learn the error. */
static void replay_revert(bk_sender *s, const bk_eth_tx *tx, uint64_t block,
                          bk_send_result *res) {
    char blk[24];
    snprintf(blk, sizeof(blk), "0x%" PRIx64, block > 0 ? block - 1 : 0);
    bk_rpc_msg m = {s->key.addr, tx->has_to ? tx->to : NULL, NULL, tx->data,
                    tx->data_len};
    uint8_t *out = NULL, *rev = NULL;
    size_t outlen = 0, revlen = 0;
    snprintf(res->revert_line, sizeof(res->revert_line), "reverted in block %" PRIu64,
             block);
    if (bk_rpc_call_contract(s->rpc, &m, blk, &out, &outlen, &rev, &revlen, NULL) !=
            BK_OK &&
        rev != NULL)
        bk_reg_revert_describe(rev, revlen, res->revert_name, sizeof(res->revert_name),
                               res->revert_line, sizeof(res->revert_line),
                               res->revert_args, NULL);
    free(out);
    free(rev);
    set_code(res, BK_SEND_REVERTED);
}

/* ---- waiting ---- */

/* Raise fees by 12.5% (at least 1 wei), and to the current market. */
static void bump_fees(bk_sender *s, bk_eth_tx *tx) {
    uint64_t tip = tx->max_priority_fee + tx->max_priority_fee / 8 + 1;
    uint64_t max = tx->max_fee + tx->max_fee / 8 + 1;
    uint64_t mtip = 0, base = 0;
    if (bk_rpc_priority_fee(s->rpc, &mtip, NULL) == BK_OK && mtip > tip)
        tip = mtip;
    if (bk_rpc_base_fee(s->rpc, &base, NULL) == BK_OK && 2 * base + tip > max)
        max = 2 * base + tip;
    if (max < tip)
        max = tip;
    if (s->conf.max_fee_cap > 0 && max > s->conf.max_fee_cap)
        max = s->conf.max_fee_cap > tx->max_fee ? s->conf.max_fee_cap : tx->max_fee;
    tx->max_priority_fee = tip;
    tx->max_fee = max;
}

/* Broadcast raw; "already known" and "nonce too low" (an earlier hash of
 * this nonce was mined) count as accepted. */
static int broadcast(bk_sender *s, const uint8_t *raw, size_t len, bk_err *e) {
    bk_err le;
    bk_err_clear(&le);
    if (bk_rpc_send_raw(s->rpc, raw, len, NULL, &le) == BK_OK)
        return BK_OK;
    if (has_word(le.msg, "already known") || has_word(le.msg, "alreadyknown") ||
        has_word(le.msg, "nonce too low"))
        return BK_OK;
    if (e != NULL)
        *e = le;
    return BK_ERR;
}

/* Replace the in-flight transaction with a fee-bumped one. */
static void bump(bk_sender *s, inflight *f, bk_send_result *res) {
    bk_eth_tx tx;
    bk_err e;
    if (f->nhashes >= MAX_HASHES ||
        bk_eth_tx_decode(f->raw, f->raw_len, &tx, NULL, NULL, &e) != BK_OK)
        return;
    uint64_t old_tip = tx.max_priority_fee, old_max = tx.max_fee;
    bump_fees(s, &tx);
    uint8_t *raw = NULL, hash[32];
    size_t len = 0;
    if (bk_eth_tx_sign(&tx, &s->key, &raw, &len, hash, &e) != BK_OK) {
        BK_WARN("cannot sign the fee bump of nonce %" PRIu64 ": %s", f->nonce, e.msg);
        return;
    }
    /* record first: a crash after the broadcast still knows the new hash */
    memcpy(f->hashes[f->nhashes++], hash, 32);
    free(f->raw);
    f->raw = raw;
    f->raw_len = len;
    if (record_save(s, f, &e) != BK_OK)
        BK_WARN("%s", e.msg);
    if (broadcast(s, raw, len, &e) != BK_OK) {
        BK_WARN("fee bump of nonce %" PRIu64 " refused: %s", f->nonce, e.msg);
        return;
    }
    res->bumps++;
    char h[67];
    bk_hex_encode(hash, 32, 1, h);
    BK_INFO("nonce %" PRIu64 " not mined in %d ms: fees raised (tip %" PRIu64
            " -> %" PRIu64 ", max %" PRIu64 " -> %" PRIu64 " wei/gas), now %s",
            f->nonce, s->conf.stuck_ms, old_tip, tx.max_priority_fee, old_max, tx.max_fee,
            h);
}

/* Look for a receipt of any hash sent at the nonce (newest first). */
static int find_receipt(bk_sender *s, const inflight *f, int *found, bk_eth_receipt *rc,
                        bk_err *e) {
    *found = 0;
    int fails = 0;
    for (int i = f->nhashes - 1; i >= 0 && !*found; i--)
        if (bk_rpc_receipt(s->rpc, f->hashes[i], found, rc, e) != BK_OK)
            fails++;
    return fails == f->nhashes ? BK_ERR : BK_OK;
}

/* Wait until the in-flight transaction f is mined and confirmed; then
 * clear its record. Fills res. */
static int await(bk_sender *s, const char *what, inflight *f, bk_send_result *res,
                 bk_err *e) {
    long long start = bk_mono_ms(), last_send = start, stop_at = 0, used_since = 0;
    long long next_nonce_check = start + 500;
    int nap = 5;
    bk_eth_receipt rc;
    res->nonce = f->nonce;
    for (;;) {
        int found = 0;
        bk_err le;
        bk_err_clear(&le);
        if (find_receipt(s, f, &found, &rc, &le) != BK_OK)
            BK_WARN("'%s': cannot read the receipt: %s", what, le.msg);
        if (found)
            break;
        long long now = bk_mono_ms();
        if (now >= next_nonce_check) {
            /* the nonce used by a transaction we did not send, or a receipt
             * that arrived between the two reads: look once more */
            uint64_t mined = 0;
            next_nonce_check = now + 500;
            if (mined_count(s, &mined, NULL) != BK_OK || mined <= f->nonce) {
                used_since = 0;
            } else if (used_since == 0) {
                used_since = now; /* a node may count the nonce before the receipt */
            } else if (now - used_since >= REPLACED_AFTER_MS) {
                if (find_receipt(s, f, &found, &rc, NULL) == BK_OK && found)
                    break;
                record_clear(s, NULL);
                s->next_nonce = mined;
                set_code(res, BK_SEND_REPLACED);
                return bk_err_set(e, BK_E_STATE,
                                  "'%s': nonce %" PRIu64
                                  " was used by another transaction of the same key",
                                  what, f->nonce);
            }
        }
        if (bk_sig_stop && stop_at == 0)
            stop_at = now + STOP_GRACE_MS;
        if (stop_at != 0 && now >= stop_at) {
            set_code(res, BK_SEND_STOPPED);
            return bk_err_set(e, BK_E_STATE,
                              "'%s': stopping with nonce %" PRIu64
                              " in flight (resumed at the next start)",
                              what, f->nonce);
        }
        if (now - start >= s->conf.timeout_ms) {
            set_code(res, BK_SEND_TIMEOUT);
            return bk_err_set(e, BK_E_TIMEOUT,
                              "'%s': nonce %" PRIu64 " not mined within %d ms (kept in "
                              "flight)",
                              what, f->nonce, s->conf.timeout_ms);
        }
        if (now - last_send >= s->conf.stuck_ms) {
            bump(s, f, res);
            last_send = now;
        }
        bk_sleep_ms(nap);
        nap = nap * 2 > s->conf.poll_ms ? s->conf.poll_ms : nap * 2;
    }
    memcpy(res->hash, rc.tx_hash, 32);
    res->block = rc.block_number;
    res->gas_used = rc.gas_used;
    res->has_contract = rc.has_contract;
    memcpy(res->contract, rc.contract_address, 20);
    /* confirmations: blocks that include or follow the receipt's */
    if (s->conf.confirmations > 1) {
        uint64_t want = rc.block_number + (uint64_t)s->conf.confirmations - 1, head = 0;
        long long t0 = bk_mono_ms();
        while (bk_rpc_block_number(s->rpc, &head, NULL) != BK_OK || head < want) {
            if (bk_mono_ms() - t0 >= s->conf.timeout_ms ||
                (bk_sig_stop && stop_at == 0 && bk_mono_ms() - t0 > STOP_GRACE_MS))
                break; /* mined; confirmations are a courtesy on shutdown */
            bk_sleep_ms(s->conf.poll_ms);
        }
    }
    if (record_clear(s, e) != BK_OK)
        BK_WARN("%s", e->msg);
    if (s->next_nonce < f->nonce + 1)
        s->next_nonce = f->nonce + 1;
    if (rc.status != 1) {
        bk_eth_tx tx;
        if (bk_eth_tx_decode(f->raw, f->raw_len, &tx, NULL, NULL, NULL) == BK_OK)
            replay_revert(s, &tx, rc.block_number, res);
        else
            set_code(res, BK_SEND_REVERTED);
        return bk_err_set(e, BK_E_REMOTE, "'%s' reverted: %s", what, res->revert_line);
    }
    return BK_OK;
}

int bk_sender_recover(bk_sender *s, int *had, bk_send_result *res, bk_err *e) {
    bk_send_result local;
    inflight f;
    int found = 0;
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    if (had != NULL)
        *had = 0;
    if (record_load(s, &f, &found, e) != BK_OK) {
        /* an unreadable record cannot be resumed: drop it, say so */
        BK_WARN("%s; dropped", e->msg);
        record_clear(s, NULL);
        return BK_OK;
    }
    if (!found)
        return BK_OK;
    if (had != NULL)
        *had = 1;
    char what[200];
    snprintf(what, sizeof(what), "in-flight nonce %" PRIu64 " (request %s)", f.nonce,
             f.id[0] ? f.id : "-");
    uint64_t mined = 0;
    int rc;
    if (mined_count(s, &mined, e) != BK_OK) {
        set_code(res, BK_SEND_RPC);
        rc = bk_err_prefix(e, "%s", what);
    } else {
        bk_err le;
        if (mined <= f.nonce && broadcast(s, f.raw, f.raw_len, &le) != BK_OK)
            BK_WARN("%s: re-broadcast refused: %s", what, le.msg);
        BK_INFO("%s: resuming (chain has mined %" PRIu64 " transactions of ours)", what,
                mined);
        rc = await(s, what, &f, res, e);
        if (rc != BK_OK && strcmp(res->code, BK_SEND_REPLACED) == 0) {
            BK_WARN("%s", e->msg);
            rc = BK_OK; /* nothing left in flight */
        }
    }
    inflight_release(&f);
    return rc;
}

/* Fill tx's gas and fees: estimateGas (a revert is reported, not sent),
 * the node's priority fee and twice the base fee. */
static int prepare(bk_sender *s, const char *what, bk_eth_tx *tx, bk_send_result *res,
                   bk_err *e) {
    bk_rpc_msg m = {s->key.addr, tx->has_to ? tx->to : NULL, NULL, tx->data,
                    tx->data_len};
    uint64_t gas = 0, tip = 0, base = 0;
    bk_err le;
    bk_err_clear(&le);
    if (bk_rpc_estimate_gas(s->rpc, &m, &gas, &le) != BK_OK) {
        if (le.code == BK_E_REMOTE && take_revert(s, res))
            return bk_err_set(e, BK_E_REMOTE, "'%s' reverted: %s", what,
                              res->revert_line);
        if (has_word(le.msg, "insufficient funds")) {
            set_code(res, BK_SEND_FUNDS);
            return bk_err_set(e, BK_E_REMOTE, "'%s': insufficient funds: %s", what,
                              le.msg);
        }
        set_code(res, BK_SEND_RPC);
        if (e != NULL)
            *e = le;
        return bk_err_prefix(e, "'%s': cannot estimate gas", what);
    }
    if (bk_mono_ms() - s->fees_at < FEES_TTL_MS) {
        tip = s->tip;
        base = s->base;
    } else if (bk_rpc_priority_fee(s->rpc, &tip, &le) != BK_OK ||
               bk_rpc_base_fee(s->rpc, &base, &le) != BK_OK) {
        set_code(res, BK_SEND_RPC);
        if (e != NULL)
            *e = le;
        return bk_err_prefix(e, "'%s': cannot read fees", what);
    } else {
        s->tip = tip;
        s->base = base;
        s->fees_at = bk_mono_ms();
    }
    tx->gas_limit = gas + gas / 4 + 5000;
    tx->max_priority_fee = tip;
    tx->max_fee = 2 * base + tip;
    return BK_OK;
}

int bk_sender_send(bk_sender *s, const char *what, const uint8_t *to, const uint8_t *data,
                   size_t len, const char *req_id, bk_send_result *res, bk_err *e) {
    memset(res, 0, sizeof(*res));
    int had = 0;
    bk_send_result prev;
    if (bk_sender_recover(s, &had, &prev, e) != BK_OK) {
        set_code(res, prev.code[0] ? prev.code : BK_SEND_RPC);
        return bk_err_prefix(e, "'%s' not sent, an earlier transaction is in flight",
                             what);
    }
    bk_eth_tx tx;
    memset(&tx, 0, sizeof(tx));
    tx.chain_id = s->chain_id;
    tx.has_to = to != NULL;
    if (to != NULL)
        memcpy(tx.to, to, 20);
    tx.data = data;
    tx.data_len = len;
    if (prepare(s, what, &tx, res, e) != BK_OK)
        return BK_ERR;
    for (int attempt = 0;; attempt++) {
        uint64_t pending = 0;
        bk_err le;
        /* the node's pending count only when ours is unknown (first send,
         * after a nonce error): after a failover, another node may not have
         * seen our last transaction yet */
        if (s->next_nonce == 0 &&
            bk_rpc_nonce(s->rpc, s->key.addr, &pending, &le) != BK_OK) {
            set_code(res, BK_SEND_RPC);
            if (e != NULL)
                *e = le;
            return bk_err_prefix(e, "'%s': cannot read the nonce", what);
        }
        tx.nonce = pending > s->next_nonce ? pending : s->next_nonce;
        inflight f;
        memset(&f, 0, sizeof(f));
        f.nonce = tx.nonce;
        snprintf(f.id, sizeof(f.id), "%s", req_id ? req_id : "");
        if (bk_eth_tx_sign(&tx, &s->key, &f.raw, &f.raw_len, f.hashes[0], e) != BK_OK) {
            set_code(res, BK_SEND_RPC);
            return bk_err_prefix(e, "'%s': cannot sign", what);
        }
        f.nhashes = 1;
        memcpy(res->hash, f.hashes[0], 32);
        res->nonce = f.nonce;
        if (record_save(s, &f, e) != BK_OK) {
            inflight_release(&f);
            set_code(res, BK_SEND_RPC);
            return BK_ERR;
        }
        bk_err_clear(&le);
        if (bk_rpc_send_raw(s->rpc, f.raw, f.raw_len, NULL, &le) != BK_OK &&
            !has_word(le.msg, "already known")) {
            record_clear(s, NULL);
            inflight_release(&f);
            if (has_word(le.msg, "nonce too low") && attempt == 0) {
                BK_WARN("'%s': nonce %" PRIu64 " too low; re-reading the nonce", what,
                        tx.nonce);
                s->next_nonce = 0;
                uint64_t mined = 0;
                if (mined_count(s, &mined, NULL) == BK_OK)
                    s->next_nonce = mined > tx.nonce + 1 ? mined : tx.nonce + 1;
                continue;
            }
            if (has_word(le.msg, "nonce too low"))
                set_code(res, BK_SEND_NONCE);
            else if (has_word(le.msg, "insufficient funds"))
                set_code(res, BK_SEND_FUNDS);
            else
                set_code(res, BK_SEND_RPC);
            if (e != NULL)
                *e = le;
            return bk_err_prefix(e, "'%s' refused by the node", what);
        }
        char h[67];
        bk_hex_encode(f.hashes[0], 32, 1, h);
        BK_DEBUG("'%s': sent nonce %" PRIu64 " as %s", what, f.nonce, h);
        int rc;
        if (s->conf.confirmations == 0) {
            /* fire and forget: the node has it */
            rc = record_clear(s, e);
            s->next_nonce = f.nonce + 1;
        } else {
            rc = await(s, what, &f, res, e);
        }
        inflight_release(&f);
        return rc;
    }
}
