/* itest_backup.c - driver of the backup tests (backup_*.sh).
 *
 *   itest_backup restore ETH_RPC REGISTRY KEYFILE APP [VERSION]
 *       read the backup (latest, or VERSION) from the chain, decrypt its
 *       log with the service key in KEYFILE, fetch and check the object,
 *       restore it into a fresh APP (infodid|noop) state in a temporary
 *       directory, and print one JSON line: {"version", "cut", "digest"
 *       (of the restored state), "log_digest" (state_digest in the log),
 *       "object", "sha256"}; exit 1 with the error on stderr otherwise. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/backuplog.h"
#include "chain/ethkey.h"
#include "infodid.h"
#include "chain/jsonrpc.h"
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

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "restore") == 0)
        return restore(argc, argv);
    fprintf(stderr, "usage: itest_backup restore ...\n");
    return 2;
}
