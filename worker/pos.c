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

int bk_pos_write(const char *path, const bk_pos *p, bk_err *e) {
    char buf[256];
    int n = snprintf(buf, sizeof(buf),
                     "br2k-pos 1 %" PRId64 " %s %" PRId64 " %" PRId64 "\n", p->lpi,
                     p->digest[0] ? p->digest : "-", p->inflight_first, p->inflight_last);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return bk_err_set(e, BK_E_INVAL, "position too long for '%s'", path);
    return bk_file_replace(path, buf, (size_t)n, e);
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
    char *fields[6], *save = NULL;
    int nf = 0;
    for (char *t = strtok_r(line, " ", &save); t != NULL && nf < 6;
         t = strtok_r(NULL, " ", &save))
        fields[nf++] = t;
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
