/* fileio.c - see fileio.h. */
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int bk_write_all(int fd, const void *buf, size_t len) {
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

int bk_fsync_dir(const char *dir, bk_err *e) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return bk_err_set(e, BK_E_IO, "cannot open directory '%s': %s", dir,
                          strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0)
        return bk_err_set(e, BK_E_IO, "cannot fsync directory '%s': %s", dir,
                          strerror(err));
    return BK_OK;
}

int bk_file_replace(const char *path, const void *buf, size_t len, bk_err *e) {
    char tmp[4096], dir[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp) ||
        (size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
        return bk_err_set(e, BK_E_INVAL, "path '%s' is too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return bk_err_set(e, BK_E_IO, "cannot create '%s': %s", tmp, strerror(errno));
    if (bk_write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
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
    return bk_fsync_dir(dirname(dir), e);
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

/* see fileio.h */
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
