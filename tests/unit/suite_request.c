/* suite_request.c - runs one bad-input case of tests/unit/suites/request/.
 *
 * A case folder holds `input.json` (the request bytes, as a producer would
 * send them), `expected` (the reason code bk_request_parse must give, or
 * "ok") and optionally `limit` (the size limit in bytes; default 64 KiB).
 * The known operations are InfoDID's. Exit 0 when the reason matches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infodid.h"
#include "chain/request.h"

/* Read a whole file (malloc'd, NUL added); NULL if it cannot be read. */
static char *slurp(const char *dir, const char *name, size_t *len) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap + 1);
    while (p != NULL) {
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *q = realloc(p, cap * 2 + 1);
        if (q == NULL) {
            free(p);
            p = NULL;
            break;
        }
        p = q;
        cap *= 2;
    }
    fclose(f);
    if (p != NULL) {
        p[n] = '\0';
        *len = n;
    }
    return p;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: suite_request CASE_DIR\n");
        return 2;
    }
    size_t len = 0, elen = 0, llen = 0;
    char *input = slurp(argv[1], "input.json", &len);
    char *expected = slurp(argv[1], "expected", &elen);
    if (input == NULL || expected == NULL) {
        fprintf(stderr, "cannot read input.json and expected in '%s'\n", argv[1]);
        return 2;
    }
    chomp(expected);
    size_t limit = 0;
    char *lim = slurp(argv[1], "limit", &llen);
    if (lim != NULL) {
        limit = (size_t)strtoul(lim, NULL, 10);
        free(lim);
    }
    bk_request req;
    bk_reason why;
    memset(&why, 0, sizeof(why));
    const char *got = "ok";
    if (bk_request_parse(input, len, limit, bk_infodid_op_names, &req, &why) != BK_OK)
        got = why.code;
    int ok = strcmp(got, expected) == 0;
    printf("%s: got '%s' (%s), want '%s'\n", ok ? "ok" : "FAIL", got, why.text, expected);
    bk_request_release(&req);
    free(input);
    free(expected);
    return ok ? 0 : 1;
}
