/* submit.c - `br2k submit`: one request, or the load generator.
 *
 * One request: built from --op/--payload and signed with the client's key
 * (--key-file or BR2K_CLIENT_KEY), or read as is from stdin. It is
 * appended, then the command waits for the leader's result and prints it:
 * exit 0 accepted, 1 rejected, 2 an error or no result in time.
 *
 * Load generator (--clients K --count N): K clients, each with its own
 * deterministic key, send N signed InfoDID requests each (see the help
 * text below for exactly which), wait for every result, and print sent,
 * succeeded, rejected, failed and latency percentiles.
 *
 * Either way, an append that may not have reached the log (the log's
 * server restarting, a broker failing over) is sent again with the same
 * request id until --retry-ms: by the log itself (rlog.h,
 * delivery.timeout.ms), and here when the library refuses it at once. What
 * still failed is reported: lost (the append failed for good), no result,
 * or unconfirmed (neither its append nor its result came in time). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "br2k.h"
#include "chain/ethkey.h"
#include "chain/request.h"
#include "loadgen.h"
#include "submit.h"

#define LOST_IDS_MAX 20 /* request ids of lost appends named in the summary */

static bk_cfg_opt opts[] = {
    {"op", BK_CFG_STR, "", 0, 0, NULL,
     "operation (InfoDID: register, update, revoke); without it the request is read "
     "from stdin",
     NULL, 0, 0},
    {"payload", BK_CFG_STR, "{}", 0, 0, NULL, "the operation's payload, a JSON object",
     NULL, 0, 0},
    {"client", BK_CFG_STR, "", 0, 0, NULL,
     "client id of the request id (with --op: default 'cli'; with stdin: read from the "
     "request unless given)",
     NULL, 0, 0},
    {"seq", BK_CFG_INT, "-1", -1, BK_REQUEST_INT_MAX, NULL,
     "sequence number of the request id (with --op: default the time in ms)", NULL, 0, 0},
    {"ts", BK_CFG_INT, "-1", -1, BK_REQUEST_INT_MAX, NULL,
     "the request's timestamp in ms (default now)", NULL, 0, 0},
    {"key-file", BK_CFG_STR, "", 0, 0, NULL,
     "file holding the client's secp256k1 private key in hex", NULL, 0, 0},
    {"client-key", BK_CFG_STR, "", 0, 0, NULL,
     "the client's private key in hex (prefer --key-file: the environment is visible to "
     "other users of ps on some systems)",
     NULL, 0, 0},
    {"dry-run", BK_CFG_BOOL, "false", 0, 0, NULL,
     "print the signed request instead of sending it", NULL, 0, 0},
    {"no-wait", BK_CFG_BOOL, "false", 0, 0, NULL,
     "do not wait for results: print {\"id\",\"offset\"} once appended (load "
     "generator: count appends as successes, latency is submit-to-append)",
     NULL, 0, 0},
    {"wait-ms", BK_CFG_INT, "30000", 1, 3600000, NULL,
     "how long to wait for a result (each request of the load generator)", NULL, 0, 0},
    {"attempt-ms", BK_CFG_INT, "-1", -1, 3600000, NULL,
     "how long one attempt waits for the result before the same request (same id, same "
     "bytes) is sent again, with a back-off, until --wait-ms; with --registry the "
     "service "
     "is looked up in the registry again after a failure (0: one attempt; -1: 10000 for "
     "one request, 60000 for the load generator)",
     NULL, 0, 0},
    {"retry-ms", BK_CFG_INT, "120000", 1000, 3600000, NULL,
     "how long an append that may not have reached the log is sent again, with the "
     "same request id, before it counts as lost (both log back ends: "
     "delivery.timeout.ms)",
     NULL, 0, 0},
    {"clients", BK_CFG_INT, "0", 0, 100000, NULL,
     "load generator: number of clients K (0: send one request)", NULL, 0, 0},
    {"count", BK_CFG_INT, "100", 1, 100000000, NULL,
     "load generator: requests per client N", NULL, 0, 0},
    {"rate", BK_CFG_INT, "0", 0, 10000000, NULL,
     "load generator: requests per second, all clients together (0: as fast as "
     "possible)",
     NULL, 0, 0},
    {"window", BK_CFG_INT, "20000", 1, 10000000, NULL,
     "load generator: at most this many requests waiting for their result", NULL, 0, 0},
    {"updates", BK_CFG_BOOL, "false", 0, 0, NULL,
     "load generator: every other request updates the DID the previous one registered",
     NULL, 0, 0},
    {"prefix", BK_CFG_STR, "", 0, 0, NULL,
     "load generator: client ids are PREFIX-0 .. PREFIX-(K-1) (default 'load' and the "
     "time, so that each run registers new DIDs)",
     NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print the summary as JSON", NULL, 0, 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, NULL, 0, 0}};

static const char epilog[] =
    "One request: with --op, the request is built from --op, --payload, --client,\n"
    "--seq and --ts and signed with the client's key; without --op, stdin holds the\n"
    "request JSON, sent as is (with --client and --seq its request id may be given\n"
    "explicitly, so that even a malformed request gets its rejected result). The\n"
    "result JSON is printed on stdout. Exit 0 accepted, 1 rejected, 2 error/timeout.\n"
    "\n"
    "Load generator (--clients K --count N): client i (0 <= i < K) has the id\n"
    "PREFIX-i and the private key keccak256(\"PREFIX-i\") (a valid secp256k1 key but\n"
    "for a negligible chance) with address A. Its request with sequence number s\n"
    "(1..N) registers did:br2k:A:s with attributes {name, n}; with --updates, every\n"
    "even s instead updates attribute n of did:br2k:A:(s-1). Requests are\n"
    "interleaved across the clients in one ordered stream. The summary gives sent,\n"
    "succeeded (status ok), rejected (with the count per reason), failed and the\n"
    "submit-to-result latency p50/p90/p99/max in ms. Failed is lost (the append\n"
    "still failed after --retry-ms of sending it again; the first request ids are\n"
    "named), no result (appended, no result within --wait-ms) and unconfirmed\n"
    "(neither the append nor a result came within --wait-ms).\n"
    "Exit 0 when every request succeeded, 1 when some were rejected, 2 when some\n"
    "failed.";

static bk_cfg sub = {"br2k submit",
                     "Append a signed request to the service's log and print its result, "
                     "or run\nthe load generator.",
                     "[OPTIONS]",
                     opts,
                     epilog,
                     0,
                     0};

/* Read a whole stream (malloc'd, NUL-terminated). */
static char *read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (feof(f) || ferror(f))
            break;
        if (cap - n - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf == NULL)
        return NULL;
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The client's key from --key-file or --client-key (BR2K_CLIENT_KEY). */
static int load_key(bk_eth_key *key, bk_err *e) {
    const char *file = bk_cfg_str(&sub, "key-file");
    if (file[0] != '\0')
        return bk_eth_key_load(file, "BR2K_CLIENT_KEY", key, e);
    const char *hex = bk_cfg_str(&sub, "client-key");
    if (hex[0] == '\0')
        return bk_err_set(e, BK_E_INVAL,
                          "no signing key: set --key-file or BR2K_CLIENT_KEY");
    if (bk_eth_key_from_hex(hex, key, e) != BK_OK)
        return bk_err_prefix(e, "BR2K_CLIENT_KEY (or --client-key)");
    return BK_OK;
}

/* The library settings from the global options, with the results' wait
 * (--wait-ms) and the log's append deadline (--retry-ms) in its
 * properties (held in props). */
static int settings(const cli_globals *g, br2k_settings *s, char *props, size_t size,
                    bk_err *e) {
    cli_settings(g, s);
    s->result_timeout_ms = (int)bk_cfg_int(&sub, "wait-ms");
    long attempt = bk_cfg_int(&sub, "attempt-ms");
    s->attempt_ms = (int)(attempt >= 0                      ? attempt
                          : bk_cfg_int(&sub, "clients") > 0 ? 60000
                                                            : 10000);
    s->eth_rpc = g->eth_rpc;
    s->registry = g->registry;
    if (bk_lg_log_props(g->kafka_props, (long)bk_cfg_int(&sub, "retry-ms"), props, size,
                        e) != BK_OK)
        return BK_ERR;
    s->kafka_props = props;
    return BK_OK;
}

/* ---- one request ---- */

typedef struct appended {
    int64_t offset;
    char id[128];
    br2k_error error;
} appended;

static void on_appended(const br2k_event *ev) {
    appended *a = ev->opaque;
    snprintf(a->id, sizeof(a->id), "%s", ev->request_id);
    if (ev->type == BR2K_EV_APPENDED)
        a->offset = ev->offset;
    else if (ev->error != NULL)
        a->error = *ev->error;
}

static int submit_one(const cli_globals *g) {
    bk_err e;
    bk_err_clear(&e);
    char *value = NULL;
    size_t len = 0;
    const char *client = bk_cfg_str(&sub, "client");
    long long seq = bk_cfg_int(&sub, "seq");
    if (bk_cfg_str(&sub, "op")[0] != '\0') {
        bk_eth_key key;
        json_error_t je;
        json_t *payload = json_loads(bk_cfg_str(&sub, "payload"), 0, &je);
        long long ts = bk_cfg_int(&sub, "ts");
        if (client[0] == '\0')
            client = "cli";
        if (seq < 0)
            seq = bk_wall_ms();
        if (payload == NULL) {
            fprintf(stderr, "br2k submit: invalid value for '--payload': %s\n", je.text);
            return 2;
        }
        int rc = load_key(&key, &e);
        if (rc == BK_OK)
            rc = bk_request_build(&key, client, seq, bk_cfg_str(&sub, "op"), payload,
                                  ts >= 0 ? ts : bk_wall_ms(), &value, &e);
        json_decref(payload);
        bk_eth_key_clear(&key);
        if (rc != BK_OK) {
            fprintf(stderr, "br2k submit: %s\n", e.msg);
            return 2;
        }
        len = strlen(value);
    } else {
        value = read_all(stdin, &len);
        if (value == NULL) {
            fprintf(stderr, "br2k submit: cannot read the request from stdin\n");
            return 2;
        }
        if ((client[0] == '\0') != (seq < 0)) {
            fprintf(stderr,
                    "br2k submit: give both '--client' and '--seq', or neither\n");
            free(value);
            return 2;
        }
    }
    if (bk_cfg_bool(&sub, "dry-run")) {
        printf("%s\n", value);
        free(value);
        return 0;
    }
    br2k_settings s;
    br2k_error err;
    char props[2048];
    if (settings(g, &s, props, sizeof(props), &e) != BK_OK) {
        fprintf(stderr, "br2k submit: %s\n", e.msg);
        free(value);
        return 2;
    }
    br2k_client *c = br2k_connect(&s, &err);
    if (c == NULL) {
        fprintf(stderr, "br2k submit: %s\n", err.msg);
        free(value);
        return 2;
    }
    const char *cid = client[0] != '\0' ? client : NULL;
    int rc = 2;
    if (bk_cfg_bool(&sub, "no-wait")) {
        appended a = {-1, "", {0, ""}};
        if (br2k_submit(c, cid, (uint64_t)seq, value, len, 0, on_appended, &a, &err) ==
                BR2K_OK &&
            br2k_flush(c, (int)bk_cfg_int(&sub, "wait-ms"), &err) == BR2K_OK &&
            a.offset >= 0) {
            json_t *out =
                json_pack("{s:s, s:I}", "id", a.id, "offset", (json_int_t)a.offset);
            json_dumpf(out, stdout, JSON_COMPACT);
            putchar('\n');
            json_decref(out);
            rc = 0;
        } else {
            fprintf(stderr, "br2k submit: %s\n", a.error.code ? a.error.msg : err.msg);
        }
    } else {
        br2k_result res;
        int ok = br2k_submit_wait(c, cid, (uint64_t)seq, value, len, 0, &res, &err);
        br2k_stats rs;
        br2k_get_stats(c, &rs);
        if (rs.retries > 0 || rs.rediscoveries > 0)
            fprintf(stderr,
                    "br2k submit: sent %ld times (the same request id), %ld registry "
                    "reads, %ld moves\n",
                    rs.attempts, rs.rediscoveries, rs.reconnects);
        if (ok == BR2K_OK) {
            printf("%s\n", res.json);
            rc = res.accepted ? 0 : 1;
            br2k_result_release(&res);
        } else {
            fprintf(stderr, "br2k submit: %s\n", err.msg);
        }
    }
    br2k_free(c);
    free(value);
    return rc;
}

/* ---- the load generator ---- */

typedef bk_lg_client lg_client;

typedef struct lg_stats {
    long sent, ok, rejected;
    long failed;      /* lost + no_result + unconfirmed */
    long lost;        /* the append failed for good (after --retry-ms) */
    long no_result;   /* appended, no result within --wait-ms */
    long unconfirmed; /* neither the append nor a result came in time */
    double *lat;      /* submit-to-result latencies of ok and rejected */
    size_t nlat;
    json_t *reasons;  /* reason code -> count */
    json_t *lost_ids; /* the request ids of the first LOST_IDS_MAX lost */
    char first_failure[256];
    long appended;
    int want_result;
} lg_stats;

typedef struct lg_slot { /* one request */
    lg_stats *st;
    int64_t offset;
    int appended, done; /* its APPENDED event; its final event */
} lg_slot;

static void lg_failed(lg_stats *st, const char *msg) {
    if (st->failed++ == 0)
        snprintf(st->first_failure, sizeof(st->first_failure), "%s", msg);
}

static void lg_lost(lg_stats *st, const char *id, const char *msg) {
    st->lost++;
    if (json_array_size(st->lost_ids) < LOST_IDS_MAX)
        json_array_append_new(st->lost_ids, json_string(id));
    lg_failed(st, msg);
}

static void lg_event(const br2k_event *ev) {
    lg_slot *slot = ev->opaque;
    lg_stats *st = slot->st;
    if (ev->type == BR2K_EV_APPENDED) {
        slot->offset = ev->offset;
        slot->appended = 1;
        st->appended++;
        if (!st->want_result) {
            st->lat[st->nlat++] = ev->latency_ms;
            st->ok++;
            slot->done = 1;
        }
        return;
    }
    slot->done = 1;
    if (ev->type == BR2K_EV_FAILED) {
        /* the append failed, after the log sent it again until --retry-ms;
         * or, waiting for results, none came in time */
        if (slot->appended)
            st->no_result++;
        else if (st->want_result && ev->error->code == BR2K_E_TIMEOUT)
            st->unconfirmed++;
        else {
            lg_lost(st, ev->request_id, ev->error->msg);
            return;
        }
        lg_failed(st, ev->error->msg);
        return;
    }
    st->lat[st->nlat++] = ev->latency_ms;
    if (ev->accepted) {
        st->ok++;
        return;
    }
    st->rejected++;
    json_t *res = json_loads(ev->result, 0, NULL);
    const char *code =
        json_string_value(json_object_get(json_object_get(res, "reason"), "code"));
    if (code == NULL)
        code = "unknown";
    json_object_set_new(
        st->reasons, code,
        json_integer(json_integer_value(json_object_get(st->reasons, code)) + 1));
    json_decref(res);
}

/* Request j (0-based, sequence number j + 1) of a client: it registers
 * did:br2k:<address>:<j + 1>; with --updates, every other request instead
 * updates the DID the previous one registered. */
static char *lg_request(const lg_client *cl, long j, int updates, bk_err *e) {
    return bk_lg_request(cl, j + 1, updates && j % 2 == 1, bk_wall_ms(), e);
}

/* The user + system CPU seconds this process used so far. */
static double cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0)
        return 0;
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p) {
    if (n == 0)
        return 0;
    size_t k = (size_t)ceil(p * (double)n);
    return v[k == 0 ? 0 : k - 1];
}

static int loadgen(const cli_globals *g) {
    long k = (long)bk_cfg_int(&sub, "clients"), n = (long)bk_cfg_int(&sub, "count");
    long total = k * n, rate = (long)bk_cfg_int(&sub, "rate");
    size_t window = (size_t)bk_cfg_int(&sub, "window");
    int updates = bk_cfg_bool(&sub, "updates");
    char prefix[64];
    if (bk_cfg_str(&sub, "prefix")[0] != '\0')
        snprintf(prefix, sizeof(prefix), "%s", bk_cfg_str(&sub, "prefix"));
    else
        snprintf(prefix, sizeof(prefix), "load%" PRId64, bk_wall_ms());
    double retry_ms = (double)bk_cfg_int(&sub, "retry-ms");
    lg_stats st = {.lat = calloc((size_t)total, sizeof(double)),
                   .reasons = json_object(),
                   .lost_ids = json_array(),
                   .want_result = !bk_cfg_bool(&sub, "no-wait")};
    lg_client *cl = calloc((size_t)k, sizeof(*cl));
    lg_slot *slots = calloc((size_t)total, sizeof(*slots));
    br2k_client *c = NULL;
    br2k_error err = {0, ""};
    bk_err e;
    bk_err_clear(&e);
    int rc = 2;
    if (st.lat == NULL || cl == NULL || slots == NULL) {
        fprintf(stderr, "br2k submit: out of memory\n");
        goto out;
    }
    for (long i = 0; i < k; i++)
        if (bk_lg_client_init(&cl[i], prefix, i, &e) != BK_OK) {
            fprintf(stderr, "br2k submit: %s\n", e.msg);
            goto out;
        }
    br2k_settings s;
    char props[2048];
    if (settings(g, &s, props, sizeof(props), &e) != BK_OK) {
        fprintf(stderr, "br2k submit: %s\n", e.msg);
        goto out;
    }
    c = br2k_connect(&s, &err);
    if (c == NULL) {
        fprintf(stderr, "br2k submit: %s\n", err.msg);
        goto out;
    }
    /* As fast as possible: sign every request before the clock starts, so
     * that the figure is the service's rate, not this process's signing
     * rate (signing costs about as much as verifying, on the same cores).
     * Paced (--rate): sign each when it is due, so its timestamp is now. */
    char **pre = rate == 0 ? calloc((size_t)total, sizeof(*pre)) : NULL;
    if (rate == 0 && pre == NULL) {
        fprintf(stderr, "br2k submit: out of memory\n");
        goto out;
    }
    for (long r = 0; pre != NULL && r < total; r++)
        if ((pre[r] = lg_request(&cl[r % k], r / k, updates, &e)) == NULL) {
            fprintf(stderr, "br2k submit: %s\n", e.msg);
            for (long q = 0; q < r; q++)
                free(pre[q]);
            free(pre);
            goto out;
        }
    double t0 = bk_mono_msf(), warned_at = 0, cpu0 = cpu_seconds();
    for (long r = 0; r < total; r++) {
        long ci = r % k, j = r / k;
        if (rate > 0) { /* pace: request r is due at t0 + r / rate */
            double due = t0 + (double)r * 1000.0 / (double)rate;
            for (double left = due - bk_mono_msf(); left > 0;
                 left = due - bk_mono_msf()) {
                if (left >= 1) {
                    (void)br2k_poll(c, (int)left, NULL);
                    continue;
                }
                /* < 1 ms left: serve what is here (results announced
                 * already too), then sleep the rest instead of spinning
                 * on br2k_poll(c, 0), which took a core of its own */
                (void)br2k_poll(c, 0, NULL);
                left = due - bk_mono_msf();
                if (left > 0) {
                    struct timespec ts = {0, (long)(left * 1e6)};
                    nanosleep(&ts, NULL);
                }
            }
        }
        while (br2k_pending(c) >= window)
            (void)br2k_poll(c, 100, NULL);
        char *req = pre != NULL ? pre[r] : lg_request(&cl[ci], j, updates, &e);
        if (pre != NULL)
            pre[r] = NULL;
        if (req == NULL) {
            fprintf(stderr, "br2k submit: %s\n", e.msg);
            for (long q = r + 1; pre != NULL && q < total; q++)
                free(pre[q]);
            free(pre);
            goto out;
        }
        slots[r].st = &st;
        slots[r].offset = -1;
        /* refused at once (the log's queue stayed full): again until
         * --retry-ms, serving deliveries meanwhile */
        double give_up = bk_mono_msf() + retry_ms;
        for (;;) {
            if (br2k_submit(c, cl[ci].id, (uint64_t)(j + 1), req, strlen(req),
                            st.want_result ? BR2K_WANT_RESULT : 0, lg_event, &slots[r],
                            &err) == BR2K_OK) {
                st.sent++;
                break;
            }
            if (bk_mono_msf() >= give_up) {
                char id[160];
                snprintf(id, sizeof(id), "%s:%ld", cl[ci].id, j + 1);
                lg_lost(&st, id, err.msg);
                slots[r].done = 1;
                break;
            }
            if (bk_mono_msf() - warned_at >= 1000) {
                BK_WARN("request %s:%ld: %s; sending it again", cl[ci].id, j + 1,
                        err.msg);
                warned_at = bk_mono_msf();
            }
            (void)br2k_poll(c, 100, NULL);
        }
        free(req);
        (void)br2k_poll(c, 0, NULL);
    }
    free(pre); /* every entry was taken */
    double sent_ms = bk_mono_msf() - t0;
    /* an append may be sent again for up to --retry-ms, then its result
     * waited for up to --wait-ms */
    (void)br2k_flush(c, (int)bk_cfg_int(&sub, "wait-ms") + (int)retry_ms + 10000, &err);
    double elapsed = bk_mono_msf() - t0, cpu = cpu_seconds() - cpu0;
    for (long r = 0; r < total; r++)
        if (!slots[r].done) { /* no final event in time */
            st.unconfirmed++;
            lg_failed(&st, err.msg[0] ? err.msg : "no final event before exit");
        }
    qsort(st.lat, st.nlat, sizeof(double), cmp_double);
    /* one producer, one partition: offsets follow the order of submission */
    int increasing = 1;
    for (long r = 1; r < total; r++)
        if (slots[r].offset <= slots[r - 1].offset)
            increasing = 0;
    json_t *sum = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:{s:f, s:f, s:f, s:f}, s:O}",
        "prefix", prefix, "clients", (json_int_t)k, "count", (json_int_t)n, "sent",
        (json_int_t)st.sent, "succeeded", (json_int_t)st.ok, "rejected",
        (json_int_t)st.rejected, "failed", (json_int_t)st.failed, "send_s", sent_ms / 1e3,
        "elapsed_s", elapsed / 1e3, "throughput_rps",
        elapsed > 0 ? (double)(st.ok + st.rejected) * 1e3 / elapsed : 0.0, "latency_ms",
        "p50", pct(st.lat, st.nlat, 0.50), "p90", pct(st.lat, st.nlat, 0.90), "p99",
        pct(st.lat, st.nlat, 0.99), "max", st.nlat ? st.lat[st.nlat - 1] : 0.0, "reasons",
        st.reasons);
    json_object_set_new(sum, "appended", json_integer(st.appended));
    /* this process's CPU while the clock ran (the signing before it not) */
    json_object_set_new(sum, "cpu_s", json_real(cpu));
    json_object_set_new(sum, "offsets_increasing", json_boolean(increasing));
    json_object_set_new(sum, "first_offset", json_integer(total ? slots[0].offset : -1));
    json_object_set_new(sum, "last_offset",
                        json_integer(total ? slots[total - 1].offset : -1));
    json_object_set_new(sum, "lost", json_integer(st.lost));
    json_object_set_new(sum, "lost_ids", json_incref(st.lost_ids));
    json_object_set_new(sum, "no_result", json_integer(st.no_result));
    json_object_set_new(sum, "unconfirmed", json_integer(st.unconfirmed));
    br2k_stats rs;
    br2k_get_stats(c, &rs);
    json_object_set_new(
        sum, "retries",
        json_pack("{s:I, s:I, s:I, s:I}", "attempts", (json_int_t)rs.attempts,
                  "sent_again", (json_int_t)rs.retries, "rediscoveries",
                  (json_int_t)rs.rediscoveries, "reconnects", (json_int_t)rs.reconnects));
    if (st.first_failure[0] != '\0')
        json_object_set_new(sum, "first_failure", json_string(st.first_failure));
    if (bk_cfg_bool(&sub, "json")) {
        json_dumpf(sum, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        printf("clients %ld x %ld requests (ids %s-0..%ld)\n", k, n, prefix, k - 1);
        printf("sent      %ld\nappended  %ld (offsets %" PRId64 "..%" PRId64 ", %s)\n",
               st.sent, st.appended, total ? slots[0].offset : -1,
               total ? slots[total - 1].offset : -1,
               increasing ? "increasing" : "NOT increasing");
        printf("succeeded %ld\nrejected  %ld\nfailed    %ld (lost %ld, no result %ld, "
               "unconfirmed %ld)\n",
               st.ok, st.rejected, st.failed, st.lost, st.no_result, st.unconfirmed);
        if (st.lost > 0) {
            printf("lost      ");
            size_t i;
            json_t *id;
            json_array_foreach(st.lost_ids, i, id) {
                printf("%s%s", i ? ", " : "", json_string_value(id));
            }
            printf("%s\n", st.lost > (long)json_array_size(st.lost_ids) ? ", ..." : "");
        }
        printf("elapsed   %.3f s (%.0f results/s)\n", elapsed / 1e3,
               json_real_value(json_object_get(sum, "throughput_rps")));
        printf("latency   p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
               pct(st.lat, st.nlat, 0.50), pct(st.lat, st.nlat, 0.90),
               pct(st.lat, st.nlat, 0.99), st.nlat ? st.lat[st.nlat - 1] : 0.0);
        const char *code;
        json_t *cnt;
        json_object_foreach(st.reasons, code, cnt) {
            printf("rejected  %s: %lld\n", code, (long long)json_integer_value(cnt));
        }
        if (rs.retries > 0 || rs.rediscoveries > 0)
            printf("retries   %ld requests sent again, %ld registry reads, %ld moves\n",
                   rs.retries, rs.rediscoveries, rs.reconnects);
        if (st.first_failure[0] != '\0')
            printf("first failure: %s\n", st.first_failure);
    }
    json_decref(sum);
    rc = st.failed > 0 ? 2 : st.rejected > 0 ? 1 : 0;
out:
    br2k_free(c);
    for (long i = 0; cl != NULL && i < k; i++)
        bk_eth_key_clear(&cl[i].key);
    free(cl);
    free(slots);
    free(st.lat);
    json_decref(st.reasons);
    json_decref(st.lost_ids);
    return rc;
}

int cmd_submit(const cli_globals *g, int argc, char **argv) {
    int rc;
    for (bk_cfg_opt *o = opts; o->name != NULL; o++)
        if (strcmp(o->name, "json") == 0)
            o->def = g->json ? "true" : "false"; /* the global flag's value */
    if (cli_parse(&sub, g, argc, argv, &rc))
        goto out;
    rc = bk_cfg_int(&sub, "clients") > 0 ? loadgen(g) : submit_one(g);
out:
    bk_cfg_release(&sub);
    return rc;
}
