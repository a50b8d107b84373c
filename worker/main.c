/* main.c - br2k-worker: configuration, then bk_worker_run (worker.h). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/config.h"
#include "base/log.h"
#include "base/sig.h"
#include "appload.h"
#include "worker.h"

static bk_cfg_opt opts[] = {
    {"id", BK_CFG_STR, "", 0, 0, NULL,
     "this worker's id (required; letters, digits, '-', '_', '.'), unique in the service",
     NULL, 0, 0},
    {"service", BK_CFG_STR, "default", 0, 0, NULL,
     "service name: the log is br2k.<service>.requests, the keys br2k:{<service>}:*",
     NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL,
     "Redis address HOST:PORT, or sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY (password: "
     "BR2K_REDIS_PASSWORD or BR2K_REDIS_PASSWORD_FILE)",
     NULL, 0, 0},
    {"kafka", BK_CFG_STR, "127.0.0.1:9092", 0, 0, NULL,
     "Kafka bootstrap servers HOST:PORT,...", NULL, 0, 0},
    {"kafka-props", BK_CFG_STR, "", 0, 0, NULL,
     "extra librdkafka properties k=v,k=v (TLS, SASL, ...)", NULL, 0, 0},
    {"state-dir", BK_CFG_STR, "", 0, 0, NULL,
     "directory of the local state (default ./br2k-state/<id>)", NULL, 0, 0},
    {"app", BK_CFG_STR, "infodid", 0, 0, NULL, bk_app_spec_help, NULL, 0, 0},
    {"app-timeout-ms", BK_CFG_INT, "30000", 10, 3600000, NULL,
     "an application over the protocol (exec:, unix:) that does not answer a call in "
     "this time is killed and restarted like a crashed worker",
     NULL, 0, 0},
    {"lease-ms", BK_CFG_INT, "300", 30, 60000, NULL,
     "leader lease TTL in ms; the leader renews it every lease-ms/5 on a thread and "
     "Redis connection of its own; a leader silent this long is replaced: another "
     "worker takes the lease the moment it expires (a stopped leader's next result "
     "comes about lease-ms later). Longer: fewer spurious leader changes when Redis or "
     "the host stalls (bench/failover.sh measures both)",
     NULL, 0, 0},
    {"batch-max", BK_CFG_INT, "1000", 1, 100000, NULL,
     "most records per batch (one in-flight mark, one sync, one SSI update)", NULL, 0, 0},
    {"result-ttl", BK_CFG_INT, "86400", 0, 315360000, NULL,
     "seconds a result stays in Redis for its client (0: forever)", NULL, 0, 0},
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated, tried in turn: where get-the-latest-state "
     "reads the backups (with --registry; empty: no restore, refuse instead)",
     NULL, 0, 0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL, "address of the registry contract (0x...)",
     NULL, 0, 0},
    {"service-key-file", BK_CFG_STR, "", 0, 0, NULL,
     "file holding the service's private key (hex), which decrypts the backup logs; "
     "empty: env BR2K_SERVICE_KEY",
     NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static const char summary[] =
    "One BR2K worker per node: reads the ordered request log from its LPI + 1,\n"
    "applies every request to its local state, and leads (fenced Redis lease)\n"
    "or follows SSI. SIGTERM finishes the current record, stores the LPI,\n"
    "leaves the membership, releases the lease and exits 0.";

static const char epilog[] =
    "Applications (--app): infodid and noop are built in; a plug-in of your own is\n"
    "a shared library built against br2k/app.h (`pkg-config --cflags br2k-app`)\n"
    "exporting br2k_app_entry, run with --app /path/to/libyourapp.so; an\n"
    "application in another language speaks the application protocol over a pipe\n"
    "(--app 'exec:COMMAND ARGS...', started and restarted by the worker) or a Unix\n"
    "socket (--app unix:PATH). A plug-in that cannot be loaded (no file, no\n"
    "br2k_app_entry, another ABI version) is a bad option: one line, exit 2.\n"
    "worker/apps/GUIDE.md: putting your service on BR2K.\n"
    "Get-the-latest-state: with --eth-rpc and --registry (and the service key), a\n"
    "worker that finds an in-flight mark (stopped mid-request), no local state, a\n"
    "damaged state, or a log that no longer holds the records after its LPI\n"
    "restores the latest backup (the previous one while the log covers it) and\n"
    "replays the log from its cut; S3 storage credentials come from\n"
    "BR2K_S3_ACCESS_KEY_ID / BR2K_S3_SECRET_ACCESS_KEY.\n"
    "Exit status: 0 stopped by a signal; 1 runtime failure; 2 bad option;\n"
    "3 refused to continue to protect the state: a record was interrupted\n"
    "mid-apply (I6), or the log is not the one this worker was reading or has a\n"
    "gap (I1), and no backup could be restored (the error says why).";

static bk_cfg cfg = {"br2k-worker", summary, "[OPTIONS]", opts, epilog, 0, 0};

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    if (argi < argc) {
        fprintf(stderr, "br2k-worker: unexpected argument '%s'\n", argv[argi]);
        bk_cfg_release(&cfg);
        return BK_EXIT_CONFIG;
    }
    const char *id = bk_cfg_str(&cfg, "id");
    if (*id == '\0') {
        fprintf(stderr, "br2k-worker: --id is required (or BR2K_ID)\n");
        bk_cfg_release(&cfg);
        return BK_EXIT_CONFIG;
    }
    const br2k_app_ops *ops = NULL;
    bk_err e;
    bk_err_clear(&e);
    char tmo[24]; /* read by worker/proto.c when it starts the application */
    snprintf(tmo, sizeof(tmo), "%lld", (long long)bk_cfg_int(&cfg, "app-timeout-ms"));
    setenv("BR2K_APP_TIMEOUT_MS", tmo, 1);
    if (bk_app_resolve(bk_cfg_str(&cfg, "app"), &ops, &e) != BK_OK) {
        fprintf(stderr, "br2k-worker: %s\n", e.msg);
        bk_cfg_release(&cfg);
        return BK_EXIT_CONFIG;
    }
    char dir[4096];
    const char *sd = bk_cfg_str(&cfg, "state-dir");
    if (*sd == '\0') {
        snprintf(dir, sizeof(dir), "br2k-state/%s", id);
        mkdir("br2k-state", 0755); /* an error shows when the worker creates dir */
    } else {
        snprintf(dir, sizeof(dir), "%s", sd);
    }
    bk_worker_opts o = {id,
                        bk_cfg_str(&cfg, "service"),
                        bk_cfg_str(&cfg, "redis"),
                        bk_cfg_str(&cfg, "kafka"),
                        bk_cfg_str(&cfg, "kafka-props"),
                        dir,
                        ops,
                        (int)bk_cfg_int(&cfg, "lease-ms"),
                        (int)bk_cfg_int(&cfg, "batch-max"),
                        (int)bk_cfg_int(&cfg, "result-ttl"),
                        bk_cfg_str(&cfg, "eth-rpc"),
                        bk_cfg_str(&cfg, "registry"),
                        bk_cfg_str(&cfg, "service-key-file")};
    /* an application the worker starts (--app exec:) learns its service and
     * worker from the environment (schemas/app-protocol.md) */
    setenv("BR2K_SERVICE", o.service, 1);
    setenv("BR2K_WORKER_ID", o.id, 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    bk_sig_install();
    rc = bk_worker_run(&o, &e); /* logs its error itself */
    curl_global_cleanup();
    bk_cfg_release(&cfg);
    return rc;
}
