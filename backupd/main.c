/* main.c - br2k-backupd: configuration, then bk_backupd_run (backupd.h). */
#include <curl/curl.h>
#include <stdio.h>

#include "backupd.h"
#include "base/config.h"
#include "base/log.h"
#include "base/sig.h"

static bk_cfg_opt opts[] = {
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL,
     "Redis address HOST:PORT, or sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY (password: "
     "BR2K_REDIS_PASSWORD or BR2K_REDIS_PASSWORD_FILE)",
     NULL, 0, 0},
    {"kafka", BK_CFG_STR, "127.0.0.1:9092", 0, 0, NULL,
     "Kafka bootstrap servers HOST:PORT,... (records below a backup's cut are deleted)",
     NULL, 0, 0},
    {"kafka-props", BK_CFG_STR, "", 0, 0, NULL,
     "extra librdkafka properties k=v,k=v (TLS, SASL, ...)", NULL, 0, 0},
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated, tried in turn", NULL, 0, 0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL, "address of the registry contract (0x...)",
     NULL, 0, 0},
    {"storage", BK_CFG_STR, "file://br2k-backups", 0, 0, NULL,
     "off-chain storage: file://DIR, or s3://BUCKET/PREFIX?endpoint=URL&region=R with "
     "BR2K_S3_ACCESS_KEY_ID and BR2K_S3_SECRET_ACCESS_KEY in the environment",
     NULL, 0, 0},
    {"service-pubkey", BK_CFG_STR, "", 0, 0, NULL,
     "the service's secp256k1 public key (0x04..., or a file holding it) the backup logs "
     "and data keys are encrypted to; empty: derived from BR2K_SERVICE_KEY (`br2k "
     "keygen` "
     "makes a pair)",
     NULL, 0, 0},
    {"max-replicated", BK_CFG_INT, "2000", 1, 1000000000, NULL,
     "back up after this many records since the last cut (the paper's maximum "
     "replication count). The development broker keeps only ~5 MiB per partition "
     "(~8,000 InfoDID requests): keep this well below, with room for the records that "
     "arrive during a backup",
     NULL, 0, 0},
    {"keep", BK_CFG_INT, "3", 1, 1000000, NULL,
     "backup versions whose state objects are kept in storage (older ones are pruned; "
     "history archives are never pruned by this)",
     NULL, 0, 0},
    {"archive-keep", BK_CFG_INT, "0", 0, 1000000, NULL,
     "0: keep every history archive (the history of service actions, br2k history); "
     "N: prune the archives of versions older than the newest N, each pruning "
     "recorded on chain first (pruneArchives)",
     NULL, 0, 0},
    {"hold-timeout-ms", BK_CFG_INT, "3000", 50, 600000, NULL,
     "longest time the leader holds at the cut (waiting for the followers); a backup "
     "that needs longer is abandoned and retried",
     NULL, 0, 0},
    {"view-fields", BK_CFG_INT, "100000", -1, 2000000000, NULL,
     "an external state (the keys under br2k:{svc}:ext:) of more hash fields than this "
     "is taken from the leader's state at the cut (its application's view, when it "
     "offers one: a plug-in with republish) instead of read from Redis while the leader "
     "holds (about 1.5 s per million fields); 0: whenever offered, -1: never. Read from "
     "Redis, the backup also holds what no record made (a forged index entry shows in "
     "`br2k history verify`)",
     NULL, 0, 0},
    {"snapshot-timeout-ms", BK_CFG_INT, "300000", 100, 86400000, NULL,
     "longest wait for the leader's snapshot to be stored", NULL, 0, 0},
    {"log-timeout-ms", BK_CFG_INT, "120000", 100, 86400000, NULL,
     "longest wait for the backup log to be confirmed on chain", NULL, 0, 0},
    {"phase-ttl-ms", BK_CFG_INT, "600000", 1000, 86400000, NULL,
     "expiry of the backup phase after the snapshot request (the phase goes away if "
     "backupd dies)",
     NULL, 0, 0},
    {"poll-ms", BK_CFG_INT, "100", 5, 60000, NULL, "how often the triggers are checked",
     NULL, 0, 0},
    {"once", BK_CFG_BOOL, "false", 0, 0, NULL,
     "run one backup now and exit (0: done, 1: failed)", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {
    "br2k-backupd",
    "The BR2K backup daemon: runs state-version-up (the paper's Table 1) with the\n"
    "leader's fencing token at every step, stores encrypted snapshots off-chain,\n"
    "logs each backup (encrypted to the service key) in the Ethereum registry\n"
    "through registryd, then deletes the log's records below the cut.",
    "[OPTIONS]",
    opts,
    "Triggers: max-replicated records since the last cut; fewer than a majority of\n"
    "members alive (with new records); `br2k backup now`. Steps and keys:\n"
    "backupd/backupd.h, schemas/redis-keys.md. Exit status: 0 stopped by a signal\n"
    "(or --once done); 1 failure; 2 bad option.",
    0,
    0};

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    if (argi < argc) {
        fprintf(stderr, "br2k-backupd: unexpected argument '%s'\n", argv[argi]);
        bk_cfg_release(&cfg);
        return 2;
    }
    bk_backupd_opts o = {bk_cfg_str(&cfg, "service"),
                         bk_cfg_str(&cfg, "redis"),
                         bk_cfg_str(&cfg, "kafka"),
                         bk_cfg_str(&cfg, "kafka-props"),
                         bk_cfg_str(&cfg, "eth-rpc"),
                         bk_cfg_str(&cfg, "registry"),
                         bk_cfg_str(&cfg, "storage"),
                         bk_cfg_str(&cfg, "service-pubkey"),
                         bk_cfg_int(&cfg, "max-replicated"),
                         (int)bk_cfg_int(&cfg, "keep"),
                         (int)bk_cfg_int(&cfg, "hold-timeout-ms"),
                         (int)bk_cfg_int(&cfg, "snapshot-timeout-ms"),
                         (int)bk_cfg_int(&cfg, "log-timeout-ms"),
                         (int)bk_cfg_int(&cfg, "phase-ttl-ms"),
                         (int)bk_cfg_int(&cfg, "poll-ms"),
                         bk_cfg_int(&cfg, "once") != 0,
                         (int)bk_cfg_int(&cfg, "archive-keep"),
                         bk_cfg_int(&cfg, "view-fields")};
    curl_global_init(CURL_GLOBAL_DEFAULT);
    bk_sig_install();
    bk_err e;
    bk_err_clear(&e);
    rc = bk_backupd_run(&o, &e);
    if (rc != 0)
        BK_ERROR("%s", e.msg);
    curl_global_cleanup();
    bk_cfg_release(&cfg);
    return rc;
}
