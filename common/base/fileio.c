/* fileio.c - see fileio.h. */
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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
