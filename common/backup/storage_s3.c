/* storage_s3.c - the s3:// back end of storage.h: S3 REST calls signed
 * with AWS Signature Version 4 by libcurl (CURLOPT_AWS_SIGV4).
 *
 * libcurl 7.88 (Debian 12) signs the query string as it is given and
 * does not add x-amz-content-sha256, so every request carries that header
 * (the SHA-256 of its body) and every query string is built encoded and
 * sorted here (storage_s3_pure.c: the URL, the encoding, the XML). Bodies
 * go through read and write callbacks. Depends only on storage_int.h. */
#include "backup/storage_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/hex.h"

#define S3_CONNECT_TIMEOUT_MS 5000L
#define S3_LOW_SPEED_TIME 20L /* seconds below 1 byte/s: the server is dead */
#define S3_ATTEMPTS 3
#define S3_ERRBODY_MAX 65536
#define S3_NAME_SHOW 80 /* object names in messages are cut to this */

struct bk_s3 {
    bk_s3_cfg cfg;
    char *host_base;      /* ENDPOINT or scheme://BUCKET.host[:port] */
    char *key_prefix;     /* "PREFIX/" or "" */
    char *access;         /* access key id */
    char *secret;         /* secret access key (wiped on close) */
    char *token;          /* session token or NULL */
    const char *vars;     /* the variables the credentials came from, for messages */
    char sigv4[80];       /* "aws:amz:REGION:s3" */
    int max_keys;         /* ListObjectsV2 page size */
    int no_if_none_match; /* the server refused If-None-Match: * on PUT */
    CURL *curl;
};

/* ---- HTTP ---- */

typedef struct s3_body {
    const uint8_t *data;
    size_t len, pos;
} s3_body;

typedef struct s3_resp {
    long status;
    uint8_t *buf;
    size_t len, cap, limit; /* limit: keep at most this many bytes */
    int overflow;
    char etag[80];
    uint64_t clen;
    int have_clen;
} s3_resp;

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *ud) {
    s3_body *b = ud;
    size_t want = size * nmemb, left = b->len - b->pos;
    if (want > left)
        want = left;
    memcpy(dst, b->data + b->pos, want);
    b->pos += want;
    return want;
}

static int seek_cb(void *ud, curl_off_t off, int origin) {
    s3_body *b = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > b->len)
        return CURL_SEEKFUNC_CANTSEEK;
    b->pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *src, size_t size, size_t nmemb, void *ud) {
    s3_resp *r = ud;
    size_t n = size * nmemb;
    if (r->len + n > r->limit) {
        r->overflow = 1;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t ncap = r->cap ? r->cap : 4096;
        while (ncap < r->len + n + 1)
            ncap *= 2;
        uint8_t *nb = realloc(r->buf, ncap);
        if (nb == NULL)
            return 0;
        r->buf = nb;
        r->cap = ncap;
    }
    memcpy(r->buf + r->len, src, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return n;
}

static size_t header_cb(char *line, size_t size, size_t nmemb, void *ud) {
    s3_resp *r = ud;
    size_t n = size * nmemb, vl = 0;
    if (n > 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (after 100) */
        r->etag[0] = '\0';
        r->have_clen = 0;
        return n;
    }
    const char *colon = memchr(line, ':', n);
    if (colon == NULL)
        return n;
    size_t kl = (size_t)(colon - line);
    const char *v = colon + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    vl = (size_t)(end - v);
    if (kl == 4 && strncasecmp(line, "etag", 4) == 0) {
        if (vl >= sizeof r->etag)
            vl = sizeof r->etag - 1;
        memcpy(r->etag, v, vl);
        r->etag[vl] = '\0';
    } else if (kl == 14 && strncasecmp(line, "content-length", 14) == 0) {
        char num[32];
        if (vl > 0 && vl < sizeof num) {
            memcpy(num, v, vl);
            num[vl] = '\0';
            char *ep = NULL;
            unsigned long long x = strtoull(num, &ep, 10);
            if (ep != NULL && *ep == '\0') {
                r->clen = x;
                r->have_clen = 1;
            }
        }
    }
    return n;
}

static void resp_free(s3_resp *r) {
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static void digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out) {
    unsigned int ol = 0;
    if (EVP_Digest(data, len, out, &ol, md, NULL) != 1)
        memset(out, 0, (size_t)EVP_MD_size(md));
}

/* The object key of name. */
static int object_key(const struct bk_s3 *c, const char *name, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s%s", c->key_prefix, name);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

/* Append line to *hs. 1, or 0 when out of memory (*hs is kept). */
static int add_header(struct curl_slist **hs, const char *line) {
    struct curl_slist *t = curl_slist_append(*hs, line);
    if (t == NULL)
        return 0;
    *hs = t;
    return 1;
}

/* Make one request. method GET, HEAD, PUT, DELETE; key NULL for the
 * bucket; query already encoded and sorted (or NULL); body for PUT. r gets
 * the status, headers and up to body_limit bytes of the answer. BK_OK when
 * an HTTP answer came (any status), BK_ERR (e set: "cannot reach") when
 * none did. what names the operation for messages: "put 'x'". */
static int s3_call(bk_storage *s, const char *method, const char *key, const char *query,
                   const void *body, size_t blen, const char *content_md5,
                   int if_none_match, size_t body_limit, s3_resp *r, const char *what,
                   bk_err *e) {
    struct bk_s3 *c = s->be;
    memset(r, 0, sizeof *r);
    r->limit = body_limit;
    char *ekey = bk_s3_uri_encode(key != NULL ? key : "", 1);
    if (ekey == NULL)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    size_t ul = strlen(c->host_base) + strlen(c->cfg.bucket) + strlen(ekey) +
                (query != NULL ? strlen(query) : 0) + 8;
    char *url = malloc(ul);
    if (url == NULL) {
        free(ekey);
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    }
    if (c->cfg.path_style) /* the bucket itself is "/BUCKET", without a '/' after */
        snprintf(url, ul, "%s/%s%s%s%s%s", c->host_base, c->cfg.bucket, key ? "/" : "",
                 ekey, query ? "?" : "", query ? query : "");
    else
        snprintf(url, ul, "%s/%s%s%s", c->host_base, ekey, query ? "?" : "",
                 query ? query : "");
    free(ekey);

    uint8_t sha[32];
    char shahex[65], hdr[160];
    digest(EVP_sha256(), body != NULL ? body : "", body != NULL ? blen : 0, sha);
    bk_hex_encode(sha, sizeof sha, 0, shahex);
    struct curl_slist *hs = NULL;
    snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s", shahex);
    int ok = add_header(&hs, hdr);
    if (ok && content_md5 != NULL) {
        snprintf(hdr, sizeof hdr, "Content-MD5: %s", content_md5);
        ok = add_header(&hs, hdr);
    }
    if (ok && strcmp(method, "PUT") == 0)
        ok = add_header(&hs, "Content-Type: application/octet-stream");
    if (ok && if_none_match)
        ok = add_header(&hs, "If-None-Match: *");
    if (ok && c->token != NULL) {
        size_t tl = strlen(c->token) + 32;
        char *th = malloc(tl);
        ok = th != NULL;
        if (ok) {
            snprintf(th, tl, "x-amz-security-token: %s", c->token);
            ok = add_header(&hs, th);
            OPENSSL_cleanse(th, tl);
            free(th);
        }
    }
    if (!ok) {
        curl_slist_free_all(hs);
        hs = NULL;
    }
    if (hs == NULL) {
        free(url);
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    }

    CURL *h = c->curl;
    CURLcode rc = CURLE_OK;
    char errbuf[CURL_ERROR_SIZE];
    for (int attempt = 1; attempt <= S3_ATTEMPTS; attempt++) {
        s3_body b = {body, blen, 0};
        r->len = 0;
        r->overflow = 0;
        r->status = 0;
        r->etag[0] = '\0';
        r->have_clen = 0;
        errbuf[0] = '\0';
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, S3_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, S3_LOW_SPEED_TIME);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->access);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
        if (strcmp(method, "HEAD") == 0) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(method, "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
            curl_easy_setopt(h, CURLOPT_READDATA, &b);
            curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
            curl_easy_setopt(h, CURLOPT_SEEKDATA, &b);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)blen);
        } else if (strcmp(method, "DELETE") == 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        }
        rc = curl_easy_perform(h);
        if (rc == CURLE_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
            /* a busy or failing server: try again, a little later */
            if ((r->status == 500 || r->status == 502 || r->status == 503 ||
                 r->status == 504) &&
                attempt < S3_ATTEMPTS) {
                struct timespec ts = {0, 200000000L * attempt};
                nanosleep(&ts, NULL);
                continue;
            }
            break;
        }
        /* a reused connection closed under us: once more at once */
        if ((rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR ||
             rc == CURLE_RECV_ERROR) &&
            attempt < S3_ATTEMPTS)
            continue;
        break;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hs);
    free(url);
    if (rc == CURLE_WRITE_ERROR && r->overflow) {
        /* an error body larger than we keep: the status still tells */
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->status != 0 && r->status != 200)
            return BK_OK;
    }
    if (rc != CURLE_OK) {
        int io = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                 rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_OPERATION_TIMEDOUT ||
                 rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_GOT_NOTHING ||
                 rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR;
        if (rc == CURLE_WRITE_ERROR && !r->overflow)
            return bk_err_set(e, BK_E_NOMEM, "storage: %s: %s: out of memory", s->label,
                              what);
        if (io)
            return bk_err_set(e, BK_E_IO, "storage: %s: %s: cannot reach endpoint %s: %s",
                              s->label, what, c->cfg.endpoint, curl_easy_strerror(rc));
        return bk_err_set(e, BK_E_IO, "storage: %s: %s: %s: %s", s->label, what,
                          curl_easy_strerror(rc), errbuf[0] ? errbuf : "no detail");
    }
    return BK_OK;
}

/* Fill e from an HTTP answer that is not what the operation wanted. */
static int s3_fail(bk_storage *s, const s3_resp *r, const char *what, bk_err *e) {
    struct bk_s3 *c = s->be;
    const char *xml = (const char *)r->buf;
    char *code = bk_s3_xml_text(xml, r->len, "Code");
    char *msg = bk_s3_xml_text(xml, r->len, "Message");
    const char *cd = code != NULL ? code : "";
    int rc;
    if (strcmp(cd, "RequestTimeTooSkewed") == 0) {
        rc = bk_err_set(e, BK_E_IO,
                        "storage: %s: %s: the server says this machine's clock is off by "
                        "more than 15 minutes (RequestTimeTooSkewed)",
                        s->label, what);
    } else if (r->status == 403 || strcmp(cd, "SignatureDoesNotMatch") == 0 ||
               strcmp(cd, "InvalidAccessKeyId") == 0 || strcmp(cd, "AccessDenied") == 0) {
        char why[64];
        if (cd[0] != '\0')
            snprintf(why, sizeof why, "%.60s", cd);
        else
            snprintf(why, sizeof why, "HTTP %ld", r->status);
        rc = bk_err_set(e, BK_E_IO,
                        "storage: %s: %s: access denied by the server (%s): check %s",
                        s->label, what, why, c->vars);
    } else if (strcmp(cd, "NoSuchBucket") == 0) {
        rc =
            bk_err_set(e, BK_E_IO,
                       "storage: %s: %s: bucket '%s' does not exist at %s (NoSuchBucket)",
                       s->label, what, c->cfg.bucket, c->cfg.endpoint);
    } else if (strcmp(cd, "PermanentRedirect") == 0 ||
               strcmp(cd, "AuthorizationHeaderMalformed") == 0 ||
               strcmp(cd, "IllegalLocationConstraintException") == 0) {
        rc = bk_err_set(e, BK_E_IO,
                        "storage: %s: %s: the bucket is not in region %s at %s (%s): set "
                        "region= and endpoint= in the url",
                        s->label, what, c->cfg.region, c->cfg.endpoint, cd);
    } else if (cd[0] != '\0') {
        rc =
            bk_err_set(e, BK_E_IO, "storage: %s: %s: the server answered HTTP %ld %s: %s",
                       s->label, what, r->status, cd, msg != NULL ? msg : "");
    } else {
        rc = bk_err_set(e, BK_E_IO, "storage: %s: %s: the server answered HTTP %ld",
                        s->label, what, r->status);
    }
    free(code);
    free(msg);
    return rc;
}

static int no_such_bucket(const s3_resp *r) {
    return r->len > 0 && memmem(r->buf, r->len, "<Code>NoSuchBucket</Code>", 25) != NULL;
}

/* ETag of a single-part upload: the hex MD5 in quotes. 1 when etag is such
 * a value and equals md5; 0 when it is such a value and differs; -1 when
 * it is not an MD5 (multipart, encrypted): compare the bytes instead. */
static int etag_matches(const char *etag, const uint8_t md5[16]) {
    char want[33], have[33];
    size_t n = strlen(etag);
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
        etag++;
        n -= 2;
    }
    if (n != 32)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        if (bk_hex_digit((unsigned char)etag[i]) < 0)
            return -1;
        have[i] = (char)tolower((unsigned char)etag[i]);
    }
    have[32] = '\0';
    bk_hex_encode(md5, 16, 0, want);
    return strcmp(want, have) == 0;
}

static void what_of(char *out, size_t cap, const char *op, const char *name) {
    snprintf(out, cap, "%s '%.*s'", op, S3_NAME_SHOW, name);
}

static int s3_get_key(bk_storage *s, const char *name, const char *op, uint8_t **data,
                      size_t *len, bk_err *e) {
    char key[BK_S3_PREFIX_MAX + BK_STORAGE_NAME_MAX + 4], what[120];
    *data = NULL;
    *len = 0;
    what_of(what, sizeof what, op, name);
    if (object_key(s->be, name, key, sizeof key) != 0)
        return bk_err_set(e, BK_E_INVAL, "storage: %s: %s: key too long", s->label, what);
    s3_resp r;
    if (s3_call(s, "GET", key, NULL, NULL, 0, NULL, 0, SIZE_MAX / 2, &r, what, e) !=
        BK_OK) {
        resp_free(&r);
        return BK_ERR;
    }
    if (r.status == 404 && !no_such_bucket(&r)) {
        resp_free(&r);
        return bk_err_set(e, BK_E_NOTFOUND, "storage: object '%s' not found in '%s'",
                          name, s->label);
    }
    if (r.status != 200) {
        int rc = s3_fail(s, &r, what, e);
        resp_free(&r);
        return rc;
    }
    if (r.have_clen && r.clen != r.len) {
        resp_free(&r);
        return bk_err_set(e, BK_E_IO, "storage: %s: %s: short read (%zu of %llu bytes)",
                          s->label, what, r.len, (unsigned long long)r.clen);
    }
    if (r.buf == NULL) {
        r.buf = malloc(1);
        if (r.buf == NULL)
            return bk_err_set(e, BK_E_NOMEM,
                              "storage: out of memory reading '%s' in '%s'", name,
                              s->label);
        r.buf[0] = '\0';
    }
    *data = r.buf;
    *len = r.len;
    return BK_OK;
}

/* HEAD name: *exists, *size, etag (cap 80). */
static int s3_head_key(bk_storage *s, const char *name, const char *op, int *exists,
                       uint64_t *size, char *etag, bk_err *e) {
    char key[BK_S3_PREFIX_MAX + BK_STORAGE_NAME_MAX + 4], what[120];
    *exists = 0;
    *size = 0;
    etag[0] = '\0';
    what_of(what, sizeof what, op, name);
    if (object_key(s->be, name, key, sizeof key) != 0)
        return bk_err_set(e, BK_E_INVAL, "storage: %s: %s: key too long", s->label, what);
    s3_resp r;
    if (s3_call(s, "HEAD", key, NULL, NULL, 0, NULL, 0, S3_ERRBODY_MAX, &r, what, e) !=
        BK_OK) {
        resp_free(&r);
        return BK_ERR;
    }
    if ((r.status == 301 || r.status == 400 || r.status == 403) && r.len == 0) {
        /* a HEAD answer has no body to say why: ask with a GET */
        s3_resp g;
        if (s3_call(s, "GET", key, NULL, NULL, 0, NULL, 0, S3_ERRBODY_MAX, &g, what,
                    NULL) == BK_OK &&
            g.status >= 400 && g.len > 0) {
            resp_free(&r);
            r = g;
        } else {
            resp_free(&g);
        }
    }
    int rc = BK_OK;
    if (r.status == 200) {
        *exists = 1;
        *size = r.have_clen ? r.clen : 0;
        memcpy(etag, r.etag, sizeof r.etag);
    } else if (r.status != 404) {
        rc = s3_fail(s, &r, what, e);
    }
    resp_free(&r);
    return rc;
}

/* Whether the stored name holds data: 1 same, 0 different, -1 error. */
static int s3_same(bk_storage *s, const char *name, const void *data, size_t len,
                   const uint8_t md5[16], uint64_t size, const char *etag, const char *op,
                   bk_err *e) {
    if (size != len)
        return 0;
    int m = etag_matches(etag, md5);
    if (m >= 0)
        return m;
    uint8_t *have = NULL;
    size_t hlen = 0;
    if (s3_get_key(s, name, op, &have, &hlen, e) != BK_OK)
        return -1;
    int same = hlen == len && (len == 0 || memcmp(have, data, len) == 0);
    free(have);
    return same;
}

static void s3_delete_quiet(bk_storage *s, const char *key) {
    s3_resp r;
    (void)s3_call(s, "DELETE", key, NULL, NULL, 0, NULL, 0, S3_ERRBODY_MAX, &r, "delete",
                  NULL);
    resp_free(&r);
}

static int s3_put(bk_storage *s, const char *name, const void *data, size_t len,
                  bk_err *e) {
    struct bk_s3 *c = s->be;
    char key[BK_S3_PREFIX_MAX + BK_STORAGE_NAME_MAX + 4], what[120], etag[80];
    uint8_t md5[16];
    char md5b64[32];
    what_of(what, sizeof what, "put", name);
    if (object_key(c, name, key, sizeof key) != 0)
        return bk_err_set(e, BK_E_INVAL, "storage: %s: %s: key too long", s->label, what);
    digest(EVP_md5(), data, len, md5);
    EVP_EncodeBlock((unsigned char *)md5b64, md5, 16);

    /* already there? */
    int exists = 0;
    uint64_t size = 0;
    if (s3_head_key(s, name, "put", &exists, &size, etag, e) != BK_OK)
        return BK_ERR;
    if (exists) {
        int same = s3_same(s, name, data, len, md5, size, etag, "put", e);
        if (same < 0)
            return BK_ERR;
        return same ? BK_OK : bk_storage_exists_different(s, name, e);
    }

    s3_resp r;
    int inm = !c->no_if_none_match;
    if (s3_call(s, "PUT", key, NULL, data, len, md5b64, inm, S3_ERRBODY_MAX, &r, what,
                e) != BK_OK) {
        resp_free(&r);
        return BK_ERR;
    }
    if (inm && (r.status == 501 || r.status == 400) && r.len > 0 &&
        (memmem(r.buf, r.len, "If-None-Match", 13) != NULL ||
         memmem(r.buf, r.len, "NotImplemented", 14) != NULL)) {
        /* a server without conditional writes: the HEAD above has to do */
        c->no_if_none_match = 1;
        resp_free(&r);
        if (s3_call(s, "PUT", key, NULL, data, len, md5b64, 0, S3_ERRBODY_MAX, &r, what,
                    e) != BK_OK) {
            resp_free(&r);
            return BK_ERR;
        }
    }
    if (r.status == 412 || r.status == 409) {
        /* someone put the name between our HEAD and our PUT */
        resp_free(&r);
        if (s3_head_key(s, name, "put", &exists, &size, etag, e) != BK_OK)
            return BK_ERR;
        int same = exists ? s3_same(s, name, data, len, md5, size, etag, "put", e) : 0;
        if (same < 0)
            return BK_ERR;
        if (!exists)
            return bk_err_set(e, BK_E_IO,
                              "storage: %s: %s: the server refused the put as a conflict "
                              "(HTTP 409/412) but has no such object",
                              s->label, what);
        return same ? BK_OK : bk_storage_exists_different(s, name, e);
    }
    if (r.status != 200) {
        int rc = s3_fail(s, &r, what, e);
        resp_free(&r);
        return rc;
    }
    resp_free(&r);

    /* check before it counts: size and ETag (or the bytes) */
    if (s3_head_key(s, name, "put (check)", &exists, &size, etag, e) != BK_OK)
        return BK_ERR;
    int same =
        exists ? s3_same(s, name, data, len, md5, size, etag, "put (check)", e) : 0;
    if (same == 1)
        return BK_OK;
    if (same < 0)
        return BK_ERR;
    if (!exists)
        return bk_err_set(e, BK_E_IO,
                          "storage: %s: %s: the server accepted the object but does not "
                          "show it",
                          s->label, what);
    s3_delete_quiet(s, key);
    return bk_err_set(e, BK_E_IO,
                      "storage: object '%s' in '%s' reads back different bytes; removed",
                      name, s->label);
}

static int s3_get(bk_storage *s, const char *name, void **data, size_t *len, bk_err *e) {
    uint8_t *d = NULL;
    if (s3_get_key(s, name, "get", &d, len, e) != BK_OK)
        return BK_ERR;
    *data = d;
    return BK_OK;
}

static int s3_head(bk_storage *s, const char *name, int *exists, uint64_t *size,
                   bk_err *e) {
    char etag[80];
    uint64_t sz = 0;
    if (s3_head_key(s, name, "head", exists, &sz, etag, e) != BK_OK)
        return BK_ERR;
    if (size != NULL)
        *size = sz;
    return BK_OK;
}

static int s3_list(bk_storage *s, const char *prefix, char ***names, size_t *count,
                   bk_err *e) {
    struct bk_s3 *c = s->be;
    size_t kpl = strlen(c->key_prefix), n = 0, cap = 0;
    char **v = NULL, *token = NULL, what[120];
    what_of(what, sizeof what, "list", prefix);
    size_t fl = kpl + strlen(prefix);
    char *full = malloc(fl + 1);
    char *eprefix = NULL;
    if (full != NULL) {
        memcpy(full, c->key_prefix, kpl);
        memcpy(full + kpl, prefix, strlen(prefix) + 1);
        eprefix = bk_s3_uri_encode(full, 0);
    }
    free(full);
    if (eprefix == NULL)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory listing '%s'", s->label);
    int rc = BK_OK;
    for (int page = 0;; page++) {
        char *etoken = token != NULL ? bk_s3_uri_encode(token, 0) : NULL;
        size_t ql = strlen(eprefix) + (etoken ? strlen(etoken) : 0) + 128;
        char *q = malloc(ql), *sorted = NULL;
        if (q != NULL && (token == NULL || etoken != NULL)) {
            snprintf(q, ql, "list-type=2&delimiter=%%2F&max-keys=%d&prefix=%s%s%s",
                     c->max_keys, eprefix, etoken ? "&continuation-token=" : "",
                     etoken ? etoken : "");
            sorted = bk_s3_sort_query(q);
        }
        free(q);
        free(etoken);
        if (sorted == NULL) {
            rc = bk_err_set(e, BK_E_NOMEM, "storage: out of memory listing '%s'",
                            s->label);
            break;
        }
        s3_resp r;
        rc = s3_call(s, "GET", NULL, sorted, NULL, 0, NULL, 0, 64u << 20, &r, what, e);
        free(sorted);
        if (rc == BK_OK && r.status != 200)
            rc = s3_fail(s, &r, what, e);
        char **keys = NULL, *next = NULL;
        size_t nk = 0;
        int truncated = 0;
        if (rc == BK_OK) {
            bk_err pe;
            if (bk_s3_parse_list((const char *)r.buf, r.len, &keys, &nk, &truncated,
                                 &next, &pe) != BK_OK)
                rc =
                    bk_err_set(e, pe.code, "storage: %s: %s: %s", s->label, what, pe.msg);
        }
        resp_free(&r);
        for (size_t i = 0; rc == BK_OK && i < nk; i++) {
            const char *nm = keys[i] + kpl;
            if (strncmp(keys[i], c->key_prefix, kpl) != 0 || !bk_storage_valid_name(nm) ||
                strncmp(nm, prefix, strlen(prefix)) != 0)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                char **nv = realloc(v, ncap * sizeof *nv);
                if (nv == NULL) {
                    rc = bk_err_set(e, BK_E_NOMEM, "storage: out of memory listing '%s'",
                                    s->label);
                    break;
                }
                v = nv;
                cap = ncap;
            }
            v[n] = strdup(nm);
            if (v[n] == NULL) {
                rc = bk_err_set(e, BK_E_NOMEM, "storage: out of memory listing '%s'",
                                s->label);
                break;
            }
            n++;
        }
        bk_storage_names_free(keys, nk);
        free(token);
        token = next;
        if (rc != BK_OK || !truncated)
            break;
        if (page > 1000000) {
            rc = bk_err_set(e, BK_E_PROTO, "storage: %s: %s: the listing does not end",
                            s->label, what);
            break;
        }
    }
    free(token);
    free(eprefix);
    return bk_storage_list_done(v, n, rc, names, count);
}

static int s3_del(bk_storage *s, const char *name, bk_err *e) {
    char key[BK_S3_PREFIX_MAX + BK_STORAGE_NAME_MAX + 4], what[120];
    what_of(what, sizeof what, "delete", name);
    if (object_key(s->be, name, key, sizeof key) != 0)
        return bk_err_set(e, BK_E_INVAL, "storage: %s: %s: key too long", s->label, what);
    s3_resp r;
    if (s3_call(s, "DELETE", key, NULL, NULL, 0, NULL, 0, S3_ERRBODY_MAX, &r, what, e) !=
        BK_OK) {
        resp_free(&r);
        return BK_ERR;
    }
    int rc = BK_OK;
    if (r.status == 404 && !no_such_bucket(&r))
        rc = BK_OK; /* absent: fine */
    else if (r.status != 204 && r.status != 200)
        rc = s3_fail(s, &r, what, e);
    resp_free(&r);
    return rc;
}

static void s3_free(struct bk_s3 *c) {
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    if (c->secret != NULL) {
        OPENSSL_cleanse(c->secret, strlen(c->secret));
        free(c->secret);
    }
    if (c->token != NULL) {
        OPENSSL_cleanse(c->token, strlen(c->token));
        free(c->token);
    }
    free(c->access);
    free(c->host_base);
    free(c->key_prefix);
    free(c);
}

static void s3_close(bk_storage *s) {
    s3_free(s->be);
    s->be = NULL;
}

static const storage_ops s3_ops = {s3_put, s3_get,   s3_head, s3_list,
                                   s3_del, s3_close, NULL};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int bk_storage_open_s3(bk_storage *s, const char *url, bk_err *e) {
    bk_s3_cfg cfg;
    if (bk_s3_parse_url(url, &cfg, e) != BK_OK)
        return BK_ERR;
    char label[BK_S3_BUCKET_MAX + BK_S3_PREFIX_MAX + 8];
    snprintf(label, sizeof label, "s3://%s%s%s", cfg.bucket, cfg.prefix[0] ? "/" : "",
             cfg.prefix);
    char *nl = strdup(label);
    if (nl == NULL)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    free(s->label);
    s->label = nl;

    /* credentials: from the environment only */
    const char *ak = env_nonempty("BR2K_S3_ACCESS_KEY_ID");
    const char *sk = env_nonempty("BR2K_S3_SECRET_ACCESS_KEY");
    const char *tk = env_nonempty("BR2K_S3_SESSION_TOKEN");
    const char *vars = "BR2K_S3_ACCESS_KEY_ID / BR2K_S3_SECRET_ACCESS_KEY";
    const char *akv = "BR2K_S3_ACCESS_KEY_ID", *skv = "BR2K_S3_SECRET_ACCESS_KEY";
    if (ak == NULL && sk == NULL) {
        ak = env_nonempty("AWS_ACCESS_KEY_ID");
        sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
        tk = env_nonempty("AWS_SESSION_TOKEN");
        vars = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY";
        akv = "AWS_ACCESS_KEY_ID";
        skv = "AWS_SECRET_ACCESS_KEY";
        if (ak == NULL && sk == NULL)
            return bk_err_set(
                e, BK_E_INVAL,
                "storage: %s: no credentials: set BR2K_S3_ACCESS_KEY_ID and "
                "BR2K_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY)",
                s->label);
    }
    if (ak == NULL || sk == NULL)
        return bk_err_set(e, BK_E_INVAL,
                          "storage: %s: incomplete credentials: %s is set but %s is not",
                          s->label, ak != NULL ? akv : skv, ak != NULL ? skv : akv);

    int max_keys = 1000;
    const char *mk = getenv("BR2K_S3_MAX_KEYS");
    if (mk != NULL && mk[0] != '\0') {
        char *ep = NULL;
        long x = strtol(mk, &ep, 10);
        if (ep == NULL || *ep != '\0' || x < 1 || x > 1000)
            return bk_err_set(
                e, BK_E_INVAL,
                "storage: invalid value '%.20s' for BR2K_S3_MAX_KEYS: expected "
                "an integer from 1 to 1000",
                mk);
        max_keys = (int)x;
    }

    pthread_once(&curl_once, curl_init_once);
    struct bk_s3 *c = calloc(1, sizeof *c);
    if (c == NULL)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    c->cfg = cfg;
    c->vars = vars;
    c->max_keys = max_keys;
    snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", cfg.region);
    c->access = strdup(ak);
    c->secret = strdup(sk);
    c->token = tk != NULL ? strdup(tk) : NULL;
    size_t kpl = strlen(cfg.prefix);
    c->key_prefix = malloc(kpl + 2);
    if (c->key_prefix != NULL) {
        memcpy(c->key_prefix, cfg.prefix, kpl);
        if (kpl > 0)
            c->key_prefix[kpl++] = '/';
        c->key_prefix[kpl] = '\0';
    }
    if (cfg.path_style) {
        c->host_base = strdup(cfg.endpoint);
    } else {
        const char *host = strstr(cfg.endpoint, "://") + 3;
        size_t hl = strlen(cfg.endpoint) + strlen(cfg.bucket) + 2;
        c->host_base = malloc(hl);
        if (c->host_base != NULL)
            snprintf(c->host_base, hl, "%.*s%s.%s", (int)(host - cfg.endpoint),
                     cfg.endpoint, cfg.bucket, host);
    }
    c->curl = curl_easy_init();
    if (c->access == NULL || c->secret == NULL || (tk != NULL && c->token == NULL) ||
        c->key_prefix == NULL || c->host_base == NULL || c->curl == NULL) {
        s3_free(c);
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    }
    s->be = c;
    s->ops = &s3_ops;
    return BK_OK;
}
