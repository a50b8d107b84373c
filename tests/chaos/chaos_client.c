/* chaos_client.c - the clients and the checker of the chaos test
 * (tests/chaos/README.md; chaos.sh runs it).
 *
 *   chaos_client load OPTIONS
 *     K clients (one thread and one libbr2k connection each, found through
 *     the registry contract with br2k_discover) send N signed InfoDID
 *     registrations each, paced at R requests/s per client, at most W
 *     waiting for their result per client. The client library retries
 *     (br2k_settings.attempt_ms, with the registry to look the service up
 *     again): a request whose append fails or whose result does not come in
 *     time is sent again with the same request id and the same signed
 *     bytes, up to --attempts attempts of --result-ms each. Writes one line
 *     per request (TSV, see write_requests) and prints a JSON summary.
 *
 *   chaos_client check OPTIONS STATE_DIR...
 *     Opens the InfoDID state of every (stopped) worker, compares the
 *     replicas (digest and snapshot body: every DID record and every
 *     request-id entry, byte for byte), checks every acknowledged request
 *     against the state, measures the downtime from the result times and
 *     the fault windows, prints the Table-4 style report and writes it as
 *     JSON. Exit 0 when nothing is lost, duplicated or inconsistent, 1
 *     otherwise, 2 on a usage or I/O error.
 *
 * Client i has the id PREFIX-i and the key keccak256("PREFIX-i"), like
 * `br2k submit`'s load generator; its request s (1..N) registers
 * did:br2k:<address>:s with attributes {name: PREFIX-i, n: s}.
 *
 * With --app node or --app python (both commands), the requests and the
 * checks are those of an example application over the application protocol
 * (worker/apps/examples/): node-ledger's request s of client C mints
 * amount(s) = s % 7 + 1 tokens to C; python-kv's puts the key "C/s" with the
 * value "v<s>". The checker then reads each replica's state file
 * (ledger.json, kv.json: the application's whole state, canonical JSON) and
 * compares the replicas byte for byte; every acknowledged request id must be
 * in "seen" with its ok result at its offset; each ledger balance must be
 * exactly the sum of the amounts of that client's applied requests (a
 * request applied twice or lost shows as a difference) and the supply their
 * total; each key must have its owner, its value and version 1 (a put
 * applied twice makes version 2), and no key may be there without its
 * request. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "br2k.h"
#include "backup/seal.h"
#include "base/err.h"
#include "infodid.h"
#include "loadgen.h"
#include "base/log.h"

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the application (--app) ---- */

enum { APP_INFODID = 0, APP_NODE, APP_PYTHON };
static int g_app = APP_INFODID;

static int parse_app(const char *v) {
    if (strcmp(v, "infodid") == 0)
        g_app = APP_INFODID;
    else if (strcmp(v, "node") == 0)
        g_app = APP_NODE;
    else if (strcmp(v, "python") == 0)
        g_app = APP_PYTHON;
    else {
        fprintf(stderr, "chaos_client: --app '%s': expected infodid, node or python\n",
                v);
        return -1;
    }
    return 0;
}

static long node_amount(long seq) {
    return seq % 7 + 1;
}

/* request seq of client `client` for the example application (unsigned:
 * the examples check no signature; the same bytes on every retry) */
static char *app_request(const char *client, long seq) {
    char *out = NULL;
    int n;
    if (g_app == APP_NODE)
        n = asprintf(&out,
                     "{\"v\":1,\"id\":{\"client\":\"%s\",\"seq\":%ld},\"op\":\"mint\","
                     "\"payload\":{\"amount\":%ld},\"ts\":0,\"sig\":\"0x\"}",
                     client, seq, node_amount(seq));
    else
        n = asprintf(&out,
                     "{\"v\":1,\"id\":{\"client\":\"%s\",\"seq\":%ld},\"op\":\"put\","
                     "\"payload\":{\"key\":\"%s/%ld\",\"value\":\"v%ld\"},\"ts\":0,"
                     "\"sig\":\"0x\"}",
                     client, seq, client, seq, seq);
    return n < 0 ? NULL : out;
}

/* ---- clients ---- */

/* the clients of `br2k submit --clients` (producer/loadgen.h) */
typedef bk_lg_client cclient;

/* ---- load ---- */

enum { RQ_NEW = 0, RQ_PENDING, RQ_RETRY, RQ_DONE };

typedef struct creq {
    char *json;
    size_t len;
    int state, attempts, appended, accepted, dup;
    int64_t t_submit, t_result, retry_at, offset;
    char reason[48];
    struct cthread *th;
} creq;

typedef struct cthread {
    pthread_t tid;
    long index;
    cclient cl;
    creq *reqs;
    long n, done, pending, failed_events, rediscoveries, reconnects;
    char first_failure[256];
    char err[512];
} cthread;

static struct {
    const char *eth_rpc, *registry, *prefix, *out;
    long clients, count, window, result_ms, attempts;
    double rate;
} L = {NULL, NULL, "chaos", NULL, 5, 1000, 20, 10000, 40, 0};

static void on_event(const br2k_event *ev) {
    creq *r = ev->opaque;
    cthread *th = r->th;
    if (ev->type == BR2K_EV_APPENDED) {
        r->appended = 1;
        return;
    }
    th->pending--;
    r->attempts = ev->attempts;
    if (ev->type == BR2K_EV_FAILED) { /* after every retry of the library */
        th->failed_events++;
        if (th->first_failure[0] == '\0' && ev->error != NULL)
            snprintf(th->first_failure, sizeof(th->first_failure), "%s", ev->error->msg);
        r->state = RQ_DONE;
        th->done++;
        snprintf(r->reason, sizeof(r->reason), "failed");
        return;
    }
    /* BR2K_EV_RESULT of the append at ev->offset: "offset" is where the
     * request id was first applied (a repeat returns the first result, with
     * "repeat": true); the first result of another append, not marked as
     * a repeat, would be a request applied twice */
    json_t *res = json_loads(ev->result, 0, NULL);
    int64_t off = (int64_t)json_integer_value(json_object_get(res, "offset"));
    int repeat = json_is_true(json_object_get(res, "repeat"));
    if (ev->offset >= 0 && off != ev->offset && !repeat)
        r->dup = 1;
    r->offset = off;
    r->accepted = ev->accepted;
    if (!ev->accepted) {
        const char *code =
            json_string_value(json_object_get(json_object_get(res, "reason"), "code"));
        snprintf(r->reason, sizeof(r->reason), "%s", code ? code : "unknown");
    }
    json_decref(res);
    r->t_result = wall_ms();
    r->state = RQ_DONE;
    th->done++;
}

static br2k_client *discover_connect(cthread *th, br2k_discovery *d) {
    br2k_settings s;
    br2k_error err = {0, ""};
    memset(&s, 0, sizeof(s));
    s.result_timeout_ms = (int)(L.result_ms * L.attempts); /* the whole wait */
    s.attempt_ms = (int)L.result_ms;
    s.backoff_ms = 500;
    s.eth_rpc = L.eth_rpc;
    s.registry = L.registry;
    s.timeout_ms = 2000;
    if (br2k_discover(L.eth_rpc, L.registry, d, &s, &err) != BR2K_OK) {
        snprintf(th->err, sizeof(th->err), "discover: %s", err.msg);
        return NULL;
    }
    br2k_client *c = br2k_connect(&s, &err);
    if (c == NULL)
        snprintf(th->err, sizeof(th->err), "connect: %s", err.msg);
    return c;
}

static int submit_req(cthread *th, br2k_client *c, creq *r) {
    br2k_error err = {0, ""};
    if (r->t_submit == 0)
        r->t_submit = wall_ms();
    r->state = RQ_PENDING;
    th->pending++;
    if (br2k_submit(c, NULL, 0, r->json, r->len, BR2K_WANT_RESULT, on_event, r, &err) ==
        BR2K_OK)
        return 0;
    th->pending--; /* refused at once (the library took nothing): again later */
    th->failed_events++;
    if (th->first_failure[0] == '\0')
        snprintf(th->first_failure, sizeof(th->first_failure), "%s", err.msg);
    r->state = RQ_RETRY;
    r->retry_at = wall_ms() + 500;
    return -1;
}

static void *client_thread(void *arg) {
    cthread *th = arg;
    br2k_discovery d;
    br2k_client *c = NULL;
    for (int tries = 0; c == NULL; tries++) {
        if ((c = discover_connect(th, &d)) != NULL)
            break;
        if (tries >= 120)
            return NULL; /* th->err says why */
        sleep_ms(500);
    }
    th->err[0] = '\0';
    int64_t t0 = wall_ms();
    long next = 0;
    bk_err e;
    bk_err_clear(&e);
    while (th->done < th->n) {
        int64_t now = wall_ms();
        int busy = 0;
        for (long i = 0; i < next; i++) /* retries first */
            if (th->reqs[i].state == RQ_RETRY && th->reqs[i].retry_at <= now) {
                submit_req(th, c, &th->reqs[i]);
                busy = 1;
            }
        int due = next < th->n &&
                  (L.rate <= 0 || (double)(now - t0) >= (double)next * 1000.0 / L.rate);
        if (due && th->pending < L.window) {
            creq *r = &th->reqs[next];
            r->json = g_app == APP_INFODID
                          ? bk_lg_request(&th->cl, next + 1, 0, wall_ms(), &e)
                          : app_request(th->cl.id, next + 1);
            if (r->json == NULL) {
                snprintf(th->err, sizeof(th->err), "%s",
                         g_app == APP_INFODID ? e.msg : "out of memory");
                break;
            }
            r->len = strlen(r->json);
            next++;
            submit_req(th, c, r);
            (void)br2k_poll(c, 0, NULL);
            continue;
        }
        int wait = busy ? 0 : 20;
        if (L.rate > 0 && next < th->n && th->pending < L.window) {
            double left = t0 + (double)next * 1000.0 / L.rate - (double)wall_ms();
            wait = left < 0 ? 0 : left < 20 ? (int)left : 20;
        }
        if (br2k_poll(c, wait, NULL) < 0)
            sleep_ms(20);
    }
    br2k_stats st;
    br2k_get_stats(c, &st);
    th->rediscoveries = st.rediscoveries;
    th->reconnects = st.reconnects;
    br2k_free(c);
    return NULL;
}

static int cmd_load(int argc, char **argv) {
    static const struct option lo[] = {{"eth-rpc", 1, 0, 'e'},
                                       {"registry", 1, 0, 'g'},
                                       {"prefix", 1, 0, 'p'},
                                       {"clients", 1, 0, 'k'},
                                       {"count", 1, 0, 'n'},
                                       {"rate", 1, 0, 'r'},
                                       {"window", 1, 0, 'w'},
                                       {"result-ms", 1, 0, 't'},
                                       {"attempts", 1, 0, 'a'},
                                       {"out", 1, 0, 'o'},
                                       {"app", 1, 0, 'A'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'e':
            L.eth_rpc = optarg;
            break;
        case 'g':
            L.registry = optarg;
            break;
        case 'p':
            L.prefix = optarg;
            break;
        case 'k':
            L.clients = atol(optarg);
            break;
        case 'n':
            L.count = atol(optarg);
            break;
        case 'r':
            L.rate = atof(optarg);
            break;
        case 'w':
            L.window = atol(optarg);
            break;
        case 't':
            L.result_ms = atol(optarg);
            break;
        case 'a':
            L.attempts = atol(optarg);
            break;
        case 'o':
            L.out = optarg;
            break;
        case 'A':
            if (parse_app(optarg) != 0)
                return 2;
            break;
        case 'h':
            printf("Usage: chaos_client load --eth-rpc URL --registry ADDR --out FILE "
                   "[--prefix P] [--clients K]\n  [--count N] [--rate R per client] "
                   "[--window W] [--result-ms MS] [--attempts A]\n"
                   "  [--app infodid|node|python]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (L.eth_rpc == NULL || L.registry == NULL || L.out == NULL || L.clients < 1 ||
        L.count < 1 || L.window < 1 || L.attempts < 1) {
        fprintf(stderr,
                "chaos_client load: --eth-rpc, --registry and --out are required, "
                "and counts must be positive\n");
        return 2;
    }
    cthread *th = calloc((size_t)L.clients, sizeof(*th));
    if (th == NULL)
        return 2;
    bk_err e;
    for (long i = 0; i < L.clients; i++) {
        th[i].index = i;
        th[i].n = L.count;
        th[i].reqs = calloc((size_t)L.count, sizeof(creq));
        if (th[i].reqs == NULL ||
            bk_lg_client_init(&th[i].cl, L.prefix, i, &e) != BK_OK) {
            fprintf(stderr, "chaos_client load: client %ld: %s\n", i,
                    th[i].reqs ? e.msg : "out of memory");
            return 2;
        }
        for (long j = 0; j < L.count; j++) {
            th[i].reqs[j].th = &th[i];
            th[i].reqs[j].offset = -1;
        }
    }
    int64_t t0 = wall_ms();
    for (long i = 0; i < L.clients; i++)
        if (pthread_create(&th[i].tid, NULL, client_thread, &th[i]) != 0) {
            fprintf(stderr, "chaos_client load: cannot start a thread\n");
            return 2;
        }
    for (long i = 0; i < L.clients; i++)
        pthread_join(th[i].tid, NULL);
    int64_t t1 = wall_ms();
    FILE *f = fopen(L.out, "w");
    if (f == NULL) {
        fprintf(stderr, "chaos_client load: cannot write '%s': %s\n", L.out,
                strerror(errno));
        return 2;
    }
    /* client seq status offset t_submit t_result attempts appended dup */
    long ok = 0, rej = 0, failed = 0, retried = 0, rediscover = 0, errors = 0;
    for (long i = 0; i < L.clients; i++) {
        if (th[i].err[0] != '\0') {
            fprintf(stderr, "chaos_client load: client %s: %s\n", th[i].cl.id, th[i].err);
            errors++;
        }
        rediscover += th[i].rediscoveries;
        for (long j = 0; j < L.count; j++) {
            creq *r = &th[i].reqs[j];
            const char *st = r->state != RQ_DONE ? "unsent"
                             : r->reason[0] == 'f' && strcmp(r->reason, "failed") == 0
                                 ? "failed"
                             : r->accepted ? "ok"
                                           : "rejected";
            ok += strcmp(st, "ok") == 0;
            rej += strcmp(st, "rejected") == 0;
            failed += strcmp(st, "ok") != 0 && strcmp(st, "rejected") != 0;
            retried += r->attempts > 1;
            fprintf(
                f, "%s\t%ld\t%s\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%d\t%d\t%d\t%s\n",
                th[i].cl.id, j + 1, st, r->offset, r->t_submit, r->t_result, r->attempts,
                r->appended, r->dup, r->reason[0] ? r->reason : "-");
            free(r->json);
        }
        free(th[i].reqs);
        bk_eth_key_clear(&th[i].cl.key);
    }
    fclose(f);
    json_t *sum =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "prefix", L.prefix,
                  "clients", (json_int_t)L.clients, "count", (json_int_t)L.count, "ok",
                  (json_int_t)ok, "rejected", (json_int_t)rej, "failed",
                  (json_int_t)failed, "retried", (json_int_t)retried, "rediscoveries",
                  (json_int_t)rediscover, "elapsed_s", (double)(t1 - t0) / 1e3);
    if (th[0].first_failure[0] != '\0')
        json_object_set_new(sum, "first_failure", json_string(th[0].first_failure));
    json_dumpf(sum, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(sum);
    free(th);
    return errors ? 2 : 0;
}

/* ---- check ---- */

typedef struct rec { /* a DID record or a request-id entry of a replica */
    char *key;
    uint8_t ctrl[20];
    int revoked;
    int64_t created_off;
    json_t *attrs;  /* DID: {name: value} */
    int64_t offset; /* request id: the first result's offset */
    int ok;         /* request id: the first result's status is ok */
    int seen;
    int64_t num, expect; /* --app node: an account's balance, and the sum
                            of its applied requests' amounts */
} rec;

typedef struct snap { /* a replica's records, each list in key order */
    rec *dids, *ids;  /* --app node: accounts; python: keys */
    size_t ndid, nid, cap_did, cap_id;
    int64_t applied, supply; /* --app node|python: the state's counters */
} snap;

static int cmp_key(const void *a, const void *b) {
    return strcmp(((const rec *)a)->key, ((const rec *)b)->key);
}

static rec *add_rec(rec **v, size_t *n, size_t *cap, const char *key) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        rec *nv = realloc(*v, c * sizeof(rec));
        if (nv == NULL)
            return NULL;
        *v = nv, *cap = c;
    }
    rec *r = memset(&(*v)[(*n)++], 0, sizeof(rec));
    r->key = strdup(key);
    return r->key ? r : NULL;
}

/* bk_infodid_each's callbacks: the state as InfoDID shows it */
static int on_did(const bk_infodid_did *d, void *opaque) {
    snap *s = opaque;
    rec *r = add_rec(&s->dids, &s->ndid, &s->cap_did, d->did);
    if (r == NULL)
        return 1; /* out of memory: the walk stops with an error */
    memcpy(r->ctrl, d->controller, 20);
    r->revoked = d->revoked;
    r->created_off = d->created_off;
    r->attrs = json_object();
    for (uint32_t k = 0; k < d->nattrs; k++)
        json_object_set_new(r->attrs, d->names[k], json_string(d->values[k]));
    return 0;
}

static int on_id(const bk_infodid_reqid *x, void *opaque) {
    snap *s = opaque;
    rec *r = add_rec(&s->ids, &s->nid, &s->cap_id, x->id);
    if (r == NULL)
        return 1; /* out of memory: the walk stops with an error */
    json_t *j = json_loads(x->result, 0, NULL);
    r->offset = (int64_t)json_integer_value(json_object_get(j, "offset"));
    r->ok = json_is_string(json_object_get(j, "status")) &&
            strcmp(json_string_value(json_object_get(j, "status")), "ok") == 0;
    json_decref(j);
    return 0;
}

/* --app node|python: the replica's state file (the application's whole
 * state as canonical JSON, written atomically on sync): its bytes, LPI,
 * digest (the applications' digest is the SHA-256 of those bytes), request
 * ids ("seen") and accounts or keys, each list sorted by key */
static int open_app_state(const char *dir, snap *sn, void **raw, size_t *len,
                          int64_t *lpi, char dig[65]) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir,
             g_app == APP_NODE ? "ledger.json" : "kv.json");
    size_t nl = 0;
    (void)nl;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "chaos_client check: cannot read '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    json_error_t je;
    json_t *st = n > 0 ? json_loadb(buf, (size_t)n, 0, &je) : NULL;
    bk_err e;
    bk_err_clear(&e);
    if (st == NULL || bk_sha256_hex(buf, (size_t)n, dig, &e) != BK_OK) {
        fprintf(stderr, "chaos_client check: '%s' is not the application's JSON state\n",
                path);
        free(buf);
        json_decref(st);
        return -1;
    }
    *raw = buf;
    *len = (size_t)n;
    *lpi = (int64_t)json_integer_value(json_object_get(st, "lpi"));
    sn->applied = (int64_t)json_integer_value(json_object_get(st, "applied"));
    sn->supply = (int64_t)json_integer_value(json_object_get(st, "supply"));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "seen"), k, v) {
        rec *r = add_rec(&sn->ids, &sn->nid, &sn->cap_id, k);
        if (r == NULL)
            return -1;
        r->offset = (int64_t)json_integer_value(json_object_get(v, "offset"));
        const char *status = json_string_value(json_object_get(v, "status"));
        r->ok = status != NULL && strcmp(status, "ok") == 0;
    }
    json_object_foreach(json_object_get(st, g_app == APP_NODE ? "balances" : "kv"), k,
                        v) {
        rec *r = add_rec(&sn->dids, &sn->ndid, &sn->cap_did, k);
        if (r == NULL)
            return -1;
        if (g_app == APP_NODE)
            r->num = (int64_t)json_integer_value(v);
        else
            r->attrs = json_incref(v); /* {owner, value, version} */
    }
    json_decref(st);
    qsort(sn->ids, sn->nid, sizeof(rec), cmp_key);
    qsort(sn->dids, sn->ndid, sizeof(rec), cmp_key);
    return 0;
}

/* --app python: the key of request seq of client holds its put, once */
static const char *kv_content(const rec *d, const char *client, long seq, int *twice) {
    char want[32];
    snprintf(want, sizeof(want), "v%ld", seq);
    const char *owner = json_string_value(json_object_get(d->attrs, "owner"));
    const char *value = json_string_value(json_object_get(d->attrs, "value"));
    json_int_t ver = json_integer_value(json_object_get(d->attrs, "version"));
    if (owner == NULL || strcmp(owner, client) != 0 || value == NULL ||
        strcmp(value, want) != 0)
        return "key has other content";
    if (ver != 1) {
        *twice = 1;
        return "key written more than once (version is not 1)";
    }
    return NULL;
}

static rec *find(rec *v, size_t n, const char *key) {
    rec k = {0};
    k.key = (char *)key;
    return bsearch(&k, v, n, sizeof(rec), cmp_key);
}

typedef struct fault {
    char kind[32], target[64];
    int64_t start, end;
    long inflight;
    int leader;
    double downtime_s;
} fault;

typedef struct lreq { /* one line of the requests file */
    char client[96], status[16], reason[48];
    long seq;
    int64_t offset, t_submit, t_result;
    int attempts, appended, dup;
} lreq;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static char *slurp_lines(const char *path, size_t *n) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len = getdelim(&buf, &cap, '\0', f);
    fclose(f);
    if (len < 0) {
        free(buf);
        buf = strdup("");
        len = 0;
    }
    *n = 0;
    for (ssize_t i = 0; i < len; i++)
        *n += buf[i] == '\n';
    return buf;
}

static int cmd_check(int argc, char **argv) {
    static const struct option lo[] = {
        {"requests", 1, 0, 'q'},    {"faults", 1, 0, 'f'},
        {"json", 1, 0, 'j'},        {"meta", 1, 0, 'm'},
        {"ext-dids", 1, 0, 'd'},    {"ext-active", 1, 0, 'a'},
        {"drop-record", 0, 0, 'x'}, {"app", 1, 0, 'A'},
        {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
    const char *reqf = NULL, *faultf = NULL, *jsonf = NULL, *metaf = NULL;
    int drop = 0;
    long ext_dids = -1, ext_active = -1;
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'q':
            reqf = optarg;
            break;
        case 'f':
            faultf = optarg;
            break;
        case 'j':
            jsonf = optarg;
            break;
        case 'm':
            metaf = optarg;
            break;
        case 'd':
            ext_dids = atol(optarg);
            break;
        case 'a':
            ext_active = atol(optarg);
            break;
        case 'x':
            drop = 1;
            break;
        case 'A':
            if (parse_app(optarg) != 0)
                return 2;
            break;
        case 'h':
            printf("Usage: chaos_client check --requests FILE --faults FILE --json OUT "
                   "[--meta JSON]\n  [--ext-dids N] [--ext-active N] [--drop-record] "
                   "[--app infodid|node|python] STATE_DIR...\n");
            return 0;
        default:
            return 2;
        }
    }
    int ndirs = argc - optind;
    if (reqf == NULL || faultf == NULL || jsonf == NULL || ndirs < 1) {
        fprintf(stderr, "chaos_client check: --requests, --faults, --json and at least "
                        "one state directory are required\n");
        return 2;
    }
    /* 1. every replica: open, digest, snapshot */
    snap *sn = calloc((size_t)ndirs, sizeof(*sn));
    void **raw = calloc((size_t)ndirs, sizeof(*raw));
    size_t *lens = calloc((size_t)ndirs, sizeof(*lens));
    int64_t *lpis = calloc((size_t)ndirs, sizeof(*lpis));
    char(*dig)[65] = calloc((size_t)ndirs, 65);
    json_t *replicas = json_array();
    int consistent = 1;
    for (int i = 0; i < ndirs; i++) {
        const char *dir = argv[optind + i];
        br2k_app *app = NULL;
        int64_t lpi = -1;
        size_t len = 0;
        bk_err e;
        bk_err_clear(&e);
        if (g_app != APP_INFODID) {
            (void)app;
            (void)lpi;
            if (open_app_state(dir, &sn[i], &raw[i], &len, &lpis[i], dig[i]) != 0)
                return 2;
        } else if (bk_infodid_ops.open(dir, &app, &lpi, &e) != BK_OK ||
                   bk_infodid_ops.digest(app, dig[i], &e) != BK_OK ||
                   bk_infodid_ops.snapshot(app, &raw[i], &len, &lpis[i], &e) != BK_OK ||
                   bk_infodid_each(app, on_did, on_id, &sn[i], &e) != BK_OK) {
            fprintf(stderr, "chaos_client check: %s: %s\n", dir, e.msg);
            return 2;
        } else {
            bk_infodid_ops.close(app);
        }
        lens[i] = len;
        if (drop && i == ndirs - 1 && sn[i].ndid > 0) {
            /* self-check (--drop-record): this replica loses its first DID */
            fprintf(stderr, "chaos_client check: dropping %s from %s (--drop-record)\n",
                    sn[i].dids[0].key, dir);
            memmove(&sn[i].dids[0], &sn[i].dids[1], (sn[i].ndid - 1) * sizeof(rec));
            sn[i].ndid--;
            lens[i]--; /* the snapshot no longer matches either */
        }
        /* same digest, same LPI, same records, and the whole snapshot (every
         * DID and request-id entry) byte for byte */
        int same = i == 0 || (strcmp(dig[i], dig[0]) == 0 && lpis[i] == lpis[0] &&
                              sn[i].ndid == sn[0].ndid && sn[i].nid == sn[0].nid &&
                              lens[i] == lens[0] && memcmp(raw[i], raw[0], lens[0]) == 0);
        consistent &= same;
        json_array_append_new(replicas,
                              json_pack("{s:s, s:I, s:s, s:I, s:I, s:b}", "dir", dir,
                                        "lpi", (json_int_t)lpis[i], "digest", dig[i],
                                        "dids", (json_int_t)sn[i].ndid, "request_ids",
                                        (json_int_t)sn[i].nid, "same_as_first", same));
    }
    /* Every replica's records are checked against every acknowledged
     * request, so that a record missing from one replica is found even when
     * it would also be missing from the comparison. */
    /* 2. the requests */
    size_t nl = 0;
    char *text = slurp_lines(reqf, &nl);
    if (text == NULL) {
        fprintf(stderr, "chaos_client check: cannot read '%s'\n", reqf);
        return 2;
    }
    lreq *lr = calloc(nl ? nl : 1, sizeof(*lr));
    int64_t *times = calloc(nl ? nl : 1, sizeof(*times));
    size_t nreq = 0, ntimes = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        lreq *q = &lr[nreq];
        if (sscanf(line,
                   "%95[^\t]\t%ld\t%15[^\t]\t%" SCNd64 "\t%" SCNd64 "\t%" SCNd64
                   "\t%d\t%d\t%d\t%47s",
                   q->client, &q->seq, q->status, &q->offset, &q->t_submit, &q->t_result,
                   &q->attempts, &q->appended, &q->dup, q->reason) == 10) {
            if (q->t_result > 0)
                times[ntimes++] = q->t_result;
            nreq++;
        }
    }
    long sent = 0, ok = 0, rejected = 0, failed = 0, lost = 0, twice = 0, reqnull = 0,
         retried = 0, unacked_applied = 0;
    json_t *lost_list = json_array(), *rej_reasons = json_object();
    for (size_t i = 0; i < nreq; i++) {
        lreq *q = &lr[i];
        cclient cl;
        bk_err e;
        sent += q->attempts > 0;
        retried += q->attempts > 1;
        twice += q->dup;
        if (bk_lg_client_init(&cl, q->client, -1, &e) != BK_OK) {
            fprintf(stderr, "chaos_client check: key of '%s': %s\n", q->client, e.msg);
            return 2;
        }
        char did[160], rid[160], n[32];
        snprintf(did, sizeof(did), "%s:%ld", cl.did, q->seq);
        snprintf(rid, sizeof(rid), "%s:%ld", q->client, q->seq);
        snprintf(n, sizeof(n), "%ld", q->seq);
        int is_ok = strcmp(q->status, "ok") == 0;
        ok += is_ok;
        if (strcmp(q->status, "rejected") == 0) {
            rejected++;
            json_object_set_new(
                rej_reasons, q->reason,
                json_integer(json_integer_value(json_object_get(rej_reasons, q->reason)) +
                             1));
        }
        failed += !is_ok && strcmp(q->status, "rejected") != 0;
        if (g_app == APP_PYTHON)
            snprintf(did, sizeof(did), "%s/%ld", q->client, q->seq); /* its key */
        else if (g_app == APP_NODE)
            snprintf(did, sizeof(did), "%s", q->client); /* its account */
        for (int k = 0; k < ndirs; k++) {
            rec *x = find(sn[k].ids, sn[k].nid, rid);
            rec *d = find(sn[k].dids, sn[k].ndid, did);
            if (g_app == APP_NODE && d != NULL && x != NULL && x->ok)
                d->expect += node_amount(q->seq); /* applied: counts in its balance */
            if (k == 0 && q->appended && x == NULL)
                reqnull++; /* in the log, never processed */
            if (k == 0 && !is_ok && x != NULL && x->ok)
                unacked_applied++;
            if (x != NULL)
                x->seen++;
            if (d != NULL && (g_app != APP_NODE || (x != NULL && x->ok)))
                d->seen++;
            int dup2 = 0;
            const char *why = NULL;
            if (g_app == APP_PYTHON && x != NULL && x->ok && d != NULL)
                why = kv_content(d, q->client, q->seq, &dup2); /* applied, acked or not */
            if (dup2) {
                twice++;
                if (json_array_size(lost_list) < 20)
                    json_array_append_new(
                        lost_list, json_pack("{s:s, s:s, s:s}", "request", rid, "replica",
                                             argv[optind + k], "why", why));
            }
            if (!is_ok)
                continue;
            if (x == NULL)
                why = "request id missing";
            else if (!x->ok || x->offset != q->offset)
                why = "request id has another result";
            else if (g_app == APP_NODE)
                why = d == NULL ? "account missing" : NULL; /* balances: below */
            else if (g_app == APP_PYTHON)
                why = dup2 ? NULL : d == NULL ? "key missing" : why;
            else if (d == NULL)
                why = "DID missing";
            else if (d->created_off != q->offset)
                why = "DID created at another offset";
            else if (memcmp(d->ctrl, cl.key.addr, 20) != 0 || d->revoked ||
                     json_object_size(d->attrs) != 2 ||
                     !json_equal(json_object_get(d->attrs, "n"), json_string(n)) ||
                     json_string_value(json_object_get(d->attrs, "name")) == NULL ||
                     strcmp(json_string_value(json_object_get(d->attrs, "name")),
                            cl.id) != 0)
                why = "DID has other content";
            if (why != NULL) {
                if (json_array_size(lost_list) < 20)
                    json_array_append_new(
                        lost_list, json_pack("{s:s, s:s, s:s}", "request", rid, "replica",
                                             argv[optind + k], "why", why));
                lost++;
            }
        }
        bk_eth_key_clear(&cl.key);
    }
    /* --app node|python: the state as a whole. node: every balance is
     * exactly the sum of the amounts of its client's applied requests (more:
     * something applied twice; less: something lost), the supply their
     * total; python: no key without its applied request (a put applied
     * again under another id would show); both: the applied counter equals
     * the request ids with an ok result */
    for (int k = 0; g_app != APP_INFODID && k < ndirs; k++) {
        int64_t oks = 0, total = 0;
        for (size_t i = 0; i < sn[k].nid; i++)
            oks += sn[k].ids[i].ok;
        for (size_t i = 0; i < sn[k].ndid; i++) {
            rec *d = &sn[k].dids[i];
            const char *why = NULL;
            total += d->num;
            if (g_app == APP_NODE && d->num != d->expect) {
                why = d->num > d->expect ? "balance above its applied mints"
                                         : "balance below its applied mints";
                if (d->num > d->expect)
                    twice++;
                else
                    lost++;
            } else if (g_app == APP_PYTHON && d->seen == 0) {
                why = "key with no applied request";
                twice++;
            }
            if (why != NULL && json_array_size(lost_list) < 20)
                json_array_append_new(lost_list,
                                      json_pack("{s:s, s:s, s:s}", "request", d->key,
                                                "replica", argv[optind + k], "why", why));
        }
        if (sn[k].applied != oks || (g_app == APP_NODE && sn[k].supply != total)) {
            if (json_array_size(lost_list) < 20)
                json_array_append_new(
                    lost_list, json_pack("{s:s, s:s, s:s}", "request", "-", "replica",
                                         argv[optind + k], "why",
                                         "applied counter or supply differs from the "
                                         "applied requests"));
            if (sn[k].applied > oks || sn[k].supply > total)
                twice++;
            else
                lost++;
        }
    }
    /* 3. the external index in Redis (leader only, idempotent per offset):
     * one entry per registered DID; an effect applied twice shows here */
    long active = 0;
    for (size_t i = 0; i < sn[0].ndid; i++)
        active += !sn[0].dids[i].revoked;
    int ext_ok = 1;
    if (ext_active >= 0 && ext_active != active) {
        ext_ok = 0;
        if (ext_active > active)
            twice += ext_active - active;
    }
    if (ext_dids >= 0 && ext_dids != (long)sn[0].ndid)
        ext_ok = 0;
    /* 4. faults and downtime */
    size_t nf = 0;
    char *ftext = slurp_lines(faultf, &nf);
    fault *fl = calloc(nf ? nf : 1, sizeof(*fl));
    size_t nfault = 0;
    for (char *save = NULL, *line = ftext ? strtok_r(ftext, "\n", &save) : NULL;
         line != NULL; line = strtok_r(NULL, "\n", &save)) {
        fault *f = &fl[nfault];
        if (sscanf(line, "%31s %" SCNd64 " %" SCNd64 " %63s %ld %d", f->kind, &f->start,
                   &f->end, f->target, &f->inflight, &f->leader) == 6)
            nfault++;
    }
    qsort(times, ntimes, sizeof(int64_t), cmp_i64);
    /* the gaps between consecutive results; a fault's downtime is the
     * longest gap that overlaps its window; the total counts each gap once */
    double down_total = 0, down_max = 0, down_sum = 0;
    long pauses = 0, kills = 0, reqpause = 0, other = 0, leader_hits = 0,
         kill_leaders = 0, app_kills = 0, app_kill_leaders = 0;
    char *counted = calloc(ntimes ? ntimes : 1, 1);
    for (size_t i = 0; i < nfault; i++) {
        fault *f = &fl[i];
        if (strcmp(f->kind, "pause") == 0) {
            pauses++;
            reqpause += f->inflight;
            leader_hits += f->leader; /* the registry's leader held the lease */
        } else if (strcmp(f->kind, "kill") == 0) {
            kills++;
            kill_leaders += f->leader;
        } else if (strcmp(f->kind, "app-kill") == 0) {
            app_kills++;
            app_kill_leaders += f->leader;
        } else {
            other++;
        }
        double best = 0;
        size_t bi = 0;
        for (size_t k = 0; k + 1 < ntimes; k++) {
            if (times[k + 1] < f->start || times[k] > f->end)
                continue;
            double g = (double)(times[k + 1] - times[k]) / 1e3;
            if (g > best) {
                best = g;
                bi = k;
            }
        }
        f->downtime_s = best;
        if (best > 0 && !counted[bi]) {
            counted[bi] = 1;
            down_total += best;
        }
        down_sum += best;
        if (best > down_max)
            down_max = best;
    }
    /* 5. the report */
    json_t *meta = metaf ? json_load_file(metaf, 0, NULL) : NULL;
    if (meta == NULL)
        meta = json_object();
    json_t *faults = json_array();
    for (size_t i = 0; i < nfault; i++)
        json_array_append_new(
            faults,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:f}", "kind", fl[i].kind, "target",
                      fl[i].target, "start_ms", (json_int_t)fl[i].start, "end_ms",
                      (json_int_t)fl[i].end, "inflight", (json_int_t)fl[i].inflight,
                      "leader", fl[i].leader, "downtime_s", fl[i].downtime_s));
    int pass = lost == 0 && twice == 0 && consistent && ext_ok && failed == 0 &&
               reqnull == 0 && rejected == 0 && nreq > 0;
    double total_s = json_real_value(json_object_get(meta, "total_s"));
    json_t *rep = json_pack(
        "{s:f, s:{s:f, s:f, s:f, s:I}, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:O, s:O, s:O}",
        "total_s", total_s, "downtime_s", "total", down_total, "max_per_failure",
        down_max, "mean_per_failure", nfault ? down_sum / (double)nfault : 0.0,
        "failures", (json_int_t)nfault, "pauses", (json_int_t)pauses, "pauses_of_leader",
        (json_int_t)leader_hits, "kills", (json_int_t)kills, "other_faults",
        (json_int_t)other, "requests_sent", (json_int_t)sent, "processed_ok",
        (json_int_t)ok, "rejected_reasons", rej_reasons, "rejected", (json_int_t)rejected,
        "failed", (json_int_t)failed, "retried", (json_int_t)retried, "req_null",
        (json_int_t)reqnull, "req_pause", (json_int_t)reqpause, "acknowledged_lost",
        (json_int_t)lost, "applied_twice", (json_int_t)twice, "replicas_consistent",
        consistent, "external_index_consistent", ext_ok, "pass", pass, "replicas",
        replicas, "faults", faults, "lost_examples", lost_list);
    json_object_set_new(rep, "applied_not_acknowledged", json_integer(unacked_applied));
    json_object_set_new(rep, "kills_of_leader", json_integer(kill_leaders));
    json_object_set_new(rep, "app_kills", json_integer(app_kills));
    json_object_set_new(rep, "app_kills_of_leader", json_integer(app_kill_leaders));
    json_object_set_new(rep, "app",
                        json_string(g_app == APP_NODE     ? "node"
                                    : g_app == APP_PYTHON ? "python"
                                                          : "infodid"));
    json_object_set(rep, "run", meta);
    if (json_dump_file(rep, jsonf, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "chaos_client check: cannot write '%s'\n", jsonf);
        return 2;
    }
    printf("BR2K chaos report (Table 4 of the paper, same figures)\n");
    printf("  %-50s %s\n", "scenario",
           json_string_value(json_object_get(meta, "scenario"))
               ? json_string_value(json_object_get(meta, "scenario"))
               : "-");
    printf("  %-50s %s\n", "application",
           g_app == APP_NODE     ? "node (node-ledger)"
           : g_app == APP_PYTHON ? "python (python-kv)"
                                 : "infodid");
    printf("  %-50s %.1f s\n", "total time", total_s);
    printf("  %-50s %.2f s (max %.2f s, mean %.2f s per failure)\n", "downtime",
           down_total, down_max, nfault ? down_sum / (double)nfault : 0.0);
    printf("  %-50s %ld (%ld still held the lease)\n",
           "leader pauses (SIGSTOP; leader read on chain)", pauses, leader_hits);
    printf("  %-50s %ld (%ld of the leader)\n", "kills mid-request (SIGKILL)", kills,
           kill_leaders);
    if (g_app != APP_INFODID)
        printf("  %-50s %ld (%ld of the leader)\n",
               "application process SIGKILLed mid-batch", app_kills, app_kill_leaders);
    printf("  %-50s %ld\n", "other faults", other);
    printf("  %-50s %ld (%ld retried)\n", "requests sent", sent, retried);
    printf("  %-50s %ld\n", "processed successfully (acknowledged ok)", ok);
    printf("  %-50s %ld\n", "rejected", rejected);
    printf("  %-50s %ld\n", "failed (no result after every retry)", failed);
    printf("  %-50s %ld\n", "REQnull (in the log, never processed)", reqnull);
    printf("  %-50s %ld\n", "REQpause (in flight at a pause)", reqpause);
    printf("  %-50s %ld\n", "acknowledged but lost (must be 0)", lost);
    printf("  %-50s %ld\n", "applied twice (must be 0)", twice);
    printf("  %-50s %s (%d replicas, %zu %s, LPI %" PRId64 ", digest %.12s)\n",
           "replicas consistent (SR)", consistent ? "yes" : "NO", ndirs, sn[0].ndid,
           g_app == APP_NODE     ? "accounts"
           : g_app == APP_PYTHON ? "keys"
                                 : "DIDs",
           lpis[0], dig[0]);
    printf("  %-50s %s\n", "external index (Redis) consistent", ext_ok ? "yes" : "NO");
    printf("  %-50s %s\n", "result", pass ? "PASS" : "FAIL");
    if (json_array_size(lost_list) > 0) {
        size_t i;
        json_t *v;
        json_array_foreach(lost_list, i, v) {
            fprintf(stderr, "lost: %s on %s: %s\n",
                    json_string_value(json_object_get(v, "request")),
                    json_string_value(json_object_get(v, "replica")),
                    json_string_value(json_object_get(v, "why")));
        }
    }
    json_decref(rep);
    json_decref(meta);
    return pass ? 0 : 1;
}

int main(int argc, char **argv) {
    bk_log_init("chaos_client", BK_LOG_WARN, 0);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("Usage: chaos_client load|check [OPTIONS] (see --help of each)\n");
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "load") == 0)
        return cmd_load(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    fprintf(stderr, "chaos_client: unknown command '%s' (load or check)\n", argv[1]);
    return 2;
}
