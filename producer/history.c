/* history.c - `br2k history list|export|verify`: the history of service
 * actions (common/backup/archive.h), read from the chain (each version's
 * state-backup-log and archive digest), the off-chain storage (the sealed
 * archives) and, for verify, replayed through the application by
 * br2k-replay (worker/replay_main.c; this command does not link the
 * worker's code). See history.h. */
#include "history.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup/archive.h"
#include "backup/backuplog.h"
#include "backup/storage.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/hex.h"
#include "chain/ethkey.h"
#include "chain/jsonrpc.h"
#include "chain/registry.h"

#define RPC_TIMEOUT_MS 10000

static bk_cfg_opt hist_opts[] = {
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated (default: the global --eth-rpc)", NULL, 0,
     0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL,
     "address of the registry contract (default: the global --registry)", NULL, 0, 0},
    {"service-key", BK_CFG_STR, "", 0, 0, NULL,
     "file holding the service's private key (hex); else env BR2K_SERVICE_KEY holds the "
     "key itself, or BR2K_SERVICE_KEY_FILE names its file",
     NULL, 0, 0},
    {"storage", BK_CFG_STR, "", 0, 0, NULL,
     "read the objects from this storage URL instead of the one each log names", NULL, 0,
     0},
    {"from", BK_CFG_INT, "0", 0, 1000000000, NULL,
     "first version (default: 2, the first backup; verify starts from the empty state, "
     "or from the verified backup of the version before)",
     NULL, 0, 0},
    {"to", BK_CFG_INT, "0", 0, 1000000000, NULL, "last version (default: the latest)",
     NULL, 0, 0},
    {"app", BK_CFG_STR, "", 0, 0, NULL,
     "verify: the application to replay with (br2k-worker --app SPEC; default: the one "
     "the backup logs name)",
     NULL, 0, 0},
    {"replay", BK_CFG_STR, "", 0, 0, NULL,
     "verify: the br2k-replay program (default: next to br2k, else on PATH)", NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print JSON", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg hist_cfg = {
    "br2k history",
    "The history of service actions: every record a backup let the log delete,\n"
    "archived with that backup (sealed, addressed by its SHA-256, on chain beside the\n"
    "state digest, each archive naming the previous one's digest).\n"
    "  list     versions, offset ranges, record counts, gaps and sizes\n"
    "  export   the records of --from .. --to as JSON lines (decrypted)\n"
    "  verify   replay every archived record through the application, from the empty\n"
    "           state (or from the verified backup before --from), and check every\n"
    "           version's state digest and every link of the chain; exit 0 only if\n"
    "           the whole history checks out, else 1 with one line naming the version\n"
    "           and what broke",
    "list|export|verify [OPTIONS]",
    hist_opts,
    NULL,
    0,
    0};

typedef struct hist {
    bk_rpc *rpc;
    uint8_t reg[20];
    bk_eth_key k;
    const char *storage_url; /* "" unless --storage */
    bk_storage *st;
    char st_url[1024];
    uint64_t sv, pruned;
} hist;

static const char *str(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static json_int_t num(const json_t *o, const char *k) {
    return json_integer_value(json_object_get(o, k));
}

/* ---- reading ---- */

/* The decrypted log of version v, checked against the chain's record;
 * archive[65] the chain's archive digest ("" when zero). */
static int load_log(hist *h, uint64_t v, json_t **log, char archive[65], bk_err *e) {
    bk_reg_backup b;
    uint8_t *raw = NULL, digest[32], ad[32];
    size_t rawlen = 0;
    char dg[65];
    *log = NULL;
    archive[0] = '\0';
    if (bk_reg_get_backup(h->rpc, h->reg, v, &b, e) != BK_OK ||
        bk_reg_get_backup_log(h->rpc, h->reg, v, &raw, &rawlen, digest, e) != BK_OK ||
        bk_reg_get_archive(h->rpc, h->reg, v, ad, &h->pruned, e) != BK_OK)
        return bk_err_prefix(e, "version %" PRIu64, v);
    int rc = bk_blog_decrypt_raw(raw, rawlen, &h->k, log, e);
    free(raw);
    if (rc != BK_OK)
        return bk_err_prefix(e, "version %" PRIu64, v);
    bk_hex_encode(b.digest, 32, 0, dg);
    const char *sha =
        json_string_value(json_object_get(json_object_get(*log, "state_data"), "sha256"));
    if (memcmp(digest, b.digest, 32) != 0 || sha == NULL || strcmp(sha, dg) != 0 ||
        json_integer_value(json_object_get(*log, "version")) != (json_int_t)v) {
        json_decref(*log);
        *log = NULL;
        return bk_err_set(e, BK_E_INVAL,
                          "version %" PRIu64 ": the backup log is not the chain's record",
                          v);
    }
    static const uint8_t zero[32];
    if (memcmp(ad, zero, 32) != 0)
        bk_hex_encode(ad, 32, 0, archive);
    return BK_OK;
}

static int storage_for(hist *h, const json_t *log, bk_err *e) {
    const char *url =
        h->storage_url[0]
            ? h->storage_url
            : json_string_value(json_object_get(json_object_get(log, "storage"), "url"));
    if (url == NULL)
        return bk_err_set(e, BK_E_INVAL, "the backup log names no storage");
    if (h->st != NULL && strcmp(url, h->st_url) == 0)
        return BK_OK;
    bk_storage_close(h->st);
    h->st = NULL;
    snprintf(h->st_url, sizeof(h->st_url), "%s", url);
    return bk_storage_open(url, &h->st, e);
}

/* A sealed object of a log (meta), opened: *plain. */
static int get_object(hist *h, const json_t *log, const json_t *meta, void **plain,
                      size_t *len, bk_err *e) {
    if (storage_for(h, log, e) != BK_OK)
        return BK_ERR;
    return bk_blog_get_sealed(h->st, meta, &h->k, plain, len, e);
}

/* ---- the replaying program ---- */

typedef struct replay {
    pid_t pid;
    FILE *in, *out; /* its stdin, its stdout */
    int no_ext;     /* 1: the application has no external effect; 2: not replayed
                       (an application over the protocol) */
} replay;

static void replay_path(const char *opt, char *out, size_t size) {
    if (opt[0] != '\0') {
        snprintf(out, size, "%s", opt);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(out, size, "%s/br2k-replay", dirname(self));
        if (access(out, X_OK) == 0)
            return;
    }
    snprintf(out, size, "br2k-replay");
}

static int replay_start(replay *r, const char *prog, const char *app, const char *svc,
                        bk_err *e) {
    int to[2], from[2];
    memset(r, 0, sizeof(*r));
    if (pipe(to) != 0)
        return bk_err_set(e, BK_E_IO, "pipe: %s", strerror(errno));
    if (pipe(from) != 0) {
        close(to[0]);
        close(to[1]);
        return bk_err_set(e, BK_E_IO, "pipe: %s", strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    r->pid = fork();
    if (r->pid < 0)
        return bk_err_set(e, BK_E_IO, "fork: %s", strerror(errno));
    if (r->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]);
        close(to[1]);
        close(from[0]);
        close(from[1]);
        execlp(prog, prog, "--app", app, "--service", svc, (char *)NULL);
        fprintf(stderr, "br2k history: cannot run '%s': %s\n", prog, strerror(errno));
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    r->in = fdopen(to[1], "w");
    r->out = fdopen(from[0], "r");
    if (r->in == NULL || r->out == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    return BK_OK;
}

static void replay_stop(replay *r) {
    if (r->in)
        fclose(r->in);
    if (r->out)
        fclose(r->out);
    if (r->pid > 0) {
        int st;
        waitpid(r->pid, &st, 0);
    }
    memset(r, 0, sizeof(*r));
}

/* Its answer line; an "err ..." line or none is the error. */
static int replay_answer(replay *r, char *line, size_t size, bk_err *e) {
    if (fflush(r->in) != 0 && errno != EPIPE)
        return bk_err_set(e, BK_E_IO, "br2k-replay: %s", strerror(errno));
    if (fgets(line, (int)size, r->out) == NULL)
        return bk_err_set(e, BK_E_IO, "br2k-replay ended (see its message above)");
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "err ", 4) == 0)
        return bk_err_set(e, BK_E_STATE, "the application: %s", line + 4);
    return BK_OK;
}

static int replay_digest(replay *r, int64_t *lpi, char hex[65], bk_err *e) {
    char line[256];
    fputs("D\n", r->in);
    if (replay_answer(r, line, sizeof(line), e) != BK_OK)
        return BK_ERR;
    long long l = 0;
    if (sscanf(line, "%lld %64s", &l, hex) != 2)
        return bk_err_set(e, BK_E_PROTO, "br2k-replay answered '%.60s'", line);
    *lpi = l;
    return BK_OK;
}

/* The external state the replayed records made (*keys), or NULL when the
 * application has none (r->no_ext set). */
static int replay_external(replay *r, json_t **keys, bk_err *e) {
    char *line = NULL;
    size_t cap = 0;
    *keys = NULL;
    fputs("E\n", r->in);
    if (fflush(r->in) != 0 || getline(&line, &cap, r->out) < 0) {
        free(line);
        return bk_err_set(e, BK_E_IO, "br2k-replay ended (see its message above)");
    }
    int rc = BK_OK;
    if (strncmp(line, "none", 4) == 0) {
        r->no_ext = 1;
    } else if (strncmp(line, "unsupported", 11) == 0) {
        r->no_ext = 2;
    } else if (strncmp(line, "err ", 4) == 0) {
        line[strcspn(line, "\n")] = '\0';
        rc = bk_err_set(e, BK_E_STATE, "the application: %s", line + 4);
    } else {
        *keys = json_loads(line, 0, NULL);
        if (*keys == NULL)
            rc = bk_err_set(e, BK_E_PROTO, "br2k-replay: external state is not JSON");
    }
    free(line);
    return rc;
}

/* The first key (and field of a hash) where two external states differ,
 * for the message. */
static void ext_diff(const json_t *want, const json_t *got, char *out, size_t size) {
    const char *k, *f;
    json_t *v, *x;
    json_object_foreach((json_t *)want, k, v) {
        json_t *g = json_object_get(got, k);
        if (g != NULL && json_equal(v, g))
            continue;
        const json_t *wv = json_object_get(v, "value"), *gv = json_object_get(g, "value");
        if (json_is_object(wv) && json_is_object(gv)) {
            json_object_foreach((json_t *)wv, f, x) {
                json_t *y = json_object_get(gv, f);
                if (y == NULL || !json_equal(x, y)) {
                    snprintf(
                        out, size,
                        "key '%s' field '%.60s': the backup holds '%.40s', the replay "
                        "'%.40s'",
                        k, f, json_string_value(x) ?: "?",
                        y ? json_string_value(y) ?: "?" : "nothing");
                    return;
                }
            }
            json_object_foreach((json_t *)gv, f, x) {
                if (json_object_get(wv, f) == NULL) {
                    snprintf(out, size,
                             "key '%s' field '%.60s': made by the replay, not in the "
                             "backup",
                             k, f);
                    return;
                }
            }
        }
        snprintf(out, size, "key '%s': the backup holds '%.40s', the replay '%.40s'", k,
                 json_string_value(wv) ?: "(a hash)",
                 g ? json_string_value(gv) ?: "(a hash)" : "nothing");
        return;
    }
    json_object_foreach((json_t *)got, k, v) {
        if (json_object_get(want, k) == NULL) {
            snprintf(out, size, "key '%s': made by the replay, not in the backup", k);
            return;
        }
    }
    snprintf(out, size, "?");
}

/* <prefix>applied is a watermark: every effect of the records up to it is
 * in. The replay's is the last record that had an effect; a backup's is
 * that (read from Redis) or any offset up to its cut (the leader's view of
 * its state says its LPI, the cut; a republish in Redis does the same).
 * When the backup's is between the replay's and the cut, both describe
 * the same view: drop the key from both before they are compared. */
static void applied_aside(json_t *want, json_t *got, const char *prefix, int64_t cut) {
    char k[512];
    snprintf(k, sizeof(k), "%sapplied", prefix ? prefix : "");
    const char *ws =
        json_string_value(json_object_get(json_object_get(want, k), "value"));
    const char *gs = json_string_value(json_object_get(json_object_get(got, k), "value"));
    if (ws == NULL || gs == NULL)
        return;
    char *e1 = NULL, *e2 = NULL;
    long long w = strtoll(ws, &e1, 10), g = strtoll(gs, &e2, 10);
    if (*e1 != '\0' || *e2 != '\0' || e1 == ws || e2 == gs || w < g || w > cut)
        return;
    json_object_del(want, k);
    json_object_del(got, k);
}

/* The backup's keys (want) and the replay's (got) alike, <prefix>applied
 * as a watermark (applied_aside); the key stays in both when it differs
 * otherwise, so that the message names it. */
static int ext_equal(json_t *want, json_t *got, const char *prefix, int64_t cut) {
    applied_aside(want, got, prefix, cut);
    return json_equal(want, got);
}

/* The external state (InfoDID's index) of a backup against the replay's,
 * where the application has one: row "external" says what was done. */
static int check_external(hist *h, replay *r, uint64_t v, const json_t *log, json_t *row,
                          bk_err *e) {
    const json_t *xm = json_object_get(log, "external_state");
    if (xm == NULL || r->no_ext) {
        json_object_set_new(
            row, "external",
            json_string(xm == NULL       ? "not in the backup"
                        : r->no_ext == 2 ? "not compared (application over the protocol)"
                                         : "none"));
        return BK_OK;
    }
    if (num(xm, "applied_offset") > num(log, "cut_offset")) {
        /* effects of a fenced leader beyond the cut: not comparable */
        json_object_set_new(row, "external",
                            json_string("not compared (applied beyond the cut)"));
        return BK_OK;
    }
    void *plain = NULL;
    size_t len = 0;
    json_t *content = NULL, *got = NULL;
    if (get_object(h, log, xm, &plain, &len, e) != BK_OK) {
        if (e->code == BK_E_NOTFOUND) { /* pruned with its state (--keep) */
            bk_err_clear(e);
            json_object_set_new(row, "external",
                                json_string("not compared (pruned from storage)"));
            return BK_OK;
        }
        return bk_err_prefix(e, "version %" PRIu64 ": external state", v);
    }
    content = json_loadb(plain, len, 0, NULL);
    free(plain);
    json_t *want = json_object_get(content, "keys");
    size_t nkeys = json_object_size(want); /* before ext_equal sets applied aside */
    int rc = BK_OK;
    if (!json_is_object(want)) {
        rc = bk_err_set(e, BK_E_STATE,
                        "version %" PRIu64 ": the external state has no keys", v);
    } else if (replay_external(r, &got, e) != BK_OK) {
        rc = bk_err_prefix(e, "version %" PRIu64, v);
    } else if (got == NULL) {
        json_object_set_new(
            row, "external",
            json_string(r->no_ext == 2 ? "not compared (application over the protocol)"
                                       : "none"));
    } else if (!ext_equal(want, got,
                          json_string_value(json_object_get(content, "prefix")),
                          num(log, "cut_offset"))) {
        char d[320];
        ext_diff(want, got, d, sizeof(d));
        rc = bk_err_set(e, BK_E_STATE,
                        "version %" PRIu64 ": the replayed external state differs from "
                        "the backup's: %s",
                        v, d);
    } else {
        json_object_set_new(row, "external", json_sprintf("%zu keys equal", nkeys));
    }
    json_decref(got);
    json_decref(content);
    return rc;
}

/* ---- verify ---- */

typedef struct vstate {
    char prev_archive[65]; /* the previous version's archive digest */
    json_t *prev_log;      /* owned; NULL at genesis */
    int64_t records;
} vstate;

/* One version: every check, every record replayed. */
static int verify_one(hist *h, replay *r, uint64_t v, vstate *s, json_t *row, bk_err *e) {
    json_t *log = NULL, *hdr = NULL;
    char chain_ar[65];
    void *plain = NULL;
    size_t len = 0, pos = 0;
    int rc = BK_ERR;
    if (load_log(h, v, &log, chain_ar, e) != BK_OK)
        return BK_ERR;
    const json_t *meta = json_object_get(log, "history_archive");
    const char *obj = str(meta, "object");
    int64_t cut = num(log, "cut_offset");
    int64_t from = s->prev_log ? num(s->prev_log, "cut_offset") + 1 : 0;
    if (meta == NULL || obj == NULL) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": its backup has no history archive (made before "
                   "archives, or by an older backupd)",
                   v);
        goto out;
    }
    json_object_set_new(row, "archive", json_string(obj));
    if (h->pruned >= v) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": its archive was pruned (pruneArchives through "
                   "version %" PRIu64 " on chain); verify --from %" PRIu64,
                   v, h->pruned, h->pruned + 1);
        goto out;
    }
    if (strcmp(chain_ar, str(meta, "sha256") ?: "") != 0) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": the archive digest on chain (%.16s) is not the "
                   "backup log's (%.16s)",
                   v, chain_ar[0] ? chain_ar : "none", str(meta, "sha256") ?: "none");
        goto out;
    }
    if (get_object(h, log, meta, &plain, &len, e) != BK_OK) {
        bk_err_prefix(e, "version %" PRIu64 ": archive", v);
        goto out;
    }
    if (bk_archive_header(plain, len, &hdr, &pos, e) != BK_OK) {
        bk_err_prefix(e, "version %" PRIu64 ": archive '%s'", v, obj);
        goto out;
    }
    /* the chain links */
    const char *prev = str(hdr, "previous_archive") ?: "";
    const char *start = str(hdr, "start_state_digest");
    const json_t *gaps = json_object_get(hdr, "gaps");
    if (num(hdr, "version") != (json_int_t)v) {
        bk_err_set(e, BK_E_STATE, "version %" PRIu64 ": the archive says version %lld", v,
                   (long long)num(hdr, "version"));
    } else if (strcmp(prev, s->prev_archive) != 0) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64
                   ": broken chain: the archive names previous archive "
                   "%.16s, but version %" PRIu64 "'s is %.16s",
                   v, prev, v - 1, s->prev_archive);
    } else if (start != NULL && s->prev_log != NULL &&
               strcmp(start, str(s->prev_log, "state_digest") ?: "") != 0) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": broken chain: the archive starts from state "
                   "%.16s, but version %" PRIu64 " ended at %.16s",
                   v, start, v - 1, str(s->prev_log, "state_digest") ?: "?");
    } else if (num(hdr, "from_offset") != from || num(hdr, "to_offset") != cut) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": the archive holds offsets %lld..%lld, the "
                   "backups say %" PRId64 "..%" PRId64,
                   v, (long long)num(hdr, "from_offset"),
                   (long long)num(hdr, "to_offset"), from, cut);
    } else if (strcmp(str(hdr, "end_state_digest") ?: "",
                      str(log, "state_digest") ?: "?") != 0) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": the archive ends at state %.16s, the backup "
                   "log says %.16s",
                   v, str(hdr, "end_state_digest") ?: "?",
                   str(log, "state_digest") ?: "?");
    } else if (json_array_size(gaps) > 0) {
        json_t *g = json_array_get(gaps, 0);
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64
                   ": records %lld..%lld were lost from the log before "
                   "they were archived (a gap in the history)",
                   v, (long long)json_integer_value(json_array_get(g, 0)),
                   (long long)json_integer_value(json_array_get(g, 1)));
    } else {
        rc = BK_OK;
    }
    if (rc != BK_OK)
        goto out;
    rc = BK_ERR;
    /* the records, dense, through the application */
    const char *line;
    size_t llen;
    int64_t next = from, n = 0;
    while (bk_archive_next(plain, len, &pos, &line, &llen)) {
        int64_t off = 0;
        void *val = NULL;
        size_t vlen = 0;
        if (bk_archive_decode(line, llen, &off, &val, &vlen, e) != BK_OK) {
            bk_err_prefix(e, "version %" PRIu64, v);
            goto out;
        }
        if (off != next) {
            free(val);
            bk_err_set(e, BK_E_STATE,
                       "version %" PRIu64 ": the archive holds record %" PRId64
                       " where %" PRId64 " belongs",
                       v, off, next);
            goto out;
        }
        fprintf(r->in, "A %" PRId64 " %zu\n", off, vlen);
        fwrite(val, 1, vlen, r->in);
        free(val);
        next++;
        n++;
    }
    if (next != cut + 1 || n != num(hdr, "record_count")) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": the archive ends at record %" PRId64 " (%" PRId64
                   " records), the cut is %" PRId64,
                   v, next - 1, n, cut);
        goto out;
    }
    int64_t lpi = -1;
    char dg[65];
    if (replay_digest(r, &lpi, dg, e) != BK_OK) {
        bk_err_prefix(e, "version %" PRIu64, v);
        goto out;
    }
    if (strcmp(dg, str(log, "state_digest") ?: "") != 0) {
        bk_err_set(e, BK_E_STATE,
                   "version %" PRIu64 ": replaying records %" PRId64 "..%" PRId64
                   " gives state %.16s, the backup recorded %.16s",
                   v, from, cut, dg, str(log, "state_digest") ?: "?");
        goto out;
    }
    if (check_external(h, r, v, log, row, e) != BK_OK)
        goto out;
    json_object_set_new(row, "from_offset", json_integer(from));
    json_object_set_new(row, "to_offset", json_integer(cut));
    json_object_set_new(row, "records", json_integer(n));
    json_object_set_new(row, "state_digest", json_string(dg));
    s->records += n;
    snprintf(s->prev_archive, sizeof(s->prev_archive), "%s", chain_ar);
    json_decref(s->prev_log);
    s->prev_log = json_incref(log);
    rc = BK_OK;
out:
    json_decref(hdr);
    free(plain);
    json_decref(log);
    return rc;
}

/* Start at version `first`: the empty state at genesis (2), else the
 * backup of first - 1, restored and checked. */
static int verify_start(hist *h, replay *r, uint64_t first, vstate *s, bk_err *e) {
    snprintf(s->prev_archive, sizeof(s->prev_archive), "%s", BK_ARCHIVE_GENESIS);
    if (first <= 2)
        return BK_OK;
    json_t *log = NULL;
    void *plain = NULL;
    size_t len = 0;
    char line[256], dg[65];
    int64_t lpi = -1;
    if (load_log(h, first - 1, &log, s->prev_archive, e) != BK_OK)
        return BK_ERR;
    if (s->prev_archive[0] == '\0')
        snprintf(s->prev_archive, sizeof(s->prev_archive), "%s", BK_ARCHIVE_GENESIS);
    int rc = get_object(h, log, json_object_get(log, "state_data"), &plain, &len, e);
    if (rc != BK_OK) {
        bk_err_prefix(e, "its state");
    } else {
        fprintf(r->in, "R %zu\n", len);
        fwrite(plain, 1, len, r->in);
        rc = replay_answer(r, line, sizeof(line), e);
        if (rc == BK_OK)
            rc = replay_digest(r, &lpi, dg, e);
        if (rc == BK_OK && strcmp(dg, str(log, "state_digest") ?: "") != 0)
            rc = bk_err_set(e, BK_E_STATE,
                            "version %" PRIu64 ": its backup restores to state %.16s, "
                            "the log says %.16s",
                            first - 1, dg, str(log, "state_digest") ?: "?");
    }
    const json_t *xm = json_object_get(log, "external_state");
    if (rc == BK_OK &&
        xm != NULL) { /* the replayed effects start from its external state */
        void *xp = NULL;
        size_t xl = 0;
        json_t *content = NULL;
        char *keys = NULL;
        rc = get_object(h, log, xm, &xp, &xl, e);
        if (rc != BK_OK)
            bk_err_prefix(e, "its external state");
        if (rc == BK_OK)
            content = json_loadb(xp, xl, 0, NULL);
        if (rc == BK_OK &&
            (keys = json_dumps(json_object_get(content, "keys"), JSON_COMPACT)) == NULL)
            rc = bk_err_set(e, BK_E_STATE, "its external state has no keys");
        if (rc == BK_OK) {
            fprintf(r->in, "X %zu\n%s", strlen(keys), keys);
            rc = replay_answer(r, line, sizeof(line), e);
        }
        free(keys);
        free(xp);
        json_decref(content);
    }
    if (rc != BK_OK)
        bk_err_prefix(e, "cannot start from the backup of version %" PRIu64, first - 1);
    free(plain);
    if (rc == BK_OK)
        s->prev_log = log;
    else
        json_decref(log);
    return rc;
}

static int do_verify(hist *h, bk_cfg *c, uint64_t first, uint64_t last, int json) {
    bk_err e;
    bk_err_clear(&e);
    replay r;
    memset(&r, 0, sizeof(r));
    vstate s;
    memset(&s, 0, sizeof(s));
    json_t *rows = json_array();
    char prog[PATH_MAX + 16], app[256];
    int tty = isatty(2) && !json;
    int64_t t0 = bk_mono_ms();
    uint64_t v = first;
    int rc = BK_OK;
    snprintf(app, sizeof(app), "%s", bk_cfg_str(c, "app"));
    char svc[128] = "default";
    {
        json_t *log = NULL;
        char ar[65];
        rc = load_log(h, first, &log, ar, &e);
        if (rc == BK_OK && app[0] == '\0') /* the application the backups name */
            snprintf(app, sizeof(app), "%s", str(log, "app") ?: "");
        if (rc == BK_OK)
            snprintf(svc, sizeof(svc), "%s", str(log, "service") ?: "default");
        json_decref(log);
    }
    replay_path(bk_cfg_str(c, "replay"), prog, sizeof(prog));
    if (rc == BK_OK)
        rc = replay_start(&r, prog, app, svc, &e);
    if (rc == BK_OK)
        rc = verify_start(h, &r, first, &s, &e);
    for (; rc == BK_OK && v <= last; v++) {
        json_t *row = json_pack("{sI}", "version", (json_int_t)v);
        rc = verify_one(h, &r, v, &s, row, &e);
        if (rc == BK_OK) {
            json_array_append(rows, row);
            double secs = (double)(bk_mono_ms() - t0) / 1000.0;
            if (tty)
                fprintf(stderr,
                        "\rverifying: version %" PRIu64 "/%" PRIu64 ", %" PRId64
                        " records, %.0f records/s   ",
                        v, last, s.records, secs > 0 ? (double)s.records / secs : 0.0);
        }
        json_decref(row);
    }
    if (tty)
        fprintf(stderr, "\n");
    replay_stop(&r);
    double secs = (double)(bk_mono_ms() - t0) / 1000.0;
    double rate = secs > 0 ? (double)s.records / secs : 0.0;
    if (json) {
        json_t *j = json_pack("{sb sI sI sI sf sf so}", "ok", rc == BK_OK, "from",
                              (json_int_t)first, "to", (json_int_t)last, "records",
                              (json_int_t)s.records, "seconds", secs, "records_per_s",
                              rate, "versions", rows);
        if (rc != BK_OK)
            json_object_set_new(j, "error", json_string(e.msg));
        json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(j);
    } else {
        json_decref(rows);
        if (rc == BK_OK)
            printf("history verified: versions %" PRIu64 "..%" PRIu64 ", %" PRId64
                   " records replayed from %s in %.2f s (%.0f records/s)\n",
                   first, last, s.records, first <= 2 ? "genesis" : "a verified backup",
                   secs, rate);
        else
            fprintf(stderr, "br2k history verify: %s\n", e.msg);
    }
    json_decref(s.prev_log);
    fflush(stdout);
    return rc == BK_OK ? 0 : 1;
}

/* ---- list, export ---- */

static int do_list(hist *h, uint64_t first, uint64_t last, int json) {
    json_t *rows = json_array();
    int all = 1;
    for (uint64_t v = first; v <= last; v++) {
        bk_err e;
        json_t *log = NULL;
        char ar[65];
        json_t *row = json_pack("{sI}", "version", (json_int_t)v);
        if (load_log(h, v, &log, ar, &e) != BK_OK) {
            json_object_set_new(row, "error", json_string(e.msg));
            all = 0;
        } else {
            const json_t *m = json_object_get(log, "history_archive");
            if (m == NULL) {
                json_object_set_new(row, "error", json_string("no history archive"));
                all = 0;
            } else {
                json_object_set(row, "archive", (json_t *)m);
                json_object_set_new(
                    row, "on_chain",
                    json_boolean(strcmp(ar, str(m, "sha256") ?: "") == 0));
                json_object_set_new(row, "pruned", json_boolean(h->pruned >= v));
                json_object_del(json_object_get(row, "archive"), "data_key");
            }
        }
        json_decref(log);
        json_array_append_new(rows, row);
    }
    if (json) {
        json_dumpf(rows, stdout, JSON_COMPACT | JSON_SORT_KEYS);
        putchar('\n');
    } else {
        printf("%-7s %10s %10s %8s %5s %10s %-8s %s\n", "VERSION", "FROM", "TO",
               "RECORDS", "GAPS", "SIZE", "CHAIN", "ARCHIVE");
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            const json_t *m = json_object_get(row, "archive");
            if (json_object_get(row, "error")) {
                printf("%-7lld ERROR: %s\n", (long long)num(row, "version"),
                       str(row, "error"));
                continue;
            }
            printf(
                "%-7lld %10lld %10lld %8lld %5zu %10lld %-8s %s\n",
                (long long)num(row, "version"), (long long)num(m, "from_offset"),
                (long long)num(m, "to_offset"), (long long)num(m, "record_count"),
                json_array_size(json_object_get(m, "gaps")), (long long)num(m, "size"),
                json_is_true(json_object_get(row, "pruned"))
                    ? "pruned"
                    : (json_is_true(json_object_get(row, "on_chain")) ? "ok" : "DIFFERS"),
                str(m, "object"));
        }
    }
    json_decref(rows);
    fflush(stdout);
    return all ? 0 : 1;
}

static int do_export(hist *h, uint64_t first, uint64_t last) {
    for (uint64_t v = first; v <= last; v++) {
        bk_err e;
        json_t *log = NULL, *hdr = NULL;
        char ar[65];
        void *plain = NULL;
        size_t len = 0, pos = 0;
        const json_t *m = NULL;
        int rc = load_log(h, v, &log, ar, &e);
        if (rc == BK_OK && (m = json_object_get(log, "history_archive")) == NULL)
            rc = bk_err_set(&e, BK_E_STATE, "version %" PRIu64 ": no history archive", v);
        if (rc == BK_OK && strcmp(ar, str(m, "sha256") ?: "") != 0)
            rc = bk_err_set(&e, BK_E_STATE,
                            "version %" PRIu64 ": the archive digest on chain is not the "
                            "backup log's",
                            v);
        if (rc == BK_OK && get_object(h, log, m, &plain, &len, &e) != BK_OK)
            rc = bk_err_prefix(&e, "version %" PRIu64 ": archive", v);
        if (rc == BK_OK && bk_archive_header(plain, len, &hdr, &pos, &e) != BK_OK)
            rc = bk_err_prefix(&e, "version %" PRIu64, v);
        if (rc == BK_OK)
            fwrite((const char *)plain + pos, 1, len - pos, stdout);
        json_decref(hdr);
        json_decref(log);
        free(plain);
        if (rc != BK_OK) {
            fflush(stdout);
            fprintf(stderr, "br2k history export: %s\n", e.msg);
            return 1;
        }
    }
    fflush(stdout);
    return 0;
}

int cmd_history(const cli_globals *g, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "help";
    int list = strcmp(sub, "list") == 0, exp = strcmp(sub, "export") == 0,
        ver = strcmp(sub, "verify") == 0;
    if (!list && !exp && !ver) {
        int help = strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0;
        if (!help)
            fprintf(stderr, "br2k history: unknown command '%s' (list, export, verify)\n",
                    sub);
        fprintf(
            help ? stdout : stderr,
            "Usage: br2k [--eth-rpc URLS] [--registry ADDR] history list|export|verify "
            "[OPTIONS]\nSee br2k history list --help.\n");
        return help ? 0 : 2;
    }
    bk_cfg *c = &hist_cfg;
    int rc = 2;
    bk_err e;
    hist h;
    memset(&h, 0, sizeof(h));
    bk_err_clear(&e);
    for (bk_cfg_opt *o = c->opts; o->name != NULL; o++) {
        if (strcmp(o->name, "eth-rpc") == 0)
            o->def = g->eth_rpc;
        if (strcmp(o->name, "registry") == 0)
            o->def = g->registry;
    }
    if (cli_parse(c, g, argc - 1, argv + 1, &rc))
        goto out_cfg;
    int json = g->json || bk_cfg_bool(c, "json");
    const char *keyfile =
        bk_cfg_source(c, "service-key") == BK_SRC_ENV ? "" : bk_cfg_str(c, "service-key");
    h.storage_url = bk_cfg_str(c, "storage");
    if (bk_cfg_str(c, "eth-rpc")[0] == '\0') {
        bk_err_set(&e, BK_E_INVAL, "no Ethereum RPC URL: give --eth-rpc");
        goto fail;
    }
    if (bk_cfg_str(c, "registry")[0] == '\0' ||
        bk_eth_addr_parse(bk_cfg_str(c, "registry"), h.reg, NULL) != BK_OK) {
        bk_err_set(&e, BK_E_INVAL, "--registry needs the contract's address, got '%s'",
                   bk_cfg_str(c, "registry"));
        goto fail;
    }
    if (bk_service_key_load(keyfile, &h.k, &e) != BK_OK)
        goto fail;
    h.rpc = bk_rpc_new_list(bk_cfg_str(c, "eth-rpc"), RPC_TIMEOUT_MS, &e);
    if (h.rpc == NULL || bk_reg_get_state_version(h.rpc, h.reg, &h.sv, &e) != BK_OK)
        goto fail;
    uint64_t first = (uint64_t)bk_cfg_int(c, "from"),
             last = (uint64_t)bk_cfg_int(c, "to");
    if (first < 2)
        first = 2;
    if (last == 0 || last > h.sv)
        last = h.sv;
    if (h.sv < 2) {
        printf("no backup yet: state version %" PRIu64 ", no history archived\n", h.sv);
        rc = ver ? 0 : 0;
        goto out;
    }
    if (first > last) {
        bk_err_set(&e, BK_E_INVAL, "--from %" PRIu64 " is above --to %" PRIu64, first,
                   last);
        goto fail;
    }
    signal(SIGPIPE, SIG_IGN); /* a replaying program that died: its message says why */
    if (list)
        rc = do_list(&h, first, last, json);
    else if (exp)
        rc = do_export(&h, first, last);
    else
        rc = do_verify(&h, c, first, last, json);
    goto out;
fail:
    fprintf(stderr, "br2k history %s: %s\n", sub, e.msg);
out:
    bk_storage_close(h.st);
    bk_rpc_free(h.rpc);
    bk_eth_key_clear(&h.k);
out_cfg:
    bk_cfg_release(c);
    return rc;
}
