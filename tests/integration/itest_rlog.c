/* itest_rlog.c - checks of the request log on any back end (rlog.h), run
 * by rlog_redis.sh against redis-server.
 *
 *   itest_rlog checks URL TOPIC    1000 binary records with headers read
 *       back; a repeated request id adds nothing; offsets; delete_below(500)
 *       then first 500, seek 100 out of range, seek 500 reads 500; the id of
 *       record 700 still maps to it, record 123's retry is appended at 1000.
 *   itest_rlog verify URL TOPIC FIRST END [LOGEND]   every record
 *       FIRST..END-1 is there with its bytes and headers, and offsets say
 *       FIRST, LOGEND (default END).
 *   itest_rlog wait URL TOPIC      seek to the end, print "ready", wait for
 *       one record holding the CLOCK_REALTIME ms of its append; print the
 *       latency in ms.
 *   itest_rlog append URL TOPIC    append that record.
 *   itest_rlog noscript URL TOPIC REDIS   async appends (pipelined) go on
 *       after SCRIPT FLUSH: offsets 0..609 in order, all delivered.
 *   itest_rlog down URL TOPIC      every call fails with BK_E_IO (no server;
 *       an append after delivery.timeout.ms=1000 of sending it again).
 *   itest_rlog offsets URL TOPIC   prints "FIRST END" (END: the next offset).
 *   itest_rlog delete URL TOPIC N  bk_rlog_delete_below(N).
 *   itest_rlog dump URL TOPIC      every record from FIRST to END - 1, one a
 *       line: "OFFSET KEY br2k-request-id=ID,br2k-schema=S VALUE" (the
 *       standard headers present, in that order), like kcat -f '%o %k %h %s'.
 *   itest_rlog bench URL TOPIC N SIZE M   rates for bench/log_rates.sh: N
 *       appends of SIZE bytes with callbacks (async), M with append_sync,
 *       then a read of the log from its first offset to its end; prints
 *       {"async":R,"sync":R,"read":R,"read_records":N} (records/s).
 * Checks print "N passed, N failed". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/check.h"
#include "base/err.h"
#include "redis/redis.h"
#include "log/rlog.h"

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* record i: binary key and value (NUL and high bytes), three headers */
static size_t rec_value(long i, unsigned char *buf) {
    size_t n = 50 + (size_t)(i % 200);
    for (size_t j = 0; j < n; j++)
        buf[j] = (unsigned char)((i * 31 + (long)j * 7) & 0xff);
    buf[0] = 0;
    return n;
}

static int append_rec(bk_rlog *l, long i, int64_t *off, bk_err *e) {
    unsigned char val[300];
    char key[32], rid[32];
    size_t n = rec_value(i, val);
    int kl = snprintf(key, sizeof(key), "c%ld", i % 7);
    key[1] = '\0'; /* a NUL inside the key */
    snprintf(rid, sizeof(rid), "t:%ld", i);
    bk_rlog_header h[] = {{BK_RLOG_H_REQUEST_ID, rid, strlen(rid)},
                          {BK_RLOG_H_SCHEMA, "1", 1},
                          {"bin", val, i % 5}};
    return bk_rlog_append_sync(l, key, (size_t)kl, val, n, h, 3, off, e);
}

static int check_rec(const bk_rlog_rec *r, long i) {
    unsigned char val[300];
    char key[32], rid[32];
    size_t n = rec_value(i, val);
    int kl = snprintf(key, sizeof(key), "c%ld", i % 7);
    key[1] = '\0';
    snprintf(rid, sizeof(rid), "t:%ld", i);
    int ok = r->offset == i && r->len == n && memcmp(r->value, val, n) == 0 &&
             r->key_len == (size_t)kl && memcmp(r->key, key, (size_t)kl) == 0;
    const void *v = NULL;
    size_t vl = 0;
    ok = ok && bk_rlog_rec_header(r, BK_RLOG_H_REQUEST_ID, &v, &vl, NULL) == BK_OK &&
         vl == strlen(rid) && memcmp(v, rid, vl) == 0;
    ok = ok && bk_rlog_rec_header(r, BK_RLOG_H_SCHEMA, &v, &vl, NULL) == BK_OK &&
         vl == 1 && memcmp(v, "1", 1) == 0;
    ok = ok && bk_rlog_rec_header(r, "bin", &v, &vl, NULL) == BK_OK &&
         vl == (size_t)(i % 5) && memcmp(v, val, vl) == 0;
    return ok;
}

/* read FIRST..END-1 from FIRST; 1 when all are as appended */
static int read_all(bk_rlog *l, long first, long end) {
    bk_err e;
    if (bk_rlog_seek(l, first, &e) != BK_OK) {
        fprintf(stderr, "seek: %s\n", e.msg);
        return 0;
    }
    long i = first;
    int64_t deadline = mono_ms() + 20000;
    while (i < end && mono_ms() < deadline) {
        bk_rlog_rec *r = NULL;
        int rc = bk_rlog_poll(l, 200, &r, &e);
        if (rc < 0) {
            fprintf(stderr, "poll at %ld: %s\n", i, e.msg);
            return 0;
        }
        if (rc == 0)
            continue;
        int ok = check_rec(r, i);
        bk_rlog_rec_free(r);
        if (!ok) {
            fprintf(stderr, "record %ld differs\n", i);
            return 0;
        }
        i++;
    }
    return i == end;
}

static int range_at(bk_rlog *l, int64_t off, bk_err *e) {
    if (bk_rlog_seek(l, off, e) != BK_OK)
        return BK_ERR;
    int rc = 0;
    bk_rlog_rec *r = NULL;
    int64_t deadline = mono_ms() + 5000;
    while (rc == 0 && mono_ms() < deadline)
        rc = bk_rlog_poll(l, 100, &r, e);
    bk_rlog_rec_free(r);
    return rc;
}

static void checks(bk_rlog *l) {
    bk_err e;
    bk_err_clear(&e);
    int64_t first = -1, end = -1, off = -1;
    CHECK_INT(bk_rlog_offsets(l, &first, &end, &e), BK_OK);
    CHECK_INT(first, 0);
    CHECK_INT(end, 0);
    CHECK_INT(bk_rlog_cached_end(l), 0);
    int ok = 1;
    for (long i = 0; i < 1000 && ok; i++) {
        ok = append_rec(l, i, &off, &e) == BK_OK && off == i;
        if (!ok)
            fprintf(stderr, "append %ld: off %" PRId64 " %s\n", i, off, e.msg);
    }
    CHECK(ok, "1000 appends at offsets 0..999");
    CHECK_INT(bk_rlog_offsets(l, &first, &end, &e), BK_OK);
    CHECK_INT(first, 0);
    CHECK_INT(end, 1000);
    CHECK(read_all(l, 0, 1000), "1000 records read back with their bytes and headers");
    CHECK_INT(bk_rlog_cached_end(l), 1000);

    /* a repeated request id: the first offset, nothing added */
    CHECK_INT(append_rec(l, 123, &off, &e), BK_OK);
    CHECK_INT(off, 123);
    CHECK_INT(bk_rlog_offsets(l, &first, &end, &e), BK_OK);
    CHECK_INT(end, 1000);
    /* async: the callback comes from serve, pending counts it */
    CHECK_INT(bk_rlog_pending(l), 0);

    /* beyond the end: out of range (not yet there) */
    CHECK_INT(range_at(l, 1005, &e), BK_ERR);
    CHECK(e.code == BK_E_RLOG_RANGE, "beyond the end: %s", e.msg);
    /* at the end: nothing, no error */
    CHECK_INT(bk_rlog_seek(l, 1000, &e), BK_OK);
    bk_rlog_rec *r = NULL;
    CHECK_INT(bk_rlog_poll(l, 50, &r, &e), 0);

    CHECK_INT(bk_rlog_delete_below(l, 500, &e), BK_OK);
    CHECK_INT(bk_rlog_offsets(l, &first, &end, &e), BK_OK);
    CHECK_INT(first, 500);
    CHECK_INT(end, 1000);
    CHECK_INT(range_at(l, 100, &e), BK_ERR);
    CHECK(e.code == BK_E_RLOG_RANGE, "seek 100 after delete: %s", e.msg);
    fprintf(stderr, "  (message: %s)\n", e.msg);
    CHECK(read_all(l, 500, 1000), "500..999 read after the delete");
    /* the ids went with their records: a kept one still maps to its offset,
     * a deleted one's retry is a new record (as on Kafka) */
    CHECK_INT(append_rec(l, 700, &off, &e), BK_OK);
    CHECK_INT(off, 700);
    CHECK_INT(append_rec(l, 123, &off, &e), BK_OK);
    CHECK_INT(off, 1000);
    CHECK_INT(bk_rlog_offsets(l, &first, &end, &e), BK_OK);
    CHECK_INT(first, 500);
    CHECK_INT(end, 1001);
}

static long g_done;
static void counted(void *opaque, int64_t offset, const bk_err *e) {
    (void)opaque;
    (void)offset;
    if (e != NULL)
        fprintf(stderr, "%s\n", e->msg);
    else
        g_done++;
}

static int bench(bk_rlog *l, long n, size_t size, long m) {
    bk_err e;
    bk_err_clear(&e);
    char *val = malloc(size + 1);
    if (val == NULL)
        return 1;
    memset(val, 'x', size);
    char rid[64];
    int64_t t0 = mono_ms();
    for (long i = 0; i < n; i++) {
        int rl = snprintf(rid, sizeof(rid), "bench-a:%ld", i);
        bk_rlog_header h[] = {{BK_RLOG_H_REQUEST_ID, rid, (size_t)rl},
                              {BK_RLOG_H_SCHEMA, "1", 1}};
        while (bk_rlog_append(l, "bench-a", 7, val, size, h, 2, counted, NULL, &e) !=
               BK_OK) {
            if (e.code != BK_E_TIMEOUT) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            bk_rlog_serve(l, 100);
        }
        bk_rlog_serve(l, 0);
    }
    if (bk_rlog_flush(l, 60000, &e) != BK_OK || g_done != n) {
        fprintf(stderr, "flush: %s (%ld of %ld)\n", e.msg, g_done, n);
        return 1;
    }
    double async_s = (double)(mono_ms() - t0) / 1000.0;
    t0 = mono_ms();
    for (long i = 0; i < m; i++) {
        int rl = snprintf(rid, sizeof(rid), "bench-s:%ld", i);
        bk_rlog_header h[] = {{BK_RLOG_H_REQUEST_ID, rid, (size_t)rl},
                              {BK_RLOG_H_SCHEMA, "1", 1}};
        int64_t off = -1;
        if (bk_rlog_append_sync(l, "bench-s", 7, val, size, h, 2, &off, &e) != BK_OK) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
    }
    double sync_s = (double)(mono_ms() - t0) / 1000.0;
    int64_t first = -1, end = -1;
    if (bk_rlog_offsets(l, &first, &end, &e) != BK_OK ||
        bk_rlog_seek(l, first, &e) != BK_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    long got = 0;
    t0 = mono_ms();
    int64_t deadline = t0 + 120000, last = first - 1;
    while (last < end - 1 && mono_ms() < deadline) {
        bk_rlog_rec *r = NULL;
        int rc = bk_rlog_poll(l, 500, &r, &e);
        if (rc < 0) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        if (rc == 1) {
            last = r->offset;
            got++;
            bk_rlog_rec_free(r);
        }
    }
    double read_s = (double)(mono_ms() - t0) / 1000.0;
    printf("{\"async\":%.0f,\"sync\":%.0f,\"read\":%.0f,\"read_records\":%ld}\n",
           (double)n / (async_s > 0 ? async_s : 0.001),
           (double)m / (sync_s > 0 ? sync_s : 0.001),
           (double)got / (read_s > 0 ? read_s : 0.001), got);
    free(val);
    return 0;
}

static int64_t ns_next;
static int ns_bad;
static void in_order(void *opaque, int64_t offset, const bk_err *e) {
    (void)opaque;
    if (e != NULL || offset != ns_next) {
        fprintf(stderr, "delivery %" PRId64 " (want %" PRId64 "): %s\n", offset, ns_next,
                e ? e->msg : "");
        ns_bad++;
    }
    ns_next++;
}

static void noscript(bk_rlog *l, const char *redis_addr) {
    bk_err e;
    bk_err_clear(&e);
    bk_redis *rc = bk_redis_new(redis_addr, 2000, &e);
    CHECK(rc != NULL, "redis: %s", e.msg);
    if (rc == NULL)
        return;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 300; i++)
            CHECK_INT(bk_rlog_append(l, "k", 1, "v", 1, NULL, 0, in_order, NULL, &e),
                      BK_OK);
        CHECK(bk_rlog_pending(l) > 0, "pending %d", bk_rlog_pending(l));
        redisReply *rep = bk_redis_command(rc, &e, "SCRIPT FLUSH");
        CHECK(rep != NULL, "SCRIPT FLUSH: %s", e.msg);
        freeReplyObject(rep);
        CHECK_INT(bk_rlog_flush(l, 5000, &e), BK_OK);
        CHECK_INT(bk_rlog_pending(l), 0);
    }
    int64_t off = -1;
    for (int i = 0; i < 10; i++) { /* sync after a flush of scripts too */
        CHECK_INT(bk_rlog_append_sync(l, "k", 1, "v", 1, NULL, 0, &off, &e), BK_OK);
        CHECK_INT(off, 600 + i);
        if (i == 4) {
            redisReply *rep = bk_redis_command(rc, &e, "SCRIPT FLUSH");
            freeReplyObject(rep);
        }
    }
    CHECK_INT(ns_next, 600);
    CHECK_INT(ns_bad, 0);
    bk_redis_free(rc);
}

static int g_off = -1;
static void delivered(void *opaque, int64_t offset, const bk_err *e) {
    (void)opaque;
    (void)e;
    g_off = (int)offset;
}

/* One record as a line of `dump`. */
static void dump_rec(const bk_rlog_rec *r) {
    static const char *const names[] = {BK_RLOG_H_REQUEST_ID, BK_RLOG_H_SCHEMA};
    printf("%" PRId64 " %.*s ", r->offset, (int)r->key_len, (const char *)r->key);
    int n = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const void *v;
        size_t len;
        bk_err e;
        if (bk_rlog_rec_header(r, names[i], &v, &len, &e) == BK_OK)
            printf("%s%s=%.*s", n++ ? "," : "", names[i], (int)len, (const char *)v);
    }
    printf(" %.*s\n", (int)r->len, (const char *)r->value);
}

/* `dump`: 0, or 1 with one line on stderr. */
static int dump(bk_rlog *l) {
    bk_err e;
    bk_err_clear(&e);
    int64_t first = -1, end = -1;
    if (bk_rlog_offsets(l, &first, &end, &e) != BK_OK ||
        (first < end && bk_rlog_seek(l, first, &e) != BK_OK)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    for (int64_t want = first; want < end; want++) {
        bk_rlog_rec *r = NULL;
        int got = bk_rlog_poll(l, 5000, &r, &e);
        if (got != 1 || r->offset != want) {
            fprintf(stderr, "record %" PRId64 ": %s\n", want,
                    got < 0    ? e.msg
                    : got == 0 ? "not read within 5 s"
                               : "another offset");
            bk_rlog_rec_free(r);
            return 1;
        }
        dump_rec(r);
        bk_rlog_rec_free(r);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: itest_rlog checks|verify|wait|append|down|offsets|dump "
                        "URL TOPIC ...\n");
        return 2;
    }
    /* down: an append is sent again until delivery.timeout.ms, then fails */
    bk_rlog_settings s = {argv[2], argv[3],
                          strcmp(argv[1], "down") == 0 ? "delivery.timeout.ms=1000"
                                                       : NULL,
                          strcmp(argv[1], "bench") == 0 ? 10000 : 3000};
    bk_err e;
    bk_err_clear(&e);
    bk_rlog *l = bk_rlog_open(&s, &e);
    if (l == NULL) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int rc = 2;
    const char *cmd = argv[1];
    if (strcmp(cmd, "checks") == 0) {
        checks(l);
        rc = check_done();
    } else if (strcmp(cmd, "verify") == 0 && argc >= 6) {
        long first = strtol(argv[4], NULL, 10), end = strtol(argv[5], NULL, 10);
        long log_end = argc > 6 ? strtol(argv[6], NULL, 10) : end;
        int64_t f = -1, n = -1;
        CHECK_INT(bk_rlog_offsets(l, &f, &n, &e), BK_OK);
        CHECK_INT(f, first);
        CHECK_INT(n, log_end);
        CHECK(read_all(l, first, end), "records %ld..%ld read", first, end - 1);
        rc = check_done();
    } else if (strcmp(cmd, "wait") == 0) {
        int64_t f = -1, n = -1;
        if (bk_rlog_offsets(l, &f, &n, &e) != BK_OK || bk_rlog_seek(l, n, &e) != BK_OK) {
            fprintf(stderr, "%s\n", e.msg);
            rc = 1;
        } else {
            bk_rlog_rec *r = NULL;
            /* a first poll, so the next one is the blocking XREAD */
            (void)bk_rlog_poll(l, 1, &r, &e);
            printf("ready\n");
            fflush(stdout);
            int got = r != NULL ? 1 : bk_rlog_poll(l, 2500, &r, &e);
            int64_t now = real_ms();
            if (got == 1) {
                char buf[32] = "";
                memcpy(buf, r->value, r->len < 31 ? r->len : 31);
                printf("%lld\n", (long long)(now - strtoll(buf, NULL, 10)));
                rc = 0;
            } else {
                fprintf(stderr, "no record: %s\n", got < 0 ? e.msg : "timeout");
                rc = 1;
            }
            bk_rlog_rec_free(r);
        }
    } else if (strcmp(cmd, "offsets") == 0) {
        int64_t f = -1, n = -1;
        rc = bk_rlog_offsets(l, &f, &n, &e) == BK_OK ? 0 : 1;
        if (rc == 0)
            printf("%" PRId64 " %" PRId64 "\n", f, n);
        else
            fprintf(stderr, "%s\n", e.msg);
    } else if (strcmp(cmd, "delete") == 0 && argc >= 5) {
        rc = bk_rlog_delete_below(l, strtoll(argv[4], NULL, 10), &e) == BK_OK ? 0 : 1;
        if (rc)
            fprintf(stderr, "%s\n", e.msg);
    } else if (strcmp(cmd, "dump") == 0) {
        rc = dump(l);
    } else if (strcmp(cmd, "append") == 0) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%" PRId64, real_ms());
        rc = bk_rlog_append(l, "w", 1, buf, (size_t)n, NULL, 0, delivered, NULL, &e) ==
                         BK_OK &&
                     bk_rlog_flush(l, 1000, &e) == BK_OK && g_off >= 0
                 ? 0
                 : 1;
        if (rc)
            fprintf(stderr, "%s\n", e.msg);
    } else if (strcmp(cmd, "noscript") == 0 && argc >= 5) {
        noscript(l, argv[4]);
        rc = check_done();
    } else if (strcmp(cmd, "bench") == 0 && argc >= 7) {
        rc = bench(l, strtol(argv[4], NULL, 10), (size_t)strtol(argv[5], NULL, 10),
                   strtol(argv[6], NULL, 10));
    } else if (strcmp(cmd, "down") == 0) {
        int64_t f = -1, n = -1, off = -1;
        CHECK_INT(bk_rlog_offsets(l, &f, &n, &e), BK_ERR);
        CHECK(e.code == BK_E_IO, "offsets: code %d: %s", e.code, e.msg);
        printf("  (message: %s)\n", e.msg);
        CHECK_INT(bk_rlog_append_sync(l, "k", 1, "v", 1, NULL, 0, &off, &e), BK_ERR);
        CHECK(e.code == BK_E_IO, "append: code %d: %s", e.code, e.msg);
        CHECK_INT(bk_rlog_seek(l, 0, &e), BK_ERR);
        CHECK(e.code == BK_E_IO, "seek: code %d: %s", e.code, e.msg);
        rc = check_done();
    }
    bk_rlog_close(l);
    return rc;
}
