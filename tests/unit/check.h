/* check.h - a minimal assertion kit for unit test programs.
 *
 * CHECK(cond, fmt, ...) records a failure with its line and message and
 * goes on; CHECK_STR / CHECK_INT compare values and print both sides;
 * check_done() prints "N passed, N failed" and returns the exit status. */
#ifndef BR2K_CHECK_H
#define BR2K_CHECK_H

#include <stdio.h>
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

static inline int check_done(void) {
    printf("%d passed, %d failed\n", check_pass, check_fail);
    return check_fail == 0 ? 0 : 1;
}

#endif
