/* registry_bench.c - br2k-bench-registry: registry calls through
 * br2k-registryd, timed from the caller's side of the channel.
 *
 * Sends --count appendBackupLog requests (versions --first-version,
 * +1, ...; a random 1 KiB log each) with the fencing token --epoch:
 *   --mode seq:   one at a time, each waiting for its reply: the
 *                 call-to-confirmation latency (p50, p99, max);
 *   --mode burst: all queued at once, then every reply awaited: calls per
 *                 second through registryd (it sends them one by one).
 * Prints one JSON line: {"mode","calls","ok","seconds","rate","p50_ms",
 * "p99_ms","max_ms"}. Figures, not a test: exit 0 unless the run could not
 * be made (2), or a call failed (1). bench/registry_bench.sh sets up anvil,
 * Redis, the contract and registryd and runs both modes. */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "base/err.h"
#include "base/hex.h"
#include "redis/redis.h"

static bk_cfg_opt opts[] = {
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL, "Redis address HOST:PORT", NULL,
     0, 0},
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"mode", BK_CFG_ENUM, "seq", 0, 0, "seq|burst",
     "one at a time, or all queued at once", NULL, 0, 0},
    {"count", BK_CFG_INT, "50", 1, 1000000, NULL, "calls to make", NULL, 0, 0},
    {"first-version", BK_CFG_INT, "2", 2, INT64_MAX, NULL,
     "version of the first backup (the registry's SV + 1)", NULL, 0, 0},
    {"epoch", BK_CFG_INT, "1", 0, INT64_MAX, NULL, "the fencing token to present", NULL,
     0, 0},
    {"log-bytes", BK_CFG_INT, "1024", 1, 1 << 20, NULL, "size of each encrypted log",
     NULL, 0, 0},
    {"timeout-ms", BK_CFG_INT, "120000", 100, 3600000, NULL, "wait for each reply", NULL,
     0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {"br2k-bench-registry",
                     "Time appendBackupLog calls through br2k-registryd.",
                     "[OPTIONS]",
                     opts,
                     NULL,
                     0,
                     0};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The request text of call i (id "bench-<pid>-<i>"); the caller frees. */
static char *request(long long i, char *id, size_t idsize, bk_err *e) {
    long long n = bk_cfg_int(&cfg, "log-bytes");
    uint8_t digest[32], *log = malloc((size_t)n);
    char dg[67];
    if (log == NULL || RAND_bytes(digest, 32) != 1 || RAND_bytes(log, (int)n) != 1) {
        free(log);
        bk_err_set(e, BK_E_IO, "cannot draw random bytes");
        return NULL;
    }
    bk_hex_encode(digest, 32, 1, dg);
    char *lg = bk_hex_encode_alloc(log, (size_t)n, 1);
    free(log);
    snprintf(id, idsize, "bench-%ld-%lld", (long)getpid(), i);
    json_t *j = json_pack(
        "{s:s, s:s, s:{s:I, s:s, s:s}, s:I}", "id", id, "method", "appendBackupLog",
        "args", "version", (json_int_t)(bk_cfg_int(&cfg, "first-version") + i), "digest",
        dg, "log", lg ? lg : "", "epoch", (json_int_t)bk_cfg_int(&cfg, "epoch"));
    free(lg);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        bk_err_set(e, BK_E_NOMEM, "out of memory");
    return text;
}

static int queue(bk_redis *r, const char *svc, const char *text, bk_err *e) {
    redisReply *rep =
        bk_redis_command(r, e, "LPUSH br2k:{%s}:registry:queue %s", svc, text);
    if (rep == NULL)
        return BK_ERR;
    freeReplyObject(rep);
    return BK_OK;
}

/* Wait for the reply of id; 1 when it says ok. */
static int await_reply(bk_redis *r, const char *svc, const char *id, bk_err *e) {
    double secs = bk_cfg_int(&cfg, "timeout-ms") / 1000.0;
    redisReply *rep =
        bk_redis_command(r, e, "BLPOP br2k:{%s}:registry:reply:%s %.3f", svc, id, secs);
    if (rep == NULL)
        return -1;
    int ok = -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        json_t *j = json_loads(rep->element[1]->str, 0, NULL);
        ok = json_is_true(json_object_get(j, "ok"));
        if (!ok)
            fprintf(stderr, "br2k-bench-registry: call '%s' failed: %s\n", id,
                    rep->element[1]->str);
        json_decref(j);
    } else {
        bk_err_set(e, BK_E_TIMEOUT, "no reply to '%s'", id);
    }
    freeReplyObject(rep);
    return ok;
}

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    const char *svc = bk_cfg_str(&cfg, "service");
    int burst = strcmp(bk_cfg_str(&cfg, "mode"), "burst") == 0;
    long long n = bk_cfg_int(&cfg, "count"), okn = 0;
    bk_err e;
    bk_err_clear(&e);
    rc = 2;
    double *lat = calloc((size_t)n, sizeof(double)),
           *t0 = calloc((size_t)n, sizeof(double));
    char(*ids)[64] = calloc((size_t)n, 64);
    int tmo = (int)bk_cfg_int(&cfg, "timeout-ms") + 5000;
    bk_redis *r = bk_redis_new(bk_cfg_str(&cfg, "redis"), tmo, &e);
    if (r == NULL || lat == NULL || t0 == NULL || ids == NULL)
        goto out;
    double start = now_s();
    for (long long i = 0; i < n; i++) {
        char *text = request(i, ids[i], sizeof(ids[i]), &e);
        if (text == NULL)
            goto out;
        t0[i] = now_s();
        int q = queue(r, svc, text, &e);
        free(text);
        if (q != BK_OK)
            goto out;
        if (burst)
            continue;
        int ok = await_reply(r, svc, ids[i], &e);
        if (ok < 0)
            goto out;
        okn += ok;
        lat[i] = (now_s() - t0[i]) * 1000.0;
    }
    for (long long i = 0; burst && i < n; i++) {
        int ok = await_reply(r, svc, ids[i], &e);
        if (ok < 0)
            goto out;
        okn += ok;
        lat[i] = (now_s() - t0[i]) * 1000.0;
    }
    double secs = now_s() - start;
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("{\"mode\":\"%s\",\"calls\":%lld,\"ok\":%lld,\"seconds\":%.3f,\"rate\":%.1f,"
           "\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f}\n",
           burst ? "burst" : "seq", n, okn, secs, n / secs, lat[n / 2],
           lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], lat[n - 1]);
    rc = okn == n ? 0 : 1;
out:
    if (rc == 2)
        fprintf(stderr, "br2k-bench-registry: %s\n", e.msg[0] ? e.msg : "out of memory");
    bk_redis_free(r);
    free(lat);
    free(t0);
    free(ids);
    bk_cfg_release(&cfg);
    return rc;
}
