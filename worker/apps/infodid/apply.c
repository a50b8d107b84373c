/* apply.c - InfoDID's apply (infodid_int.h): the request's envelope,
 * repeat and signature checks, the operations register, update and
 * revoke with their reasons of rejection (INFODID.md), and the results. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "chain/ethkey.h"
#include "chain/keccak.h"
#include "chain/request.h"
#include "infodid_int.h"

const char *const bk_infodid_op_names[] = {"register", "update", "revoke", NULL};

/* ---- results ---- */

static char *dump_result(json_t *o) {
    char *s = o ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static char *result_rejected(const char *id, const char *op, int64_t offset,
                             const bk_reason *why) {
    json_t *o =
        json_pack("{s:i,s:o,s:I,s:o,s:s,s:b,s:{s:s,s:s}}", "v", 1, "id",
                  id && *id ? json_string(id) : json_null(), "offset", (json_int_t)offset,
                  "op", op ? json_string(op) : json_null(), "status", "rejected",
                  "repeat", 0, "reason", "code", why->code, "text", why->text);
    return dump_result(o);
}

static char *result_ok(const bk_request *req, int64_t offset, json_t *data) {
    json_t *o = json_pack("{s:i,s:s,s:I,s:s,s:s,s:b,s:o}", "v", 1, "id", req->id,
                          "offset", (json_int_t)offset, "op", req->op, "status", "ok",
                          "repeat", 0, "data", data);
    return dump_result(o);
}

static char *result_repeat(const char *first, int64_t offset) {
    json_t *o = json_loads(first, 0, NULL);
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "repeat", json_true()) != 0 ||
        json_object_set_new(o, "repeat_offset", json_integer(offset)) != 0) {
        json_decref(o);
        return NULL;
    }
    return dump_result(o);
}

/* ---- the operations ---- */

static void did_default(const uint8_t addr[20], char out[BK_INFODID_DID_MAX + 1]) {
    char hex[41];
    bk_hex_encode(addr, 20, 0, hex);
    snprintf(out, BK_INFODID_DID_MAX + 1, "did:br2k:0x%s", hex);
}

static int valid_did(const char *s, size_t n) {
    if (n < 7 || n > BK_INFODID_DID_MAX || strncmp(s, "did:", 4) != 0)
        return 0;
    size_t i = 4;
    while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
        i++;
    if (i == 4 || i >= n - 1 || s[i] != ':')
        return 0;
    for (i++; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '%' ||
                 c == '-';
        if (!ok)
            return 0;
    }
    return s[n - 1] != ':';
}

static int valid_key(const char *s, size_t n) {
    if (n == 0 || n > BK_INFODID_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Check the payload's keys against `allowed` (NULL-terminated). */
static int only_keys(const json_t *payload, const char *const *allowed, bk_reason *why) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)payload, k, x) {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], k) != 0)
            i++;
        if (allowed[i] == NULL)
            return bk_reason_set(why, "bad_payload", "unknown payload field '%.64s'", k);
    }
    return BK_OK;
}

/* The DID the request names: payload "did", or the signer's default. */
static int target_did(const bk_request *req, const uint8_t signer[20],
                      char did[BK_INFODID_DID_MAX + 1], bk_reason *why) {
    json_t *d = json_object_get(req->payload, "did");
    if (d == NULL) {
        did_default(signer, did);
        return BK_OK;
    }
    if (!json_is_string(d))
        return bk_reason_set(why, "bad_payload", "payload field 'did' must be a string");
    if (json_string_length(d) > BK_INFODID_DID_MAX)
        return bk_reason_set(why, "oversize", "did is longer than %d bytes",
                             BK_INFODID_DID_MAX);
    if (!valid_did(json_string_value(d), json_string_length(d)))
        return bk_reason_set(why, "bad_payload", "'%.128s' is not a valid did",
                             json_string_value(d));
    snprintf(did, BK_INFODID_DID_MAX + 1, "%s", json_string_value(d));
    return BK_OK;
}

/* Validate an attribute object; nulls allowed only when `allow_null`. */
static int check_attrs(const json_t *attrs, int allow_null, bk_reason *why) {
    if (!json_is_object(attrs))
        return bk_reason_set(why, "bad_payload",
                             "payload field 'attrs' must be an object");
    if (json_object_size(attrs) > BK_INFODID_ATTRS_MAX)
        return bk_reason_set(why, "oversize", "more than %d attributes",
                             BK_INFODID_ATTRS_MAX);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)attrs, k, v) {
        if (!valid_key(k, strlen(k)))
            return bk_reason_set(
                why, strlen(k) > BK_INFODID_KEY_MAX ? "oversize" : "bad_payload",
                "attribute name '%.64s' must be 1 to %d characters of "
                "A-Z a-z 0-9 . _ -",
                k, BK_INFODID_KEY_MAX);
        if (json_is_null(v) && allow_null)
            continue;
        if (!json_is_string(v))
            return bk_reason_set(why, "bad_payload", "attribute '%s' must be a string",
                                 k);
        if (json_string_length(v) > BK_INFODID_VALUE_MAX ||
            memchr(json_string_value(v), 0, json_string_length(v)) != NULL)
            return bk_reason_set(why, "oversize",
                                 "attribute '%s' is longer than %d bytes", k,
                                 BK_INFODID_VALUE_MAX);
    }
    return BK_OK;
}

/* Fill d->attrs from a JSON object of strings, sorted by name. */
static int set_attrs(did_rec *d, const json_t *attrs) {
    size_t n = json_object_size(attrs);
    d->attrs = calloc(n ? n : 1, sizeof(*d->attrs));
    if (d->attrs == NULL)
        return BK_ERR;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)attrs, k, v) {
        if (json_is_null(v))
            continue;
        did_attr *t = &d->attrs[d->nattrs];
        t->k = strdup(k);
        t->v = strdup(json_string_value(v));
        d->nattrs++;
        if (t->k == NULL || t->v == NULL)
            return BK_ERR;
    }
    qsort(d->attrs, d->nattrs, sizeof(*d->attrs), idd_cmp_attr);
    return BK_OK;
}

static did_rec *did_new(const char *did) {
    did_rec *d = calloc(1, sizeof(*d));
    if (d != NULL)
        d->key = strdup(did);
    if (d != NULL && d->key == NULL) {
        free(d);
        d = NULL;
    }
    return d;
}

/* Each operation returns BK_OK with *nd (the DID's new record) and *data
 * (the result data) set, a rejection (BK_ERR, `why` set, nothing set), or
 * sets *oom when out of memory. */
typedef struct opctx {
    br2k_app *a;
    const bk_request *req;
    int64_t offset;
    const uint8_t *signer;
    did_rec *nd;
    json_t *data;
    int oom;
} opctx;

static json_t *ctrl_data(const did_rec *d, int64_t active) {
    char addr[43];
    bk_eth_addr_hex(d->ctrl, addr);
    return json_pack("{s:s,s:s,s:I}", "did", d->key, "controller", addr, "active",
                     (json_int_t)active);
}

static int op_register(opctx *c, bk_reason *why) {
    static const char *const keys[] = {"did", "attrs", NULL};
    char did[BK_INFODID_DID_MAX + 1];
    if (only_keys(c->req->payload, keys, why) != BK_OK ||
        target_did(c->req, c->signer, did, why) != BK_OK)
        return BK_ERR;
    if (strncmp(did, "did:br2k:", 9) == 0) {
        char own[BK_INFODID_DID_MAX + 1];
        did_default(c->signer, own);
        size_t n = strlen(own);
        if (strncmp(did, own, n) != 0 || (did[n] != '\0' && did[n] != ':'))
            return bk_reason_set(why, "not_controller",
                                 "'%s' belongs to another controller than the signer",
                                 did);
    }
    json_t *attrs = json_object_get(c->req->payload, "attrs");
    json_t *empty = json_object();
    if (attrs == NULL)
        attrs = empty;
    int rc = check_attrs(attrs, 0, why);
    if (rc == BK_OK && idd_map_get(&c->a->st.dids, did) != NULL)
        rc = bk_reason_set(why, "already_registered", "'%s' is already registered", did);
    if (rc == BK_OK) {
        did_rec *d = did_new(did);
        if (d == NULL || set_attrs(d, attrs) != BK_OK) {
            idd_did_free(d);
            c->oom = 1;
        } else {
            memcpy(d->ctrl, c->signer, 20);
            d->created_ts = d->updated_ts = c->req->ts;
            d->created_off = d->updated_off = c->offset;
            c->nd = d;
            c->data = ctrl_data(d, c->a->st.active + 1);
            c->oom = c->data == NULL;
        }
    }
    json_decref(empty);
    return rc;
}

/* The DID a request may change: exists, signed by its controller, active. */
static const did_rec *owned_did(opctx *c, char did[BK_INFODID_DID_MAX + 1],
                                bk_reason *why) {
    if (target_did(c->req, c->signer, did, why) != BK_OK)
        return NULL;
    const did_rec *d = idd_map_get(&c->a->st.dids, did);
    if (d == NULL) {
        bk_reason_set(why, "unknown_did", "'%s' is not registered", did);
        return NULL;
    }
    if (memcmp(d->ctrl, c->signer, 20) != 0) {
        bk_reason_set(why, "not_controller",
                      "'%s' is not signed by the controller of '%s'", c->req->id, did);
        return NULL;
    }
    if (d->revoked) {
        bk_reason_set(why, "revoked", "'%s' is revoked", did);
        return NULL;
    }
    return d;
}

/* A copy of `d` without its attributes, updated at this request. */
static did_rec *did_touch(const opctx *c, const did_rec *d) {
    did_rec *n = did_new(d->key);
    if (n == NULL)
        return NULL;
    memcpy(n->ctrl, d->ctrl, 20);
    n->revoked = d->revoked;
    n->created_ts = d->created_ts;
    n->created_off = d->created_off;
    n->updated_ts = c->req->ts;
    n->updated_off = c->offset;
    return n;
}

static int op_update(opctx *c, bk_reason *why) {
    static const char *const keys[] = {"did", "attrs", "mode", NULL};
    if (only_keys(c->req->payload, keys, why) != BK_OK)
        return BK_ERR;
    json_t *mode = json_object_get(c->req->payload, "mode");
    int replace = 0;
    if (mode != NULL) {
        const char *m = json_string_value(mode);
        if (m == NULL || (strcmp(m, "merge") != 0 && strcmp(m, "replace") != 0))
            return bk_reason_set(why, "bad_payload",
                                 "payload field 'mode' must be \"merge\" or \"replace\"");
        replace = strcmp(m, "replace") == 0;
    }
    json_t *attrs = json_object_get(c->req->payload, "attrs");
    if (attrs == NULL)
        return bk_reason_set(why, "bad_payload", "missing payload field 'attrs'");
    if (check_attrs(attrs, !replace, why) != BK_OK)
        return BK_ERR;
    char did[BK_INFODID_DID_MAX + 1];
    const did_rec *d = owned_did(c, did, why);
    if (d == NULL)
        return BK_ERR;
    json_t *merged = json_object();
    if (merged == NULL) {
        c->oom = 1;
        return BK_ERR;
    }
    for (uint32_t i = 0; !replace && i < d->nattrs; i++)
        json_object_set_new(merged, d->attrs[i].k, json_string(d->attrs[i].v));
    const char *k;
    json_t *v;
    json_object_foreach(attrs, k, v) {
        if (json_is_null(v))
            json_object_del(merged, k);
        else
            json_object_set(merged, k, v);
    }
    int rc = BK_OK;
    if (json_object_size(merged) > BK_INFODID_ATTRS_MAX) {
        rc = bk_reason_set(why, "oversize", "'%s' would have more than %d attributes",
                           did, BK_INFODID_ATTRS_MAX);
    } else {
        did_rec *n = did_touch(c, d);
        if (n == NULL || set_attrs(n, merged) != BK_OK) {
            idd_did_free(n);
            c->oom = 1;
        } else {
            c->nd = n;
            c->data = json_pack("{s:s,s:i}", "did", did, "attrs", (int)n->nattrs);
            c->oom = c->data == NULL;
        }
    }
    json_decref(merged);
    return rc;
}

static int op_revoke(opctx *c, bk_reason *why) {
    static const char *const keys[] = {"did", NULL};
    if (only_keys(c->req->payload, keys, why) != BK_OK)
        return BK_ERR;
    char did[BK_INFODID_DID_MAX + 1];
    const did_rec *d = owned_did(c, did, why);
    if (d == NULL)
        return BK_ERR;
    did_rec *n = did_touch(c, d);
    if (n != NULL)
        n->attrs = calloc(d->nattrs ? d->nattrs : 1, sizeof(did_attr));
    if (n == NULL || n->attrs == NULL) {
        idd_did_free(n);
        c->oom = 1;
        return BK_OK;
    }
    for (uint32_t i = 0; i < d->nattrs; i++) {
        n->attrs[i].k = strdup(d->attrs[i].k);
        n->attrs[i].v = strdup(d->attrs[i].v);
        n->nattrs = i + 1;
        if (n->attrs[i].k == NULL || n->attrs[i].v == NULL) {
            idd_did_free(n);
            c->oom = 1;
            return BK_OK;
        }
    }
    n->revoked = 1;
    c->nd = n;
    c->data = ctrl_data(n, c->a->st.active - 1);
    c->oom = c->data == NULL;
    return BK_OK;
}

static int finish(br2k_app *a, int64_t offset, char *res, char **result, bk_err *e) {
    if (res == NULL)
        return bk_err_set(e, BK_E_NOMEM,
                          "infodid: cannot build the result: out of memory");
    a->lpi = offset;
    *result = res;
    return BK_OK;
}

int idd_apply(br2k_app *a, int64_t offset, const void *rec, size_t len, char **result,
              int *applied, bk_err *e) {
    *result = NULL;
    *applied = 0;
    if (offset <= a->lpi)
        return bk_err_set(e, BK_E_STATE,
                          "infodid: offset %" PRId64 " is not after the lpi %" PRId64,
                          offset, a->lpi);
    bk_request req;
    bk_reason why;
    if (bk_request_parse(rec, len, a->limit, bk_infodid_op_names, &req, &why) != BK_OK)
        return finish(a, offset, result_rejected(req.id, NULL, offset, &why), result, e);

    /* A request id seen before: the same signed request is a repeat. */
    char *canon = NULL;
    size_t clen = 0;
    if (bk_request_canonical(&req, &canon, &clen, e) != BK_OK) {
        bk_request_release(&req);
        return BK_ERR;
    }
    uint8_t *hin = malloc(clen + 65);
    if (hin == NULL) {
        free(canon);
        bk_request_release(&req);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    memcpy(hin, canon, clen);
    memcpy(hin + clen, req.sig, 65);
    uint8_t h[32];
    bk_keccak256(hin, clen + 65, h);
    free(hin);
    const id_rec *seen = idd_map_get(&a->st.ids, req.id);
    if (seen != NULL) {
        char *res;
        if (memcmp(seen->h, h, 32) == 0) {
            res = result_repeat(seen->result, offset);
        } else {
            bk_reason_set(&why, "duplicate_id",
                          "request id '%s' was already used by another request", req.id);
            res = result_rejected(req.id, req.op, offset, &why);
        }
        free(canon);
        bk_request_release(&req);
        return finish(a, offset, res, result, e);
    }
    /* An id the window dropped (or one below it that was never seen: the
     * table cannot tell them apart): a retry too late to be told from a
     * first try. Refused, so that it is never applied twice. */
    int64_t dropped = idd_state_dropped_seq(&a->st, req.client);
    if (req.seq <= dropped) {
        bk_reason_set(&why, "expired",
                      "request id '%s' expired: this client's ids up to seq %" PRId64
                      " are older than the last %" PRId64 " records, no longer kept",
                      req.id, dropped, a->st.window);
        char *res = result_rejected(req.id, req.op, offset, &why);
        free(canon);
        bk_request_release(&req);
        return finish(a, offset, res, result, e);
    }

    uint8_t signer[20];
    bk_err sub;
    bk_err_clear(&sub);
    int sig_ok = bk_request_recover(&req, canon, clen, signer, &sub);
    free(canon);
    if (sig_ok != BK_OK) {
        if (sub.code == BK_E_NOMEM) {
            bk_request_release(&req);
            *e = sub;
            return BK_ERR;
        }
        bk_reason_set(&why, "bad_signature", "%s", sub.msg);
        char *res = result_rejected(req.id, req.op, offset, &why);
        bk_request_release(&req);
        return finish(a, offset, res, result, e);
    }
    /* the request names its signer: a signature that recovers to another
     * address (a corrupted or forged one) is refused, never taken as some
     * random controller */
    if (!req.has_signer || memcmp(signer, req.signer, 20) != 0) {
        char got[43], want[43] = "";
        bk_eth_addr_hex(signer, got);
        if (req.has_signer)
            bk_eth_addr_hex(req.signer, want);
        if (!req.has_signer)
            bk_reason_set(&why, "missing_field:signer",
                          "missing field 'signer' (the address that signed)");
        else
            bk_reason_set(&why, "signer_mismatch",
                          "the signature recovers to %s, not to the signer %s", got,
                          want);
        char *res = result_rejected(req.id, req.op, offset, &why);
        bk_request_release(&req);
        return finish(a, offset, res, result, e);
    }

    opctx c = {a, &req, offset, signer, NULL, NULL, 0};
    int rc;
    if (strcmp(req.op, "register") == 0)
        rc = op_register(&c, &why);
    else if (strcmp(req.op, "update") == 0)
        rc = op_update(&c, &why);
    else
        rc = op_revoke(&c, &why);
    char *res = NULL;
    if (!c.oom)
        res = rc == BK_OK ? result_ok(&req, offset, c.data)
                          : result_rejected(req.id, req.op, offset, &why);
    else
        json_decref(c.data);
    c.data = NULL;
    id_rec *ir = calloc(1, sizeof(*ir));
    if (ir != NULL && res != NULL) {
        ir->key = strdup(req.id);
        ir->result = strdup(res);
    }
    if (res == NULL || ir == NULL || ir->key == NULL || ir->result == NULL) {
        free(res);
        idd_id_free(ir);
        idd_did_free(c.nd);
        bk_request_release(&req);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    memcpy(ir->h, h, 32);
    int is_register = strcmp(req.op, "register") == 0;
    bk_request_release(&req);
    *applied = c.nd != NULL;
    if (idd_record_change(a, offset, ir, c.nd, is_register, e) != BK_OK) {
        free(res);
        *applied = 0;
        return BK_ERR;
    }
    return finish(a, offset, res, result, e);
}
