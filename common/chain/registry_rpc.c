/* registry_rpc.c - reading the registry over JSON-RPC; see registry.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "chain/ethkey.h"
#include "chain/jsonrpc.h"
#include "chain/registry.h"

int bk_reg_view(bk_rpc *rpc, const uint8_t reg[20], const char *view,
                const uint8_t *calldata, size_t len, uint8_t **ret, size_t *retlen,
                bk_err *e) {
    bk_rpc_msg m = {NULL, reg, NULL, calldata, len};
    uint8_t *rev = NULL;
    size_t revlen = 0;
    *ret = NULL;
    *retlen = 0;
    if (bk_rpc_call_contract(rpc, &m, NULL, ret, retlen, &rev, &revlen, e) == BK_OK)
        return BK_OK;
    if (rev != NULL) {
        char name[64], line[256];
        bk_reg_revert_describe(rev, revlen, name, sizeof(name), line, sizeof(line), NULL,
                               NULL);
        free(rev);
        return bk_err_set(e, BK_E_REMOTE, "'%s' reverted: %s", view, line);
    }
    return bk_err_prefix(e, "cannot read '%s' from the registry", view);
}

/* Encode a no-argument view, call it, leave the result in *ret. */
static int view_noarg(bk_rpc *rpc, const uint8_t reg[20], const char *sig,
                      const char *view, uint8_t **ret, size_t *retlen, bk_err *e) {
    uint8_t *cd = NULL;
    size_t cdlen = 0;
    if (bk_reg_enc_noarg(sig, &cd, &cdlen, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_view(rpc, reg, view, cd, cdlen, ret, retlen, e);
    free(cd);
    return rc;
}

int bk_reg_get_state_version(bk_rpc *rpc, const uint8_t reg[20], uint64_t *sv,
                             bk_err *e) {
    uint8_t *ret;
    size_t len;
    if (view_noarg(rpc, reg, "stateVersion()", "stateVersion", &ret, &len, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_dec_state_version(ret, len, sv, e);
    free(ret);
    return rc;
}

int bk_reg_get_latest_backup(bk_rpc *rpc, const uint8_t reg[20], bk_reg_backup *b,
                             bk_err *e) {
    uint8_t *ret;
    size_t len;
    if (view_noarg(rpc, reg, "latestBackup()", "latestBackup", &ret, &len, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_dec_backup(ret, len, b, e);
    free(ret);
    return rc;
}

int bk_reg_get_backup(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                      bk_reg_backup *b, bk_err *e) {
    uint8_t *cd = NULL, *ret = NULL;
    size_t cdlen = 0, len = 0;
    if (bk_reg_enc_backup_by_version(version, &cd, &cdlen, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_view(rpc, reg, "backupByVersion", cd, cdlen, &ret, &len, e);
    free(cd);
    if (rc == BK_OK)
        rc = bk_reg_dec_backup(ret, len, b, e);
    free(ret);
    return rc;
}

int bk_reg_get_archive(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                       uint8_t digest[32], uint64_t *pruned_through, bk_err *e) {
    uint8_t *cd = NULL, *ret = NULL;
    size_t cdlen = 0, len = 0;
    if (bk_reg_enc_archive_by_version(version, &cd, &cdlen, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_view(rpc, reg, "archiveByVersion", cd, cdlen, &ret, &len, e);
    free(cd);
    if (rc == BK_OK)
        rc = bk_reg_dec_archive(ret, len, digest, pruned_through, e);
    free(ret);
    return rc;
}

int bk_reg_get_leader(bk_rpc *rpc, const uint8_t reg[20], bk_reg_leader *l, bk_err *e) {
    uint8_t *ret;
    size_t len;
    memset(l, 0, sizeof(*l));
    if (view_noarg(rpc, reg, "leader()", "leader", &ret, &len, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_dec_leader(ret, len, l, e);
    free(ret);
    return rc;
}

int bk_reg_get_access_info(bk_rpc *rpc, const uint8_t reg[20], bk_reg_access *a,
                           bk_err *e) {
    uint8_t *ret;
    size_t len;
    memset(a, 0, sizeof(*a));
    if (view_noarg(rpc, reg, "accessInfo()", "accessInfo", &ret, &len, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_dec_access_info(ret, len, a, e);
    free(ret);
    return rc;
}

int bk_reg_get_is_writer(bk_rpc *rpc, const uint8_t reg[20], const uint8_t account[20],
                         int *yes, bk_err *e) {
    uint8_t *cd = NULL, *ret = NULL;
    size_t cdlen = 0, len = 0;
    if (bk_reg_enc_is_writer(account, &cd, &cdlen, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_view(rpc, reg, "isWriter", cd, cdlen, &ret, &len, e);
    free(cd);
    if (rc == BK_OK)
        rc = bk_reg_dec_bool(ret, len, yes, e);
    free(ret);
    return rc;
}

int bk_reg_get_owner(bk_rpc *rpc, const uint8_t reg[20], uint8_t owner[20], bk_err *e) {
    uint8_t *ret;
    size_t len;
    if (view_noarg(rpc, reg, "owner()", "owner", &ret, &len, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_dec_address(ret, len, owner, e);
    free(ret);
    return rc;
}

int bk_reg_get_backup_log(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                          uint8_t **log, size_t *loglen, uint8_t digest[32], bk_err *e) {
    bk_reg_backup b;
    uint8_t topic0[32];
    json_t *logs = NULL;
    *log = NULL;
    *loglen = 0;
    if (bk_reg_get_backup(rpc, reg, version, &b, e) != BK_OK)
        return BK_ERR;
    if (bk_hex_decode_exact(BK_REG_TOPIC_BACKUP_LOGGED, topic0, 32, e) != BK_OK)
        return BK_ERR;
    if (bk_rpc_get_logs(rpc, reg, topic0, b.block, b.block, &logs, e) != BK_OK)
        return bk_err_prefix(e, "cannot read the backup log of version %llu",
                             (unsigned long long)version);
    int rc = bk_err_set(e, BK_E_NOTFOUND,
                        "no BackupLogged event of version %llu in block %llu",
                        (unsigned long long)version, (unsigned long long)b.block);
    size_t i;
    json_t *item;
    json_array_foreach(logs, i, item) {
        bk_eth_log l;
        bk_reg_backup_log bl;
        if (bk_rpc_parse_log(item, &l, e) != BK_OK) {
            rc = bk_err_prefix(e, "backup log of version %llu",
                               (unsigned long long)version);
            break;
        }
        int ok = !l.removed &&
                 bk_reg_dec_backup_logged((const uint8_t(*)[32])l.topics, l.ntopics,
                                          l.data, l.data_len, &bl, NULL) == BK_OK &&
                 bl.version == version;
        if (ok) {
            *log = malloc(bl.loglen ? bl.loglen : 1);
            if (*log == NULL) {
                rc = bk_err_set(e, BK_E_NOMEM, "out of memory");
            } else {
                memcpy(*log, bl.log, bl.loglen);
                *loglen = bl.loglen;
                if (digest != NULL)
                    memcpy(digest, bl.digest, 32);
                rc = BK_OK;
            }
        }
        bk_eth_log_release(&l);
        if (ok)
            break;
    }
    json_decref(logs);
    return rc;
}

int bk_reg_has_backup(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                      const uint8_t digest[32], int *held, uint64_t *block, bk_err *e) {
    uint64_t sv = 0;
    bk_reg_backup b;
    *held = 0;
    if (bk_reg_get_state_version(rpc, reg, &sv, e) != BK_OK)
        return BK_ERR;
    if (version < 2 || sv < version)
        return BK_OK;
    if (bk_reg_get_backup(rpc, reg, version, &b, e) != BK_OK)
        return BK_ERR;
    *held = memcmp(b.digest, digest, 32) == 0 ? 1 : -1;
    if (block != NULL)
        *block = b.block;
    return BK_OK;
}

int bk_reg_get_gateways(bk_rpc *rpc, const uint8_t reg[20], char **urls, bk_err *e) {
    uint8_t *ret;
    size_t len;
    *urls = NULL;
    if (view_noarg(rpc, reg, "gateways()", "gateways", &ret, &len, e) != BK_OK)
        return BK_ERR;
    int rc = bk_reg_dec_gateways(ret, len, urls, e);
    free(ret);
    return rc;
}

int bk_reg_discover_gateways(const char *eth_rpc, const char *registry, int timeout_ms,
                             char **urls, size_t *n, bk_err *e) {
    uint8_t reg[20];
    *urls = NULL;
    if (n != NULL)
        *n = 0;
    if (registry == NULL || bk_eth_addr_parse(registry, reg, e) != BK_OK)
        return bk_err_set(e, BK_E_INVAL, "'%s' is not a registry contract address",
                          registry ? registry : "");
    if (eth_rpc == NULL || *eth_rpc == '\0')
        return bk_err_set(e, BK_E_INVAL, "no Ethereum JSON-RPC URL to read the registry");
    bk_rpc *rpc = bk_rpc_new_list(eth_rpc, timeout_ms > 0 ? timeout_ms : 5000, e);
    if (rpc == NULL)
        return BK_ERR;
    int rc = bk_reg_get_gateways(rpc, reg, urls, e);
    bk_rpc_free(rpc);
    if (rc != BK_OK)
        return BK_ERR;
    size_t count = 0;
    for (const char *p = *urls; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len > 0)
            count++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (count == 0) {
        free(*urls);
        *urls = NULL;
        return bk_err_set(e, BK_E_NOTFOUND, "the registry %s lists no gateway", registry);
    }
    if (n != NULL)
        *n = count;
    return BK_OK;
}
