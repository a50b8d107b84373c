/* regchan.c - see regchan.h. */
#include "redis/regchan.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/keys.h"

#define REPLY_TTL_S 600

int bk_regchan_call(bk_redis *r, const char *svc, const char *method, json_t *args,
                    long long epoch, int timeout_ms, json_t **reply, bk_err *e) {
    unsigned char rnd[12];
    char id[25], qkey[BK_KEY_MAX], rkey[BK_KEY_MAX];
    *reply = NULL;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return bk_err_set(e, BK_E_IO, "cannot draw a request id");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    if (bk_key_registry_queue(qkey, sizeof(qkey), svc, e) != BK_OK ||
        bk_key_registry_reply(rkey, sizeof(rkey), svc, id, e) != BK_OK)
        return BK_ERR;
    json_t *req = json_pack("{s:s, s:s, s:O, s:o}", "id", id, "method", method, "args",
                            args ? args : json_null(), "epoch",
                            epoch >= 0 ? json_integer(epoch) : json_null());
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "cannot encode the registry request");
    redisReply *rep = bk_redis_command(r, e, "LPUSH %s %s", qkey, text);
    free(text);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot queue registry call '%s'", method);
    freeReplyObject(rep);
    double secs = timeout_ms / 1000.0;
    rep = bk_redis_command(r, e, "BLPOP %s %.3f", rkey, secs < 0.001 ? 0.001 : secs);
    if (rep == NULL)
        return bk_err_prefix(e, "registry call '%s'", method);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        freeReplyObject(rep);
        return bk_err_set(e, BK_E_TIMEOUT,
                          "registry call '%s': no reply from registryd within %d ms",
                          method, timeout_ms);
    }
    json_error_t je;
    *reply = json_loads(rep->element[1]->str, 0, &je);
    freeReplyObject(rep);
    if (*reply == NULL || !json_is_object(*reply)) {
        json_decref(*reply);
        *reply = NULL;
        return bk_err_set(e, BK_E_PROTO, "registry call '%s': malformed reply", method);
    }
    return BK_OK;
}

static int parse_req(const char *text, json_t **req, bk_err *e) {
    json_error_t je;
    *req = json_loads(text, 0, &je);
    if (*req == NULL || !json_is_object(*req) ||
        !json_is_string(json_object_get(*req, "id")) ||
        !json_is_string(json_object_get(*req, "method"))) {
        json_decref(*req);
        *req = NULL;
        return bk_err_set(e, BK_E_PROTO, "malformed registry request '%.80s'", text);
    }
    json_object_set_new(*req, "_raw", json_string(text));
    return BK_OK;
}

int bk_regchan_next(bk_redis *r, const char *svc, int timeout_ms, json_t **req,
                    bk_err *e) {
    char qkey[BK_KEY_MAX], pkey[BK_KEY_MAX];
    *req = NULL;
    if (bk_key_registry_queue(qkey, sizeof(qkey), svc, e) != BK_OK ||
        bk_key_registry_processing(pkey, sizeof(pkey), svc, e) != BK_OK)
        return BK_ERR;
    /* a request a previous registryd left half done comes first */
    redisReply *rep = bk_redis_command(r, e, "LINDEX %s -1", pkey);
    if (rep == NULL)
        return BK_ERR;
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        double secs = timeout_ms / 1000.0;
        rep = bk_redis_command(r, e, "BLMOVE %s %s RIGHT LEFT %.3f", qkey, pkey,
                               secs < 0.001 ? 0.001 : secs);
        if (rep == NULL)
            return BK_ERR;
    }
    int rc = BK_OK;
    if (rep->type == REDIS_REPLY_STRING && parse_req(rep->str, req, e) != BK_OK) {
        /* never let one bad entry block the queue: drop it, report it */
        redisReply *rm =
            bk_redis_command(r, NULL, "LREM %s 1 %b", pkey, rep->str, (size_t)rep->len);
        if (rm != NULL)
            freeReplyObject(rm);
        rc = BK_ERR;
    }
    freeReplyObject(rep);
    return rc;
}

int bk_regchan_reply(bk_redis *r, const char *svc, json_t *req, json_t *reply,
                     bk_err *e) {
    char pkey[BK_KEY_MAX], rkey[BK_KEY_MAX];
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *raw = json_string_value(json_object_get(req, "_raw"));
    if (bk_key_registry_processing(pkey, sizeof(pkey), svc, e) != BK_OK ||
        bk_key_registry_reply(rkey, sizeof(rkey), svc, id ? id : "", e) != BK_OK)
        return BK_ERR;
    json_object_set_new(reply, "id", json_string(id));
    char *text = json_dumps(reply, JSON_COMPACT);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "cannot encode the registry reply");
    redisReply *rep = bk_redis_command(r, e, "LPUSH %s %s", rkey, text);
    free(text);
    if (rep == NULL)
        return BK_ERR;
    freeReplyObject(rep);
    rep = bk_redis_command(r, e, "EXPIRE %s %d", rkey, REPLY_TTL_S);
    if (rep == NULL)
        return BK_ERR;
    freeReplyObject(rep);
    rep = bk_redis_command(r, e, "LREM %s 1 %s", pkey, raw ? raw : "");
    if (rep == NULL)
        return BK_ERR;
    freeReplyObject(rep);
    return BK_OK;
}
