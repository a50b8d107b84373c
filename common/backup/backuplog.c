/* backuplog.c - the state-backup-log codec; see backuplog.h. */
#include "backup/backuplog.h"
#include "base/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <secp256k1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/ecies.h"
#include "base/hex.h"
#include "backup/seal.h"

#define PUB_FILE_MAX 4096

/* ---- time ---- */

void bk_blog_time(int64_t unix_ms, char out[32]) {
    if (unix_ms < 0)
        unix_ms = 0;
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    gmtime_r(&secs, &tm);
    unsigned year = (unsigned)(tm.tm_year + 1900) % 10000u;
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", year,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned)(unix_ms % 1000));
}

/* n decimal digits at s into *v; 0 when one is not a digit. */
static int digits(const char *s, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

int bk_blog_time_parse(const char *s, int64_t *unix_ms, bk_err *e) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0, ms = 0;
    *unix_ms = 0;
    if (s == NULL || strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' ||
        !digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se) ||
        !digits(s + 20, 3, &ms) || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
        h > 23 || mi > 59 || se > 59)
        goto bad;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        goto bad;
    int64_t v = (int64_t)t * 1000 + ms;
    char back[32];
    bk_blog_time(v, back);
    if (strcmp(back, s) != 0) /* Feb 30 and the like */
        goto bad;
    *unix_ms = v;
    return BK_OK;
bad:
    return bk_err_set(e, BK_E_INVAL,
                      "'%.40s' is not an ISO-8601 UTC time like 2026-11-24T13:20:01.123Z",
                      s ? s : "(null)");
}

/* ---- the check ---- */

/* A field's full name, "state_data.sha256", into buf. */
static const char *path(char *buf, size_t size, const char *pre, const char *name) {
    snprintf(buf, size, "%s%s", pre, name);
    return buf;
}

static int bad(bk_err *e, const char *pre, const char *name, const char *what) {
    char p[96];
    return bk_err_set(e, BK_E_INVAL, "backup log: '%s' %s", path(p, sizeof(p), pre, name),
                      what);
}

static int get(const json_t *o, const char *pre, const char *name, const json_t **v,
               bk_err *e) {
    *v = json_object_get(o, name);
    return *v == NULL ? bad(e, pre, name, "is missing") : BK_OK;
}

/* A non-empty string (of at most max bytes when max > 0). */
static int need_str(const json_t *o, const char *pre, const char *name, size_t max,
                    const char **s, bk_err *e) {
    const json_t *v;
    *s = NULL;
    if (get(o, pre, name, &v, e) != BK_OK)
        return BK_ERR;
    if (!json_is_string(v))
        return bad(e, pre, name, "is not a string");
    if (json_string_length(v) == 0)
        return bad(e, pre, name, "is empty");
    if (max > 0 && json_string_length(v) > max)
        return bad(e, pre, name, "is too long");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return bad(e, pre, name, "holds a NUL character");
    *s = json_string_value(v);
    return BK_OK;
}

static int need_int(const json_t *o, const char *pre, const char *name, json_int_t min,
                    json_int_t *out, bk_err *e) {
    const json_t *v;
    *out = 0;
    if (get(o, pre, name, &v, e) != BK_OK)
        return BK_ERR;
    if (!json_is_integer(v))
        return bad(e, pre, name, "is not an integer");
    if (json_integer_value(v) < min) {
        char what[64];
        snprintf(what, sizeof(what), "must be at least %" JSON_INTEGER_FORMAT, min);
        return bad(e, pre, name, what);
    }
    *out = json_integer_value(v);
    return BK_OK;
}

static int is_lower_hex(const char *s, size_t n) {
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int need_hex(const json_t *o, const char *pre, const char *name, size_t n,
                    int empty_ok, bk_err *e) {
    const json_t *v;
    if (get(o, pre, name, &v, e) != BK_OK)
        return BK_ERR;
    const char *s = json_string_value(v);
    if (s != NULL && empty_ok && s[0] == '\0')
        return BK_OK;
    if (s == NULL || !is_lower_hex(s, n)) {
        char what[64];
        snprintf(what, sizeof(what), "is not %zu lowercase hex digits", n);
        return bad(e, pre, name, what);
    }
    return BK_OK;
}

static int need_time(const json_t *o, const char *pre, const char *name, int64_t *ms,
                     bk_err *e) {
    const char *s;
    if (need_str(o, pre, name, 64, &s, e) != BK_OK)
        return BK_ERR;
    if (bk_blog_time_parse(s, ms, NULL) != BK_OK)
        return bad(e, pre, name,
                   "is not an ISO-8601 UTC time like 2026-11-24T13:20:01.123Z");
    return BK_OK;
}

/* An array of distinct non-empty strings (at least one when nonempty). */
static int need_ids(const json_t *o, const char *name, int nonempty, const json_t **arr,
                    bk_err *e) {
    const json_t *v;
    *arr = NULL;
    if (get(o, "", name, &v, e) != BK_OK)
        return BK_ERR;
    if (!json_is_array(v))
        return bad(e, "", name, "is not an array");
    if (nonempty && json_array_size(v) == 0)
        return bad(e, "", name, "is empty");
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_string(x) || json_string_length(x) == 0)
            return bad(e, "", name, "holds an item that is not a non-empty string");
        for (size_t j = 0; j < i; j++)
            if (json_equal(x, json_array_get(v, j)))
                return bad(e, "", name, "holds an id twice");
    }
    *arr = v;
    return BK_OK;
}

static int in_array(const json_t *arr, const json_t *x) {
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (json_equal(json_array_get(arr, i), x))
            return 1;
    return 0;
}

/* A sealed object's part: state_data, snapshot or external_state. */
static int check_obj(const json_t *log, const char *name, bk_err *e) {
    const json_t *o;
    const char *s;
    json_int_t n;
    int64_t t;
    char pre[32];
    if (get(log, "", name, &o, e) != BK_OK)
        return BK_ERR;
    if (!json_is_object(o))
        return bad(e, "", name, "is not an object");
    snprintf(pre, sizeof(pre), "%s.", name);
    if (need_str(o, pre, "object", 200, &s, e) != BK_OK)
        return BK_ERR;
    if (strchr(s, '/') != NULL || s[0] == '.')
        return bad(e, pre, "object", "is not an object name (no '/', no leading '.')");
    if (need_hex(o, pre, "sha256", 64, 0, e) != BK_OK)
        return BK_ERR;
    if (strstr(s, json_string_value(json_object_get(o, "sha256"))) == NULL)
        return bad(e, pre, "object", "does not end with its sha256");
    if (need_int(o, pre, "size", 1, &n, e) != BK_OK ||
        need_int(o, pre, "plain_size", 0, &n, e) != BK_OK ||
        need_str(o, pre, "type", 64, &s, e) != BK_OK ||
        need_str(o, pre, "owner", 128, &s, e) != BK_OK ||
        need_time(o, pre, "created", &t, e) != BK_OK ||
        need_str(o, pre, "form", 200, &s, e) != BK_OK ||
        need_hex(o, pre, "data_key", BK_BLOG_WRAPPED_KEY_HEX, 0, e) != BK_OK)
        return BK_ERR;
    return BK_OK;
}

/* external_state: optional (logs written before it was added have none);
 * when present, a sealed object's part plus the cut it was taken at (the
 * log's), the offset the external state records as applied and its number
 * of keys. */
static int check_external(const json_t *log, json_int_t cut, bk_err *e) {
    static const char pre[] = "external_state.";
    const json_t *o = json_object_get(log, "external_state");
    json_int_t n;
    if (o == NULL)
        return BK_OK;
    if (check_obj(log, "external_state", e) != BK_OK ||
        need_int(o, pre, "cut_offset", -1, &n, e) != BK_OK)
        return BK_ERR;
    if (n != cut)
        return bad(e, pre, "cut_offset", "is not the log's 'cut_offset'");
    if (need_int(o, pre, "applied_offset", -1, &n, e) != BK_OK ||
        need_int(o, pre, "key_count", 0, &n, e) != BK_OK)
        return BK_ERR;
    return BK_OK;
}

static int check_storage(const json_t *log, bk_err *e) {
    static const char *const creds[] = {"secret", "@", "x-amz-credential", "accesskey",
                                        "x-amz-signature"};
    const json_t *o;
    const char *url, *kind, *s;
    if (get(log, "", "storage", &o, e) != BK_OK)
        return BK_ERR;
    if (!json_is_object(o))
        return bad(e, "", "storage", "is not an object");
    if (need_str(o, "storage.", "url", 2048, &url, e) != BK_OK)
        return BK_ERR;
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
        if (strcasestr(url, creds[i]) != NULL)
            return bk_err_set(
                e, BK_E_INVAL,
                "backup log: 'storage.url' looks like it holds a credential "
                "('%s'): credentials must never be in the log",
                creds[i]);
    if (need_str(o, "storage.", "kind", 16, &kind, e) != BK_OK)
        return BK_ERR;
    if (strcmp(kind, "file") != 0 && strcmp(kind, "s3") != 0)
        return bad(e, "storage.", "kind", "is neither \"file\" nor \"s3\"");
    if (strncmp(url, kind, strlen(kind)) != 0 ||
        strncmp(url + strlen(kind), "://", 3) != 0)
        return bad(e, "storage.", "url",
                   "does not start with its kind's scheme (file://, s3://)");
    if (need_str(o, "storage.", "auth", 200, &s, e) != BK_OK ||
        need_str(o, "storage.", "form", 200, &s, e) != BK_OK)
        return BK_ERR;
    return BK_OK;
}

int bk_blog_check(const json_t *log, bk_err *e) {
    const char *s;
    json_int_t version, cut, prev, first, epoch;
    int64_t start, end;
    const json_t *members, *alive;
    if (!json_is_object(log))
        return bk_err_set(e, BK_E_INVAL, "backup log: not a JSON object");
    if (need_str(log, "", "format", 64, &s, e) != BK_OK)
        return BK_ERR;
    if (strcmp(s, BK_BLOG_FORMAT) != 0)
        return bk_err_set(
            e, BK_E_INVAL,
            "backup log: 'format' is '%.64s', expected '" BK_BLOG_FORMAT "'", s);
    if (need_str(log, "", "service", 200, &s, e) != BK_OK ||
        need_int(log, "", "version", 2, &version, e) != BK_OK ||
        need_time(log, "", "start", &start, e) != BK_OK ||
        need_time(log, "", "end", &end, e) != BK_OK)
        return BK_ERR;
    if (end < start)
        return bad(e, "", "end", "is before 'start'");
    if (need_ids(log, "members", 1, &members, e) != BK_OK ||
        need_ids(log, "alive_members", 0, &alive, e) != BK_OK)
        return BK_ERR;
    for (size_t i = 0; i < json_array_size(alive); i++)
        if (!in_array(members, json_array_get(alive, i)))
            return bk_err_set(
                e, BK_E_INVAL,
                "backup log: 'alive_members' holds '%.64s', which is not in "
                "'members'",
                json_string_value(json_array_get(alive, i)));
    if (need_str(log, "", "subject", 128, &s, e) != BK_OK ||
        need_int(log, "", "epoch", 0, &epoch, e) != BK_OK ||
        need_int(log, "", "cut_offset", -1, &cut, e) != BK_OK ||
        need_int(log, "", "previous_cut_offset", -1, &prev, e) != BK_OK ||
        need_int(log, "", "log_first_offset", 0, &first, e) != BK_OK)
        return BK_ERR;
    if (prev > cut)
        return bad(e, "", "previous_cut_offset", "is after 'cut_offset'");
    if (need_str(log, "", "app", 64, &s, e) != BK_OK ||
        need_hex(log, "", "state_digest", 64, 0, e) != BK_OK ||
        need_hex(log, "", "record_digest", 64, cut < 0, e) != BK_OK ||
        check_obj(log, "state_data", e) != BK_OK ||
        check_obj(log, "snapshot", e) != BK_OK || check_external(log, cut, e) != BK_OK ||
        check_storage(log, e) != BK_OK)
        return BK_ERR;
    return BK_OK;
}

/* ---- encryption ---- */

char *bk_blog_text(const json_t *log) {
    return json_dumps(log, JSON_COMPACT | JSON_SORT_KEYS);
}

int bk_blog_encrypt(const json_t *log, const uint8_t pub[65], char **hex, bk_err *e) {
    *hex = NULL;
    if (bk_blog_check(log, e) != BK_OK)
        return BK_ERR;
    char *text = bk_blog_text(log);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "backup log: out of memory");
    int rc = bk_ecies_encrypt(pub, text, strlen(text), hex, e);
    OPENSSL_cleanse(text, strlen(text)); /* it holds the wrapped data keys only, but */
    free(text);
    if (rc != BK_OK)
        return bk_err_prefix(e, "backup log: cannot encrypt");
    return BK_OK;
}

/* Map an ECIES failure to the message of backuplog.h. */
static int decrypt_failed(bk_err *e, const char *what) {
    if (e == NULL)
        return BK_ERR;
    if (strstr(e->msg, "bad mac") != NULL)
        return bk_err_set(
            e, BK_E_INVAL,
            "%s: cannot decrypt: bad mac (wrong service key or tampered log)", what);
    return bk_err_prefix(e, "%s: cannot decrypt", what);
}

int bk_blog_decrypt(const char *hex, const bk_eth_key *k, json_t **log, bk_err *e) {
    void *msg = NULL;
    size_t len = 0;
    bk_err le;
    bk_err_clear(&le);
    *log = NULL;
    if (hex == NULL)
        return bk_err_set(e, BK_E_INVAL, "backup log: no ciphertext");
    if (bk_ecies_decrypt(k, hex, &msg, &len, &le) != BK_OK) {
        decrypt_failed(&le, "backup log");
        return bk_err_set(e, le.code, "%s", le.msg);
    }
    json_error_t je;
    json_t *j = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &je);
    OPENSSL_cleanse(msg, len);
    free(msg);
    if (j == NULL)
        return bk_err_set(e, BK_E_INVAL, "backup log: not JSON: %s", je.text);
    if (bk_blog_check(j, e) != BK_OK) {
        json_decref(j);
        return BK_ERR;
    }
    *log = j;
    return BK_OK;
}

int bk_blog_decrypt_raw(const uint8_t *raw, size_t len, const bk_eth_key *k, json_t **log,
                        bk_err *e) {
    *log = NULL;
    char *hex = bk_hex_encode_alloc(raw, len, 0);
    if (hex == NULL)
        return bk_err_set(e, BK_E_NOMEM, "backup log: out of memory");
    int rc = bk_blog_decrypt(hex, k, log, e);
    free(hex);
    return rc;
}

int bk_blog_wrap_key(const uint8_t key[32], const uint8_t pub[65], char **hex,
                     bk_err *e) {
    char text[65];
    *hex = NULL;
    bk_hex_encode(key, 32, 0, text);
    int rc = bk_ecies_encrypt(pub, text, 64, hex, e);
    OPENSSL_cleanse(text, sizeof(text));
    if (rc != BK_OK)
        return bk_err_prefix(e, "data key: cannot encrypt");
    return BK_OK;
}

int bk_blog_unwrap_key(const char *hex, const bk_eth_key *k, uint8_t key[32], bk_err *e) {
    void *msg = NULL;
    size_t len = 0;
    bk_err le;
    bk_err_clear(&le);
    memset(key, 0, 32);
    if (hex == NULL)
        return bk_err_set(e, BK_E_INVAL, "data key: missing");
    if (bk_ecies_decrypt(k, hex, &msg, &len, &le) != BK_OK) {
        decrypt_failed(&le, "data key");
        return bk_err_set(e, le.code, "%s", le.msg);
    }
    int rc = BK_OK;
    if (len != 64 || bk_hex_decode_exact(msg, key, 32, NULL) != BK_OK) {
        memset(key, 0, 32);
        rc = bk_err_set(e, BK_E_INVAL, "data key: not 64 hex digits");
    }
    OPENSSL_cleanse(msg, len);
    free(msg);
    return rc;
}

/* ---- the service key ---- */

int bk_service_key_load(const char *path_or_empty, bk_eth_key *k, bk_err *e) {
    if (path_or_empty == NULL || path_or_empty[0] == '\0') {
        const char *v = getenv(BK_SERVICE_KEY_ENV);
        const char *f = getenv(BK_SERVICE_KEY_FILE_ENV);
        if ((v == NULL || v[0] == '\0') && f != NULL && f[0] != '\0')
            path_or_empty = f;
        else if (v == NULL || v[0] == '\0') {
            memset(k, 0, sizeof(*k));
            return bk_err_set(
                e, BK_E_NOTFOUND,
                "no service key: give a key file, or set " BK_SERVICE_KEY_ENV
                " (the key) or " BK_SERVICE_KEY_FILE_ENV " (br2k keygen makes one)");
        }
    }
    if (bk_eth_key_load(path_or_empty, BK_SERVICE_KEY_ENV, k, e) != BK_OK)
        return bk_err_prefix(e, "service key");
    return BK_OK;
}

/* s (trimmed, n bytes) as 0x04... into pub; 0 when it is not that. */
static int parse_pub(const char *s, size_t n, uint8_t pub[65]) {
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
    }
    size_t got = 0;
    if (n != 130 || bk_hex_decode_n(s, n, pub, 65, &got, NULL) != BK_OK || got != 65 ||
        pub[0] != 0x04)
        return 0;
    secp256k1_pubkey pk;
    return secp256k1_ec_pubkey_parse(secp256k1_context_static, &pk, pub, 65) == 1;
}

/* Whether s is hex digits only (optional 0x): a key, never a path. */
static int looks_hex(const char *s, size_t n) {
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
    }
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (bk_hex_digit((unsigned char)s[i]) < 0)
            return 0;
    return 1;
}

static void trim(const char **s, size_t *n) {
    while (*n > 0 && strchr(" \t\r\n", (*s)[0]) != NULL) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && strchr(" \t\r\n", (*s)[*n - 1]) != NULL)
        (*n)--;
}

int bk_service_pub_load(const char *hex_or_path, uint8_t pub[65], bk_err *e) {
    memset(pub, 0, 65);
    const char *s = hex_or_path != NULL ? hex_or_path : "";
    size_t n = strlen(s);
    trim(&s, &n);
    if (n == 0) {
        bk_eth_key k;
        if (bk_service_key_load("", &k, e) != BK_OK)
            return BK_ERR;
        int rc = bk_eth_pubkey(&k, pub, e);
        bk_eth_key_clear(&k);
        return rc;
    }
    if (parse_pub(s, n, pub))
        return BK_OK;
    if (looks_hex(s, n)) {
        memset(pub, 0, 65);
        return bk_err_set(e, BK_E_INVAL,
                          "service public key: expected 0x04 and 128 hex digits of a "
                          "secp256k1 point (br2k keygen prints it), got %zu hex digits",
                          n);
    }
    FILE *f = fopen(hex_or_path, "r");
    if (f == NULL)
        return bk_err_set(e, BK_E_IO, "service public key: cannot open '%s': %s",
                          hex_or_path, strerror(errno));
    char buf[PUB_FILE_MAX + 1];
    size_t len = fread(buf, 1, PUB_FILE_MAX, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    buf[len] = '\0';
    const char *t = buf;
    size_t tn = len;
    trim(&t, &tn);
    int ok = !more && parse_pub(t, tn, pub);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (!ok) {
        memset(pub, 0, 65);
        return bk_err_set(e, BK_E_INVAL,
                          "service public key: '%s' does not hold one (0x04 and 128 hex "
                          "digits of a secp256k1 point)",
                          hex_or_path);
    }
    return BK_OK;
}

int bk_blog_put_sealed(bk_storage *st, int64_t version, const char *kind,
                       const void *plain, size_t len, const uint8_t pub[65], char *name,
                       char sha[65], size_t *size, char **wrapped, bk_err *e) {
    uint8_t key[BK_SEAL_KEY_LEN];
    void *sealed = NULL;
    *wrapped = NULL;
    if (bk_seal(plain, len, key, &sealed, size, sha, e) != BK_OK)
        return BK_ERR;
    snprintf(name, BK_STORAGE_NAME_MAX + 1, "v%08" PRId64 "-%s-%s", version, kind, sha);
    int rc = bk_storage_put(st, name, sealed, *size, e);
    if (rc == BK_OK)
        rc = bk_blog_wrap_key(key, pub, wrapped, e);
    OPENSSL_cleanse(key, sizeof(key));
    free(sealed);
    return rc;
}

int bk_blog_get_sealed(bk_storage *st, const json_t *meta, const bk_eth_key *k,
                       void **plain, size_t *len, bk_err *e) {
    *plain = NULL;
    *len = 0;
    const char *obj = json_string_value(json_object_get(meta, "object"));
    const char *sha = json_string_value(json_object_get(meta, "sha256"));
    const char *wrapped = json_string_value(json_object_get(meta, "data_key"));
    json_int_t size = json_integer_value(json_object_get(meta, "size"));
    if (obj == NULL || sha == NULL || wrapped == NULL)
        return bk_err_set(e, BK_E_INVAL,
                          "sealed object: the log names no object, sha256 or data key");
    void *sealed = NULL;
    size_t slen = 0;
    uint8_t key[BK_SEAL_KEY_LEN];
    if (bk_storage_get(st, obj, &sealed, &slen, e) != BK_OK)
        return bk_err_prefix(e, "object '%s'", obj);
    int rc = BK_OK;
    if ((json_int_t)slen != size)
        rc = bk_err_set(e, BK_E_INVAL,
                        "object '%s': %zu bytes, the log says %" JSON_INTEGER_FORMAT, obj,
                        slen, size);
    if (rc == BK_OK)
        rc = bk_blog_unwrap_key(wrapped, k, key, e);
    if (rc == BK_OK && bk_unseal(key, sealed, slen, sha, plain, len, e) != BK_OK)
        rc = bk_err_prefix(e, "object '%s'", obj);
    OPENSSL_cleanse(key, sizeof(key));
    free(sealed);
    return rc;
}

json_t *bk_blog_object_meta(const char *name, const char *sha, size_t size,
                            size_t plain_size, const char *data_key, const char *type,
                            const char *owner) {
    char when[32];
    bk_blog_time(bk_wall_ms(), when);
    return json_pack("{ss ss sI sI ss ss ss ss ss}", "object", name, "sha256", sha,
                     "size", (json_int_t)size, "plain_size", (json_int_t)plain_size,
                     "created", when, "data_key", data_key, "type", type, "owner", owner,
                     "form", "br2k-seal v1 (zlib, AES-256-GCM)");
}
