/* storage_s3_pure.c - the pure parts of the s3:// back end (storage_int.h):
 * the URL and its defaults, the SigV4 canonical encoding of paths and
 * query strings (libcurl signs them as given), and the XML of S3 answers
 * (ListObjectsV2, error codes). No I/O; unit-tested by test_storage_s3.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backup/storage_int.h"

static int bad_url(bk_err *e, const char *url, const char *why) {
    return bk_err_set(e, BK_E_INVAL, "storage: bad url '%.120s': %s", url, why);
}

static int is_lower_alnum(int c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (cap bytes with the NUL). 0, or -1 for a
 * bad escape or a value too long. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int looks_secret(const char *k, size_t n) {
    static const char *const words[] = {"key", "secret", "token", "pass", "cred", "auth"};
    char low[64];
    if (n >= sizeof low)
        n = sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)k[i]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(low, words[i]) != NULL)
            return 1;
    return 0;
}

static int parse_endpoint(const char *url, const char *v, bk_s3_cfg *cfg, bk_err *e) {
    const char *host = NULL;
    if (strncmp(v, "http://", 7) == 0)
        host = v + 7;
    else if (strncmp(v, "https://", 8) == 0)
        host = v + 8;
    else
        return bad_url(e, url, "endpoint must start with http:// or https://");
    size_t hl = strlen(host);
    while (hl > 0 && host[hl - 1] == '/')
        hl--;
    if (hl == 0)
        return bad_url(e, url, "endpoint has no host");
    for (size_t i = 0; i < hl; i++) {
        char c = host[i];
        if (c == '@')
            return bk_err_set(e, BK_E_INVAL,
                              "storage: bad url 's3://%s/...': credentials never go in "
                              "the url; set BR2K_S3_ACCESS_KEY_ID and "
                              "BR2K_S3_SECRET_ACCESS_KEY",
                              cfg->bucket);
        if (c == '/' || c == '?' || c == '#')
            return bad_url(e, url,
                           "endpoint must be scheme://HOST[:PORT], without a path");
        if (!(isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' ||
              c == ']' || c == '_'))
            return bad_url(e, url, "endpoint has a bad character in its host");
    }
    size_t sl = (size_t)(host - v);
    if (sl + hl > BK_S3_ENDPOINT_MAX)
        return bad_url(e, url, "endpoint too long");
    memcpy(cfg->endpoint, v, sl + hl);
    cfg->endpoint[sl + hl] = '\0';
    return BK_OK;
}

int bk_s3_parse_url(const char *url, bk_s3_cfg *cfg, bk_err *e) {
    memset(cfg, 0, sizeof *cfg);
    if (url == NULL || strncmp(url, "s3://", 5) != 0)
        return bad_url(e, url != NULL ? url : "", "want s3://BUCKET/PREFIX");
    const char *p = url + 5;
    size_t pathlen = strcspn(p, "?#");
    if (p[pathlen] == '#')
        return bad_url(e, url, "no '#' fragment allowed");
    const char *query = p[pathlen] == '?' ? p + pathlen + 1 : NULL;

    /* bucket */
    size_t bl = strcspn(p, "/?");
    if (bl == 0)
        return bad_url(e, url, "no bucket");
    if (memchr(p, '@', bl) != NULL || memchr(p, ':', bl) != NULL)
        return bk_err_set(e, BK_E_INVAL,
                          "storage: bad url 's3://...': credentials never go in the url; "
                          "set BR2K_S3_ACCESS_KEY_ID and BR2K_S3_SECRET_ACCESS_KEY");
    if (bl < 3 || bl > BK_S3_BUCKET_MAX)
        return bad_url(e, url, "bucket name must have 3 to 63 characters");
    for (size_t i = 0; i < bl; i++) {
        int c = (unsigned char)p[i];
        if (!is_lower_alnum(c) && c != '.' && c != '-')
            return bad_url(e, url, "bucket name must be of [a-z0-9.-]");
    }
    if (!is_lower_alnum((unsigned char)p[0]) || !is_lower_alnum((unsigned char)p[bl - 1]))
        return bad_url(e, url, "bucket name must start and end with a letter or digit");
    memcpy(cfg->bucket, p, bl);
    cfg->bucket[bl] = '\0';

    /* prefix: segments of [A-Za-z0-9._-], trailing '/' ignored */
    const char *pre = p + bl;
    size_t pl = pathlen - bl;
    if (pl > 0) {
        pre++; /* the '/' after the bucket */
        pl--;
    }
    while (pl > 0 && pre[pl - 1] == '/')
        pl--;
    if (pl > BK_S3_PREFIX_MAX)
        return bad_url(e, url, "prefix longer than 256 characters");
    size_t seg = 0;
    for (size_t i = 0; i <= pl; i++) {
        if (i == pl || pre[i] == '/') {
            if (pl == 0)
                break;
            if (seg == 0)
                return bad_url(e, url, "empty segment in the prefix");
            if ((seg == 1 && pre[i - 1] == '.') ||
                (seg == 2 && pre[i - 1] == '.' && pre[i - 2] == '.'))
                return bad_url(e, url, "'.' or '..' segment in the prefix");
            seg = 0;
            continue;
        }
        char c = pre[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-'))
            return bad_url(e, url, "prefix must be of [A-Za-z0-9._-] and '/'");
        seg++;
    }
    memcpy(cfg->prefix, pre, pl);
    cfg->prefix[pl] = '\0';

    /* query: non-secret settings */
    int have_ep = 0, have_region = 0, have_ps = 0;
    while (query != NULL && *query != '\0') {
        size_t n = strcspn(query, "&");
        const char *eq = memchr(query, '=', n);
        if (n == 0) {
            query++;
            continue;
        }
        size_t kl = eq != NULL ? (size_t)(eq - query) : n;
        if (looks_secret(query, kl))
            return bk_err_set(e, BK_E_INVAL,
                              "storage: bad url 's3://%s/...': credentials never go in "
                              "the url (found '%.*s'); set BR2K_S3_ACCESS_KEY_ID and "
                              "BR2K_S3_SECRET_ACCESS_KEY",
                              cfg->bucket, (int)(kl > 40 ? 40 : kl), query);
        char val[BK_S3_ENDPOINT_MAX + 1];
        if (eq == NULL || pct_decode(eq + 1, n - kl - 1, val, sizeof val) != 0 ||
            val[0] == '\0') {
            char why[120];
            snprintf(why, sizeof why, "bad value for '%.*s'", (int)(kl > 40 ? 40 : kl),
                     query);
            return bad_url(e, url, why);
        }
        if (kl == 8 && memcmp(query, "endpoint", 8) == 0 && !have_ep) {
            have_ep = 1;
            if (parse_endpoint(url, val, cfg, e) != BK_OK)
                return BK_ERR;
        } else if (kl == 6 && memcmp(query, "region", 6) == 0 && !have_region) {
            have_region = 1;
            size_t rl = strlen(val);
            if (rl > BK_S3_REGION_MAX)
                return bad_url(e, url, "region too long");
            for (size_t i = 0; i < rl; i++)
                if (!is_lower_alnum((unsigned char)val[i]) && val[i] != '-')
                    return bad_url(e, url, "region must be of [a-z0-9-]");
            memcpy(cfg->region, val, rl + 1);
        } else if (kl == 10 && memcmp(query, "path_style", 10) == 0 && !have_ps) {
            have_ps = 1;
            if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0)
                return bad_url(e, url, "path_style must be 0 or 1");
            cfg->path_style = val[0] == '1';
        } else if ((kl == 8 && memcmp(query, "endpoint", 8) == 0) ||
                   (kl == 6 && memcmp(query, "region", 6) == 0) ||
                   (kl == 10 && memcmp(query, "path_style", 10) == 0)) {
            char why[80];
            snprintf(why, sizeof why, "'%.*s' given twice", (int)kl, query);
            return bad_url(e, url, why);
        } else {
            char why[160];
            snprintf(why, sizeof why,
                     "unknown parameter '%.*s' (want endpoint, region, path_style)",
                     (int)(kl > 40 ? 40 : kl), query);
            return bad_url(e, url, why);
        }
        query += n;
    }
    if (!have_region)
        strcpy(cfg->region, "us-east-1");
    if (!have_ep) {
        snprintf(cfg->endpoint, sizeof cfg->endpoint, "https://s3.%s.amazonaws.com",
                 cfg->region);
        if (!have_ps)
            cfg->path_style = 0;
    } else if (!have_ps) {
        cfg->path_style = 1;
    }
    if (!cfg->path_style && strchr(cfg->bucket, '.') != NULL &&
        strncmp(cfg->endpoint, "https://", 8) == 0)
        return bad_url(e, url,
                       "a bucket name with '.' needs path_style=1 over https (its "
                       "virtual host name does not match the certificate)");
    return BK_OK;
}

char *bk_s3_uri_encode(const char *s, int keep_slash) {
    static const char hexd[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
            (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hexd[c >> 4];
            *o++ = hexd[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static int cmp_param(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t xl = strcspn(x, "="), yl = strcspn(y, "=");
    size_t ml = xl < yl ? xl : yl;
    int c = memcmp(x, y, ml);
    if (c != 0)
        return c;
    if (xl != yl)
        return xl < yl ? -1 : 1;
    return strcmp(x + xl, y + yl);
}

char *bk_s3_sort_query(const char *query) {
    char *copy = strdup(query != NULL ? query : "");
    if (copy == NULL)
        return NULL;
    size_t cap = 1;
    for (const char *c = copy; *c; c++)
        cap += *c == '&';
    char **v = malloc(cap * sizeof *v);
    char *out = malloc(strlen(copy) + 1);
    if (v == NULL || out == NULL) {
        free(v);
        free(out);
        free(copy);
        return NULL;
    }
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(copy, "&", &save); t != NULL;
         t = strtok_r(NULL, "&", &save))
        v[n++] = t;
    qsort(v, n, sizeof *v, cmp_param);
    out[0] = '\0';
    size_t ol = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i]);
        if (i > 0)
            out[ol++] = '&';
        memcpy(out + ol, v[i], l);
        ol += l;
    }
    out[ol] = '\0';
    free(v);
    free(copy);
    return out;
}

/* Append the UTF-8 encoding of cp to o; returns the new end. */
static char *put_utf8(char *o, unsigned long cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* Decode the XML text s[0..n) (entities, character references; a CDATA
 * section is not expected in S3 answers) into a malloc'd string. */
static char *xml_unescape(const char *s, size_t n) {
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    static const struct {
        const char *ent;
        char c;
    } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            *o++ = s[i++];
            continue;
        }
        int done = 0;
        for (size_t k = 0; k < sizeof ents / sizeof ents[0] && !done; k++) {
            size_t el = strlen(ents[k].ent);
            if (i + el <= n && memcmp(s + i, ents[k].ent, el) == 0) {
                *o++ = ents[k].c;
                i += el;
                done = 1;
            }
        }
        if (!done && i + 3 < n && s[i + 1] == '#') {
            size_t j = i + 2;
            int hex = s[j] == 'x' || s[j] == 'X';
            if (hex)
                j++;
            unsigned long cp = 0;
            size_t digits = 0;
            for (; j < n && digits < 8; j++, digits++) {
                int d =
                    hex ? hexval(s[j]) : (s[j] >= '0' && s[j] <= '9' ? s[j] - '0' : -1);
                if (d < 0)
                    break;
                cp = cp * (hex ? 16 : 10) + (unsigned long)d;
            }
            if (digits > 0 && j < n && s[j] == ';' && cp > 0 && cp <= 0x10ffff) {
                /* 4 bytes of UTF-8 are fewer than the 4+ of "&#N;" */
                o = put_utf8(o, cp);
                i = j + 1;
                done = 1;
            }
        }
        if (!done)
            *o++ = s[i++];
    }
    *o = '\0';
    return out;
}

/* Find "<tag>" in xml[from..len); sets *start (after it) and *end (at
 * "</tag>"). 1 found, 0 not. */
static int xml_find(const char *xml, size_t len, size_t from, const char *tag,
                    size_t *start, size_t *end) {
    char open[64], close[64];
    int ol = snprintf(open, sizeof open, "<%s>", tag);
    int cl = snprintf(close, sizeof close, "</%s>", tag);
    if (ol < 0 || cl < 0 || (size_t)ol >= sizeof open || (size_t)cl >= sizeof close)
        return 0;
    const char *a = from < len ? memmem(xml + from, len - from, open, (size_t)ol) : NULL;
    if (a == NULL)
        return 0;
    size_t s = (size_t)(a - xml) + (size_t)ol;
    const char *b = memmem(xml + s, len - s, close, (size_t)cl);
    if (b == NULL)
        return 0;
    *start = s;
    *end = (size_t)(b - xml);
    return 1;
}

char *bk_s3_xml_text(const char *xml, size_t len, const char *tag) {
    size_t s = 0, t = 0;
    if (xml == NULL || !xml_find(xml, len, 0, tag, &s, &t))
        return NULL;
    return xml_unescape(xml + s, t - s);
}

int bk_s3_parse_list(const char *xml, size_t len, char ***keys, size_t *n, int *truncated,
                     char **next_token, bk_err *e) {
    *keys = NULL;
    *n = 0;
    *truncated = 0;
    *next_token = NULL;
    if (xml == NULL || memmem(xml, len, "<ListBucketResult", 17) == NULL)
        return bk_err_set(e, BK_E_PROTO, "not a ListBucketResult");
    size_t pos = 0, cs = 0, ce = 0, cap = 0;
    char **v = NULL;
    while (xml_find(xml, len, pos, "Contents", &cs, &ce)) {
        size_t ks = 0, ke = 0;
        pos = ce + 11;
        if (!xml_find(xml, ce, cs, "Key", &ks, &ke))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (nv == NULL)
                goto nomem;
            v = nv;
            cap = ncap;
        }
        v[*n] = xml_unescape(xml + ks, ke - ks);
        if (v[*n] == NULL)
            goto nomem;
        (*n)++;
    }
    char *t = bk_s3_xml_text(xml, len, "IsTruncated");
    *truncated = t != NULL && strcmp(t, "true") == 0;
    free(t);
    if (*truncated) {
        *next_token = bk_s3_xml_text(xml, len, "NextContinuationToken");
        if (*next_token == NULL || (*next_token)[0] == '\0') {
            free(*next_token);
            *next_token = NULL;
            bk_storage_names_free(v, *n);
            *keys = NULL;
            *n = 0;
            *truncated = 0;
            return bk_err_set(e, BK_E_PROTO,
                              "truncated ListBucketResult without NextContinuationToken");
        }
    }
    *keys = v;
    return BK_OK;
nomem:
    bk_storage_names_free(v, *n);
    *n = 0;
    return bk_err_set(e, BK_E_NOMEM, "out of memory");
}
