/* itest_core.c - log helpers for the worker tests, through common/rlog.
 *
 *   itest_core produce BOOTSTRAP TOPIC N [RATE [CLIENT]]
 *       append N requests {"v":1,"id":{"client":CLIENT,"seq":i},...} with
 *       key CLIENT and the request-id header, RATE per second (0: as fast
 *       as possible); prints the last offset.
 *   itest_core rlog BOOTSTRAP TOPIC
 *       checks of rlog itself: offsets, read from an offset with headers,
 *       out of range reported as such (I1). Prints "N passed, N failed".
 *   itest_core delete BOOTSTRAP TOPIC
 *       deletion reported unsupported by the development broker.
 *   itest_core dump BOOTSTRAP TOPIC FROM COUNT
 *       prints records FROM .. FROM + COUNT - 1 as JSON lines {offset, key,
 *       value, headers: [[name, value], ...]} (text). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../unit/check.h"
#include "base/err.h"
#include "log/rlog.h"

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t last_offset = -1;
static int failures;

static void delivered(void *opaque, int64_t offset, const bk_err *e) {
    (void)opaque;
    if (e != NULL) {
        fprintf(stderr, "%s\n", e->msg);
        failures++;
    } else if (offset > last_offset) {
        last_offset = offset;
    }
}

static int append_req(bk_rlog *l, const char *client, long seq, bk_err *e) {
    char val[256], rid[128];
    int n = snprintf(val, sizeof(val),
                     "{\"v\":1,\"id\":{\"client\":\"%s\",\"seq\":%ld},\"op\":\"noop\","
                     "\"payload\":{},\"ts\":0,\"sig\":\"0x\"}",
                     client, seq);
    snprintf(rid, sizeof(rid), "%s:%ld", client, seq);
    bk_rlog_header h[] = {{BK_RLOG_H_REQUEST_ID, rid, strlen(rid)},
                          {BK_RLOG_H_SCHEMA, "1", 1}};
    return bk_rlog_append(l, client, strlen(client), val, (size_t)n, h, 2, delivered,
                          NULL, e);
}

static int produce(bk_rlog *l, long n, long rate, const char *client) {
    bk_err e;
    int64_t t0 = mono_ms();
    for (long i = 0; i < n; i++) {
        while (append_req(l, client, i, &e) != BK_OK) {
            if (e.code != BK_E_TIMEOUT) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            bk_rlog_serve(l, 100);
        }
        bk_rlog_serve(l, 0);
        if (rate > 0) {
            int64_t due = t0 + (i + 1) * 1000 / rate;
            while (mono_ms() < due)
                bk_rlog_serve(l, (int)(due - mono_ms()));
        }
    }
    if (bk_rlog_flush(l, 30000, &e) != BK_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    printf("%" PRId64 "\n", last_offset);
    return failures ? 1 : 0;
}

static void rlog_checks(bk_rlog *l) {
    bk_err e;
    bk_err_clear(&e);
    int64_t first = -1, end = -1, off = -1;
    CHECK_INT(bk_rlog_offsets(l, &first, &end, &e), BK_OK);
    CHECK_INT(first, 0);
    int64_t base = end;
    bk_rlog_header h[] = {{BK_RLOG_H_REQUEST_ID, "x:1", 3}};
    CHECK_INT(bk_rlog_append_sync(l, "k", 1, "v0", 2, h, 1, &off, &e), BK_OK);
    CHECK_INT(off, base);
    CHECK_INT(bk_rlog_append_sync(l, "k", 1, "v1", 2, NULL, 0, &off, &e), BK_OK);
    CHECK_INT(off, base + 1);
    CHECK_INT(bk_rlog_offsets(l, &first, &end, &e), BK_OK);
    CHECK_INT(end, base + 2);

    CHECK_INT(bk_rlog_seek(l, base, &e), BK_OK);
    bk_rlog_rec *r = NULL;
    int64_t deadline = mono_ms() + 10000;
    while (r == NULL && mono_ms() < deadline)
        CHECK(bk_rlog_poll(l, 100, &r, &e) >= 0, "poll: %s", e.msg);
    CHECK(r != NULL, "no record read");
    if (r != NULL) {
        CHECK_INT(r->offset, base);
        CHECK(r->len == 2 && memcmp(r->value, "v0", 2) == 0, "value");
        CHECK(r->key_len == 1 && memcmp(r->key, "k", 1) == 0, "key");
        const void *v = NULL;
        size_t vl = 0;
        CHECK_INT(bk_rlog_rec_header(r, BK_RLOG_H_REQUEST_ID, &v, &vl, &e), BK_OK);
        CHECK(vl == 3 && memcmp(v, "x:1", 3) == 0, "header");
        CHECK_INT(bk_rlog_rec_header(r, "nope", &v, &vl, &e), BK_ERR);
        CHECK_INT(e.code, BK_E_NOTFOUND);
        bk_rlog_rec_free(r);
    }
    CHECK(bk_rlog_cached_end(l) >= base + 1, "cached end %" PRId64,
          bk_rlog_cached_end(l));

    /* beyond the end: out of range, reported distinctly */
    CHECK_INT(bk_rlog_seek(l, base + 1000, &e), BK_OK);
    int rc = 0;
    r = NULL;
    deadline = mono_ms() + 10000;
    while (rc == 0 && mono_ms() < deadline)
        rc = bk_rlog_poll(l, 100, &r, &e);
    bk_rlog_rec_free(r);
    CHECK_INT(rc, BK_ERR);
    CHECK_INT(e.code, BK_E_RLOG_RANGE);
}

/* The development broker has no DeleteRecords: a distinct code. (Run on
 * its own: librdkafka 2.0 leaks a little on this error path.) */
static void delete_checks(bk_rlog *l) {
    bk_err e;
    bk_err_clear(&e);
    int rc = bk_rlog_delete_below(l, 1, &e);
    CHECK_INT(rc, BK_ERR);
    CHECK(e.code == BK_E_RLOG_UNSUPPORTED, "code %d: %s", e.code, e.msg);
}

static int dump(bk_rlog *l, int64_t from, long count) {
    bk_err e;
    if (bk_rlog_seek(l, from, &e) != BK_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int64_t deadline = mono_ms() + 20000;
    for (long i = 0; i < count;) {
        bk_rlog_rec *r = NULL;
        int rc = bk_rlog_poll(l, 200, &r, &e);
        if (rc < 0) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        if (rc == 0) {
            if (mono_ms() > deadline) {
                fprintf(stderr, "no record %" PRId64 "\n", from + i);
                return 1;
            }
            continue;
        }
        json_t *hs = json_array();
        bk_rlog_header h;
        for (size_t k = 0; bk_rlog_rec_header_at(r, k, &h); k++)
            json_array_append_new(
                hs, json_pack("[s s#]", h.name, h.value ? h.value : "", (int)h.len));
        json_t *j =
            json_pack("{sI s s# s s# so}", "offset", (json_int_t)r->offset, "key", r->key,
                      (int)r->key_len, "value", r->value, (int)r->len, "headers", hs);
        bk_rlog_rec_free(r);
        if (j == NULL)
            return 1;
        json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(j);
        i++;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: itest_core produce|rlog|delete BOOTSTRAP TOPIC [N [RATE "
                        "[CLIENT]]]\n");
        return 2;
    }
    bk_rlog_settings s = {argv[2], argv[3], NULL, 10000};
    bk_err e;
    bk_rlog *l = bk_rlog_open(&s, &e);
    if (l == NULL) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int rc = 2;
    if (strcmp(argv[1], "produce") == 0 && argc >= 5) {
        rc = produce(l, strtol(argv[4], NULL, 10),
                     argc > 5 ? strtol(argv[5], NULL, 10) : 0,
                     argc > 6 ? argv[6] : "client-0");
    } else if (strcmp(argv[1], "rlog") == 0) {
        rlog_checks(l);
        rc = check_done();
    } else if (strcmp(argv[1], "dump") == 0 && argc >= 6) {
        rc = dump(l, strtoll(argv[4], NULL, 10), strtol(argv[5], NULL, 10));
    } else if (strcmp(argv[1], "delete") == 0) {
        delete_checks(l);
        rc = check_done();
    }
    bk_rlog_close(l);
    return rc;
}
