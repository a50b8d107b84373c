/* itest_backup.c - driver of the backup tests (backup_*.sh).
 *
 *   itest_backup restore ETH_RPC REGISTRY KEYFILE APP [VERSION]
 *       read the backup (latest, or VERSION) from the chain, decrypt its
 *       log with the service key in KEYFILE, fetch and check the object,
 *       restore it into a fresh APP (infodid|noop) state in a temporary
 *       directory, and print one JSON line: {"version", "cut", "digest"
 *       (of the restored state), "log_digest" (state_digest in the log),
 *       "object", "sha256"}; exit 1 with the error on stderr otherwise.
 *
 *   itest_backup external ETH_RPC REGISTRY KEYFILE APP [VERSION]
 *       read the backup's log the same way, then its external state: the
 *       object the log's external_state names, from the storage the log
 *       names, checked (size, SHA-256, GCM tag) and opened with its data
 *       key; print one JSON line {"version", "cut", "meta" (the log's
 *       external_state), "content" (the object's JSON), "log"}; exit 1
 *       when the log has none, or the object does not verify or does not
 *       agree with its meta (format, cut, applied offset, key count).
 *       With APP infodid, the backup's state is restored too and compared
 *       with its external index (both at the same cut): "state" {"dids",
 *       "active", "match", "why"}; match is true when ext:did holds
 *       exactly the state's DIDs with their controllers and ext:active
 *       its number of active DIDs. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backup/backuplog.h"
#include "backup/storage.h"
#include "base/hex.h"
#include "chain/ethkey.h"
#include "infodid.h"
#include "chain/jsonrpc.h"
#include "noop.h"
#include "restore.h"
#include "worker.h"

static int restore(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: itest_backup restore ETH_RPC REGISTRY KEYFILE APP [V]\n");
        return 2;
    }
    bk_err e;
    bk_err_clear(&e);
    uint8_t reg[20];
    bk_eth_key key;
    if (bk_eth_addr_parse(argv[3], reg, &e) != BK_OK ||
        bk_service_key_load(argv[4], &key, &e) != BK_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    const br2k_app_ops *ops =
        strcmp(argv[5], "noop") == 0 ? &bk_noop_ops : &bk_infodid_ops;
    uint64_t want = argc > 6 ? strtoull(argv[6], NULL, 10) : 0, ver = 0;
    bk_rpc *rpc = bk_rpc_new_list(argv[2], 10000, &e);
    json_t *log = NULL;
    void *plain = NULL;
    size_t len = 0;
    if (rpc == NULL ||
        bk_restore_fetch(rpc, reg, &key, want, &ver, &log, &plain, &len, &e) != BK_OK) {
        fprintf(stderr, "%s\n", e.msg);
        bk_rpc_free(rpc);
        return 1;
    }
    char dir[] = "/tmp/itest_backup.XXXXXX";
    br2k_app *app = NULL;
    int64_t lpi = -1;
    char digest[65] = "";
    int rc = 1;
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
    } else if (ops->open(dir, &app, &lpi, &e) != BK_OK ||
               ops->restore(app, plain, len, &e) != BK_OK ||
               ops->digest(app, digest, &e) != BK_OK) {
        fprintf(stderr, "%s\n", e.msg);
    } else {
        json_t *sd = json_object_get(log, "state_data");
        json_t *out = json_pack("{sI sO ss sO sO sO}", "version", (json_int_t)ver, "cut",
                                json_object_get(log, "cut_offset"), "digest", digest,
                                "log_digest", json_object_get(log, "state_digest"),
                                "object", json_object_get(sd, "object"), "sha256",
                                json_object_get(sd, "sha256"));
        char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", text);
        free(text);
        json_decref(out);
        rc = 0;
    }
    if (app != NULL && ops->close != NULL)
        ops->close(app);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    free(plain);
    json_decref(log);
    bk_rpc_free(rpc);
    return rc;
}

/* The external state of log (decrypted) as "content"; NULL with e set. */
static json_t *external_of(const json_t *log, const bk_eth_key *key, bk_err *e) {
    const json_t *meta = json_object_get(log, "external_state");
    const char *url =
        json_string_value(json_object_get(json_object_get(log, "storage"), "url"));
    if (meta == NULL) {
        bk_err_set(e, BK_E_NOTFOUND, "the log has no external_state");
        return NULL;
    }
    bk_storage *st = NULL;
    void *plain = NULL;
    size_t len = 0;
    if (bk_storage_open(url, &st, e) != BK_OK ||
        bk_blog_get_sealed(st, meta, key, &plain, &len, e) != BK_OK) {
        bk_storage_close(st);
        return NULL;
    }
    bk_storage_close(st);
    json_error_t je;
    json_t *c = json_loadb(plain, len, JSON_REJECT_DUPLICATES, &je);
    free(plain);
    if (c == NULL) {
        bk_err_set(e, BK_E_INVAL, "the external state is not JSON: %s", je.text);
        return NULL;
    }
    const char *fmt = json_string_value(json_object_get(c, "format"));
    if (fmt == NULL || strcmp(fmt, BK_EXTERNAL_FORMAT) != 0 ||
        !json_equal(json_object_get(c, "cut_offset"),
                    json_object_get(log, "cut_offset")) ||
        !json_equal(json_object_get(c, "cut_offset"),
                    json_object_get(meta, "cut_offset")) ||
        !json_equal(json_object_get(c, "applied_offset"),
                    json_object_get(meta, "applied_offset")) ||
        !json_is_object(json_object_get(c, "keys")) ||
        (json_int_t)json_object_size(json_object_get(c, "keys")) !=
            json_integer_value(json_object_get(meta, "key_count"))) {
        bk_err_set(e, BK_E_INVAL,
                   "the external state does not agree with the log (format, cut, applied "
                   "offset or key count)");
        json_decref(c);
        return NULL;
    }
    return c;
}

/* bk_infodid_each's DID callback: each DID of the state in ext:did, with
 * its controller. */
typedef struct match {
    const json_t *did; /* ext:did's value: DID -> controller */
    size_t seen;
    char why[256];
} match;

static int on_did(const bk_infodid_did *x, void *opaque) {
    match *m = opaque;
    const char *ctrl = json_string_value(json_object_get(m->did, x->did));
    char hex[41];
    bk_hex_encode(x->controller, 20, 0, hex);
    if (ctrl != NULL && ctrl[0] == '0' && (ctrl[1] == 'x' || ctrl[1] == 'X'))
        ctrl += 2;
    if (ctrl == NULL || strcasecmp(ctrl, hex) != 0) {
        snprintf(m->why, sizeof(m->why), "DID '%.80s' (controller %s) is %s", x->did, hex,
                 ctrl == NULL ? "not in ext:did" : "in ext:did with another controller");
        return 1;
    }
    m->seen++;
    return 0;
}

/* Restore the InfoDID state plain[len] and compare it with the external
 * state content: {"dids", "active", "match", "why"}. */
static json_t *compare_state(const void *plain, size_t len, const json_t *content,
                             bk_err *e) {
    const char *prefix = json_string_value(json_object_get(content, "prefix"));
    const json_t *keys = json_object_get(content, "keys");
    char k[600];
    snprintf(k, sizeof(k), "%sdid", prefix ? prefix : "");
    const json_t *did = json_object_get(json_object_get(keys, k), "value");
    snprintf(k, sizeof(k), "%sactive", prefix ? prefix : "");
    const char *active =
        json_string_value(json_object_get(json_object_get(keys, k), "value"));
    char dir[] = "/tmp/itest_backup.XXXXXX";
    br2k_app *app = NULL;
    int64_t lpi = -1;
    json_t *out = NULL;
    match m = {did, 0, ""};
    if (mkdtemp(dir) == NULL) {
        bk_err_set(e, BK_E_IO, "mkdtemp failed");
        return NULL;
    }
    if (bk_infodid_ops.open(dir, &app, &lpi, e) == BK_OK &&
        bk_infodid_ops.restore(app, plain, len, e) == BK_OK) {
        bk_err we;
        bk_err_clear(&we);
        int walked = bk_infodid_each(app, on_did, NULL, &m, &we) == BK_OK;
        int64_t act = bk_infodid_active(app);
        if (walked && m.seen != json_object_size(did))
            snprintf(m.why, sizeof(m.why), "ext:did holds %zu DIDs, the state %zu",
                     json_object_size(did), m.seen);
        else if (walked && (active == NULL || strtoll(active, NULL, 10) != act))
            snprintf(m.why, sizeof(m.why), "ext:active is %.40s, the state has %" PRId64,
                     active ? active : "absent", act);
        else if (!walked && m.why[0] == '\0')
            snprintf(m.why, sizeof(m.why), "%.200s", we.msg);
        out = json_pack("{sI sI sb ss}", "dids", (json_int_t)m.seen, "active",
                        (json_int_t)act, "match", m.why[0] == '\0', "why", m.why);
    }
    if (app != NULL && bk_infodid_ops.close != NULL)
        bk_infodid_ops.close(app);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return out;
}

static int external(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr,
                "usage: itest_backup external ETH_RPC REGISTRY KEYFILE APP [V]\n");
        return 2;
    }
    bk_err e;
    bk_err_clear(&e);
    uint8_t reg[20];
    bk_eth_key key;
    if (bk_eth_addr_parse(argv[3], reg, &e) != BK_OK ||
        bk_service_key_load(argv[4], &key, &e) != BK_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    uint64_t want = argc > 6 ? strtoull(argv[6], NULL, 10) : 0, ver = 0;
    bk_rpc *rpc = bk_rpc_new_list(argv[2], 10000, &e);
    json_t *log = NULL, *content = NULL, *state = NULL;
    void *plain = NULL;
    size_t len = 0;
    int rc = 1;
    if (rpc == NULL ||
        bk_restore_fetch(rpc, reg, &key, want, &ver, &log, &plain, &len, &e) != BK_OK ||
        (content = external_of(log, &key, &e)) == NULL ||
        (strcmp(argv[5], "infodid") == 0 &&
         (state = compare_state(plain, len, content, &e)) == NULL)) {
        fprintf(stderr, "backup version %" PRIu64 ": %s\n", ver, e.msg);
        json_decref(content);
    } else {
        json_t *out = json_pack("{sI sO sO so sO}", "version", (json_int_t)ver, "cut",
                                json_object_get(log, "cut_offset"), "meta",
                                json_object_get(log, "external_state"), "content",
                                content, "log", log);
        if (state != NULL)
            json_object_set_new(out, "state", state);
        char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", text);
        free(text);
        json_decref(out);
        rc = 0;
    }
    bk_eth_key_clear(&key);
    free(plain);
    json_decref(log);
    bk_rpc_free(rpc);
    return rc;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "restore") == 0)
        return restore(argc, argv);
    if (argc > 1 && strcmp(argv[1], "external") == 0)
        return external(argc, argv);
    fprintf(stderr, "usage: itest_backup restore|external ...\n");
    return 2;
}
