/* jscan.c - see jscan.h. */
#include "base/jscan.h"

#include <string.h>

typedef struct sc {
    const char *p, *end;
} sc;

static void ws(sc *s) {
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* A string at s->p (the opening quote): 1 with its content span. */
static int str(sc *s, const char **v, size_t *n) {
    if (s->p >= s->end || *s->p != '"')
        return 0;
    const char *q = ++s->p;
    while (q < s->end) {
        unsigned char c = (unsigned char)*q;
        if (c == '"')
            break;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            return 0; /* outside the subset */
        q++;
    }
    if (q >= s->end)
        return 0;
    *v = s->p;
    *n = (size_t)(q - s->p);
    s->p = q + 1;
    return 1;
}

static int digit(char c) {
    return c >= '0' && c <= '9';
}

/* A number as jansson lexes it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int num(sc *s, char *type) {
    const char *q = s->p;
    int digits = 0;
    *type = 'i';
    if (q < s->end && *q == '-')
        q++;
    if (q >= s->end || !digit(*q))
        return 0;
    if (*q == '0') {
        q++;
        digits++;
        if (q < s->end && digit(*q))
            return 0;
    } else {
        while (q < s->end && digit(*q))
            q++, digits++;
    }
    if (q < s->end && *q == '.') {
        *type = 'r';
        q++;
        if (q >= s->end || !digit(*q))
            return 0;
        while (q < s->end && digit(*q))
            q++, digits++;
    }
    if (q < s->end && (*q == 'e' || *q == 'E')) {
        *type = 'r';
        q++;
        if (q < s->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= s->end || !digit(*q))
            return 0;
        int ed = 0;
        while (q < s->end && digit(*q))
            q++, ed++;
        if (ed > 2)
            return 0;
    }
    if (digits > 15)
        return 0; /* jansson refuses integers beyond 64 bits: leave it to it */
    s->p = q;
    return 1;
}

static int lit(sc *s, const char *w, char t, char *type) {
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return 0;
    s->p += n;
    *type = t;
    return 1;
}

static int value(sc *s, int depth, bk_jspan *v);

static int members(sc *s, int depth, const char *const *keys, size_t nk, bk_jspan *out) {
    /* s->p at '{' */
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 1;
    }
    for (;;) {
        const char *k;
        size_t kn;
        ws(s);
        if (!str(s, &k, &kn))
            return 0;
        ws(s);
        if (s->p >= s->end || *s->p != ':')
            return 0;
        s->p++;
        ws(s);
        bk_jspan v;
        if (!value(s, depth + 1, &v))
            return 0;
        for (size_t i = 0; i < nk; i++)
            if (strlen(keys[i]) == kn && memcmp(keys[i], k, kn) == 0) {
                if (out[i].type != 0)
                    return 0; /* repeated: leave it to jansson */
                out[i] = v;
            }
        ws(s);
        if (s->p >= s->end)
            return 0;
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p != '}')
            return 0;
        s->p++;
        return 1;
    }
}

static int value(sc *s, int depth, bk_jspan *v) {
    if (depth > 32 || s->p >= s->end)
        return 0;
    const char *start = s->p;
    v->p = start;
    v->len = 0;
    switch (*s->p) {
    case '"':
        v->type = 's';
        return str(s, &v->p, &v->len);
    case '{':
        v->type = 'o';
        if (!members(s, depth, NULL, 0, NULL))
            return 0;
        break;
    case '[':
        v->type = 'a';
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            break;
        }
        for (;;) {
            bk_jspan x;
            ws(s);
            if (!value(s, depth + 1, &x))
                return 0;
            ws(s);
            if (s->p >= s->end)
                return 0;
            if (*s->p == ',') {
                s->p++;
                continue;
            }
            if (*s->p != ']')
                return 0;
            s->p++;
            break;
        }
        break;
    case 't':
        if (!lit(s, "true", 't', &v->type))
            return 0;
        break;
    case 'f':
        if (!lit(s, "false", 'f', &v->type))
            return 0;
        break;
    case 'n':
        if (!lit(s, "null", 'n', &v->type))
            return 0;
        break;
    default:
        if (!num(s, &v->type))
            return 0;
    }
    /* a literal or number must end at a delimiter (jansson lexes "truex"
     * or "1x" as one bad token) */
    if (s->p < s->end && v->type != 'o' && v->type != 'a') {
        char c = *s->p;
        if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ']' ||
              c == '}'))
            return 0;
    }
    v->len = (size_t)(s->p - start);
    return 1;
}

int bk_jscan(const char *s, size_t len, const char *const *keys, size_t n,
             bk_jspan *out) {
    sc c = {s, s + len};
    for (size_t i = 0; i < n; i++)
        out[i] = (bk_jspan){NULL, 0, 0};
    ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return 0;
    if (!members(&c, 0, keys, n, out))
        return 0;
    ws(&c);
    return c.p == c.end;
}
