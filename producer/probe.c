/* probe.c - `br2k probe ready|live`; see probe.h.
 *
 * A worker (--id ID) writes its heartbeat alive-<ID> and its metrics hash:
 * live is the heartbeat, ready is the heartbeat and caught_up=1, read
 * through ops_member_json (ops.h).
 *
 * br2k-backupd and br2k-registryd (--process NAME) write no heartbeat in
 * Redis, so their probes check what can be checked from inside their
 * container: live is a process of that name that is neither stopped
 * (SIGSTOP, state T) nor a zombie, found in /proc; ready is live, and the
 * parts of the stack the daemon needs answer (ping.h): Redis, the log when
 * --kafka is set, Ethereum when --eth-rpc is set (the container's BR2K_*
 * environment sets them). */
#include "probe.h"

#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/err.h"
#include "ops.h"
#include "ping.h"
#include "redis/keys.h"
#include "redis/redis.h"

/* Fields of the metrics hash (schemas/redis-keys.md) read here. */
#define METRIC_LPI "lpi"
#define METRIC_SSI "ssi"
#define METRIC_CAUGHT_UP "caught_up"
#define METRIC_JOINING "joining"
#define METRIC_JOIN_REMAINING "join_remaining"

#define COMM_MAX 15 /* the kernel keeps this many bytes of a program's name */

static bk_cfg_opt probe_opts[] = {
    {"id", BK_CFG_STR, "", 0, 0, NULL, "the worker id (as br2k-worker --id)", NULL, 0, 0},
    {"process", BK_CFG_STR, "", 0, 0, NULL,
     "instead of --id: the daemon's program name (br2k-backupd, br2k-registryd)", NULL, 0,
     0},
    {"timeout-ms", BK_CFG_INT, "800", 100, 600000, NULL,
     "Redis connect and command timeout (below the probe's timeoutSeconds)", NULL, 0, 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, NULL, 0, 0}};

static const char probe_epilog[] =
    "A worker (--id ID):\n"
    "ready: exit 0 when the worker's heartbeat (alive-<ID>) is present and its\n"
    "metrics say caught_up=1; else exit 1 with one line saying why (\"no heartbeat\",\n"
    "\"joining: N records to go\", \"not caught up: lpi L < ssi S\", \"cannot reach\n"
    "Redis: ...\").\n"
    "live: exit 0 when the heartbeat is present, 1 (\"no heartbeat\") when it is not;\n"
    "also 0, with a note on stderr, when Redis cannot be reached at all: restarting\n"
    "the worker would not help.\n"
    "A daemon without a heartbeat of its own (--process br2k-backupd|br2k-registryd):\n"
    "live: exit 0 when a process of that name runs in this container and is neither\n"
    "stopped nor a zombie; else 1 (\"no process NAME\", \"NAME (pid P) is stopped\").\n"
    "ready: live, and Redis answers, and so do the log (when the global --kafka or\n"
    "BR2K_KAFKA is set) and Ethereum (the global --eth-rpc or BR2K_ETH_RPC); else 1\n"
    "with the part that does not answer (\"cannot reach Redis: ...\").\n"
    "Exit 2 on bad usage.";

static bk_cfg probe_cfg = {"br2k probe",
                           "Kubernetes readiness and liveness of a worker or a daemon.",
                           "ready|live --id ID|--process NAME [--timeout-ms MS]",
                           probe_opts,
                           probe_epilog,
                           0,
                           0};

/* An integer field of an object, `def` when absent or not an integer. */
static json_int_t int_of(const json_t *o, const char *field, json_int_t def) {
    const json_t *v = json_object_get(o, field);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

/* ---- a worker ---- */

static int probe_worker(const cli_globals *g, int live, const char *id, int timeout) {
    bk_err e;
    bk_err_clear(&e);
    bk_redis *r = bk_redis_new(g->redis, timeout, &e);
    int reached = r != NULL;
    json_t *m = reached ? ops_member_json(r, g->service, id, &e) : NULL;
    bk_redis_free(r);
    if (!reached || e.code != 0) {
        json_decref(m);
        if (live) {
            fprintf(stderr,
                    "br2k probe live: cannot reach Redis (%s); answering live, since "
                    "restarting the worker would not help\n",
                    e.msg);
            return 0;
        }
        printf("cannot reach Redis: %s\n", e.msg);
        return 1;
    }
    int rc;
    const json_t *metrics = json_object_get(m, "metrics");
    if (!json_is_true(json_object_get(m, "alive"))) {
        rc = 1;
        printf("no heartbeat\n");
    } else if (live) {
        rc = 0;
        printf("live\n");
    } else if (int_of(metrics, METRIC_JOINING, 0) == 1) {
        rc = 1;
        json_int_t rem = int_of(metrics, METRIC_JOIN_REMAINING, -1);
        if (rem >= 0)
            printf("joining: %" JSON_INTEGER_FORMAT " records to go\n", rem);
        else
            printf("joining: records to go not known yet\n");
    } else if (int_of(metrics, METRIC_CAUGHT_UP, 0) == 1) {
        rc = 0;
        printf("ready: caught up at lpi %" JSON_INTEGER_FORMAT "\n",
               int_of(metrics, METRIC_LPI, -1));
    } else if (json_object_get(metrics, METRIC_CAUGHT_UP) == NULL) {
        rc = 1;
        printf("not caught up: no metrics yet\n");
    } else {
        rc = 1;
        printf("not caught up: lpi %" JSON_INTEGER_FORMAT " < ssi %" JSON_INTEGER_FORMAT
               "\n",
               int_of(metrics, METRIC_LPI, -1), int_of(metrics, METRIC_SSI, -1));
    }
    json_decref(m);
    return rc;
}

/* ---- a daemon ---- */

/* The state letter of /proc/<pid>/stat (after the parenthesised name), 0
 * when it cannot be read. */
static char proc_state(const char *pid) {
    char path[300], buf[512];
    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p[2] : 0;
}

/* Is a process named `name` running (not stopped, not a zombie)? 1 yes, 0
 * no; why[] says what was found. */
static int process_live(const char *name, char *why, size_t size) {
    DIR *d = opendir("/proc");
    if (d == NULL) {
        snprintf(why, size, "cannot read /proc");
        return 0;
    }
    char self[32];
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    int found = 0;
    snprintf(why, size, "no process %s", name);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]) || strcmp(de->d_name, self) == 0)
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof(comm), f) == NULL)
            comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        if (comm[0] == '\0' || strncmp(comm, name, COMM_MAX) != 0 ||
            strlen(comm) != (strlen(name) < COMM_MAX ? strlen(name) : COMM_MAX))
            continue;
        char st = proc_state(de->d_name);
        if (st == 'T' || st == 't')
            snprintf(why, size, "%s (pid %s) is stopped", name, de->d_name);
        else if (st == 'Z' || st == 'X')
            snprintf(why, size, "%s (pid %s) has exited (zombie)", name, de->d_name);
        else if (st != 0) {
            snprintf(why, size, "%s (pid %s) runs", name, de->d_name);
            found = 1;
            break;
        }
    }
    closedir(d);
    return found;
}

static int probe_daemon(const cli_globals *g, int live, const char *name, int timeout) {
    char why[600];
    if (!process_live(name, why, sizeof(why))) {
        printf("%s\n", why);
        return 1;
    }
    if (live) {
        printf("live: %s\n", why);
        return 0;
    }
    char detail[600];
    if (!ping_redis(g->redis, timeout, detail, sizeof(detail))) {
        printf("cannot reach Redis: %s\n", detail);
        return 1;
    }
    if (g->kafka[0] != '\0' && !ping_log(g->kafka, g->kafka_props, g->service, timeout,
                                         detail, sizeof(detail))) {
        printf("cannot reach the log: %s\n", detail);
        return 1;
    }
    if (g->eth_rpc[0] != '\0' && !ping_eth(g->eth_rpc, timeout, detail, sizeof(detail))) {
        printf("cannot reach Ethereum: %s\n", detail);
        return 1;
    }
    printf("ready: %s; Redis%s%s answer%s\n", why, g->kafka[0] ? ", the log" : "",
           g->eth_rpc[0] ? ", Ethereum" : "", g->kafka[0] || g->eth_rpc[0] ? "" : "s");
    return 0;
}

int cmd_probe(const cli_globals *g, int argc, char **argv) {
    int rc;
    int ready = argc >= 2 && strcmp(argv[1], "ready") == 0;
    int live = argc >= 2 && strcmp(argv[1], "live") == 0;
    if (!ready && !live) {
        /* `br2k probe --help` shows the help; anything else is bad usage */
        if (cli_parse(&probe_cfg, g, argc, argv, &rc)) {
            bk_cfg_release(&probe_cfg);
            return rc;
        }
        bk_cfg_release(&probe_cfg);
        fprintf(stderr,
                "br2k probe: expected 'ready' or 'live' (see br2k probe --help)\n");
        return 2;
    }
    probe_cfg.prog = ready ? "br2k probe ready" : "br2k probe live";
    probe_cfg.usage = "--id ID|--process NAME [--timeout-ms MS]";
    if (cli_parse(&probe_cfg, g, argc - 1, argv + 1, &rc)) {
        bk_cfg_release(&probe_cfg);
        return rc;
    }
    const char *what = ready ? "ready" : "live";
    char id[BK_ID_MAX + 1], process[COMM_MAX + 50];
    snprintf(id, sizeof(id), "%s", bk_cfg_str(&probe_cfg, "id"));
    snprintf(process, sizeof(process), "%s", bk_cfg_str(&probe_cfg, "process"));
    int id_ok = strlen(bk_cfg_str(&probe_cfg, "id")) <= BK_ID_MAX;
    int process_ok = strlen(bk_cfg_str(&probe_cfg, "process")) < sizeof(process) &&
                     strchr(process, '/') == NULL;
    int both = process[0] != '\0' && bk_cfg_source(&probe_cfg, "id") == BK_SRC_FLAG;
    int timeout = (int)bk_cfg_int(&probe_cfg, "timeout-ms");
    bk_cfg_release(&probe_cfg);
    bk_err e;
    bk_err_clear(&e);
    if (both) {
        fprintf(stderr, "br2k probe %s: give --id or --process, not both\n", what);
        return 2;
    }
    if (process[0] != '\0') {
        if (!process_ok) {
            fprintf(stderr, "br2k probe %s: --process needs a program name, got '%s'\n",
                    what, process);
            return 2;
        }
        return probe_daemon(g, live, process, timeout);
    }
    if (id[0] == '\0') {
        fprintf(stderr, "br2k probe %s: --id or --process is required\n", what);
        return 2;
    }
    if (!id_ok || bk_keys_check_id(id, &e) != BK_OK ||
        bk_keys_check_service(g->service, &e) != BK_OK) {
        fprintf(stderr, "br2k probe %s: %s\n", what, id_ok ? e.msg : "--id is too long");
        return 2;
    }
    return probe_worker(g, live, id, timeout);
}
