/* pos.c - the worker's position file and durable file replacement. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

#define HELD_HEAD 128 /* bytes of a frame's header line */

/* Write len bytes of buf at off, all of them. */
static int pwrite_all(int fd, const char *buf, size_t len, size_t off, const char *path,
                      bk_err *e) {
    size_t done = 0;
    while (done < len) {
        ssize_t k = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return bk_err_set(e, BK_E_IO, "cannot write '%s': %s", path, strerror(errno));
        done += (size_t)k;
    }
    return BK_OK;
}

static int held_open(bk_held_file *f, const char *path, bk_err *e) {
    int created = access(path, F_OK) != 0;
    f->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f->fd < 0)
        return bk_err_set(e, BK_E_IO, "cannot open '%s': %s", path, strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    bk_err de;
    if (created && bk_fsync_dir(dirname(dir), &de) != BK_OK) /* the new name, once */
        BK_WARN("%s", de.msg);
    f->seq = -1;
    f->end = 0;
    return BK_OK;
}

int bk_held_prepare(bk_held_file *f, const char *path, bk_err *e) {
    if (f->fd < 0 && held_open(f, path, e) != BK_OK)
        return BK_ERR;
    off_t size = lseek(f->fd, 0, SEEK_END);
    if (size < 0)
        return bk_err_set(e, BK_E_IO, "cannot size '%s': %s", path, strerror(errno));
    if ((size_t)size >= BK_HELD_SPACE)
        return BK_OK;
    /* zeros written (not a hole, not fallocate's unwritten extents): the
     * frames then overwrite allocated, written blocks, and each batch's
     * fdatasync flushes data only, no metadata */
    static const char zeros[65536];
    for (size_t off = (size_t)size; off < BK_HELD_SPACE; off += sizeof(zeros)) {
        size_t k =
            BK_HELD_SPACE - off < sizeof(zeros) ? BK_HELD_SPACE - off : sizeof(zeros);
        if (pwrite_all(f->fd, zeros, k, off, path, e) != BK_OK)
            return BK_ERR;
    }
    if (fsync(f->fd) != 0)
        return bk_err_set(e, BK_E_IO, "cannot sync '%s': %s", path, strerror(errno));
    return BK_OK;
}

/* v in decimal at p (at most 20 characters, no NUL): how many. */
static size_t put_int(char *p, int64_t v) {
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    size_t k = 0;
    if (v < 0)
        p[k++] = '-';
    while (n > 0)
        p[k++] = tmp[--n];
    return k;
}

int bk_held_write(bk_held_file *f, const char *path, int restart, int64_t upto,
                  int64_t base, const bk_held_rec *r, size_t n, bk_err *e) {
    if (f->fd < 0 && held_open(f, path, e) != BK_OK)
        return BK_ERR;
    if (f->seq < 0)
        restart = 1;
    size_t body = 0;
    for (size_t i = 0; i < n; i++)
        body += 64 + (r[i].request_id ? strlen(r[i].request_id) : 0) + strlen(r[i].json);
    char *buf = malloc(HELD_HEAD + body + 1);
    if (buf == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    size_t len = HELD_HEAD;
    for (size_t i = 0; i < n; i++) {
        size_t rl = r[i].request_id ? strlen(r[i].request_id) : 0, jl = strlen(r[i].json);
        /* "<offset> <id length or -1> <json length>\n", without snprintf
         * (a batch's frame has up to --batch-max of these lines) */
        len += put_int(buf + len, r[i].offset);
        buf[len++] = ' ';
        len += put_int(buf + len, r[i].request_id ? (int64_t)rl : -1);
        buf[len++] = ' ';
        len += put_int(buf + len, (int64_t)jl);
        buf[len++] = '\n';
        memcpy(buf + len, r[i].request_id ? r[i].request_id : "", rl);
        len += rl;
        memcpy(buf + len, r[i].json, jl);
        len += jl;
    }
    if (restart) { /* a new generation of frames from the start of the file */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t g = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                     ((uint64_t)getpid() << 40);
        f->gen = g == f->gen ? g + 1 : g;
        f->seq = -1;
        f->end = 0;
    }
    char head[HELD_HEAD + 1];
    int m = snprintf(head, sizeof(head),
                     "br2k-held 2 %016" PRIx64 " %" PRId64 " %" PRId64 " %" PRId64
                     " %zu %zu %08x",
                     f->gen, f->seq + 1, upto, base, n, len - HELD_HEAD,
                     bk_text_check(buf + HELD_HEAD, len - HELD_HEAD));
    if (bk_fixed_line(head, sizeof(head), HELD_HEAD, m) < 0) {
        free(buf);
        return bk_err_set(e, BK_E_INVAL, "held header too long for '%s'", path);
    }
    memcpy(buf, head, HELD_HEAD);
    int rc = pwrite_all(f->fd, buf, len, f->end, path, e);
    free(buf);
    if (rc != BK_OK)
        return BK_ERR;
    if (fdatasync(f->fd) != 0)
        return bk_err_set(e, BK_E_IO, "cannot sync '%s': %s", path, strerror(errno));
    f->seq++;
    f->end += len;
    return BK_OK;
}

static void held_free_recs(bk_held_rec *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free((char *)r[i].request_id);
        free((char *)r[i].json);
    }
    free(r);
}

/* Parse the n results of body[0..len) into r[] (strings malloc'd); the
 * number parsed in *done. BK_OK when all n are well formed. */
static int held_body(const char *body, size_t len, bk_held_rec *r, size_t n,
                     size_t *done) {
    size_t p = 0;
    *done = 0;
    for (size_t i = 0; i < n; i++) {
        long long off = 0, rl = 0;
        size_t jl = 0;
        const char *nl = memchr(body + p, '\n', len - p);
        size_t used = nl ? (size_t)(nl - (body + p)) + 1 : 0;
        if (nl == NULL || sscanf(body + p, "%lld %lld %zu", &off, &rl, &jl) != 3 ||
            rl < -1 || p + used + (size_t)(rl > 0 ? rl : 0) + jl > len)
            return BK_ERR;
        p += used;
        r[i].offset = off;
        r[i].request_id = rl >= 0 ? strndup(body + p, (size_t)rl) : NULL;
        p += (size_t)(rl > 0 ? rl : 0);
        r[i].json = strndup(body + p, jl);
        p += jl;
        *done = i + 1;
        if (r[i].json == NULL || (rl >= 0 && r[i].request_id == NULL))
            return BK_ERR;
    }
    return BK_OK;
}

/* The whole file into *buf (NUL-terminated), *len. */
static int slurp(FILE *f, char **buf, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    while (b != NULL) {
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (n < cap)
            break;
        char *nb = cap < ((size_t)1 << 32) ? realloc(b, 2 * cap + 1) : NULL;
        if (nb == NULL) {
            free(b);
            b = NULL;
            break;
        }
        b = nb;
        cap *= 2;
    }
    if (b == NULL || ferror(f)) {
        free(b);
        return BK_ERR;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return BK_OK;
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
    char *file = NULL;
    size_t flen = 0;
    int rc = slurp(f, &file, &flen);
    fclose(f);
    if (rc != BK_OK)
        return bk_err_set(e, BK_E_IO, "cannot read '%s'", path);
    /* frames: version 1 is one frame (an older worker's file); version 2
     * frames follow one another with the first one's generation and
     * consecutive numbers, up to the first that does not (a torn write,
     * zeros, or an older generation's frame) */
    bk_held_rec *r = NULL;
    size_t nr = 0, capr = 0, at = 0;
    int64_t last_upto = -1, last_base = INT64_MIN;
    int frames = 0, ok = 1;
    unsigned long long gen0 = 0;
    while (ok && at + HELD_HEAD <= flen) {
        char head[HELD_HEAD + 1];
        memcpy(head, file + at, HELD_HEAD);
        head[HELD_HEAD] = '\0';
        long long up = 0, base = INT64_MIN, bodylen = 0, seq = 0;
        unsigned long long gen = 0;
        size_t n = 0;
        unsigned check = 0;
        int hat = 0, v2 = strncmp(head, "br2k-held 2 ", 12) == 0;
        char want[16];
        int parsed = v2 ? sscanf(head, "br2k-held 2 %16llx %lld %lld %lld %zu %lld %8x%n",
                                 &gen, &seq, &up, &base, &n, &bodylen, &check, &hat) == 7
                        : frames == 0 && sscanf(head, "br2k-held 1 %lld %zu %lld %8x%n",
                                                &up, &n, &bodylen, &check, &hat) == 4;
        if (!parsed || bodylen < 0 || (size_t)bodylen > flen - at - HELD_HEAD ||
            n > (size_t)bodylen ||
            (snprintf(want, sizeof(want), " c%08x", bk_text_check(head, (size_t)hat)),
             strncmp(head + hat, want, strlen(want)) != 0) ||
            bk_text_check(file + at + HELD_HEAD, (size_t)bodylen) != check ||
            (v2 && frames > 0 && (gen != gen0 || seq != frames)) ||
            (v2 && frames == 0 && seq != 0)) {
            if (frames == 0)
                ok = 0; /* nothing valid: a damaged file */
            break;
        }
        if (nr + n > capr) {
            size_t cap = capr ? capr : 256;
            while (cap < nr + n)
                cap *= 2;
            bk_held_rec *nrp = realloc(r, cap * sizeof(*r));
            if (nrp == NULL) {
                held_free_recs(r, nr);
                free(file);
                return bk_err_set(e, BK_E_NOMEM, "out of memory");
            }
            r = nrp;
            capr = cap;
        }
        size_t done = 0;
        if (held_body(file + at + HELD_HEAD, (size_t)bodylen, r + nr, n, &done) !=
            BK_OK) {
            held_free_recs(r, nr + done);
            free(file);
            return bk_err_set(e, BK_E_INVAL, "damaged held-results file '%s'", path);
        }
        nr += n;
        gen0 = gen;
        last_upto = up;
        last_base = v2 ? base : INT64_MIN;
        frames++;
        at += HELD_HEAD + (size_t)bodylen;
        if (!v2)
            break;
    }
    int blank = 1; /* prepared (bk_held_prepare) and never written: zeros */
    for (size_t i = 0; i < HELD_HEAD && i < flen; i++)
        blank &= file[i] == '\0';
    free(file);
    if (!ok || frames == 0) {
        held_free_recs(r, nr);
        if (blank)
            return BK_OK;
        return bk_err_set(e, BK_E_INVAL, "damaged held-results file '%s'", path);
    }
    /* the results not committed when the last frame was written */
    size_t k = 0;
    for (size_t i = 0; i < nr; i++) {
        if (r[i].offset >= last_base && r[i].offset <= last_upto) {
            r[k++] = r[i];
        } else {
            free((char *)r[i].request_id);
            free((char *)r[i].json);
        }
    }
    *upto = last_upto;
    *out = r;
    *nout = k;
    if (k == 0) {
        free(r);
        *out = NULL;
    }
    return BK_OK;
}
