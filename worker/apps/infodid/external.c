/* external.c - InfoDID's external effect (INFODID.md): a shared index in
 * Redis of the registered DIDs and the count of active ones, written by
 * the leader through the host's ext_write (br2k/app.h): fenced with its
 * token (I2), idempotent per offset (I5), one atomic script per call.
 *
 * An accepted register is { HSET ext:did <did> <controller>, INCRBY
 * ext:active 1 }, an accepted revoke { INCRBY ext:active -1 } (the DID
 * stays in ext:did); other records write nothing and are not passed to
 * ext_write, so ext:applied is the last offset that acted. InfoDID's
 * state decides both (a register is accepted only for a new DID, a revoke
 * only for a registered one), so this leaves what the former HSETNX and
 * the conditional INCR/DECR left. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/ethkey.h"
#include "infodid_int.h"

#define EXT_DID "did"
#define EXT_ACTIVE "active"

/* The external action of a result: 1 with *op, *did, *ctrl (pointing
 * into *o, which the caller releases) when it registers or revokes, 0
 * when it has none, -1 when it is not JSON. */
static int ext_action(const char *result, json_t **o, const char **op, const char **did,
                      const char **ctrl) {
    *o = json_loads(result, 0, NULL);
    if (*o == NULL)
        return -1;
    const char *status = json_string_value(json_object_get(*o, "status"));
    *op = json_string_value(json_object_get(*o, "op"));
    json_t *data = json_object_get(*o, "data");
    *did = json_string_value(json_object_get(data, "did"));
    *ctrl = json_string_value(json_object_get(data, "controller"));
    return status != NULL && strcmp(status, "ok") == 0 &&
           !json_is_true(json_object_get(*o, "repeat")) && *op != NULL && *did != NULL &&
           *ctrl != NULL && (strcmp(*op, "register") == 0 || strcmp(*op, "revoke") == 0);
}

/* The ops of one acting record into ops[2]; returns how many. */
static size_t ext_ops(const char *op, const char *did, const char *ctrl,
                      br2k_ext_op *ops) {
    if (strcmp(op, "register") == 0) {
        ops[0] = (br2k_ext_op){BR2K_EXT_HSET, EXT_DID, did, ctrl, 0};
        ops[1] = (br2k_ext_op){BR2K_EXT_INCRBY, EXT_ACTIVE, NULL, NULL, 1};
        return 2;
    }
    ops[0] = (br2k_ext_op){BR2K_EXT_INCRBY, EXT_ACTIVE, NULL, NULL, -1};
    return 1;
}

int idd_external(br2k_app *a, const br2k_host *h, int64_t offset, const char *result,
                 br2k_app_error *e) {
    return idd_external_many(a, h, &offset, &result, 1, e);
}

/* The same effect as idd_external for each record in turn, in one
 * ext_write: one round trip and one Redis fsync per batch. */
int idd_external_many(br2k_app *a, const br2k_host *h, const int64_t *offsets,
                      const char *const *results, size_t n, br2k_app_error *e) {
    (void)a; /* runs beside apply: reads only its arguments */
    json_t **objs = calloc(n ? n : 1, sizeof(*objs));
    br2k_ext_record *recs = calloc(n ? n : 1, sizeof(*recs));
    br2k_ext_op *ops = calloc(n ? 2 * n : 1, sizeof(*ops));
    size_t k = 0, m = 0;
    int rc = BR2K_APP_OK;
    if (objs == NULL || recs == NULL || ops == NULL) {
        rc = br2k_app_error_set(e, BR2K_APP_E_NOMEM, "infodid: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *op, *did, *ctrl;
        int act = ext_action(results[i], &objs[i], &op, &did, &ctrl);
        if (act < 0) {
            rc = br2k_app_error_set(e, BR2K_APP_E_INVAL,
                                    "infodid: result of offset %" PRId64 " is not json",
                                    offsets[i]);
            goto out;
        }
        if (act) {
            recs[k].offset = offsets[i];
            recs[k].ops = ops + m;
            recs[k].n = ext_ops(op, did, ctrl, ops + m);
            m += recs[k].n;
            k++;
        }
    }
    if (k > 0 && h->ext_write(h, recs, k, e) != BR2K_APP_OK) {
        char why[sizeof(e->msg)];
        memcpy(why, e->msg, sizeof(why));
        if (n == 1)
            br2k_app_error_set(e, e->code,
                               "infodid: external effect of offset %" PRId64 ": %s",
                               offsets[0], why);
        else
            br2k_app_error_set(e, e->code,
                               "infodid: external effects of offsets %" PRId64
                               "..%" PRId64 ": %s",
                               offsets[0], offsets[n - 1], why);
        rc = BR2K_APP_ERR;
    }
out:
    for (size_t i = 0; objs != NULL && i < n; i++)
        json_decref(objs[i]);
    free(objs);
    free(recs);
    free(ops);
    return rc;
}

/* The whole index from the state (br2k/app.h `republish`): ext:did gets
 * every DID ever registered with its controller (a DID is never removed
 * and its controller never changes: what the registers' HSETs left), and
 * ext:active the count of active DIDs (what the INCRBYs left), as of the
 * state's LPI, in one ext_replace. Called after a Redis failover lost
 * external writes of committed records (I9). */
int idd_republish(br2k_app *a, const br2k_host *h, br2k_app_error *e) {
    if (h->ext_replace == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_STATE,
                                  "infodid: republish without the host's ext_replace");
    size_t n = a->st.dids.n, k = 0;
    br2k_ext_op *ops = calloc(n + 1, sizeof(*ops));
    char(*addr)[43] = calloc(n ? n : 1, 43);
    char active[24];
    int rc = BR2K_APP_OK;
    if (ops == NULL || addr == NULL) {
        rc = br2k_app_error_set(e, BR2K_APP_E_NOMEM, "infodid: out of memory");
        goto out;
    }
    for (size_t i = 0; i < a->st.dids.cap && k < n; i++) {
        const did_rec *d = a->st.dids.s[i].v;
        if (d == NULL)
            continue;
        bk_eth_addr_hex(d->ctrl, addr[k]);
        ops[k] = (br2k_ext_op){BR2K_EXT_HSET, EXT_DID, d->key, addr[k], 0};
        k++;
    }
    snprintf(active, sizeof(active), "%" PRId64, a->st.active);
    ops[k++] = (br2k_ext_op){BR2K_EXT_SET, EXT_ACTIVE, NULL, active, 0};
    if (h->ext_replace(h, a->lpi, ops, k, e) != BR2K_APP_OK) {
        char why[sizeof(e->msg)];
        memcpy(why, e->msg, sizeof(why));
        br2k_app_error_set(e, e->code, "infodid: republish at offset %" PRId64 ": %s",
                           a->lpi, why);
        rc = BR2K_APP_ERR;
    }
out:
    free(ops);
    free(addr);
    return rc;
}
