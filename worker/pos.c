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

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int bk_file_replace(const char *path, const void *buf, size_t len, bk_err *e) {
    char tmp[4096], dir[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp) ||
        (size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
        return bk_err_set(e, BK_E_INVAL, "path '%s' is too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return bk_err_set(e, BK_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
    if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return bk_err_set(e, BK_E_IO, "cannot write '%s': %s", tmp, strerror(err));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return bk_err_set(e, BK_E_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                          strerror(err));
    }
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return bk_err_set(e, BK_E_IO, "cannot open the directory of '%s': %s", path,
                          strerror(errno));
    int rc = fsync(dfd);
    int err = errno;
    close(dfd);
    if (rc != 0)
        return bk_err_set(e, BK_E_IO, "cannot sync the directory of '%s': %s", path,
                          strerror(err));
    return BK_OK;
}

/* FNV-1a (32 bits) of s[0..n-1]: the check field of the fixed-size text
 * files written in place (a torn or damaged line is refused). */
uint32_t bk_text_check(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int bk_fixed_line(char *buf, size_t size, size_t width, int n) {
    if (n < 0 || (size_t)n + 11 + 1 > width || width > size)
        return -1;
    uint32_t c = bk_text_check(buf, (size_t)n);
    int m = snprintf(buf + n, size - (size_t)n, " c%08x", c);
    if (m < 0)
        return -1;
    size_t len = (size_t)n + (size_t)m;
    memset(buf + len, ' ', width - 1 - len);
    buf[width - 1] = '\n';
    return (int)width;
}

int bk_file_overwrite(int *fd, const char *path, const void *buf, size_t len, bk_err *e) {
    if (*fd < 0) {
        int f = open(path, O_WRONLY | O_CLOEXEC);
        off_t size = f >= 0 ? lseek(f, 0, SEEK_END) : -1;
        if (f < 0 || size != (off_t)len) {
            /* missing or of another size (an older format): replace it
             * once, so that later overwrites never change its size */
            if (f >= 0)
                close(f);
            if (bk_file_replace(path, buf, len, e) != BK_OK)
                return BK_ERR;
            f = open(path, O_WRONLY | O_CLOEXEC);
            if (f < 0)
                return bk_err_set(e, BK_E_IO, "cannot open '%s': %s", path,
                                  strerror(errno));
            *fd = f;
            return BK_OK;
        }
        *fd = f;
    }
    const char *p = buf;
    size_t off = 0;
    while (off < len) {
        ssize_t n = pwrite(*fd, p + off, len - off, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return bk_err_set(e, BK_E_IO, "cannot write '%s': %s", path, strerror(errno));
        off += (size_t)n;
    }
    if (fdatasync(*fd) != 0)
        return bk_err_set(e, BK_E_IO, "cannot sync '%s': %s", path, strerror(errno));
    return BK_OK;
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
