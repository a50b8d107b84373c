/* fileio.h - durable file writes shared by the worker, the applications
 * and the development broker. */
#ifndef BK_FILEIO_H
#define BK_FILEIO_H

#include <stddef.h>
#include <stdint.h>

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

/* Overwrite the first `len` bytes of `path` in place and fdatasync: for
 * small files of a fixed size (a one-sector write is atomic on the disks
 * we support; readers also check bk_text_check). *fd: -1 the first
 * time (a missing file or one of another size is then replaced once,
 * atomically), the open descriptor after. */
int bk_file_overwrite(int *fd, const char *path, const void *buf, size_t len, bk_err *e);

/* The check of the fixed-size text files: FNV-1a (32 bits). */
uint32_t bk_text_check(const char *s, size_t n);

/* Finish the line of n bytes in buf: append " c<8 hex>" (bk_text_check of
 * the n bytes), pad with spaces to width - 1 and end with a newline.
 * Returns width, or -1 when it does not fit. */
int bk_fixed_line(char *buf, size_t size, size_t width, int n);

#endif
