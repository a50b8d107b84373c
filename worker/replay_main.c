/* replay_main.c - br2k-replay: the application replaying archived records
 * for `br2k history verify` (producer/history.c), which may not link the
 * worker's code: it runs this program and talks to it over a pipe.
 *
 *   br2k-replay --app SPEC
 *
 * Opens a fresh state of the application (appload.h: infodid, noop, a
 * plug-in .so, exec:, unix:) in a new temporary directory, removed at exit,
 * then reads commands on stdin, answering on stdout:
 *   "A <offset> <len>\n" and len bytes   apply the record; no answer unless
 *                                        it fails ("err <message>\n", exit 1)
 *   "D\n"                                "<lpi> <state digest>\n"
 *   "R <len>\n" and len bytes            restore that snapshot (a backup's
 *                                        state): "ok <lpi>\n" or "err ...\n"
 * and exits 0 at the end of its input. Nothing in Redis or the log is
 * touched (the external effect is not run). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "appload.h"
#include "base/err.h"

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int reply_err(const bk_err *e) {
    printf("err %s\n", e->msg);
    fflush(stdout);
    return 1;
}

static void *read_n(size_t n) {
    char *b = malloc(n + 1);
    if (b == NULL || fread(b, 1, n, stdin) != n) {
        free(b);
        return NULL;
    }
    b[n] = '\0';
    return b;
}

static int serve(const br2k_app_ops *ops, br2k_app *app, int64_t lpi) {
    char line[128];
    bk_err e;
    while (fgets(line, sizeof(line), stdin) != NULL) {
        bk_err_clear(&e);
        long long off = 0;
        size_t n = 0;
        if (sscanf(line, "A %lld %zu", &off, &n) == 2) {
            void *b = read_n(n);
            char *result = NULL;
            int applied = 0;
            if (b == NULL) {
                bk_err_set(&e, BK_E_PROTO, "record %lld: short input", off);
                return reply_err(&e);
            }
            int rc = ops->apply(app, (int64_t)off, b, n, &result, &applied, &e);
            free(b);
            free(result);
            if (rc != BK_OK)
                return reply_err(&e);
            lpi = (int64_t)off;
        } else if (strcmp(line, "D\n") == 0) {
            char hex[65];
            if (ops->digest(app, hex, &e) != BK_OK)
                return reply_err(&e);
            printf("%" PRId64 " %s\n", lpi, hex);
            fflush(stdout);
        } else if (sscanf(line, "R %zu", &n) == 1) {
            void *b = read_n(n);
            if (b == NULL) {
                bk_err_set(&e, BK_E_PROTO, "snapshot: short input");
                return reply_err(&e);
            }
            int rc = ops->restore(app, b, n, &e);
            free(b);
            if (rc != BK_OK)
                return reply_err(&e);
            void *s = NULL;
            size_t sl = 0;
            if (ops->snapshot(app, &s, &sl, &lpi, &e) != BK_OK)
                return reply_err(&e);
            free(s);
            printf("ok %" PRId64 "\n", lpi);
            fflush(stdout);
        } else {
            bk_err_set(&e, BK_E_PROTO, "unknown command '%.40s'", line);
            return reply_err(&e);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strncmp(argv[i], "--app=", 6) == 0)
            spec = argv[i] + 6;
        else {
            fprintf(stderr, "br2k-replay: unexpected argument '%s' (usage: br2k-replay "
                            "--app SPEC)\n",
                    argv[i]);
            return 2;
        }
    }
    if (spec == NULL) {
        fprintf(stderr, "br2k-replay: --app SPEC is required\n");
        return 2;
    }
    bk_err e;
    bk_err_clear(&e);
    const br2k_app_ops *ops = NULL;
    if (bk_app_resolve(spec, &ops, &e) != BK_OK) {
        fprintf(stderr, "br2k-replay: %s\n", e.msg);
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/br2k-replay-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "br2k-replay: cannot make a directory in '%s'\n",
                tmp && tmp[0] ? tmp : "/tmp");
        return 2;
    }
    br2k_app *app = NULL;
    int64_t lpi = -1;
    int rc = 2;
    if (ops->open(dir, &app, &lpi, &e) != BK_OK) {
        fprintf(stderr, "br2k-replay: cannot open the application '%s': %s\n", spec,
                e.msg);
    } else {
        rc = serve(ops, app, lpi);
        if (ops->close)
            ops->close(app);
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
