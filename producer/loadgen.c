/* loadgen.c - see loadgen.h. */
#include "loadgen.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/hex.h"
#include "chain/keccak.h"
#include "chain/request.h"

int bk_lg_client_init(bk_lg_client *cl, const char *prefix, long i, bk_err *e) {
    uint8_t seed[32];
    char hex[65], addr[43];
    if (i < 0)
        snprintf(cl->id, sizeof(cl->id), "%s", prefix);
    else
        snprintf(cl->id, sizeof(cl->id), "%s-%ld", prefix, i);
    bk_keccak256(cl->id, strlen(cl->id), seed);
    bk_hex_encode(seed, sizeof(seed), 0, hex);
    if (bk_eth_key_from_hex(hex, &cl->key, e) != BK_OK)
        return bk_err_prefix(e, "key of client '%s'", cl->id);
    bk_eth_addr_hex(cl->key.addr, addr);
    for (char *p = addr; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    snprintf(cl->did, sizeof(cl->did), "did:br2k:%s", addr);
    return BK_OK;
}

char *bk_lg_request(const bk_lg_client *cl, long seq, int update, int64_t ts_ms,
                    bk_err *e) {
    char n[32], did[128];
    snprintf(n, sizeof(n), "%ld", seq);
    snprintf(did, sizeof(did), "%s:%ld", cl->did, update ? seq - 1 : seq);
    json_t *payload = update ? json_pack("{s:s, s:{s:s}}", "did", did, "attrs", "n", n)
                             : json_pack("{s:s, s:{s:s, s:s}}", "did", did, "attrs",
                                         "name", cl->id, "n", n);
    char *out = NULL;
    if (payload == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    if (bk_request_build(&cl->key, cl->id, seq, update ? "update" : "register", payload,
                         ts_ms, &out, e) != BK_OK)
        out = NULL;
    json_decref(payload);
    return out;
}

int bk_lg_log_props(const char *props, long retry_ms, char *buf, size_t size, bk_err *e) {
    int has = props != NULL && props[0] != '\0';
    int n = snprintf(buf, size, "delivery.timeout.ms=%ld%s%s", retry_ms, has ? "," : "",
                     has ? props : "");
    if (n < 0 || (size_t)n >= size)
        return bk_err_set(e, BK_E_INVAL, "the log properties are too long (%d bytes)", n);
    return BK_OK;
}
