/* err.h - the error convention of every BR2K module (after hiredis).
 *
 * A function that can fail takes a `bk_err *` and returns BK_OK or BK_ERR.
 * On failure it fills the struct with a code and a one-line, lowercase
 * message that names what failed first: "cannot open 'x': No such file".
 * A NULL `bk_err *` is allowed: the error is then only returned. */
#ifndef BK_ERR_H
#define BK_ERR_H

#include <stdarg.h>

#define BK_OK 0
#define BK_ERR -1

typedef enum bk_errcode {
    BK_E_NONE = 0,
    BK_E_INVAL,   /* bad input: a value, a flag, a request */
    BK_E_IO,      /* file system or socket */
    BK_E_NOMEM,   /* allocation failed */
    BK_E_PROTO,   /* a peer answered something we cannot parse */
    BK_E_REMOTE,  /* a peer answered with an error */
    BK_E_TIMEOUT, /* a deadline passed */
    BK_E_FENCED,  /* a stale fencing token was refused (I2) */
    BK_E_NOTFOUND,
    BK_E_STATE,           /* an operation not allowed in the current state */
    BK_E_APP,             /* the application process failed: only a restart helps */
    BK_E_UNSUPPORTED,     /* the peer cannot do this (an optional operation) */
    BK_E_RLOG_RANGE = 32, /* a log offset out of range: deleted or not yet there (I1) */
    BK_E_RLOG_UNSUPPORTED /* the log back end cannot do this (DeleteRecords on devkafka)
                           */
} bk_errcode;

typedef struct bk_err {
    int code;
    char msg[512]; /* one line; long enough for a URL, an object name and a hint */
} bk_err;

/* Clear an error struct (safe on NULL). */
void bk_err_clear(bk_err *e);

/* Fill `e` (if not NULL) and return BK_ERR, so callers can write
 * `return bk_err_set(e, BK_E_IO, "cannot open '%s'", path);` */
int bk_err_set(bk_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context to an existing message: "ctx: old message". */
int bk_err_prefix(bk_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short name for a code, for logs and JSON ("inval", "io", ...). */
const char *bk_errcode_name(int code);

#endif
