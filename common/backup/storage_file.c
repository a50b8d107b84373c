/* storage_file.c - the file:// back end of storage.h: one file per object
 * in a directory, written to a temporary name, fsynced, moved to its name
 * without replacing anything, and read back before a put counts. Depends
 * only on storage_int.h (the shared helpers and the bk_storage fields). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "backup/storage_int.h"
#include "base/hex.h"

/* The back end's state (bk_storage.be). */
typedef struct file_be {
    char *dir;
    int dirfd;
} file_be;

static int dirfd_of(const bk_storage *s) {
    return ((const file_be *)s->be)->dirfd;
}

/* Read all of fd into a malloc'd buffer (plus a NUL). 0, or an errno. */
static int read_fd(int fd, uint8_t **data, size_t *len) {
    struct stat st;
    *data = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0)
        return errno;
    size_t cap = (size_t)st.st_size + 1, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return ENOMEM;
    for (;;) {
        if (n + 1 == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            free(buf);
            return err;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read name into *data; 0, ENOENT or another errno. */
static int file_read(bk_storage *s, const char *name, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd = openat(dirfd_of(s), name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno;
    int err = read_fd(fd, data, len);
    close(fd);
    return err;
}

/* Compare the stored object name with data: 1 same bytes, 0 different,
 * -1 error (e set; ENOENT is an error here). */
static int file_same(bk_storage *s, const char *name, const void *data, size_t len,
                     bk_err *e) {
    uint8_t *have = NULL;
    size_t hlen = 0;
    int err = file_read(s, name, &have, &hlen);
    if (err != 0) {
        bk_err_set(e, err == ENOENT ? BK_E_NOTFOUND : BK_E_IO,
                   "storage: cannot read back '%s' in '%s': %s", name, s->url,
                   strerror(err));
        return -1;
    }
    int same = hlen == len && (len == 0 || memcmp(have, data, len) == 0);
    free(have);
    return same;
}

/* An identical object is already there (a retried put, or a put that
 * crashed after its rename): make sure it is durable before it counts. */
static int sync_existing(bk_storage *s, const char *name, bk_err *e) {
    int fd = openat(dirfd_of(s), name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int ok = fd >= 0 && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (ok && fsync(dirfd_of(s)) != 0) {
        ok = 0;
        err = errno;
    }
    if (!ok)
        return bk_err_set(e, BK_E_IO, "storage: cannot fsync '%s' in '%s': %s", name,
                          s->url, strerror(err));
    return BK_OK;
}

/* Move tmp to name without replacing an existing name. 0 or an errno
 * (EEXIST when name exists). */
static int place_noreplace(int dirfd, const char *tmp, const char *name) {
    if (renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) == 0)
        return 0;
    int err = errno;
    if (err != EINVAL && err != ENOSYS && err != ENOTSUP)
        return err;
    /* no RENAME_NOREPLACE on this file system: a hard link never replaces */
    if (linkat(dirfd, tmp, dirfd, name, 0) != 0)
        return errno;
    unlinkat(dirfd, tmp, 0);
    return 0;
}

static int file_put(bk_storage *s, const char *name, const void *data, size_t len,
                    bk_err *e) {
    struct stat st;
    if (fstatat(dirfd_of(s), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        int same = file_same(s, name, data, len, e);
        if (same < 0)
            return BK_ERR;
        return same ? sync_existing(s, name, e) : bk_storage_exists_different(s, name, e);
    }
    if (errno != ENOENT)
        return bk_err_set(e, BK_E_IO, "storage: cannot stat '%s' in '%s': %s", name,
                          s->url, strerror(errno));

    uint8_t rnd[6];
    char rhex[13], tmp[BK_STORAGE_NAME_MAX + 64];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        memset(rnd, 0, sizeof rnd);
    bk_hex_encode(rnd, sizeof rnd, 0, rhex);
    snprintf(tmp, sizeof tmp, ".tmp-%s.%ld.%s", name, (long)getpid(), rhex);

    int fd = openat(dirfd_of(s), tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return bk_err_set(e, BK_E_IO,
                          "storage: cannot create a temporary file in '%s': %s", s->url,
                          strerror(errno));
    const char *step = "write";
    int err = write_all(fd, data, len);
    if (err == 0 && fsync(fd) != 0) {
        err = errno;
        step = "fsync";
    }
    if (close(fd) != 0 && err == 0) {
        err = errno;
        step = "close";
    }
    if (err == 0) {
        step = "rename";
        err = place_noreplace(dirfd_of(s), tmp, name);
    }
    if (err != 0) {
        unlinkat(dirfd_of(s), tmp, 0);
        if (err == EEXIST) { /* a concurrent put of the same name won */
            int same = file_same(s, name, data, len, e);
            if (same < 0)
                return BK_ERR;
            return same ? sync_existing(s, name, e)
                        : bk_storage_exists_different(s, name, e);
        }
        return bk_err_set(e, BK_E_IO, "storage: cannot %s '%s' in '%s': %s", step, name,
                          s->url, strerror(err));
    }
    if (fsync(dirfd_of(s)) != 0) {
        err = errno;
        unlinkat(dirfd_of(s), name, 0);
        return bk_err_set(e, BK_E_IO, "storage: cannot fsync the directory of '%s': %s",
                          s->url, strerror(err));
    }
    /* read back before it counts */
    int same = file_same(s, name, data, len, e);
    if (same == 1)
        return BK_OK;
    unlinkat(dirfd_of(s), name, 0);
    fsync(dirfd_of(s));
    if (same == 0)
        return bk_err_set(
            e, BK_E_IO,
            "storage: object '%s' in '%s' reads back different bytes; removed", name,
            s->url);
    return BK_ERR;
}

static int file_get(bk_storage *s, const char *name, void **data, size_t *len,
                    bk_err *e) {
    uint8_t *d = NULL;
    int err = file_read(s, name, &d, len);
    if (err == ENOENT)
        return bk_err_set(e, BK_E_NOTFOUND, "storage: object '%s' not found in '%s'",
                          name, s->url);
    if (err == ENOMEM)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory reading '%s' in '%s'",
                          name, s->url);
    if (err != 0)
        return bk_err_set(e, BK_E_IO, "storage: cannot read '%s' in '%s': %s", name,
                          s->url, strerror(err));
    *data = d;
    return BK_OK;
}

/* Pieces of 1 MiB, read ahead by the kernel (sequential). */
#define READ_PIECE ((size_t)1 << 20)

static int file_read_pieces(bk_storage *s, const char *name, bk_storage_piece_cb cb,
                            void *opaque, bk_err *e) {
    int fd = openat(dirfd_of(s), name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return bk_err_set(e, BK_E_NOTFOUND, "storage: object '%s' not found in '%s'",
                          name, s->url);
    if (fd < 0)
        return bk_err_set(e, BK_E_IO, "storage: cannot read '%s' in '%s': %s", name,
                          s->url, strerror(errno));
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint8_t *buf = malloc(READ_PIECE);
    int rc = buf != NULL ? BK_OK
                         : bk_err_set(e, BK_E_NOMEM,
                                      "storage: out of memory reading '%s' in '%s'", name,
                                      s->url);
    while (rc == BK_OK) {
        ssize_t n = read(fd, buf, READ_PIECE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = bk_err_set(e, BK_E_IO, "storage: cannot read '%s' in '%s': %s", name,
                            s->url, strerror(errno));
        else if (n == 0)
            break;
        else
            rc = cb(opaque, buf, (size_t)n, e);
    }
    free(buf);
    close(fd);
    return rc;
}

static int file_head(bk_storage *s, const char *name, int *exists, uint64_t *size,
                     bk_err *e) {
    struct stat st;
    if (fstatat(dirfd_of(s), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISREG(st.st_mode))
            return bk_err_set(e, BK_E_IO, "storage: '%s' in '%s' is not a regular file",
                              name, s->url);
        *exists = 1;
        if (size != NULL)
            *size = (uint64_t)st.st_size;
        return BK_OK;
    }
    if (errno == ENOENT)
        return BK_OK;
    return bk_err_set(e, BK_E_IO, "storage: cannot stat '%s' in '%s': %s", name, s->url,
                      strerror(errno));
}

static int file_list(bk_storage *s, const char *prefix, char ***names, size_t *count,
                     bk_err *e) {
    int fd = dup(dirfd_of(s));
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return bk_err_set(e, BK_E_IO, "storage: cannot list '%s': %s", s->url,
                          strerror(err));
    }
    rewinddir(d);
    size_t plen = strlen(prefix), n = 0, cap = 0;
    char **v = NULL;
    int rc = BK_OK;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = bk_err_set(e, BK_E_IO, "storage: cannot list '%s': %s", s->url,
                                strerror(errno));
            break;
        }
        /* dot names are ours (temporary files) or not objects */
        if (!bk_storage_valid_name(de->d_name) || strncmp(de->d_name, prefix, plen) != 0)
            continue;
        int reg = de->d_type == DT_REG;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            reg = fstatat(dirfd_of(s), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                  S_ISREG(st.st_mode);
        }
        if (!reg)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = bk_err_set(e, BK_E_NOMEM, "storage: out of memory listing '%s'",
                                s->url);
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[n] = strdup(de->d_name);
        if (v[n] == NULL) {
            rc = bk_err_set(e, BK_E_NOMEM, "storage: out of memory listing '%s'", s->url);
            break;
        }
        n++;
    }
    closedir(d);
    return bk_storage_list_done(v, n, rc, names, count);
}

static int file_del(bk_storage *s, const char *name, bk_err *e) {
    if (unlinkat(dirfd_of(s), name, 0) != 0) {
        if (errno == ENOENT)
            return BK_OK;
        return bk_err_set(e, BK_E_IO, "storage: cannot delete '%s' in '%s': %s", name,
                          s->url, strerror(errno));
    }
    if (fsync(dirfd_of(s)) != 0)
        return bk_err_set(e, BK_E_IO, "storage: cannot fsync the directory of '%s': %s",
                          s->url, strerror(errno));
    return BK_OK;
}

static void file_close(bk_storage *s) {
    file_be *f = s->be;
    if (f == NULL)
        return;
    if (f->dirfd >= 0)
        close(f->dirfd);
    free(f->dir);
    free(f);
    s->be = NULL;
}

static const storage_ops file_ops = {file_put, file_get,   file_head,       file_list,
                                     file_del, file_close, file_read_pieces};

/* mkdir -p dir (mode 0750 for what it creates). 0 or an errno. */
static int mkdir_p(const char *dir) {
    char *p = strdup(dir);
    if (p == NULL)
        return ENOMEM;
    int err = 0;
    for (char *c = p + 1; err == 0; c++) {
        int end = *c == '\0';
        if (*c != '/' && !end)
            continue;
        char save = *c;
        *c = '\0';
        if (mkdir(p, 0750) != 0 && errno != EEXIST)
            err = errno;
        *c = save;
        if (end)
            break;
    }
    free(p);
    return err;
}

int bk_storage_open_file(bk_storage *s, const char *url, bk_err *e) {
    const char *dir = url + strlen("file://");
    if (strncmp(url, "file://", 7) != 0 || dir[0] == '\0')
        return bk_err_set(e, BK_E_INVAL, "storage: bad url '%.100s': no directory", url);
    file_be *f = calloc(1, sizeof *f);
    if (f == NULL)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    f->dirfd = -1;
    s->be = f;
    s->ops = &file_ops; /* from here on, bk_storage_close frees f */
    f->dir = strdup(dir);
    if (f->dir == NULL)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    int err = mkdir_p(dir);
    if (err != 0)
        return bk_err_set(e, BK_E_IO,
                          "storage: cannot create directory '%s' for '%s': %s", dir,
                          s->url, strerror(err));
    f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0)
        return bk_err_set(e, BK_E_IO, "storage: cannot open directory '%s' for '%s': %s",
                          dir, s->url, strerror(errno));
    return BK_OK;
}
