/* fileio.h - durable file writes shared by the worker, the applications
 * and the development broker. */
#ifndef BK_FILEIO_H
#define BK_FILEIO_H

#include <stddef.h>

#include "base/err.h"

/* Write all `len` bytes to fd, retrying on EINTR; 0 or -1 (errno set). */
int bk_write_all(int fd, const void *buf, size_t len);

/* fsync the directory `dir`, so that a rename or a new file in it is
 * durable. BK_OK or BK_ERR (BK_E_IO) naming the directory. */
int bk_fsync_dir(const char *dir, bk_err *e);

/* Write `len` bytes to `path` atomically and durably (`path`.tmp, fsync,
 * rename, fsync of the directory). A reader sees the old or the new
 * content, never a mix. BK_OK or BK_ERR (BK_E_IO, BK_E_INVAL). */
int bk_file_replace(const char *path, const void *buf, size_t len, bk_err *e);

#endif
