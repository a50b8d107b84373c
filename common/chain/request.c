/* request.c - see request.h. */
#include "chain/request.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"

#define CANON_FLAGS (JSON_SORT_KEYS | JSON_COMPACT)

int bk_reason_set(bk_reason *why, const char *code, const char *fmt, ...) {
    if (why == NULL)
        return BK_ERR;
    snprintf(why->code, sizeof(why->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->text, sizeof(why->text), fmt, ap);
    va_end(ap);
    for (char *p = why->text; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    return BK_ERR;
}

static int valid_client(const char *s, size_t n) {
    if (n == 0 || n > BK_REQUEST_CLIENT_MAX)
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

static int valid_op(const char *s, size_t n) {
    if (n == 0 || n > BK_REQUEST_OP_MAX || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static int valid_int(const json_t *v) {
    if (!json_is_integer(v))
        return 0;
    json_int_t n = json_integer_value(v);
    return n >= 0 && n <= BK_REQUEST_INT_MAX;
}

/* 1 if no number in `v` (recursively) has a fraction or an exponent. */
static int no_reals(const json_t *v) {
    if (json_is_real(v))
        return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)v, i, x) {
            if (!no_reals(x))
                return 0;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            if (!no_reals(x))
                return 0;
        }
    }
    return 1;
}

static int parse_id(json_t *root, bk_request *req, bk_reason *why) {
    json_t *id = json_object_get(root, "id");
    if (id == NULL)
        return bk_reason_set(why, "missing_field:id", "missing field 'id'");
    if (!json_is_object(id))
        return bk_reason_set(why, "bad_field:id", "field 'id' must be an object");
    json_t *client = json_object_get(id, "client");
    if (client == NULL)
        return bk_reason_set(why, "missing_field:id.client", "missing field 'id.client'");
    if (!json_is_string(client) ||
        !valid_client(json_string_value(client), json_string_length(client)))
        return bk_reason_set(why, "bad_field:id.client",
                             "field 'id.client' must be 1 to %d characters of "
                             "A-Z a-z 0-9 . _ -",
                             BK_REQUEST_CLIENT_MAX);
    json_t *seq = json_object_get(id, "seq");
    if (seq == NULL)
        return bk_reason_set(why, "missing_field:id.seq", "missing field 'id.seq'");
    if (!valid_int(seq))
        return bk_reason_set(why, "bad_field:id.seq",
                             "field 'id.seq' must be an integer from 0 to 2^53-1");
    const char *k;
    json_t *x;
    json_object_foreach(id, k, x) {
        if (strcmp(k, "client") != 0 && strcmp(k, "seq") != 0)
            return bk_reason_set(why, "unknown_field", "unknown field 'id.%.64s'", k);
    }
    snprintf(req->client, sizeof(req->client), "%s", json_string_value(client));
    req->seq = (int64_t)json_integer_value(seq);
    snprintf(req->id, sizeof(req->id), "%s:%" PRId64, req->client, req->seq);
    return BK_OK;
}

static int parse_sig(json_t *root, bk_request *req, bk_reason *why) {
    json_t *sig = json_object_get(root, "sig");
    if (sig == NULL)
        return bk_reason_set(why, "missing_field:sig", "missing field 'sig'");
    const char *s = json_string_value(sig);
    if (s == NULL || json_string_length(sig) != 132 || s[0] != '0' || s[1] != 'x' ||
        bk_hex_decode_exact(s, req->sig, sizeof(req->sig), NULL) != BK_OK)
        return bk_reason_set(why, "bad_field:sig",
                             "field 'sig' must be 0x and 130 hex digits (r, s, v)");
    return BK_OK;
}

static int parse_fields(json_t *root, const char *const *ops, bk_request *req,
                        bk_reason *why) {
    json_t *v = json_object_get(root, "v");
    if (v == NULL)
        return bk_reason_set(why, "missing_field:v", "missing field 'v'");
    if (!json_is_integer(v))
        return bk_reason_set(why, "bad_field:v", "field 'v' must be an integer");
    if (json_integer_value(v) != BK_REQUEST_VERSION)
        return bk_reason_set(why, "bad_version",
                             "schema version %" JSON_INTEGER_FORMAT
                             " is not supported (want %d)",
                             json_integer_value(v), BK_REQUEST_VERSION);
    if (parse_id(root, req, why) != BK_OK)
        return BK_ERR;

    json_t *op = json_object_get(root, "op");
    if (op == NULL)
        return bk_reason_set(why, "missing_field:op", "missing field 'op'");
    if (!json_is_string(op) || !valid_op(json_string_value(op), json_string_length(op)))
        return bk_reason_set(why, "bad_field:op",
                             "field 'op' must be 1 to %d characters of a-z 0-9 _",
                             BK_REQUEST_OP_MAX);

    json_t *payload = json_object_get(root, "payload");
    if (payload == NULL)
        return bk_reason_set(why, "missing_field:payload", "missing field 'payload'");
    if (!json_is_object(payload))
        return bk_reason_set(why, "bad_field:payload",
                             "field 'payload' must be an object");
    if (!no_reals(payload))
        return bk_reason_set(why, "bad_field:payload",
                             "field 'payload' must not hold fractions or exponents");

    json_t *ts = json_object_get(root, "ts");
    if (ts == NULL)
        return bk_reason_set(why, "missing_field:ts", "missing field 'ts'");
    if (!valid_int(ts))
        return bk_reason_set(why, "bad_field:ts",
                             "field 'ts' must be an integer from 0 to 2^53-1 (ms)");

    if (parse_sig(root, req, why) != BK_OK)
        return BK_ERR;

    json_t *signer = json_object_get(root, "signer");
    if (signer != NULL) {
        const char *s = json_string_value(signer);
        int lower = s != NULL;
        for (const char *p = s ? s + 2 : ""; lower && *p; p++)
            lower = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
        if (s == NULL || json_string_length(signer) != 42 || s[0] != '0' || s[1] != 'x' ||
            !lower ||
            bk_hex_decode_exact(s, req->signer, sizeof(req->signer), NULL) != BK_OK)
            return bk_reason_set(
                why, "bad_field:signer",
                "field 'signer' must be 0x and 40 lowercase hex digits (an address)");
        req->has_signer = 1;
    }

    const char *k;
    json_t *x;
    json_object_foreach(root, k, x) {
        if (strcmp(k, "v") != 0 && strcmp(k, "id") != 0 && strcmp(k, "op") != 0 &&
            strcmp(k, "payload") != 0 && strcmp(k, "ts") != 0 && strcmp(k, "sig") != 0 &&
            strcmp(k, "signer") != 0)
            return bk_reason_set(why, "unknown_field", "unknown field '%.64s'", k);
    }

    const char *name = json_string_value(op);
    if (ops != NULL) {
        size_t i = 0;
        while (ops[i] != NULL && strcmp(ops[i], name) != 0)
            i++;
        if (ops[i] == NULL)
            return bk_reason_set(why, "unknown_op", "unknown operation '%s'", name);
    }
    req->op = name;
    req->payload = payload;
    req->ts = (int64_t)json_integer_value(ts);
    return BK_OK;
}

int bk_request_parse(const void *buf, size_t len, size_t limit, const char *const *ops,
                     bk_request *req, bk_reason *why) {
    memset(req, 0, sizeof(*req));
    if (limit == 0)
        limit = BK_REQUEST_DEFAULT_LIMIT;
    if (len > limit)
        return bk_reason_set(why, "too_large",
                             "request of %zu bytes exceeds the %zu limit", len, limit);
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL)
        return bk_reason_set(why, "malformed_json", "malformed json at byte %d: %s",
                             jerr.position, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return bk_reason_set(why, "not_object", "request must be a json object");
    }
    req->root = root;
    if (parse_fields(root, ops, req, why) != BK_OK) {
        req->root = NULL;
        req->op = NULL;
        req->payload = NULL;
        json_decref(root);
        return BK_ERR;
    }
    return BK_OK;
}

void bk_request_release(bk_request *req) {
    if (req == NULL)
        return;
    json_decref(req->root);
    req->root = NULL;
    req->payload = NULL;
    req->op = NULL;
}

static int dump_sorted(json_t *obj, char **out, size_t *len, bk_err *e) {
    char *s = json_dumps(obj, CANON_FLAGS);
    if (s == NULL)
        return bk_err_set(e, BK_E_NOMEM, "cannot serialize the request: out of memory");
    *out = s;
    if (len != NULL)
        *len = strlen(s);
    return BK_OK;
}

/* The unsigned envelope object (a new reference), or NULL with `e`;
 * "signer" when `signer` is not NULL. */
static json_t *envelope(const char *client, int64_t seq, const char *op,
                        const json_t *payload, int64_t ts, const uint8_t *signer,
                        bk_err *e) {
    if (client == NULL || !valid_client(client, strlen(client))) {
        bk_err_set(e, BK_E_INVAL, "invalid client id '%.64s'", client ? client : "");
        return NULL;
    }
    if (op == NULL || !valid_op(op, strlen(op))) {
        bk_err_set(e, BK_E_INVAL, "invalid operation '%.32s'", op ? op : "");
        return NULL;
    }
    if (seq < 0 || seq > BK_REQUEST_INT_MAX || ts < 0 || ts > BK_REQUEST_INT_MAX) {
        bk_err_set(e, BK_E_INVAL, "sequence and timestamp must be from 0 to 2^53-1");
        return NULL;
    }
    if (!json_is_object(payload) || !no_reals(payload)) {
        bk_err_set(e, BK_E_INVAL, "payload must be an object without fractions");
        return NULL;
    }
    json_t *o = json_pack("{s:i,s:{s:s,s:I},s:s,s:O,s:I}", "v", BK_REQUEST_VERSION, "id",
                          "client", client, "seq", (json_int_t)seq, "op", op, "payload",
                          (json_t *)payload, "ts", (json_int_t)ts);
    if (o != NULL && signer != NULL) {
        char hex[43];
        bk_eth_addr_hex(signer, hex);
        for (char *p = hex; *p; p++) /* lowercase, as the schema's examples */
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
        if (json_object_set_new(o, "signer", json_string(hex)) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    if (o == NULL)
        bk_err_set(e, BK_E_NOMEM, "cannot build the request: out of memory");
    return o;
}

int bk_request_canonical_signed(const char *client, int64_t seq, const char *op,
                                const json_t *payload, int64_t ts, const uint8_t *signer,
                                char **out, size_t *len, bk_err *e) {
    json_t *o = envelope(client, seq, op, payload, ts, signer, e);
    if (o == NULL)
        return BK_ERR;
    int rc = dump_sorted(o, out, len, e);
    json_decref(o);
    return rc;
}

int bk_request_canonical_parts(const char *client, int64_t seq, const char *op,
                               const json_t *payload, int64_t ts, char **out, size_t *len,
                               bk_err *e) {
    return bk_request_canonical_signed(client, seq, op, payload, ts, NULL, out, len, e);
}

int bk_request_canonical(const bk_request *req, char **out, size_t *len, bk_err *e) {
    return bk_request_canonical_signed(req->client, req->seq, req->op, req->payload,
                                       req->ts, req->has_signer ? req->signer : NULL, out,
                                       len, e);
}

int bk_request_recover(const bk_request *req, const char *canon, size_t clen,
                       uint8_t addr[20], bk_err *e) {
    uint8_t sig[65];
    memcpy(sig, req->sig, sizeof(sig));
    if (sig[64] == 27 || sig[64] == 28)
        sig[64] -= 27;
    if (sig[64] > 1)
        return bk_err_set(e, BK_E_INVAL,
                          "bad signature of '%s': v must be 27, 28, 0 or 1", req->id);
    uint8_t hash[32];
    bk_eth_personal_hash(canon, clen, hash);
    bk_err sub;
    bk_err_clear(&sub);
    if (bk_eth_recover(hash, sig, addr, &sub) != BK_OK)
        return bk_err_set(e, BK_E_INVAL, "bad signature of '%s': %s", req->id, sub.msg);
    return BK_OK;
}

int bk_request_signer(const bk_request *req, uint8_t addr[20], bk_err *e) {
    char *canon = NULL;
    size_t clen = 0;
    if (bk_request_canonical(req, &canon, &clen, e) != BK_OK)
        return BK_ERR;
    int rc = bk_request_recover(req, canon, clen, addr, e);
    free(canon);
    return rc;
}

int bk_request_build(const bk_eth_key *key, const char *client, int64_t seq,
                     const char *op, const json_t *payload, int64_t ts, char **out,
                     bk_err *e) {
    uint8_t pub[65], addr[20];
    if (bk_eth_pubkey(key, pub, e) != BK_OK)
        return bk_err_prefix(e, "cannot sign request '%s:%" PRId64 "'", client, seq);
    bk_eth_addr_from_pubkey(pub, addr);
    json_t *o = envelope(client, seq, op, payload, ts, addr, e);
    if (o == NULL)
        return BK_ERR;
    char *canon = NULL;
    size_t clen = 0;
    if (dump_sorted(o, &canon, &clen, e) != BK_OK) {
        json_decref(o);
        return BK_ERR;
    }
    uint8_t hash[32], sig[65];
    bk_eth_personal_hash(canon, clen, hash);
    free(canon);
    if (bk_eth_sign_hash(key, hash, sig, e) != BK_OK) {
        json_decref(o);
        return bk_err_prefix(e, "cannot sign request '%s:%" PRId64 "'", client, seq);
    }
    sig[64] += 27;
    char hex[2 + 130 + 1] = "0x";
    bk_hex_encode(sig, sizeof(sig), 0, hex + 2);
    if (json_object_set_new(o, "sig", json_string(hex)) != 0) {
        json_decref(o);
        return bk_err_set(e, BK_E_NOMEM, "cannot build the request: out of memory");
    }
    int rc = dump_sorted(o, out, NULL, e);
    json_decref(o);
    return rc;
}
