/* external.c - InfoDID's external effect (INFODID.md): a shared index in
 * Redis of the registered DIDs and the count of active ones, written by
 * the leader with its fencing token (I2), idempotent per offset (I5). The
 * keys and the scripts are common/redis's (keys.h, bk_ext_index_apply). */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "infodid_int.h"
#include "redis/keys.h"

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

int idd_external(br2k_app *a, bk_redis *r, const char *svc, int64_t epoch, int64_t offset,
                 const char *result, bk_err *e) {
    (void)a;
    json_t *o = NULL;
    bk_ext_item it = {offset, NULL, NULL, NULL};
    int act = ext_action(result, &o, &it.action, &it.did, &it.controller);
    if (act < 0)
        return bk_err_set(e, BK_E_INVAL,
                          "infodid: result of offset %" PRId64 " is not json", offset);
    int rc = act ? bk_ext_index_apply(r, svc, epoch, &it, 1, e) : BK_OK;
    json_decref(o);
    if (rc != BK_OK)
        return bk_err_prefix(e, "infodid: external effect of offset %" PRId64, offset);
    return BK_OK;
}

/* The same effect as idd_external for each record in turn, in one script
 * call: one round trip and one Redis fsync per batch. It leaves the same
 * state (ext:applied ends at the last acting offset above it). */
int idd_external_many(br2k_app *a, bk_redis *r, const char *svc, int64_t epoch,
                      const int64_t *offsets, const char *const *results, size_t n,
                      bk_err *e) {
    (void)a;
    json_t **objs = calloc(n ? n : 1, sizeof(*objs));
    bk_ext_item *items = calloc(n ? n : 1, sizeof(*items));
    size_t k = 0;
    int rc = BK_OK;
    if (objs == NULL || items == NULL) {
        rc = bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bk_ext_item *it = &items[k];
        int act =
            ext_action(results[i], &objs[i], &it->action, &it->did, &it->controller);
        if (act < 0) {
            rc = bk_err_set(e, BK_E_INVAL,
                            "infodid: result of offset %" PRId64 " is not json",
                            offsets[i]);
            goto out;
        }
        if (act) {
            it->offset = offsets[i];
            k++;
        }
    }
    if (k > 0 && bk_ext_index_apply(r, svc, epoch, items, k, e) != BK_OK)
        rc =
            bk_err_prefix(e, "infodid: external effects of offsets %" PRId64 "..%" PRId64,
                          offsets[0], offsets[n - 1]);
out:
    for (size_t i = 0; objs != NULL && i < n; i++)
        json_decref(objs[i]);
    free(objs);
    free(items);
    return rc;
}
