/* archive.h - the history archive of a backup version (the history of
 * service actions; DESIGN.md I7): the log's records from the previous
 * cut + 1 to this cut, exactly as the log held them, sealed and stored
 * like the state (v<version>-archive-<sha256>, backuplog.h), its digest in
 * the state-backup-log (history_archive) and on chain beside the snapshot
 * digest (BR2KRegistry.appendBackupLogWithArchive).
 *
 * The plaintext is JSON lines (UTF-8, one object a line, '\n' after each):
 *   line 1, the header, format BK_ARCHIVE_FORMAT:
 *     {"format", "service", "version", "from_offset", "to_offset",
 *      "record_count", "gaps": [[a, b], ...] (offsets the log had lost
 *      before the backup could archive them, inclusive ranges; never
 *      hidden), "previous_version", "previous_archive" (the SHA-256 of the
 *      previous version's sealed archive, 64 zeros at genesis: the hash
 *      chain), "start_state_digest" (the state digest of the previous
 *      version, null when the backup did not know it), "end_state_digest"
 *      (this version's), "log_first_offset"}
 *   then one line per record, in offset order:
 *     {"offset", "key", "headers": [[name, value], ...], "value", "ts_ms",
 *      "encoding": "utf-8" | "hex"}
 *     key, header values and value are text when all of them are UTF-8,
 *     else all lowercase hex (encoding says which).
 * `br2k history export` prints the record lines as they are. */
#ifndef BK_ARCHIVE_H
#define BK_ARCHIVE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define BK_ARCHIVE_FORMAT "br2k.history-archive.v1"
#define BK_ARCHIVE_GENESIS                                                               \
    "0000000000000000000000000000000000000000000000000000000000000000"

typedef struct bk_archive_hdr {
    const char *name;
    const void *value;
    size_t len;
} bk_archive_hdr;

/* A growing plaintext: the header is added last, in front (bk_archive_finish). */
typedef struct bk_archive_buf {
    char *data;
    size_t len, cap;
    int64_t count;
} bk_archive_buf;

/* Append one record line. BK_ERR (BK_E_NOMEM) when out of memory. */
int bk_archive_add(bk_archive_buf *b, int64_t offset, const void *key, size_t klen,
                   const bk_archive_hdr *h, size_t nh, const void *value, size_t vlen,
                   int64_t ts_ms, bk_err *e);

/* Put the header line (compact JSON, sorted keys) in front of the records:
 * *out (malloc'd) and *len; b is emptied. */
int bk_archive_finish(bk_archive_buf *b, const json_t *header, char **out, size_t *len,
                      bk_err *e);

void bk_archive_buf_free(bk_archive_buf *b);

/* Reading: the header of plain[len] (*header, the caller decrefs) and the
 * position of the first record line in *pos. BK_E_INVAL naming what is
 * wrong (not JSON lines, another format). */
int bk_archive_header(const char *plain, size_t len, json_t **header, size_t *pos,
                      bk_err *e);

/* The next record line from *pos: 1 with *line and *llen (without the
 * newline), 0 at the end. */
int bk_archive_next(const char *plain, size_t len, size_t *pos, const char **line,
                    size_t *llen);

/* Decode a record line: *offset and the value bytes (*value malloc'd, the
 * caller frees; *vlen). BK_E_INVAL naming the line's problem. */
int bk_archive_decode(const char *line, size_t llen, int64_t *offset, void **value,
                      size_t *vlen, bk_err *e);

#endif
