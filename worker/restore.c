/* restore.c - reading a backup back; see restore.h. */
#include "restore.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backuplog.h"
#include "base/clock.h"
#include "base/hex.h"
#include "chain/registry.h"
#include "backup/seal.h"
#include "backup/storage.h"
#include "chain/jsonrpc.h"
#include "base/log.h"

typedef struct feed_ctx {
    bk_unsealer *u;
    uint64_t bytes;
} feed_ctx;

static int feed(void *opaque, const void *piece, size_t n, bk_err *e) {
    feed_ctx *f = opaque;
    f->bytes += n;
    return bk_unsealer_feed(f->u, piece, n, e);
}

int bk_restore_fetch(bk_rpc *rpc, const uint8_t reg[20], const bk_eth_key *svc_key,
                     uint64_t version, uint64_t *ver, json_t **log, void **plain,
                     size_t *len, bk_err *e) {
    return bk_restore_fetch_ex(rpc, reg, svc_key, version, ver, log, plain, len, NULL, e);
}

int bk_restore_fetch_ex(bk_rpc *rpc, const uint8_t reg[20], const bk_eth_key *svc_key,
                        uint64_t version, uint64_t *ver, json_t **log, void **plain,
                        size_t *len, bk_restore_stats *st, bk_err *e) {
    bk_restore_stats st0;
    if (st == NULL)
        st = &st0;
    memset(st, 0, sizeof(*st));
    double t = bk_mono_msf();
    *log = NULL;
    *plain = NULL;
    *len = 0;
    if (version == 0) {
        uint64_t sv = 0;
        if (bk_reg_get_state_version(rpc, reg, &sv, e) != BK_OK)
            return bk_err_prefix(e, "cannot read the registry's state version");
        if (sv < 2)
            return bk_err_set(e, BK_E_NOTFOUND, "the registry holds no backup yet");
        version = sv;
    }
    if (ver != NULL)
        *ver = version;
    uint8_t *raw = NULL, digest[32];
    size_t rawlen = 0;
    if (bk_reg_get_backup_log(rpc, reg, version, &raw, &rawlen, digest, e) != BK_OK)
        return bk_err_prefix(e, "backup version %" PRIu64, version);
    char *hex = bk_hex_encode_alloc(raw, rawlen, 0);
    free(raw);
    if (hex == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    json_t *j = NULL;
    int rc = bk_blog_decrypt(hex, svc_key, &j, e);
    free(hex);
    if (rc != BK_OK)
        return bk_err_prefix(e, "backup version %" PRIu64, version);
    json_t *sd = json_object_get(j, "state_data");
    const char *obj = json_string_value(json_object_get(sd, "object"));
    const char *sha = json_string_value(json_object_get(sd, "sha256"));
    const char *wrapped = json_string_value(json_object_get(sd, "data_key"));
    const char *url =
        json_string_value(json_object_get(json_object_get(j, "storage"), "url"));
    char onchain[65];
    bk_hex_encode(digest, 32, 0, onchain);
    if (json_integer_value(json_object_get(j, "version")) != (json_int_t)version ||
        sha == NULL || strcmp(sha, onchain) != 0) {
        json_decref(j);
        return bk_err_set(e, BK_E_INVAL,
                          "backup version %" PRIu64
                          ": the log does not match the chain (version or digest)",
                          version);
    }
    uint8_t key[32];
    bk_storage *sto = NULL;
    bk_unsealer *u = NULL;
    rc = bk_blog_unwrap_key(wrapped, svc_key, key, e);
    st->log_ms = bk_mono_msf() - t;
    /* one pass: each piece read is hashed, decrypted and inflated at once
     * (seal.h); the plaintext counts only once every check has passed */
    t = bk_mono_msf();
    if (rc == BK_OK)
        rc = bk_unsealer_new(key, sha, &u, e);
    memset(key, 0, sizeof(key));
    if (rc == BK_OK)
        rc = bk_storage_open(url, &sto, e);
    feed_ctx fc = {u, 0};
    if (rc == BK_OK)
        rc = bk_storage_read(sto, obj, feed, &fc, e);
    bk_unseal_stats us = {0, 0, 0};
    if (rc == BK_OK)
        rc = bk_unsealer_finish(u, plain, len, &us, e);
    st->pass_ms = bk_mono_msf() - t;
    st->verify_ms = us.verify_ms;
    st->decrypt_ms = us.decrypt_ms;
    st->decompress_ms = us.decompress_ms;
    st->fetch_ms = st->pass_ms - us.verify_ms - us.decrypt_ms - us.decompress_ms;
    st->sealed = fc.bytes;
    st->plain = *len;
    bk_unsealer_free(u);
    bk_storage_close(sto);
    if (rc != BK_OK) {
        json_decref(j);
        return bk_err_prefix(e, "backup version %" PRIu64, version);
    }
    *log = j;
    return BK_OK;
}

/* Try one version: fetch, check coverage, restore, check the digest. */
static int try_version(const bk_recover_args *a, bk_rpc *rpc, const uint8_t reg[20],
                       uint64_t version, bk_recovered *out, bk_err *e) {
    json_t *log = NULL;
    void *plain = NULL;
    size_t len = 0;
    uint64_t ver = 0;
    bk_restore_stats st;
    if (bk_restore_fetch_ex(rpc, reg, a->key, version, &ver, &log, &plain, &len, &st,
                            e) != BK_OK)
        return BK_ERR;
    int64_t cut = json_integer_value(json_object_get(log, "cut_offset"));
    const char *rd = json_string_value(json_object_get(log, "record_digest"));
    const char *sd = json_string_value(json_object_get(log, "state_digest"));
    json_int_t size =
        json_integer_value(json_object_get(json_object_get(log, "state_data"), "size"));
    int64_t first = 0, end = 0;
    int rc = BK_OK;
    if (a->log != NULL && bk_rlog_offsets(a->log, &first, &end, e) != BK_OK)
        rc = bk_err_prefix(e, "backup version %" PRIu64, ver);
    else if (first > cut + 1)
        rc = bk_err_set(e, BK_E_STATE,
                        "backup version %" PRIu64 " (cut %" PRId64
                        ") is older than the log, which starts at offset %" PRId64,
                        ver, cut, first);
    char got[65] = "";
    double t = bk_mono_msf();
    if (rc == BK_OK && a->ops->restore(a->app, plain, len, e) != BK_OK)
        rc = bk_err_prefix(e, "backup version %" PRIu64 ": cannot restore", ver);
    st.restore_ms = bk_mono_msf() - t;
    t = bk_mono_msf();
    if (rc == BK_OK && a->ops->digest(a->app, got, e) != BK_OK)
        rc = bk_err_prefix(e, "backup version %" PRIu64 ": cannot restore", ver);
    st.check_ms = bk_mono_msf() - t;
    if (rc == BK_OK && (sd == NULL || strcmp(got, sd) != 0))
        rc =
            bk_err_set(e, BK_E_INVAL,
                       "backup version %" PRIu64
                       ": the restored state's digest %.16s... is not the log's %.16s...",
                       ver, got, sd ? sd : "");
    if (rc == BK_OK) {
        out->version = ver;
        out->cut = cut;
        snprintf(out->record_digest, sizeof(out->record_digest), "%s", rd ? rd : "");
        memcpy(out->state_digest, got, sizeof(got));
        out->bytes = (uint64_t)size;
        out->log_first = first;
        out->epoch = (int64_t)json_integer_value(json_object_get(log, "epoch"));
        out->stats = st;
    }
    free(plain);
    json_decref(log);
    return rc;
}

int bk_recover_latest(const bk_recover_args *a, bk_recovered *out, bk_err *e) {
    memset(out, 0, sizeof(*out));
    uint8_t reg[20];
    if (a->registry == NULL || bk_eth_addr_parse(a->registry, reg, e) != BK_OK)
        return bk_err_set(e, BK_E_INVAL,
                          "get-the-latest-state needs the registry address");
    bk_rpc *rpc = bk_rpc_new_list(a->eth_rpc, 10000, e);
    if (rpc == NULL)
        return BK_ERR;
    uint64_t sv = 0;
    int rc = bk_reg_get_state_version(rpc, reg, &sv, e);
    if (rc != BK_OK) {
        bk_err_prefix(e, "cannot read the registry's state version");
    } else if (sv < 2) {
        rc = bk_err_set(e, BK_E_NOTFOUND, "the registry holds no backup yet");
    } else {
        bk_err first_err;
        bk_err_clear(&first_err);
        rc = BK_ERR;
        for (uint64_t v = sv; v >= 2 && rc != BK_OK; v--) {
            bk_err ve;
            bk_err_clear(&ve);
            rc = try_version(a, rpc, reg, v, out, &ve);
            if (rc == BK_OK)
                break;
            BK_WARN("get-the-latest-state: %s", ve.msg);
            if (first_err.code == BK_E_NONE)
                first_err = ve;
            /* an older version helps only while the log still covers it */
            if (ve.code == BK_E_STATE && strstr(ve.msg, "is older than the log")) {
                if (v == sv)
                    *e = ve;
                else
                    bk_err_set(e, BK_E_STATE, "cannot restore: %s; and %s", first_err.msg,
                               ve.msg);
                break;
            }
            if (v == 2)
                bk_err_set(e, ve.code, "cannot restore any backup: %s%s%s", first_err.msg,
                           sv > 2 ? "; the oldest: " : "", sv > 2 ? ve.msg : "");
        }
    }
    bk_rpc_free(rpc);
    return rc;
}
