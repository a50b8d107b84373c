/* daemon.c - the registry channel server and the lease watcher; see
 * daemon.h. */
#include "daemon.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain/ethkey.h"
#include "base/clock.h"
#include "base/hex.h"
#include "redis/keys.h"
#include "base/log.h"
#include "redis/regchan.h"
#include "chain/registry.h"
#include "base/sig.h"

static json_t *fail(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *fail(const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "error", msg);
}

static json_t *ok_already(const char *what) {
    return json_pack("{s:b, s:b, s:s}", "ok", 1, "already", 1, "note", what);
}

/* ---- arguments ---- */

static const char *arg_str(json_t *args, const char *name) {
    return json_string_value(json_object_get(args, name));
}

static int arg_u64(json_t *args, const char *name, uint64_t *v) {
    json_t *j = json_object_get(args, name);
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return 0;
    *v = (uint64_t)json_integer_value(j);
    return 1;
}

/* The current fencing token equals `token`; else *reply is the refusal. */
static int fenced_ok(bk_regd *d, const char *method, long long token, json_t **reply) {
    int64_t cur = 0;
    bk_err e;
    if (token < 0) {
        *reply = fail("fenced", "'%s' needs the caller's fencing token", method);
        return 0;
    }
    if (bk_epoch_get(d->r, d->svc, &cur, &e) != BK_OK) {
        *reply = fail("redis", "'%s': cannot read the fencing token: %s", method, e.msg);
        return 0;
    }
    if (cur != token) {
        *reply = fail("fenced", "'%s': stale fencing token %lld, epoch is %" PRId64,
                      method, token, cur);
        return 0;
    }
    return 1;
}

/* ---- sending ---- */

/* Send calldata to the registry and turn the outcome into a reply; NULL
 * when stopping with the transaction in flight. */
static json_t *send_tx(bk_regd *d, const char *method, const uint8_t *cd, size_t len,
                       const char *id) {
    bk_send_result res;
    bk_err e;
    bk_err_clear(&e);
    long long t0 = bk_mono_ms();
    int rc = bk_sender_send(d->snd, method, d->registry, cd, len, id, &res, &e);
    char h[67];
    bk_hex_encode(res.hash, 32, 1, h);
    if (rc == BK_OK) {
        BK_INFO("%s: mined in block %" PRIu64 " (nonce %" PRIu64 ", %s, %lld ms)", method,
                res.block, res.nonce, h, bk_mono_ms() - t0);
        return json_pack("{s:b, s:s, s:I, s:I, s:I, s:i}", "ok", 1, "tx", h, "block",
                         (json_int_t)res.block, "nonce", (json_int_t)res.nonce, "gasUsed",
                         (json_int_t)res.gas_used, "bumps", res.bumps);
    }
    if (strcmp(res.code, BK_SEND_STOPPED) == 0)
        return NULL;
    BK_ERROR("%s", e.msg);
    if (strcmp(res.code, BK_SEND_REVERTED) == 0) {
        json_t *j = fail(res.revert_name[0] ? res.revert_name : "reverted", "%s", e.msg);
        json_object_set_new(j, "revert", json_string(res.revert_line));
        return j;
    }
    return fail(res.code[0] ? res.code : "error", "%s", e.msg);
}

static json_t *do_set_access_info(bk_regd *d, json_t *args, const char *id) {
    const char *b = arg_str(args, "bootstrap"), *t = arg_str(args, "topic");
    const char *res = arg_str(args, "results");
    uint8_t *cd = NULL;
    size_t len = 0;
    bk_err e;
    if (b == NULL || t == NULL)
        return fail("invalid",
                    "'setAccessInfo' needs string args 'bootstrap' and 'topic'");
    if (bk_reg_enc_set_access_info(b, t, res ? res : "", &cd, &len, &e) != BK_OK)
        return fail("invalid", "'setAccessInfo': %s", e.msg);
    json_t *j = send_tx(d, "setAccessInfo", cd, len, id);
    free(cd);
    return j;
}

static json_t *do_set_gateways(bk_regd *d, json_t *args, const char *id) {
    const char *urls = arg_str(args, "urls");
    uint8_t *cd = NULL;
    size_t len = 0;
    bk_err e;
    if (urls == NULL)
        return fail("invalid", "'setGateways' needs the string arg 'urls'");
    if (bk_reg_enc_set_gateways(urls, &cd, &len, &e) != BK_OK)
        return fail("invalid", "'setGateways': %s", e.msg);
    json_t *j = send_tx(d, "setGateways", cd, len, id);
    free(cd);
    return j;
}

static json_t *do_writer(bk_regd *d, const char *method, json_t *args, const char *id) {
    const char *a = arg_str(args, "account");
    uint8_t acc[20], *cd = NULL;
    size_t len = 0;
    bk_err e;
    if (a == NULL || bk_eth_addr_parse(a, acc, &e) != BK_OK)
        return fail("invalid", "'%s' needs an address in 'account'", method);
    int rc = strcmp(method, "addWriter") == 0
                 ? bk_reg_enc_add_writer(acc, &cd, &len, &e)
                 : bk_reg_enc_remove_writer(acc, &cd, &len, &e);
    if (rc != BK_OK)
        return fail("invalid", "'%s': %s", method, e.msg);
    json_t *j = send_tx(d, method, cd, len, id);
    free(cd);
    return j;
}

/* setLeader(worker, epoch, endpoint) unless the chain holds that epoch or a
 * newer one already. */
static json_t *send_leader(bk_regd *d, const char *worker, uint64_t epoch,
                           const char *endpoint, const char *id) {
    bk_reg_leader l;
    bk_err e;
    if (bk_reg_get_leader(d->rpc, d->registry, &l, &e) == BK_OK) {
        json_t *j = NULL;
        if (l.epoch == epoch && strcmp(l.worker_id, worker) == 0)
            j = ok_already("the chain holds this leader record");
        else if (l.epoch >= epoch)
            j = fail("StaleEpoch",
                     "'setLeader' not sent: the chain holds epoch %" PRIu64
                     " (worker '%s'), not older than %" PRIu64,
                     l.epoch, l.worker_id, epoch);
        if ((int64_t)l.epoch > d->leader_done)
            d->leader_done = (int64_t)l.epoch;
        bk_reg_leader_release(&l);
        if (j != NULL)
            return j;
    }
    uint8_t *cd = NULL;
    size_t len = 0;
    if (bk_reg_enc_set_leader(worker, epoch, endpoint, &cd, &len, &e) != BK_OK)
        return fail("invalid", "'setLeader': %s", e.msg);
    json_t *j = send_tx(d, "setLeader", cd, len, id);
    free(cd);
    if (j != NULL && json_is_true(json_object_get(j, "ok")) &&
        (int64_t)epoch > d->leader_done)
        d->leader_done = (int64_t)epoch;
    return j;
}

static json_t *do_set_leader(bk_regd *d, json_t *args, long long token, const char *id) {
    const char *w = arg_str(args, "worker"), *ep = arg_str(args, "endpoint");
    uint64_t epoch = 0;
    json_t *reply = NULL;
    if (w == NULL || w[0] == '\0' || !arg_u64(args, "epoch", &epoch))
        return fail("invalid",
                    "'setLeader' needs 'worker' (string) and 'epoch' (integer)");
    if (token >= 0 && (uint64_t)token != epoch)
        return fail("fenced", "'setLeader': token %lld is not the epoch %" PRIu64, token,
                    epoch);
    if (!fenced_ok(d, "setLeader", (long long)epoch, &reply))
        return reply;
    return send_leader(d, w, epoch, ep ? ep : "", id);
}

/* The reply "already done" when the chain holds this version with this
 * digest (a request repeated after a restart, or by a caller that timed
 * out); NULL otherwise. */
static json_t *append_done(bk_regd *d, uint64_t version, const uint8_t digest[32]) {
    int held = 0;
    uint64_t block = 0;
    bk_err e;
    if (bk_reg_has_backup(d->rpc, d->registry, version, digest, &held, &block, &e) !=
            BK_OK ||
        held != 1)
        return NULL;
    BK_INFO("appendBackupLog: version %" PRIu64 " with this digest is already on the "
            "chain (block %" PRIu64 ")",
            version, block);
    json_t *j = ok_already("the chain holds this backup version and digest");
    json_object_set_new(j, "block", json_integer((json_int_t)block));
    return j;
}

static json_t *do_append(bk_regd *d, json_t *args, long long token, const char *id) {
    uint64_t version = 0;
    const char *dg = arg_str(args, "digest"), *lg = arg_str(args, "log");
    const char *ar = arg_str(args, "archive"); /* optional: the history archive */
    uint8_t digest[32], archive[32], *log = NULL, *cd = NULL;
    size_t loglen = 0, len = 0;
    bk_err e;
    json_t *reply = NULL;
    if (!arg_u64(args, "version", &version) || dg == NULL || lg == NULL)
        return fail("invalid",
                    "'appendBackupLog' needs 'version' (integer), 'digest' and "
                    "'log' (0x-hex)");
    if (bk_hex_decode_exact(dg, digest, 32, &e) != BK_OK)
        return fail("invalid", "'appendBackupLog': 'digest' is not 32 bytes of hex");
    if (ar != NULL && bk_hex_decode_exact(ar, archive, 32, &e) != BK_OK)
        return fail("invalid", "'appendBackupLog': 'archive' is not 32 bytes of hex");
    if (bk_hex_decode_alloc(lg, &log, &loglen, &e) != BK_OK)
        return fail("invalid", "'appendBackupLog': 'log' is not hex");
    if (!fenced_ok(d, "appendBackupLog", token, &reply)) {
        json_t *done = append_done(d, version, digest);
        free(log);
        if (done == NULL)
            return reply;
        json_decref(reply);
        return done;
    }
    if ((ar != NULL ? bk_reg_enc_append_backup_log_archive(version, digest, archive, log,
                                                           loglen, &cd, &len, &e)
                    : bk_reg_enc_append_backup_log(version, digest, log, loglen, &cd,
                                                   &len, &e)) != BK_OK) {
        free(log);
        return fail("invalid", "'appendBackupLog': %s", e.msg);
    }
    free(log);
    reply = send_tx(d, "appendBackupLog", cd, len, id);
    free(cd);
    const char *code = json_string_value(json_object_get(reply, "code"));
    if (code != NULL && strcmp(code, "BadVersion") == 0) {
        json_t *done = append_done(d, version, digest);
        if (done != NULL) {
            json_decref(reply);
            return done;
        }
    }
    return reply;
}

/* pruneArchives(through): the operator's --archive-keep, recorded on chain
 * (fenced like the backup it follows). */
static json_t *do_prune(bk_regd *d, json_t *args, long long token, const char *id) {
    uint64_t through = 0;
    uint8_t *cd = NULL;
    size_t len = 0;
    bk_err e;
    json_t *reply = NULL;
    if (!arg_u64(args, "through", &through))
        return fail("invalid", "'pruneArchives' needs 'through' (integer)");
    if (!fenced_ok(d, "pruneArchives", token, &reply))
        return reply;
    if (bk_reg_enc_prune_archives(through, &cd, &len, &e) != BK_OK)
        return fail("invalid", "'pruneArchives': %s", e.msg);
    reply = send_tx(d, "pruneArchives", cd, len, id);
    free(cd);
    return reply;
}

json_t *bk_regd_handle(bk_regd *d, json_t *req) {
    const char *method = json_string_value(json_object_get(req, "method"));
    const char *id = json_string_value(json_object_get(req, "id"));
    json_t *args = json_object_get(req, "args");
    json_t *ep = json_object_get(req, "epoch");
    long long token = json_is_integer(ep) ? (long long)json_integer_value(ep) : -1;
    if (method == NULL)
        return fail("invalid", "request without a method");
    if (!json_is_object(args))
        return fail("invalid", "'%s': 'args' is not an object", method);
    BK_DEBUG("request %s: %s", id ? id : "-", method);
    if (strcmp(method, "setAccessInfo") == 0)
        return do_set_access_info(d, args, id);
    if (strcmp(method, "setLeader") == 0)
        return do_set_leader(d, args, token, id);
    if (strcmp(method, "appendBackupLog") == 0)
        return do_append(d, args, token, id);
    if (strcmp(method, "pruneArchives") == 0)
        return do_prune(d, args, token, id);
    if (strcmp(method, "setGateways") == 0)
        return do_set_gateways(d, args, id);
    if (strcmp(method, "addWriter") == 0 || strcmp(method, "removeWriter") == 0)
        return do_writer(d, method, args, id);
    return fail("invalid", "unknown method '%s'", method);
}

/* ---- the lease watcher ---- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The URLs the live gateways advertise (the field `url` of each hash
 * gateway-<id> of the set gateways that has not expired; producer/gateway/),
 * sorted, without repeats, comma-separated, into out[size] (those that do
 * not fit are left out). BK_ERR when Redis cannot be read. */
static int gateway_urls(bk_regd *d, char *out, size_t size, bk_err *e) {
    char k[BK_KEY_MAX];
    out[0] = '\0';
    if (bk_key_gateways(k, sizeof(k), d->svc, e) != BK_OK)
        return BK_ERR;
    redisReply *ids = bk_redis_command(d->r, e, "SMEMBERS %s", k);
    if (ids == NULL)
        return BK_ERR;
    char **urls = calloc(ids->elements + 1, sizeof(char *));
    size_t n = 0;
    int rc = urls != NULL ? BK_OK : bk_err_set(e, BK_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == BK_OK && i < ids->elements; i++) {
        if (ids->element[i]->type != REDIS_REPLY_STRING ||
            bk_key_gateway(k, sizeof(k), d->svc, ids->element[i]->str, NULL) != BK_OK)
            continue;
        redisReply *u = bk_redis_command(d->r, e, "HGET %s url", k);
        if (u == NULL)
            rc = BK_ERR;
        else if (u->type == REDIS_REPLY_STRING && u->len > 0 && !strchr(u->str, ','))
            urls[n++] = strdup(u->str);
        if (u != NULL)
            freeReplyObject(u);
    }
    freeReplyObject(ids);
    if (urls == NULL)
        return rc;
    qsort(urls, n, sizeof(char *), cmp_str);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (urls[i] == NULL ||
            (i > 0 && urls[i - 1] && strcmp(urls[i], urls[i - 1]) == 0))
            continue;
        size_t l = strlen(urls[i]);
        if (used + (used > 0) + l + 1 <= size) {
            if (used > 0)
                out[used++] = ',';
            memcpy(out + used, urls[i], l + 1);
            used += l;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
    return rc;
}

/* The endpoint of the leader record: what worker `id` published at
 * registry:endpoint:<id>, else the URLs of the live gateways (through which
 * the leader is reached), else "". */
static void endpoint_of(bk_regd *d, const char *id, char *out, size_t size) {
    char k[BK_KEY_MAX];
    bk_err e;
    out[0] = '\0';
    if (bk_key_registry_endpoint(k, sizeof(k), d->svc, id, NULL) != BK_OK)
        return;
    redisReply *rep = bk_redis_command(d->r, NULL, "GET %s", k);
    if (rep != NULL && rep->type == REDIS_REPLY_STRING)
        snprintf(out, size, "%s", rep->str);
    if (rep != NULL)
        freeReplyObject(rep);
    if (out[0] == '\0' && gateway_urls(d, out, size, &e) != BK_OK)
        out[0] = '\0';
}

void bk_regd_watch_gateways(bk_regd *d) {
    char urls[sizeof(d->gateways_done)];
    bk_err e;
    long long now = bk_mono_ms();
    if (!d->publish_gateways || now < d->gw_next_ms)
        return;
    d->gw_next_ms = now + 1000;
    if (gateway_urls(d, urls, sizeof(urls), &e) != BK_OK || urls[0] == '\0')
        return; /* none alive: keep the last list rather than publish none */
    if (d->gateways_known && strcmp(urls, d->gateways_done) == 0)
        return;
    if (!d->gateways_known) { /* what the chain holds, once */
        char *chain = NULL;
        if (bk_reg_get_gateways(d->rpc, d->registry, &chain, &e) != BK_OK) {
            BK_WARN("gateways: %s", e.msg);
            d->gw_next_ms = now + 10000;
            return;
        }
        snprintf(d->gateways_done, sizeof(d->gateways_done), "%s", chain);
        d->gateways_known = 1;
        free(chain);
        if (strcmp(urls, d->gateways_done) == 0)
            return;
    }
    uint8_t *cd = NULL;
    size_t len = 0;
    if (bk_reg_enc_set_gateways(urls, &cd, &len, &e) != BK_OK)
        return;
    BK_INFO("gateways now '%s' (were '%s'); recording them on the chain", urls,
            d->gateways_done);
    json_t *j = send_tx(d, "setGateways", cd, len, NULL);
    free(cd);
    if (j == NULL)
        return; /* stopping */
    if (json_is_true(json_object_get(j, "ok")))
        snprintf(d->gateways_done, sizeof(d->gateways_done), "%s", urls);
    else
        d->gw_next_ms = bk_mono_ms() + 5000;
    json_decref(j);
}

void bk_regd_watch_lease(bk_regd *d) {
    char id[BK_ID_MAX + 1], endpoint[256];
    int64_t epoch = 0;
    bk_err e;
    long long now = bk_mono_ms();
    if (now < d->lease_next_ms)
        return;
    d->lease_next_ms = now + d->lease_poll_ms;
    if (bk_lease_get(d->r, d->svc, id, &epoch, &e) != BK_OK) {
        if (now >= d->lease_warn_ms) { /* at most one line every 10 s */
            BK_WARN("lease watch: %s", e.msg);
            d->lease_warn_ms = now + 10000;
        }
        return;
    }
    if (id[0] == '\0' || epoch <= d->leader_done)
        return;
    endpoint_of(d, id, endpoint, sizeof(endpoint));
    BK_INFO("leader change: '%s' with epoch %" PRId64 "; recording it on the chain", id,
            epoch);
    json_t *j = send_leader(d, id, (uint64_t)epoch, endpoint, NULL);
    if (j == NULL)
        return; /* stopping */
    if (json_is_true(json_object_get(j, "ok")) ||
        strcmp(json_string_value(json_object_get(j, "code")), "StaleEpoch") == 0) {
        if (epoch > d->leader_done)
            d->leader_done = epoch;
        d->lease_backoff_ms = 0;
    } else {
        /* retry later, backing off to 10 s */
        d->lease_backoff_ms = d->lease_backoff_ms ? d->lease_backoff_ms * 2 : 500;
        if (d->lease_backoff_ms > 10000)
            d->lease_backoff_ms = 10000;
        d->lease_next_ms = bk_mono_ms() + d->lease_backoff_ms;
        BK_WARN("leader record for epoch %" PRId64 " not stored (%s); retry in %lld ms",
                epoch, json_string_value(json_object_get(j, "error")),
                d->lease_backoff_ms);
    }
    json_decref(j);
}

/* ---- the loop ---- */

int bk_regd_run(bk_regd *d) {
    while (!bk_sig_stop) {
        bk_regd_watch_lease(d);
        bk_regd_watch_gateways(d);
        if (bk_sig_stop)
            break;
        json_t *req = NULL;
        bk_err e;
        bk_err_clear(&e);
        if (bk_regchan_next(d->r, d->svc, d->lease_poll_ms, &req, &e) != BK_OK) {
            if (e.code == BK_E_PROTO) {
                BK_ERROR("skipped: %s", e.msg);
                d->failed++;
            } else {
                BK_WARN("registry channel: %s", e.msg);
                struct timespec ts = {0, 500000000L};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        if (req == NULL)
            continue;
        json_t *reply = bk_regd_handle(d, req);
        if (reply == NULL) {
            BK_INFO("stopping with request '%s' in flight; it is resumed at restart",
                    json_string_value(json_object_get(req, "id")));
            json_decref(req);
            break;
        }
        if (json_is_true(json_object_get(reply, "ok")))
            d->served++;
        else
            d->failed++;
        if (bk_regchan_reply(d->r, d->svc, req, reply, &e) != BK_OK)
            BK_ERROR("cannot reply to request '%s': %s",
                     json_string_value(json_object_get(req, "id")), e.msg);
        json_decref(reply);
        json_decref(req);
    }
    return 0;
}
