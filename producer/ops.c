/* ops.c - the operator commands `br2k status` and `br2k verify`; see
 * ops.h.
 *
 * Both read Redis only (the keys of schemas/redis-keys.md): nothing here
 * writes. ops.h shares the status object with `br2k top` and `br2k probe`.
 * `status` shows the service's versions and each member's view, its role
 * from the lease and its heartbeat, and whether its row may be stale;
 * `verify` compares the state digests that every worker publishes in its
 * metrics hash together with the LPI they belong to. */
#include "ops.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "redis/keys.h"
#include "redis/redis.h"

/* Fields of the metrics hash br2k:{<svc>}:metrics-<id> that we read
 * (schemas/redis-keys.md). */
#define METRIC_ROLE "role"
#define METRIC_UPDATED_MS "updated_ms"
#define METRIC_DIGEST_LPI "digest_lpi" /* the LPI the digest belongs to */
#define METRIC_DIGEST "digest"         /* SHA-256 of the state at that LPI */

/* ---- reading Redis ---- */

/* GET `key` as a string (malloc'd), NULL when absent or on error (then
 * e->code != 0). */
static char *get_str(bk_redis *r, const char *key, bk_err *e) {
    redisReply *rep = bk_redis_command(r, e, "GET %s", key);
    char *v = NULL;
    if (rep != NULL && rep->type == REDIS_REPLY_STRING)
        v = strdup(rep->str);
    if (rep != NULL)
        freeReplyObject(rep);
    return v;
}

/* GET `key` as JSON: an integer when it is one, else a string, else null. */
static json_t *get_json(bk_redis *r, const char *key, bk_err *e) {
    char *v = get_str(r, key, e);
    if (v == NULL)
        return json_null();
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    json_t *j = *v != '\0' && *end == '\0' ? json_integer(n) : json_string(v);
    free(v);
    return j;
}

/* The metrics hash of a member as a JSON object of strings (integers where
 * the text is one). */
static json_t *get_hash(bk_redis *r, const char *key, bk_err *e) {
    redisReply *rep = bk_redis_command(r, e, "HGETALL %s", key);
    json_t *o = json_object();
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            const char *v = rep->element[i + 1]->str;
            char *end = NULL;
            long long n = strtoll(v, &end, 10);
            json_object_set_new(o, rep->element[i]->str,
                                *v != '\0' && *end == '\0' ? json_integer(n)
                                                           : json_string(v));
        }
    if (rep != NULL)
        freeReplyObject(rep);
    return o;
}

/* Sort an array of strings: insertion sort, a handful of ids. */
static void sort_strings(json_t *ids) {
    for (size_t i = 1; i < json_array_size(ids); i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(ids, j - 1), *b = json_array_get(ids, j);
            if (strcmp(json_string_value(a), json_string_value(b)) <= 0)
                break;
            json_incref(a);
            json_array_set(ids, j - 1, b);
            json_array_set_new(ids, j, a);
        }
}

/* The member ids, sorted (the members set). */
static json_t *get_members(bk_redis *r, const char *svc, bk_err *e) {
    char key[BK_KEY_MAX];
    if (bk_key_members(key, sizeof(key), svc, e) != BK_OK)
        return NULL;
    redisReply *rep = bk_redis_command(r, e, "SMEMBERS %s", key);
    if (rep == NULL)
        return NULL;
    json_t *ids = json_array();
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING)
            json_array_append_new(ids, json_string(rep->element[i]->str));
    freeReplyObject(rep);
    sort_strings(ids);
    return ids;
}

/* PTTL of `key`: ms left, -1 without a TTL, -2 when absent (or on error). */
static long long pttl(bk_redis *r, const char *key, bk_err *e) {
    redisReply *rep = bk_redis_command(r, e, "PTTL %s", key);
    long long v = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -2;
    if (rep != NULL)
        freeReplyObject(rep);
    return v;
}

/* An integer field of an object, `def` when absent or not an integer. */
static json_int_t int_of(const json_t *o, const char *field, json_int_t def) {
    const json_t *v = json_object_get(o, field);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

/* ---- the members, from the lease and the heartbeats ---- */

/* What every row is judged against, read once per look. */
typedef struct view {
    char leader[BK_ID_MAX + 1]; /* the lease holder, "" when none */
    json_int_t epoch;           /* the lease's epoch, -1 when none */
    json_int_t ssi;             /* SSI, -1 when unset */
    int has_ssi;                /* SSI is set */
} view;

/* Read the lease and SSI into *v; svc must be valid. */
static void read_view(bk_redis *r, const char *svc, view *v, bk_err *e) {
    char key[BK_KEY_MAX];
    memset(v, 0, sizeof(*v));
    v->epoch = -1;
    (void)bk_key_leader(key, sizeof(key), svc, NULL);
    char *lease = get_str(r, key, e);
    if (lease != NULL) {
        char *sp = strchr(lease, ' ');
        if (sp != NULL) {
            *sp = '\0';
            v->epoch = strtoll(sp + 1, NULL, 10);
        }
        snprintf(v->leader, sizeof(v->leader), "%s", lease);
        free(lease);
    }
    (void)bk_key_ssi(key, sizeof(key), svc, NULL);
    json_t *ssi = get_json(r, key, e);
    v->has_ssi = json_is_integer(ssi);
    v->ssi = v->has_ssi ? json_integer_value(ssi) : -1;
    json_decref(ssi);
}

/* One member, judged against the lease and SSI of `v` (see ops.h). */
static json_t *member_json(bk_redis *r, const char *svc, const char *id, const view *v,
                           bk_err *e) {
    char key[BK_KEY_MAX], note[160] = "";
    json_t *m = json_pack("{s:s}", "id", id);
    (void)bk_key_alive(key, sizeof(key), svc, id, NULL); /* ids come from Redis */
    char *hb = get_str(r, key, e);
    long long ttl = hb != NULL ? pttl(r, key, e) : -2;
    int alive = hb != NULL && ttl != -2; /* it may expire between the two reads */
    long long hb_ms = hb != NULL ? strtoll(hb, NULL, 10) : 0;
    free(hb);
    /* the heartbeat's age in Redis's own clock (no clock of another machine) */
    long long age = ttl >= 0 && ttl < OPS_ALIVE_TTL_MS ? OPS_ALIVE_TTL_MS - ttl : 0;
    json_object_set_new(m, "alive", json_boolean(alive));
    json_object_set_new(m, "heartbeat_age_ms", alive ? json_integer(age) : json_null());

    (void)bk_key_metrics(key, sizeof(key), svc, id, NULL);
    json_t *metrics = get_hash(r, key, e);
    const char *reported = json_string_value(json_object_get(metrics, METRIC_ROLE));
    json_int_t updated = int_of(metrics, METRIC_UPDATED_MS, -1);
    int holder = v->leader[0] != '\0' && strcmp(v->leader, id) == 0;
    if (!alive)
        snprintf(note, sizeof(note), "no heartbeat");
    else if (age > OPS_STALE_MS)
        snprintf(note, sizeof(note), "no heartbeat for %.1f s", (double)age / 1000.0);
    else if (updated < 0)
        snprintf(note, sizeof(note), "no metrics");
    else if (hb_ms - (long long)updated > OPS_STALE_MS)
        snprintf(note, sizeof(note), "metrics %.1f s older than its heartbeat",
                 (double)(hb_ms - (long long)updated) / 1000.0);
    else if (!holder && reported != NULL && strcmp(reported, "leader") == 0) {
        if (v->leader[0] != '\0')
            snprintf(note, sizeof(note), "its metrics say leader, the lease names '%s'",
                     v->leader);
        else
            snprintf(note, sizeof(note), "its metrics say leader, no lease is held");
    }
    int stale = note[0] != '\0';
    const char *role;
    if (holder)
        role = "leader";
    else if (!alive)
        role = reported != NULL && (strcmp(reported, "stopped") == 0 ||
                                    strcmp(reported, "failed") == 0)
                   ? reported
                   : "down";
    else if (stale || reported == NULL)
        role = "unknown";
    else
        role = reported;
    json_object_set_new(m, "stale", json_boolean(stale));
    if (stale)
        json_object_set_new(m, "note", json_string(note));
    json_object_set_new(m, "role", json_string(role));
    json_object_set_new(m, "reported_role",
                        reported != NULL ? json_string(reported) : json_null());

    (void)bk_key_lpi(key, sizeof(key), svc, id, NULL);
    json_t *lpi = get_json(r, key, e);
    json_object_set_new(m, "lpi", lpi);
    (void)bk_key_ssv(key, sizeof(key), svc, id, NULL);
    json_object_set_new(m, "ssv", get_json(r, key, e));
    /* the lag of the very numbers shown: SSI - LPI */
    json_object_set_new(m, "lag",
                        json_is_integer(lpi)
                            ? json_integer(v->ssi > json_integer_value(lpi)
                                               ? v->ssi - json_integer_value(lpi)
                                               : 0)
                            : json_null());
    json_object_set_new(m, "metrics", metrics);
    return m;
}

json_t *ops_member_json(bk_redis *r, const char *svc, const char *id, bk_err *e) {
    view v;
    read_view(r, svc, &v, e);
    return member_json(r, svc, id, &v, e);
}

/* A JSON value as short text: integers, strings, yes/no, "-" for null. */
static const char *print_text(const json_t *v, char *buf, size_t size) {
    if (json_is_integer(v))
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        snprintf(buf, size, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
    else
        snprintf(buf, size, "-");
    return buf;
}

bk_redis *ops_connect(const cli_globals *g, const char *cmd) {
    bk_err e;
    bk_err_clear(&e);
    bk_redis *r = bk_redis_new(g->redis, g->timeout_ms, &e);
    if (r == NULL)
        fprintf(stderr, "br2k %s: %s\n", cmd, e.msg);
    return r;
}

static bk_cfg_opt opts[] = {
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print JSON", NULL, 0, 0},
    {"timeout-ms", BK_CFG_INT, "10000", 0, 3600000, NULL,
     "verify: how long to wait for the replicas to reach the same LPI", NULL, 0, 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, NULL, 0, 0}};

/* ---- status ---- */

static const char status_epilog[] =
    "Reads Redis only. A member's role comes from the lease (leader) and its\n"
    "heartbeat alive-<id> (down: none), not from its metrics alone; a row that may be\n"
    "old (no heartbeat, a heartbeat older than 2 s, metrics older than the\n"
    "heartbeat, or metrics saying leader while the lease names another) is marked\n"
    "STALE, with its role 'unknown' unless it holds the lease. LAG is SSI - LPI.\n"
    "JSON fields: service, leader {id, epoch} or null, epoch, ssi, sv, backup (the\n"
    "backup phase, null when none), backup_last {version, cut} or null, members\n"
    "[{id, alive, heartbeat_age_ms, stale, note, role, reported_role, lpi, ssv, lag,\n"
    "metrics}]. Exit 0, or 2 when Redis cannot be read.";

static bk_cfg status_cfg = {"br2k status",
                            "Show the service's leader, versions and members.",
                            "[--json]",
                            opts,
                            status_epilog,
                            0,
                            0};

/* backup-last "<version> <cut>" as {version, cut}, null when absent. */
static json_t *backup_last_json(bk_redis *r, const char *svc, bk_err *e) {
    char key[BK_KEY_MAX];
    if (bk_key_backup_aux(key, sizeof(key), svc, "backup-last", e) != BK_OK)
        return json_null();
    char *v = get_str(r, key, e);
    if (v == NULL)
        return json_null();
    char *end = NULL;
    long long version = strtoll(v, &end, 10), cut = strtoll(end, NULL, 10);
    free(v);
    return json_pack("{s:I, s:I}", "version", (json_int_t)version, "cut",
                     (json_int_t)cut);
}

/* The scalars of the status object, in the order `status` prints them. */
static const struct {
    const char *field;
    int (*key)(char *, size_t, const char *, bk_err *);
} scalars[] = {{"epoch", bk_key_epoch},
               {"ssi", bk_key_ssi},
               {"sv", bk_key_sv},
               {"backup", bk_key_backup}};

/* The live gateways (producer/gateway/): each id of the set gateways whose
 * hash gateway-<id> is still there (it expires 10 s after the gateway), as
 * {id, url, ready, requests, accepted, rejected, inflight, p50_ms, p99_ms,
 * updated_ms}, sorted by id. */
static json_t *gateways_json(bk_redis *r, const char *svc, bk_err *e) {
    char key[BK_KEY_MAX];
    json_t *out = json_array();
    (void)bk_key_gateways(key, sizeof(key), svc, NULL); /* svc checked by the caller */
    redisReply *rep = bk_redis_command(r, e, "SMEMBERS %s", key);
    if (rep == NULL)
        return out;
    json_t *ids = json_array();
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING)
            json_array_append_new(ids, json_string(rep->element[i]->str));
    freeReplyObject(rep);
    sort_strings(ids);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        bk_err ke;
        if (bk_key_gateway(key, sizeof(key), svc, id, &ke) != BK_OK)
            continue;
        json_t *h = get_hash(r, key, e);
        if (json_object_size(h) > 0) {
            json_t *g = json_pack("{s:s}", "id", id);
            static const char *const fields[] = {"url",      "ready",    "requests",
                                                 "accepted", "rejected", "inflight",
                                                 "p50_ms",   "p99_ms",   "updated_ms"};
            for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
                json_t *v = json_object_get(h, fields[f]);
                json_object_set(g, fields[f], v != NULL ? v : json_null());
            }
            json_array_append_new(out, g);
        }
        json_decref(h);
    }
    json_decref(ids);
    return out;
}

json_t *ops_status_json(bk_redis *r, const char *svc, bk_err *e) {
    char key[BK_KEY_MAX];
    if (bk_keys_check_service(svc, e) != BK_OK)
        return NULL;
    view v;
    read_view(r, svc, &v, e);
    json_t *st = json_pack("{s:s}", "service", svc);
    json_object_set_new(st, "leader",
                        v.leader[0] != '\0'
                            ? json_pack("{s:s, s:I}", "id", v.leader, "epoch", v.epoch)
                            : json_null());
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
        json_t *val;
        if (strcmp(scalars[i].field, "ssi") == 0) { /* the SSI the lags are from */
            val = v.has_ssi ? json_integer(v.ssi) : json_null();
        } else {
            (void)scalars[i].key(key, sizeof(key), svc, NULL); /* svc checked above */
            val = get_json(r, key, e);
        }
        json_object_set_new(st, scalars[i].field, val);
    }
    json_object_set_new(st, "backup_last", backup_last_json(r, svc, e));
    json_t *ids = get_members(r, svc, e), *members = json_array();
    for (size_t i = 0; i < json_array_size(ids); i++)
        json_array_append_new(
            members,
            member_json(r, svc, json_string_value(json_array_get(ids, i)), &v, e));
    json_decref(ids);
    json_object_set_new(st, "members", members);
    json_object_set_new(st, "gateways", gateways_json(r, svc, e));
    if (e->code != 0) {
        json_decref(st);
        return NULL;
    }
    return st;
}

int cmd_status(const cli_globals *g, int argc, char **argv) {
    int rc;
    opts[0].def = g->json ? "true" : "false";
    if (cli_parse(&status_cfg, g, argc, argv, &rc)) {
        bk_cfg_release(&status_cfg);
        return rc;
    }
    int json = bk_cfg_bool(&status_cfg, "json");
    bk_cfg_release(&status_cfg);
    bk_redis *r = ops_connect(g, "status");
    if (r == NULL)
        return 2;
    bk_err e;
    bk_err_clear(&e);
    const char *svc = g->service;
    json_t *st = ops_status_json(r, svc, &e);
    bk_redis_free(r);
    if (st == NULL) {
        fprintf(stderr, "br2k status: %s\n", e.msg);
        return 2;
    }
    if (json) {
        json_dumpf(st, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        const json_t *lj = json_object_get(st, "leader");
        const json_t *members = json_object_get(st, "members");
        printf("service  %s\nleader   ", svc);
        if (json_is_object(lj))
            printf("%s (epoch %" JSON_INTEGER_FORMAT ")\n",
                   json_string_value(json_object_get(lj, "id")),
                   json_integer_value(json_object_get(lj, "epoch")));
        else
            printf("none\n");
        for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
            char buf[64];
            printf("%-8s %s\n", scalars[i].field,
                   print_text(json_object_get(st, scalars[i].field), buf, sizeof(buf)));
        }
        const json_t *bl = json_object_get(st, "backup_last");
        if (json_is_object(bl))
            printf("last     version %" JSON_INTEGER_FORMAT " (cut %" JSON_INTEGER_FORMAT
                   ")\n",
                   json_integer_value(json_object_get(bl, "version")),
                   json_integer_value(json_object_get(bl, "cut")));
        else
            printf("last     none\n");
        printf("members  %zu\n", json_array_size(members));
        printf("  %-16s %-9s %-6s %-10s %-5s %-8s %s\n", "ID", "ROLE", "ALIVE", "LPI",
               "SSV", "LAG", "HEARTBEAT");
        size_t i;
        const json_t *m;
        json_array_foreach(members, i, m) {
            printf("  %-16s ", json_string_value(json_object_get(m, "id")));
            static const char *cols[] = {"role", "alive", "lpi", "ssv", "lag"};
            static const int widths[] = {9, 6, 10, 5, 8};
            for (size_t c = 0; c < 5; c++) {
                char buf[64];
                print_text(json_object_get(m, cols[c]), buf, sizeof(buf));
                printf("%-*s ", widths[c], buf);
            }
            const json_t *age = json_object_get(m, "heartbeat_age_ms");
            if (json_is_integer(age))
                printf("%.1fs ago", (double)json_integer_value(age) / 1000.0);
            else
                printf("none");
            if (json_is_true(json_object_get(m, "stale")))
                printf("  STALE: %s", json_string_value(json_object_get(m, "note")));
            putchar('\n');
        }
        const json_t *gws = json_object_get(st, "gateways");
        if (json_array_size(gws) > 0) {
            printf("gateways %zu\n", json_array_size(gws));
            printf("  %-16s %-28s %-5s %-10s %-8s %s\n", "ID", "URL", "READY", "REQUESTS",
                   "INFLIGHT", "P99_MS");
            json_array_foreach(gws, i, m) {
                static const char *cols[] = {"id",       "url",      "ready",
                                             "requests", "inflight", "p99_ms"};
                static const int widths[] = {16, 28, 5, 10, 8, 0};
                printf(" ");
                for (size_t c = 0; c < 6; c++) {
                    char buf[256];
                    print_text(json_object_get(m, cols[c]), buf, sizeof(buf));
                    printf(" %-*s", widths[c], buf);
                }
                putchar('\n');
            }
        }
    }
    json_decref(st);
    return 0;
}

/* ---- verify ---- */

static const char verify_epilog[] =
    "Every live member publishes, in its metrics hash, the SHA-256 digest of its\n"
    "state and the LPI it belongs to. verify waits up to --timeout-ms for all live\n"
    "members to report the same LPI, then compares. \"consistent\": true (exit 0)\n"
    "only when every live member reported a digest, all at the same LPI, and all\n"
    "digests are equal; otherwise exit 1 with a reason (members whose heartbeat\n"
    "expired are listed but not compared; a live member whose row is stale, see\n"
    "br2k status --help, is compared and shown 'stale'). Exit 2 when Redis cannot\n"
    "be read.";

static bk_cfg verify_cfg = {"br2k verify",
                            "Check that the replicas of the service hold the same state.",
                            "[--json] [--timeout-ms MS]",
                            opts,
                            verify_epilog,
                            0,
                            0};

/* One look at the replicas: fills `reps` (array of {id, alive, stale, lpi,
 * digest}) and returns 1 when every live member has a digest at one LPI,
 * at least SSI. */
static int look_replicas(bk_redis *r, const char *svc, json_t **reps, bk_err *e) {
    json_t *ids = get_members(r, svc, e);
    if (ids == NULL)
        return 0;
    view v;
    read_view(r, svc, &v, e);
    *reps = json_array();
    int64_t lpi = -2;
    int same = 1, live = 0;
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        json_t *m = member_json(r, svc, id, &v, e);
        const json_t *metrics = json_object_get(m, "metrics");
        int alive = json_is_true(json_object_get(m, "alive"));
        json_int_t dl = int_of(metrics, METRIC_DIGEST_LPI, INT64_MIN);
        const json_t *dg = json_object_get(metrics, METRIC_DIGEST);
        json_t *one = json_pack("{s:s, s:b, s:O, s:n, s:n}", "id", id, "alive", alive,
                                "stale", json_object_get(m, "stale"), "lpi", "digest");
        if (dl != INT64_MIN)
            json_object_set_new(one, "lpi", json_integer(dl));
        if (json_is_string(dg))
            json_object_set(one, "digest", (json_t *)dg);
        json_decref(m);
        json_array_append_new(*reps, one);
        if (!alive)
            continue;
        live++;
        if (dl == INT64_MIN || !json_is_string(dg)) {
            same = 0;
            continue;
        }
        if (lpi == -2)
            lpi = dl;
        else if (lpi != dl)
            same = 0;
    }
    json_decref(ids);
    /* the replicas must also have caught up with the service: a digest
     * reported before the last records were applied is not the answer */
    int behind = v.has_ssi && lpi < v.ssi;
    return same && live > 0 && !behind;
}

int cmd_verify(const cli_globals *g, int argc, char **argv) {
    int rc;
    opts[0].def = g->json ? "true" : "false";
    if (cli_parse(&verify_cfg, g, argc, argv, &rc)) {
        bk_cfg_release(&verify_cfg);
        return rc;
    }
    int json = bk_cfg_bool(&verify_cfg, "json");
    long long timeout = bk_cfg_int(&verify_cfg, "timeout-ms");
    bk_cfg_release(&verify_cfg);
    bk_redis *r = ops_connect(g, "verify");
    if (r == NULL)
        return 2;
    bk_err e;
    bk_err_clear(&e);
    int64_t t0 = bk_mono_ms();
    json_t *reps = NULL;
    int converged = 0;
    for (;;) {
        json_decref(reps);
        reps = NULL;
        converged = look_replicas(r, g->service, &reps, &e);
        if (e.code != 0) {
            fprintf(stderr, "br2k verify: %s\n", e.msg);
            json_decref(reps);
            bk_redis_free(r);
            return 2;
        }
        if (converged || bk_mono_ms() - t0 >= timeout)
            break;
        bk_sleep_ms(200);
    }
    bk_redis_free(r);
    /* compare digests within each LPI among live members */
    const char *reason = NULL;
    char why[600] = "";
    size_t i, live = 0;
    json_t *m, *first = NULL;
    json_array_foreach(reps, i, m) {
        if (!json_is_true(json_object_get(m, "alive")))
            continue;
        live++;
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *dg = json_string_value(json_object_get(m, "digest"));
        if (dg == NULL) {
            snprintf(why, sizeof(why), "'%s' reported no digest", id);
            break;
        }
        if (first == NULL) {
            first = m;
            continue;
        }
        json_int_t l0 = json_integer_value(json_object_get(first, "lpi"));
        json_int_t l1 = json_integer_value(json_object_get(m, "lpi"));
        const char *d0 = json_string_value(json_object_get(first, "digest"));
        if (l0 == l1 && strcmp(d0, dg) != 0) {
            snprintf(why, sizeof(why),
                     "'%s' and '%s' differ at LPI %" JSON_INTEGER_FORMAT,
                     json_string_value(json_object_get(first, "id")), id, l0);
            break;
        }
        if (l0 != l1 && why[0] == '\0')
            snprintf(
                why, sizeof(why),
                "'%s' (LPI %" JSON_INTEGER_FORMAT ") and '%s' (LPI %" JSON_INTEGER_FORMAT
                ") did not reach the same LPI within %lld ms",
                json_string_value(json_object_get(first, "id")), l0, id, l1, timeout);
    }
    if (live == 0)
        snprintf(why, sizeof(why), "no live member in service '%s'", g->service);
    reason = why[0] != '\0' ? why : NULL;
    int consistent = reason == NULL;
    json_t *out = json_pack("{s:s, s:b, s:O}", "service", g->service, "consistent",
                            consistent, "replicas", reps);
    json_object_set_new(out, "lpi",
                        consistent ? json_incref(json_object_get(first, "lpi"))
                                   : json_null());
    if (reason != NULL)
        json_object_set_new(out, "reason", json_string(reason));
    if (json) {
        json_dumpf(out, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        json_array_foreach(reps, i, m) {
            const json_t *l = json_object_get(m, "lpi");
            const char *dg = json_string_value(json_object_get(m, "digest"));
            char lpi[32] = "-";
            if (json_is_integer(l))
                snprintf(lpi, sizeof(lpi), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(l));
            printf("%-16s %-5s lpi %-10s digest %s\n",
                   json_string_value(json_object_get(m, "id")),
                   !json_is_true(json_object_get(m, "alive"))  ? "down"
                   : json_is_true(json_object_get(m, "stale")) ? "stale"
                                                               : "alive",
                   lpi, dg != NULL ? dg : "-");
        }
        if (consistent)
            printf("consistent\n");
        else
            printf("NOT consistent: %s\n", reason);
    }
    json_decref(out);
    json_decref(reps);
    return consistent ? 0 : 1;
}
