/* registry.c - the registry contract's codec; see registry.h. */
#include "chain/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/abi.h"
#include "base/hex.h"
#include "registry_code.h" /* generated from BR2KRegistry.json */

const char *const bk_reg_error_sigs[] = {
    "NotOwner(address)",
    "NotWriter(address)",
    "ZeroAddress()",
    "EmptyAccessInfo()",
    "EmptyWorkerId()",
    "StaleEpoch(uint64,uint64)",
    "BadVersion(uint64,uint64)",
    "EmptyDigest()",
    "EmptyLog()",
    "UnknownVersion(uint64)",
    "BadPrune(uint64,uint64,uint64)",
};
const size_t bk_reg_nerror_sigs =
    sizeof(bk_reg_error_sigs) / sizeof(bk_reg_error_sigs[0]);

/* ---- calldata ---- */

int bk_reg_enc_set_access_info(const char *bootstrap, const char *topic,
                               const char *results, uint8_t **out, size_t *len,
                               bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "setAccessInfo(string,string,string)");
    bk_abi_put_string(&a, bootstrap);
    bk_abi_put_string(&a, topic);
    bk_abi_put_string(&a, results ? results : "");
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_set_leader(const char *worker_id, uint64_t epoch, const char *endpoint,
                          uint8_t **out, size_t *len, bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "setLeader(string,uint64,string)");
    bk_abi_put_string(&a, worker_id);
    bk_abi_put_uint(&a, epoch);
    bk_abi_put_string(&a, endpoint ? endpoint : "");
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_append_backup_log(uint64_t version, const uint8_t digest[32],
                                 const uint8_t *log, size_t loglen, uint8_t **out,
                                 size_t *len, bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "appendBackupLog(uint64,bytes32,bytes)");
    bk_abi_put_uint(&a, version);
    bk_abi_put_bytes32(&a, digest);
    bk_abi_put_bytes(&a, log, loglen);
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_append_backup_log_archive(uint64_t version, const uint8_t digest[32],
                                         const uint8_t archive[32], const uint8_t *log,
                                         size_t loglen, uint8_t **out, size_t *len,
                                         bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "appendBackupLogWithArchive(uint64,bytes32,bytes32,bytes)");
    bk_abi_put_uint(&a, version);
    bk_abi_put_bytes32(&a, digest);
    bk_abi_put_bytes32(&a, archive);
    bk_abi_put_bytes(&a, log, loglen);
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_prune_archives(uint64_t through, uint8_t **out, size_t *len, bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "pruneArchives(uint64)");
    bk_abi_put_uint(&a, through);
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_archive_by_version(uint64_t version, uint8_t **out, size_t *len,
                                  bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "archiveByVersion(uint64)");
    bk_abi_put_uint(&a, version);
    return bk_abi_enc_finish(&a, out, len, e);
}

static int enc_address(const char *sig, const uint8_t account[20], uint8_t **out,
                       size_t *len, bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, sig);
    bk_abi_put_address(&a, account);
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_add_writer(const uint8_t account[20], uint8_t **out, size_t *len,
                          bk_err *e) {
    return enc_address("addWriter(address)", account, out, len, e);
}

int bk_reg_enc_remove_writer(const uint8_t account[20], uint8_t **out, size_t *len,
                             bk_err *e) {
    return enc_address("removeWriter(address)", account, out, len, e);
}

int bk_reg_enc_is_writer(const uint8_t account[20], uint8_t **out, size_t *len,
                         bk_err *e) {
    return enc_address("isWriter(address)", account, out, len, e);
}

int bk_reg_enc_backup_by_version(uint64_t version, uint8_t **out, size_t *len,
                                 bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "backupByVersion(uint64)");
    bk_abi_put_uint(&a, version);
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_set_gateways(const char *urls, uint8_t **out, size_t *len, bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, "setGateways(string)");
    bk_abi_put_string(&a, urls ? urls : "");
    return bk_abi_enc_finish(&a, out, len, e);
}

int bk_reg_enc_noarg(const char *signature, uint8_t **out, size_t *len, bk_err *e) {
    bk_abi_enc a;
    bk_abi_enc_init(&a, signature);
    return bk_abi_enc_finish(&a, out, len, e);
}

/* ---- views ---- */

void bk_reg_access_release(bk_reg_access *a) {
    if (a == NULL)
        return;
    free(a->bootstrap);
    free(a->topic);
    free(a->results);
    memset(a, 0, sizeof(*a));
}

void bk_reg_leader_release(bk_reg_leader *l) {
    if (l == NULL)
        return;
    free(l->worker_id);
    free(l->endpoint);
    memset(l, 0, sizeof(*l));
}

/* Decode ret as `types` into v[n]; the message names the view. */
static int dec(const char *view, const uint8_t *ret, size_t len, const char *types,
               bk_abi_val *v, size_t want, bk_err *e) {
    size_t n = 0;
    if (len == 0)
        return bk_err_set(e, BK_E_PROTO,
                          "empty result from '%s': is the address a BR2K registry?",
                          view);
    if (bk_abi_decode(ret, len, types, v, want, &n, e) != BK_OK)
        return bk_err_prefix(e, "malformed result from '%s'", view);
    if (n != want)
        return bk_err_set(e, BK_E_PROTO, "malformed result from '%s'", view);
    return BK_OK;
}

static int u64(const char *view, const bk_abi_val *v, uint64_t *out, bk_err *e) {
    if (bk_abi_val_u64(v, out, e) != BK_OK)
        return bk_err_prefix(e, "malformed result from '%s'", view);
    return BK_OK;
}

int bk_reg_dec_state_version(const uint8_t *ret, size_t len, uint64_t *sv, bk_err *e) {
    bk_abi_val v[1];
    if (dec("stateVersion", ret, len, "uint64", v, 1, e) != BK_OK)
        return BK_ERR;
    return u64("stateVersion", &v[0], sv, e);
}

int bk_reg_dec_backup(const uint8_t *ret, size_t len, bk_reg_backup *b, bk_err *e) {
    bk_abi_val v[3];
    memset(b, 0, sizeof(*b));
    if (dec("latestBackup", ret, len, "uint64,bytes32,uint64", v, 3, e) != BK_OK)
        return BK_ERR;
    memcpy(b->digest, v[1].word, 32);
    if (u64("latestBackup", &v[0], &b->version, e) != BK_OK ||
        u64("latestBackup", &v[2], &b->block, e) != BK_OK)
        return BK_ERR;
    return BK_OK;
}

int bk_reg_dec_archive(const uint8_t *ret, size_t len, uint8_t digest[32],
                       uint64_t *pruned_through, bk_err *e) {
    bk_abi_val v[2];
    if (dec("archiveByVersion", ret, len, "bytes32,uint64", v, 2, e) != BK_OK ||
        u64("archiveByVersion", &v[1], pruned_through, e) != BK_OK)
        return BK_ERR;
    memcpy(digest, v[0].word, 32);
    return BK_OK;
}

int bk_reg_dec_leader(const uint8_t *ret, size_t len, bk_reg_leader *l, bk_err *e) {
    bk_abi_val v[3];
    memset(l, 0, sizeof(*l));
    if (dec("leader", ret, len, "string,uint64,string", v, 3, e) != BK_OK ||
        u64("leader", &v[1], &l->epoch, e) != BK_OK)
        return BK_ERR;
    l->worker_id = bk_abi_val_strdup(&v[0]);
    l->endpoint = bk_abi_val_strdup(&v[2]);
    if (l->worker_id == NULL || l->endpoint == NULL) {
        bk_reg_leader_release(l);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    return BK_OK;
}

int bk_reg_dec_access_info(const uint8_t *ret, size_t len, bk_reg_access *a, bk_err *e) {
    bk_abi_val v[3];
    memset(a, 0, sizeof(*a));
    if (dec("accessInfo", ret, len, "string,string,string", v, 3, e) != BK_OK)
        return BK_ERR;
    a->bootstrap = bk_abi_val_strdup(&v[0]);
    a->topic = bk_abi_val_strdup(&v[1]);
    a->results = bk_abi_val_strdup(&v[2]);
    if (a->bootstrap == NULL || a->topic == NULL || a->results == NULL) {
        bk_reg_access_release(a);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    return BK_OK;
}

int bk_reg_dec_gateways(const uint8_t *ret, size_t len, char **urls, bk_err *e) {
    bk_abi_val v[1];
    *urls = NULL;
    if (dec("gateways", ret, len, "string", v, 1, e) != BK_OK)
        return BK_ERR;
    *urls = bk_abi_val_strdup(&v[0]);
    if (*urls == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    return BK_OK;
}

int bk_reg_dec_bool(const uint8_t *ret, size_t len, int *out, bk_err *e) {
    bk_abi_val v[1];
    if (dec("isWriter", ret, len, "bool", v, 1, e) != BK_OK)
        return BK_ERR;
    *out = v[0].word[31] != 0;
    return BK_OK;
}

int bk_reg_dec_address(const uint8_t *ret, size_t len, uint8_t addr[20], bk_err *e) {
    bk_abi_val v[1];
    if (dec("owner", ret, len, "address", v, 1, e) != BK_OK)
        return BK_ERR;
    memcpy(addr, v[0].word + 12, 20);
    return BK_OK;
}

/* ---- reverts ---- */

int bk_reg_revert_describe(const uint8_t *data, size_t len, char *name, size_t name_size,
                           char *line, size_t line_size, uint64_t args[2], bk_err *e) {
    bk_abi_revert r;
    bk_err le;
    bk_err_clear(&le);
    if (args != NULL)
        args[0] = args[1] = 0;
    if (name_size > 0)
        name[0] = '\0';
    if (bk_abi_decode_revert(data, len, bk_reg_error_sigs, bk_reg_nerror_sigs, &r, &le) !=
        BK_OK) {
        snprintf(line, line_size, "malformed revert data: %s", le.msg);
        if (e != NULL)
            *e = le;
        return bk_err_prefix(e, "malformed revert data");
    }
    if (r.kind == BK_REVERT_CUSTOM || r.kind == BK_REVERT_ERROR ||
        r.kind == BK_REVERT_PANIC)
        snprintf(name, name_size, "%s", r.name);
    bk_abi_revert_format(&r, line, line_size);
    for (size_t i = 0; args != NULL && i < r.nargs && i < 2; i++)
        if (r.args[i].type.kind == BK_ABI_UINT &&
            bk_abi_val_u64(&r.args[i], &args[i], NULL) != BK_OK)
            args[i] = 0;
    return BK_OK;
}

/* ---- events ---- */

int bk_reg_dec_backup_logged(const uint8_t (*topics)[32], size_t ntopics,
                             const uint8_t *data, size_t len, bk_reg_backup_log *out,
                             bk_err *e) {
    bk_abi_val v[3];
    size_t n = 0;
    memset(out, 0, sizeof(*out));
    if (bk_abi_decode_log("BackupLogged(uint64 indexed,bytes32,bytes)", topics, ntopics,
                          data, len, v, 3, &n, e) != BK_OK)
        return BK_ERR;
    if (n != 3 || bk_abi_val_u64(&v[0], &out->version, e) != BK_OK)
        return bk_err_set(e, BK_E_PROTO, "malformed BackupLogged event");
    memcpy(out->digest, v[1].word, 32);
    out->log = v[2].data;
    out->loglen = v[2].len;
    return BK_OK;
}

/* ---- code ---- */

int bk_reg_creation_code(uint8_t **out, size_t *len, bk_err *e) {
    if (bk_hex_decode_alloc(bk_reg_creation_hex, out, len, e) != BK_OK)
        return bk_err_prefix(e, "embedded registry bytecode");
    if (*len == 0) {
        free(*out);
        *out = NULL;
        return bk_err_set(e, BK_E_STATE, "embedded registry bytecode is empty");
    }
    return BK_OK;
}

const char *bk_reg_runtime_code_hex(void) {
    return bk_reg_runtime_hex;
}
