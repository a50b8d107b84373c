/* check.h - a minimal assertion kit for unit test programs.
 *
 * CHECK(cond, fmt, ...) records a failure with its line and message and
 * goes on; CHECK_STR / CHECK_INT compare values and print both sides;
 * check_done() prints "N passed, N failed" and returns the exit status. */
#ifndef BR2K_CHECK_H
#define BR2K_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_pass, check_fail;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (cond) {                                                                      \
            check_pass++;                                                                \
        } else {                                                                         \
            check_fail++;                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

#define CHECK_STR(got, want)                                                             \
    do {                                                                                 \
        const char *g_ = (got), *w_ = (want);                                            \
        CHECK(g_ != NULL && strcmp(g_, w_) == 0, "got '%s', want '%s'",                  \
              g_ ? g_ : "(null)", w_);                                                   \
    } while (0)

#define CHECK_INT(got, want)                                                             \
    do {                                                                                 \
        long long g_ = (long long)(got), w_ = (long long)(want);                         \
        CHECK(g_ == w_, "got %lld, want %lld", g_, w_);                                  \
    } while (0)

/* The text of fixture DIR/NAME (relative to tests/unit, where the tests
 * run), trailing whitespace removed, in a static buffer that the next call
 * reuses. A missing or oversize fixture stops the program (exit 2). */
static inline const char *check_fixture(const char *dir, const char *name) {
    static char buf[32768];
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open fixture '%s'\n", path);
        exit(2);
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        fprintf(stderr, "fixture '%s' is larger than %zu bytes\n", path, sizeof(buf) - 1);
        exit(2);
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    return buf;
}

static inline int check_done(void) {
    printf("%d passed, %d failed\n", check_pass, check_fail);
    return check_fail == 0 ? 0 : 1;
}

#endif
