/* ops.c - the operator commands `br2k status` and `br2k verify`.
 *
 * Both read Redis only (the keys of schemas/redis-keys.md): nothing here
 * writes. ops.h shares the status object with `br2k top` and `br2k probe`
 * (top.c). `status` shows the service's versions and each member's view;
 * `verify` compares the state digests that every worker publishes in its
 * metrics hash together with the LPI they belong to. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "base/err.h"
#include "redis/keys.h"
#include "ops.h"
#include "redis/redis.h"

/* Fields of the metrics hash br2k:{<svc>}:metrics-<id> that we read
 * (schemas/redis-keys.md). */
#define METRIC_ROLE "role"
#define METRIC_LAG "lag"
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
    /* sort: insertion sort, a handful of members */
    for (size_t i = 1; i < json_array_size(ids); i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(ids, j - 1), *b = json_array_get(ids, j);
            if (strcmp(json_string_value(a), json_string_value(b)) <= 0)
                break;
            json_incref(a);
            json_array_set(ids, j - 1, b);
            json_array_set_new(ids, j, a);
        }
    return ids;
}

static int exists(bk_redis *r, const char *key, bk_err *e) {
    redisReply *rep = bk_redis_command(r, e, "EXISTS %s", key);
    int v = rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
    if (rep != NULL)
        freeReplyObject(rep);
    return v;
}

/* One member: alive, role, LPI, SSV, lag and its whole metrics hash. */
json_t *ops_member_json(bk_redis *r, const char *svc, const char *id, bk_err *e) {
    char key[BK_KEY_MAX];
    json_t *m = json_pack("{s:s}", "id", id);
    (void)bk_key_alive(key, sizeof(key), svc, id, NULL); /* ids come from Redis */
    json_object_set_new(m, "alive", json_boolean(exists(r, key, e)));
    (void)bk_key_metrics(key, sizeof(key), svc, id, NULL);
    json_t *metrics = get_hash(r, key, e);
    json_t *role = json_object_get(metrics, METRIC_ROLE);
    json_object_set(m, "role", role != NULL ? role : json_null());
    (void)bk_key_lpi(key, sizeof(key), svc, id, NULL);
    json_object_set_new(m, "lpi", get_json(r, key, e));
    (void)bk_key_ssv(key, sizeof(key), svc, id, NULL);
    json_object_set_new(m, "ssv", get_json(r, key, e));
    json_t *lag = json_object_get(metrics, METRIC_LAG);
    json_object_set(m, "lag", lag != NULL ? lag : json_null());
    json_object_set_new(m, "metrics", metrics);
    return m;
}

static void print_value(const json_t *v) {
    if (json_is_integer(v))
        printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        printf("%s", json_string_value(v));
    else if (json_is_true(v))
        printf("yes");
    else if (json_is_false(v))
        printf("no");
    else
        printf("-");
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
    "Reads Redis only. JSON fields: service, leader {id, epoch} or null, epoch, ssi,\n"
    "sv, backup (the backup phase, null when none), members [{id, alive, role, lpi,\n"
    "ssv, lag, metrics}]. Exit 0, or 2 when Redis cannot be read.";

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

json_t *ops_status_json(bk_redis *r, const char *svc, bk_err *e) {
    char key[BK_KEY_MAX];
    if (bk_key_leader(key, sizeof(key), svc, e) != BK_OK)
        return NULL;
    json_t *st = json_pack("{s:s}", "service", svc);
    char *leader = get_str(r, key, e);
    json_t *lj = json_null();
    if (leader != NULL) {
        char *sp = strchr(leader, ' ');
        if (sp != NULL)
            *sp = '\0';
        lj = json_pack("{s:s, s:I}", "id", leader, "epoch",
                       (json_int_t)(sp != NULL ? strtoll(sp + 1, NULL, 10) : -1));
        free(leader);
    }
    json_object_set_new(st, "leader", lj);
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
        (void)scalars[i].key(key, sizeof(key), svc, NULL); /* svc checked above */
        json_object_set_new(st, scalars[i].field, get_json(r, key, e));
    }
    json_object_set_new(st, "backup_last", backup_last_json(r, svc, e));
    json_t *ids = get_members(r, svc, e), *members = json_array();
    for (size_t i = 0; i < json_array_size(ids); i++)
        json_array_append_new(
            members,
            ops_member_json(r, svc, json_string_value(json_array_get(ids, i)), e));
    json_decref(ids);
    json_object_set_new(st, "members", members);
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
            printf("%-8s ", scalars[i].field);
            print_value(json_object_get(st, scalars[i].field));
            putchar('\n');
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
        printf("  %-16s %-9s %-6s %-10s %-5s %s\n", "ID", "ROLE", "ALIVE", "LPI", "SSV",
               "LAG");
        size_t i;
        const json_t *m;
        json_array_foreach(members, i, m) {
            printf("  %-16s ", json_string_value(json_object_get(m, "id")));
            static const char *cols[] = {"role", "alive", "lpi", "ssv", "lag"};
            static const int widths[] = {9, 6, 10, 5, 0};
            for (size_t c = 0; c < 5; c++) {
                char buf[64];
                const json_t *v = json_object_get(m, cols[c]);
                if (json_is_integer(v))
                    snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                             json_integer_value(v));
                else if (json_is_string(v))
                    snprintf(buf, sizeof(buf), "%s", json_string_value(v));
                else if (json_is_boolean(v))
                    snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "yes" : "no");
                else
                    snprintf(buf, sizeof(buf), "-");
                printf("%-*s%s", widths[c], buf, c < 4 ? " " : "\n");
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
    "expired are listed but not compared). Exit 2 when Redis cannot be read.";

static bk_cfg verify_cfg = {"br2k verify",
                            "Check that the replicas of the service hold the same state.",
                            "[--json] [--timeout-ms MS]",
                            opts,
                            verify_epilog,
                            0,
                            0};

/* One look at the replicas: fills `reps` (array of {id, alive, lpi,
 * digest}) and returns 1 when every live member has a digest at one LPI. */
static int look_replicas(bk_redis *r, const char *svc, json_t **reps, bk_err *e) {
    json_t *ids = get_members(r, svc, e);
    if (ids == NULL)
        return 0;
    *reps = json_array();
    int64_t lpi = -2;
    int same = 1, live = 0;
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        char key[BK_KEY_MAX];
        (void)bk_key_alive(key, sizeof(key), svc, id, NULL);
        int alive = exists(r, key, e);
        (void)bk_key_metrics(key, sizeof(key), svc, id, NULL);
        redisReply *rep = bk_redis_command(r, e, "HMGET %s %s %s", key, METRIC_DIGEST_LPI,
                                           METRIC_DIGEST);
        json_t *one =
            json_pack("{s:s, s:b, s:n, s:n}", "id", id, "alive", alive, "lpi", "digest");
        if (rep != NULL && rep->elements == 2) {
            if (rep->element[0]->type == REDIS_REPLY_STRING)
                json_object_set_new(
                    one, "lpi", json_integer(strtoll(rep->element[0]->str, NULL, 10)));
            if (rep->element[1]->type == REDIS_REPLY_STRING)
                json_object_set_new(one, "digest", json_string(rep->element[1]->str));
        }
        if (rep != NULL)
            freeReplyObject(rep);
        json_array_append_new(*reps, one);
        if (!alive)
            continue;
        live++;
        json_t *l = json_object_get(one, "lpi");
        if (!json_is_integer(l) || !json_is_string(json_object_get(one, "digest"))) {
            same = 0;
            continue;
        }
        if (lpi == -2)
            lpi = json_integer_value(l);
        else if (lpi != json_integer_value(l))
            same = 0;
    }
    json_decref(ids);
    /* the replicas must also have caught up with the service: a digest
     * reported before the last records were applied is not the answer */
    char skey[BK_KEY_MAX];
    (void)bk_key_ssi(skey, sizeof(skey), svc, NULL);
    json_t *ssi = get_json(r, skey, e);
    int behind = json_is_integer(ssi) && lpi < json_integer_value(ssi);
    json_decref(ssi);
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
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
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
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long ms =
            (now.tv_sec - t0.tv_sec) * 1000LL + (now.tv_nsec - t0.tv_nsec) / 1000000LL;
        if (converged || ms >= timeout)
            break;
        usleep(200 * 1000);
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
                   json_is_true(json_object_get(m, "alive")) ? "alive" : "down", lpi,
                   dg != NULL ? dg : "-");
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
