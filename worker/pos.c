/* pos.c - the worker's position file and durable file replacement. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "worker.h"

static void to_hex(const unsigned char *b, size_t n, char *hex) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[b[i] >> 4];
        hex[2 * i + 1] = digits[b[i] & 15];
    }
    hex[2 * n] = '\0';
}

void bk_record_digest(const void *key, size_t key_len, const void *value, size_t len,
                      char hex[65]) {
    unsigned char klen[8], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint64_t k = key_len;
    for (int i = 7; i >= 0; i--) {
        klen[i] = (unsigned char)(k & 0xff);
        k >>= 8;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, klen, sizeof(klen)) != 1 ||
        (key_len && EVP_DigestUpdate(c, key, key_len) != 1) ||
        (len && EVP_DigestUpdate(c, value, len) != 1) ||
        EVP_DigestFinal_ex(c, md, &mdlen) != 1)
        abort(); /* only on allocation failure */
    EVP_MD_CTX_free(c);
    to_hex(md, mdlen, hex);
}

static int pos_text(const bk_pos *p, char *buf, size_t size) {
    int n = snprintf(buf, size, "br2k-pos 1 %" PRId64 " %s %" PRId64 " %" PRId64, p->lpi,
                     p->digest[0] ? p->digest : "-", p->inflight_first, p->inflight_last);
    return bk_fixed_line(buf, size, BK_POS_WIDTH, n);
}

int bk_pos_write(const char *path, const bk_pos *p, bk_err *e) {
    char buf[256];
    int n = pos_text(p, buf, sizeof(buf));
    if (n < 0)
        return bk_err_set(e, BK_E_INVAL, "position too long for '%s'", path);
    return bk_file_replace(path, buf, (size_t)n, e);
}

int bk_pos_store(int *fd, const char *path, const bk_pos *p, bk_err *e) {
    char buf[256];
    int n = pos_text(p, buf, sizeof(buf));
    if (n < 0)
        return bk_err_set(e, BK_E_INVAL, "position too long for '%s'", path);
    return bk_file_overwrite(fd, path, buf, (size_t)n, e);
}

static int parse_i64(const char *s, int64_t *v) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0)
        return -1;
    *v = x;
    return 0;
}

int bk_pos_read(const char *path, bk_pos *p, int *exists, bk_err *e) {
    *exists = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return BK_OK;
        return bk_err_set(e, BK_E_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    char line[256];
    char *got = fgets(line, sizeof(line), f);
    fclose(f);
    if (got == NULL)
        return bk_err_set(e, BK_E_INVAL, "damaged position file '%s': empty", path);
    line[strcspn(line, "\n")] = '\0';
    char copy[256];
    memcpy(copy, line, strlen(line) + 1);
    char *fields[8], *save = NULL;
    int nf = 0;
    for (char *t = strtok_r(line, " ", &save); t != NULL && nf < 8;
         t = strtok_r(NULL, " ", &save))
        fields[nf++] = t;
    /* an optional 7th field "c<8 hex>" checks the text before it
     * (bk_fixed_line): a torn or damaged line is refused */
    if (nf == 7) {
        char want[16];
        size_t at = (size_t)(fields[6] - line);
        while (at > 0 && copy[at - 1] == ' ')
            at--;
        snprintf(want, sizeof(want), "c%08x", bk_text_check(copy, at));
        if (strcmp(fields[6], want) != 0)
            return bk_err_set(e, BK_E_INVAL, "damaged position file '%s': bad check",
                              path);
        nf = 6;
    }
    if (nf != 6 || strcmp(fields[0], "br2k-pos") != 0 || strcmp(fields[1], "1") != 0 ||
        parse_i64(fields[2], &p->lpi) != 0 || parse_i64(fields[4], &p->inflight_first) ||
        parse_i64(fields[5], &p->inflight_last) ||
        (strcmp(fields[3], "-") != 0 && strlen(fields[3]) != 64))
        return bk_err_set(e, BK_E_INVAL, "damaged position file '%s'", path);
    if (strcmp(fields[3], "-") == 0)
        p->digest[0] = '\0';
    else
        memcpy(p->digest, fields[3], 65);
    *exists = 1;
    return BK_OK;
}

/* ---- the held-results file (worker.h) ---- */

#define HELD_HEAD 128 /* bytes of the header line */

int bk_held_store(int *fd, const char *path, int64_t upto, const bk_held_rec *r, size_t n,
                  bk_err *e) {
    size_t body = 0;
    for (size_t i = 0; i < n; i++)
        body += 64 + (r[i].request_id ? strlen(r[i].request_id) : 0) + strlen(r[i].json);
    char *buf = malloc(HELD_HEAD + body + 1);
    if (buf == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    size_t len = HELD_HEAD;
    for (size_t i = 0; i < n; i++) {
        size_t rl = r[i].request_id ? strlen(r[i].request_id) : 0, jl = strlen(r[i].json);
        len += (size_t)snprintf(buf + len, 64, "%" PRId64 " %lld %zu\n", r[i].offset,
                                r[i].request_id ? (long long)rl : -1LL, jl);
        memcpy(buf + len, r[i].request_id ? r[i].request_id : "", rl);
        len += rl;
        memcpy(buf + len, r[i].json, jl);
        len += jl;
    }
    char head[HELD_HEAD + 1];
    int m = snprintf(head, sizeof(head), "br2k-held 1 %" PRId64 " %zu %zu %08x", upto, n,
                     len - HELD_HEAD, bk_text_check(buf + HELD_HEAD, len - HELD_HEAD));
    if (bk_fixed_line(head, sizeof(head), HELD_HEAD, m) < 0) {
        free(buf);
        return bk_err_set(e, BK_E_INVAL, "held header too long for '%s'", path);
    }
    memcpy(buf, head, HELD_HEAD);
    if (*fd < 0) {
        int created = access(path, F_OK) != 0;
        *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (*fd < 0) {
            free(buf);
            return bk_err_set(e, BK_E_IO, "cannot open '%s': %s", path, strerror(errno));
        }
        if (created) { /* make the new name durable once */
            char dir[4096];
            snprintf(dir, sizeof(dir), "%s", path);
            int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                if (fsync(dfd) != 0)
                    BK_WARN("cannot sync the directory of '%s'", path);
                close(dfd);
            }
        }
    }
    /* overwritten in place (trailing bytes of an older, longer content are
     * ignored: the header gives the length) */
    size_t off = 0;
    while (off < len) {
        ssize_t k = pwrite(*fd, buf + off, len - off, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            free(buf);
            return bk_err_set(e, BK_E_IO, "cannot write '%s': %s", path, strerror(errno));
        }
        off += (size_t)k;
    }
    free(buf);
    if (fdatasync(*fd) != 0)
        return bk_err_set(e, BK_E_IO, "cannot sync '%s': %s", path, strerror(errno));
    return BK_OK;
}

static void held_free_recs(bk_held_rec *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free((char *)r[i].request_id);
        free((char *)r[i].json);
    }
    free(r);
}

int bk_held_read(const char *path, int64_t *upto, bk_held_rec **out, size_t *nout,
                 bk_err *e) {
    *out = NULL;
    *nout = 0;
    *upto = -1;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            return BK_OK;
        return bk_err_set(e, BK_E_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    char head[HELD_HEAD + 1];
    size_t got = fread(head, 1, HELD_HEAD, f);
    head[got] = '\0';
    long long up = 0, bodylen = 0;
    size_t n = 0;
    unsigned check = 0;
    int at = 0;
    char want[16];
    if (got != HELD_HEAD ||
        sscanf(head, "br2k-held 1 %lld %zu %lld %8x%n", &up, &n, &bodylen, &check, &at) !=
            4 ||
        bodylen < 0 || bodylen > (1LL << 31) || n > (size_t)bodylen ||
        (snprintf(want, sizeof(want), " c%08x", bk_text_check(head, (size_t)at)),
         strncmp(head + at, want, strlen(want)) != 0)) {
        fclose(f);
        return bk_err_set(e, BK_E_INVAL, "damaged held-results file '%s'", path);
    }
    char *body = malloc((size_t)bodylen + 1);
    bk_held_rec *r = calloc(n ? n : 1, sizeof(*r));
    if (body == NULL || r == NULL) {
        fclose(f);
        free(body);
        free(r);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    got = fread(body, 1, (size_t)bodylen, f);
    fclose(f);
    body[bodylen] = '\0';
    size_t p = 0, i = 0;
    int ok = got == (size_t)bodylen && bk_text_check(body, got) == check;
    for (; ok && i < n; i++) {
        long long off = 0, rl = 0;
        size_t jl = 0;
        char *nl = memchr(body + p, '\n', got - p);
        size_t used = nl ? (size_t)(nl - (body + p)) + 1 : 0;
        if (nl == NULL || sscanf(body + p, "%lld %lld %zu", &off, &rl, &jl) != 3 ||
            rl < -1 || p + (size_t)used + (size_t)(rl > 0 ? rl : 0) + jl > got) {
            ok = 0;
            break;
        }
        p += used;
        r[i].offset = off;
        r[i].request_id = rl >= 0 ? strndup(body + p, (size_t)rl) : NULL;
        p += (size_t)(rl > 0 ? rl : 0);
        r[i].json = strndup(body + p, jl);
        p += jl;
        if (r[i].json == NULL || (rl >= 0 && r[i].request_id == NULL)) {
            i++;
            ok = 0;
            break;
        }
    }
    free(body);
    if (!ok) {
        held_free_recs(r, i);
        return bk_err_set(e, BK_E_INVAL, "damaged held-results file '%s'", path);
    }
    *upto = up;
    *out = r;
    *nout = n;
    return BK_OK;
}
