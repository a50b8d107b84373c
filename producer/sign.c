/* sign.c - libbr2k's signed requests (br2k.h): the canonical form, signing
 * and the service's own check, on common/chain/request.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br2k.h"
#include "chain/ethkey.h"
#include "chain/request.h"

static int set_err(br2k_error *err, int code, const char *msg) {
    if (err != NULL) {
        err->code = code;
        snprintf(err->msg, sizeof(err->msg), "%.*s", (int)sizeof(err->msg) - 1, msg);
    }
    return BR2K_ERR;
}

static int from_bk(br2k_error *err, const bk_err *e) {
    return set_err(err, e->code <= BK_E_STATE ? e->code : BR2K_E_REMOTE, e->msg);
}

/* The payload object of payload_json (a new reference), or NULL with err. */
static json_t *payload_of(const char *payload_json, br2k_error *err) {
    json_error_t je;
    json_t *p =
        json_loads(payload_json ? payload_json : "{}", JSON_REJECT_DUPLICATES, &je);
    if (p == NULL || !json_is_object(p)) {
        char m[256];
        snprintf(m, sizeof(m), "payload is not a json object%s%.200s", p ? "" : ": ",
                 p ? "" : je.text);
        json_decref(p);
        set_err(err, BR2K_E_INVAL, m);
        return NULL;
    }
    return p;
}

int br2k_request_canonical(const char *client, uint64_t seq, const char *op,
                           const char *payload_json, uint64_t ts_ms, const char *signer,
                           char **out, br2k_error *err) {
    *out = NULL;
    uint8_t addr[20];
    bk_err e;
    bk_err_clear(&e);
    if (signer != NULL && bk_eth_addr_parse(signer, addr, &e) != BK_OK)
        return from_bk(err, &e);
    json_t *p = payload_of(payload_json, err);
    if (p == NULL)
        return BR2K_ERR;
    int rc = bk_request_canonical_signed(client, (int64_t)seq, op, p, (int64_t)ts_ms,
                                         signer ? addr : NULL, out, NULL, &e);
    json_decref(p);
    return rc == BK_OK ? BR2K_OK : from_bk(err, &e);
}

int br2k_request_sign(const char *key_hex, const char *client, uint64_t seq,
                      const char *op, const char *payload_json, uint64_t ts_ms,
                      char **out, br2k_error *err) {
    *out = NULL;
    bk_eth_key k;
    bk_err e;
    bk_err_clear(&e);
    if (key_hex == NULL || bk_eth_key_from_hex(key_hex, &k, &e) != BK_OK)
        return key_hex == NULL ? set_err(err, BR2K_E_INVAL, "no private key")
                               : from_bk(err, &e);
    json_t *p = payload_of(payload_json, err);
    int rc = BR2K_ERR;
    if (p != NULL)
        rc = bk_request_build(&k, client, (int64_t)seq, op, p, (int64_t)ts_ms, out, &e) ==
                     BK_OK
                 ? BR2K_OK
                 : from_bk(err, &e);
    json_decref(p);
    bk_eth_key_clear(&k);
    return rc;
}

int br2k_request_verify(const char *request_json, size_t len, char address[43],
                        br2k_error *err) {
    address[0] = '\0';
    bk_request req;
    bk_reason why;
    char m[300];
    if (bk_request_parse(request_json, len, 0, NULL, &req, &why) != BK_OK) {
        snprintf(m, sizeof(m), "%s: %s", why.code, why.text);
        bk_request_release(&req);
        return set_err(err, BR2K_E_INVAL, m);
    }
    uint8_t addr[20];
    bk_err e;
    bk_err_clear(&e);
    int rc = BR2K_OK;
    if (bk_request_signer(&req, addr, &e) != BK_OK) {
        snprintf(m, sizeof(m), "bad_signature: %.200s", e.msg);
        rc = set_err(err, e.code == BK_E_NOMEM ? BR2K_E_NOMEM : BR2K_E_INVAL, m);
    } else {
        bk_eth_addr_hex(addr, address);
        if (!req.has_signer) {
            rc = set_err(err, BR2K_E_INVAL,
                         "missing_field:signer: the request does not name its signer");
        } else if (memcmp(addr, req.signer, 20) != 0) {
            char want[43];
            bk_eth_addr_hex(req.signer, want);
            snprintf(m, sizeof(m),
                     "signer_mismatch: the signature recovers to %s, not %s", address,
                     want);
            rc = set_err(err, BR2K_E_INVAL, m);
        }
    }
    bk_request_release(&req);
    return rc;
}
