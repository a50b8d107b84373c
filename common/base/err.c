/* err.c - see err.h. */
#include "base/err.h"

#include <stdio.h>
#include <string.h>

void bk_err_clear(bk_err *e) {
    if (e == NULL)
        return;
    e->code = BK_E_NONE;
    e->msg[0] = '\0';
}

int bk_err_set(bk_err *e, int code, const char *fmt, ...) {
    if (e == NULL)
        return BK_ERR;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = code;
    /* one line only: a peer's message may carry newlines */
    for (char *p = e->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return BK_ERR;
}

int bk_err_prefix(bk_err *e, const char *fmt, ...) {
    if (e == NULL)
        return BK_ERR;
    char head[sizeof(e->msg) / 2], old[sizeof(e->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof(old));
    size_t n = strlen(head);
    if (n > sizeof(e->msg) - 3)
        n = sizeof(e->msg) - 3;
    memcpy(e->msg, head, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof(e->msg) - n - 3, olen = strlen(old);
    if (olen > rest)
        olen = rest;
    memcpy(e->msg + n + 2, old, olen);
    e->msg[n + 2 + olen] = '\0';
    return BK_ERR;
}

const char *bk_errcode_name(int code) {
    switch (code) {
    case BK_E_NONE:
        return "none";
    case BK_E_INVAL:
        return "inval";
    case BK_E_IO:
        return "io";
    case BK_E_NOMEM:
        return "nomem";
    case BK_E_PROTO:
        return "proto";
    case BK_E_REMOTE:
        return "remote";
    case BK_E_TIMEOUT:
        return "timeout";
    case BK_E_FENCED:
        return "fenced";
    case BK_E_NOTFOUND:
        return "notfound";
    case BK_E_STATE:
        return "state";
    case BK_E_APP:
        return "app";
    case BK_E_UNSUPPORTED:
        return "unsupported";
    case BK_E_RLOG_RANGE:
        return "offset_out_of_range";
    case BK_E_RLOG_UNSUPPORTED:
        return "unsupported";
    }
    return "unknown";
}
