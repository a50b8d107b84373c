/* apply_rate.c - br2k-bench-apply: t_apply of bench (b), the CPU time one
 * replica spends per request, on one thread, with no log reading, commit
 * or other process in the loop.
 *
 * Reads --count records (default: up to the end at start) of the service
 * topic from --from (default: the first kept) into memory, then opens the
 * application (--app, as the worker resolves it: worker/appload.h) in a
 * fresh --state-dir and applies them in order, in batches of --batch
 * (the worker's --batch-max) with one sync after each, as a worker does.
 * Prints one JSON line: {"records":N,"cpu_s":C,"wall_s":W,
 * "cpu_us_per_request":C/N*1e6,"apply_cpu_us_per_request":A/N*1e6,...}:
 * cpu_s is this thread's CPU time over the whole loop (apply + sync), A
 * the CPU time of the apply calls alone. Exit 2 on an error. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "appload.h"
#include "base/config.h"
#include "base/err.h"
#include "log/kafka_conf.h"
#include "log/rlog.h"

static bk_cfg_opt opts[] = {
    {"kafka", BK_CFG_STR, "", 0, 0, NULL, "the log (Kafka bootstrap or redis://)", NULL,
     0, 0},
    {"kafka-props", BK_CFG_STR, "", 0, 0, NULL, "extra librdkafka properties", NULL, 0,
     0},
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"app", BK_CFG_STR, "infodid", 0, 0, NULL, "the application (worker --app)", NULL, 0,
     0},
    {"state-dir", BK_CFG_STR, "", 0, 0, NULL, "a fresh directory for its state", NULL, 0,
     0},
    {"from", BK_CFG_INT, "-1", -1, INT64_MAX, NULL, "first offset (-1: the first kept)",
     NULL, 0, 0},
    {"count", BK_CFG_INT, "0", 0, INT64_MAX, NULL,
     "records to apply (0: up to the end at start)", NULL, 0, 0},
    {"batch", BK_CFG_INT, "1000", 1, 1000000, NULL, "records per sync", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {"br2k-bench-apply",
                     "Measure the single-threaded apply cost of an application on the "
                     "records of the log.",
                     "[OPTIONS]",
                     opts,
                     NULL,
                     0,
                     0};

static double clk(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    bk_err e;
    bk_err_clear(&e);
    char topic[256];
    bk_rlog *log = NULL;
    bk_rlog_rec **recs = NULL;
    br2k_app *app = NULL;
    const br2k_app_ops *ops = NULL;
    int64_t n = 0;
    rc = 2;
    if (bk_cfg_str(&cfg, "state-dir")[0] == '\0') {
        bk_err_set(&e, BK_E_INVAL, "--state-dir is required (a fresh directory)");
        goto out;
    }
    if (bk_kafka_topic_name(bk_cfg_str(&cfg, "service"), topic, sizeof(topic), &e) !=
            BK_OK ||
        bk_app_resolve(bk_cfg_str(&cfg, "app"), &ops, &e) != BK_OK)
        goto out;
    bk_rlog_settings ls = {bk_cfg_str(&cfg, "kafka"), topic,
                           bk_cfg_str(&cfg, "kafka-props"), 10000};
    if ((log = bk_rlog_open(&ls, &e)) == NULL)
        goto out;
    int64_t first = 0, end = 0;
    if (bk_rlog_offsets(log, &first, &end, &e) != BK_OK)
        goto out;
    int64_t from = bk_cfg_int(&cfg, "from") >= 0 ? bk_cfg_int(&cfg, "from") : first;
    int64_t want = bk_cfg_int(&cfg, "count") > 0 ? bk_cfg_int(&cfg, "count") : end - from;
    if (want <= 0 || (recs = calloc((size_t)want, sizeof(*recs))) == NULL) {
        bk_err_set(&e, BK_E_INVAL, "no records to apply (log %" PRId64 "..%" PRId64 ")",
                   first, end);
        goto out;
    }
    if (bk_rlog_seek(log, from, &e) != BK_OK)
        goto out;
    while (n < want) {
        int got = bk_rlog_poll(log, 10000, &recs[n], &e);
        if (got < 0)
            goto out;
        if (got == 0) {
            bk_err_set(&e, BK_E_TIMEOUT, "read %" PRId64 " of %" PRId64 " records", n,
                       want);
            goto out;
        }
        n++;
    }
    int64_t lpi = -1;
    if (ops->open(bk_cfg_str(&cfg, "state-dir"), &app, &lpi, &e) != BK_OK)
        goto out;
    int64_t batch = bk_cfg_int(&cfg, "batch"), changed = 0;
    double apply_cpu = 0, w0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
    for (int64_t i = 0; i < n; i += batch) {
        double a0 = clk(CLOCK_THREAD_CPUTIME_ID);
        for (int64_t j = i; j < n && j < i + batch; j++) {
            char *result = NULL;
            int did = 0;
            if (ops->apply(app, recs[j]->offset, recs[j]->value, recs[j]->len, &result,
                           &did, &e) != BK_OK)
                goto out;
            changed += did != 0;
            free(result);
        }
        apply_cpu += clk(CLOCK_THREAD_CPUTIME_ID) - a0;
        if (ops->sync(app, &e) != BK_OK)
            goto out;
    }
    double cpu = clk(CLOCK_THREAD_CPUTIME_ID) - c0, wall = clk(CLOCK_MONOTONIC) - w0;
    printf("{\"records\":%" PRId64 ",\"changed\":%" PRId64
           ",\"cpu_s\":%.6f,\"wall_s\":%.6f,\"cpu_us_per_request\":%.2f,"
           "\"wall_us_per_request\":%.2f,\"apply_cpu_us_per_request\":%.2f}\n",
           n, changed, cpu, wall, cpu * 1e6 / (double)n, wall * 1e6 / (double)n,
           apply_cpu * 1e6 / (double)n);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "br2k-bench-apply: %s\n", e.msg);
    if (app != NULL && ops->close != NULL)
        ops->close(app);
    for (int64_t i = 0; recs != NULL && i < n; i++)
        bk_rlog_rec_free(recs[i]);
    free(recs);
    bk_rlog_close(log);
    bk_cfg_release(&cfg);
    return rc;
}
