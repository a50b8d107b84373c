/* infodid.c - see infodid.h and INFODID.md: InfoDID's durable store (a
 * journal of redo entries and checkpoints), open, close, sync, snapshot,
 * restore, digest, and its operations table. The rest is in apply.c
 * (requests), external.c (the external effect), state.c (the state in
 * memory and its encoding) and table.c (buffers, hash table);
 * infodid_int.h says what they share. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "base/log.h"
#include "chain/request.h"
#include "infodid_int.h"

/* Checkpoint file: magic, generation, snapshot length, the snapshot, and a
 * SHA-256: format 2, of the 24 header bytes and the snapshot's own
 * checksum (its last 32 bytes: the snapshot's bytes are checked by that);
 * format 1 (read, no longer written), of everything before it. */
#define CKPT_MAGIC "BR2KIDC2"
#define CKPT_MAGIC_1 "BR2KIDC1"
#define CKPT_HEAD 24
#define ENTRY_MAX (64u * 1024 * 1024)
#define KIND_CHANGE 1
#define KIND_LPI 2
#define HAS_ID 1
#define HAS_DID 2

/* ---- files of the state directory ---- */

static char *path_of(const br2k_app *a, const char *name) {
    size_t n = strlen(a->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a->dir, name);
    return p;
}

static char *journal_path(const br2k_app *a, uint64_t gen) {
    char name[40];
    snprintf(name, sizeof(name), "journal.%" PRIu64, gen);
    return path_of(a, name);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return BK_ERR;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return BK_OK;
}

static int read_file(const char *path, uint8_t **out, size_t *len, bk_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bk_err_set(e, errno == ENOENT ? BK_E_NOTFOUND : BK_E_IO,
                          "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return bk_err_set(e, BK_E_IO, "cannot stat '%s': %s", path, strerror(errno));
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *p = malloc(n ? n : 1);
    if (p == NULL) {
        close(fd);
        return bk_err_set(e, BK_E_NOMEM, "cannot read '%s': out of memory", path);
    }
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int err = r < 0 ? errno : EIO;
            free(p);
            close(fd);
            return bk_err_set(e, BK_E_IO, "cannot read '%s': %s", path, strerror(err));
        }
        got += (size_t)r;
    }
    close(fd);
    *out = p;
    *len = n;
    return BK_OK;
}

/* Start journal.<gen> empty (replacing any), remove the previous one. */
static int journal_start(br2k_app *a, uint64_t gen, bk_err *e) {
    char *p = journal_path(a, gen);
    if (p == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        bk_err_set(e, BK_E_IO, "cannot create '%s': %s", p, strerror(errno));
        free(p);
        return BK_ERR;
    }
    free(p);
    if (bk_fsync_dir(a->dir, e) != BK_OK) {
        close(fd);
        return BK_ERR;
    }
    if (a->jfd >= 0)
        close(a->jfd);
    if (a->gen != gen) {
        char *old = journal_path(a, a->gen);
        if (old != NULL)
            unlink(old);
        free(old);
    }
    a->jfd = fd;
    a->gen = gen;
    a->jsize = 0;
    a->pend.len = 0;
    a->jlpi = a->lpi;
    return BK_OK;
}

/* The format 2 checksum of a checkpoint: SHA-256 of its header and of the
 * checksum that ends its snapshot (slen >= 32). */
static void ckpt_sum(const uint8_t head[CKPT_HEAD], const uint8_t *snap, size_t slen,
                     uint8_t out[32]) {
    uint8_t x[CKPT_HEAD + 32];
    memcpy(x, head, CKPT_HEAD);
    memcpy(x + CKPT_HEAD, snap + slen - 32, 32);
    idd_sha256(x, sizeof(x), out);
}

static void ckpt_head(uint8_t head[CKPT_HEAD], uint64_t gen, uint64_t slen) {
    memcpy(head, CKPT_MAGIC, 8);
    for (int i = 0; i < 8; i++) {
        head[8 + i] = (uint8_t)(gen >> (8 * i));
        head[16 + i] = (uint8_t)(slen >> (8 * i));
    }
}

#define PASS_PIECE ((size_t)4 << 20)
#define DIRECT_ALIGN ((size_t)4096)

/* The checkpoint's bytes, written through a buffer of PASS_PIECE bytes
 * with O_DIRECT where the file system takes it: a write into the page
 * cache costs more than the disk here (449 MB of state: 0.9-1.4 s
 * buffered, 0.25-0.4 s direct, fsync included), and a restore waits for
 * it. Buffered where O_DIRECT is refused (tmpfs: EINVAL). Every
 * checkpoint goes through it: write_checkpoint, restore_writer. */
typedef struct ckpt_out {
    int fd, direct;
    uint8_t *buf; /* DIRECT_ALIGN-aligned, PASS_PIECE bytes */
    size_t n;     /* bytes in buf */
    uint64_t total;
} ckpt_out;

static int out_open(ckpt_out *o, const char *path) {
    memset(o, 0, sizeof(*o));
    o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
    o->direct = o->fd >= 0;
    if (o->fd < 0 && errno == EINVAL)
        o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0)
        return -1;
    if (posix_memalign((void **)&o->buf, DIRECT_ALIGN, PASS_PIECE) != 0) {
        o->buf = NULL;
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* Write the buffer: whole when direct (the tail padded to DIRECT_ALIGN
 * with zeros, cut by out_close); a file system that refuses a direct
 * write gets it, and the rest, buffered. */
static int out_flush(ckpt_out *o) {
    size_t n = o->n;
    if (o->direct && n % DIRECT_ALIGN != 0) {
        size_t pad = DIRECT_ALIGN - n % DIRECT_ALIGN;
        memset(o->buf + n, 0, pad);
        n += pad;
    }
    if (n > 0 && bk_write_all(o->fd, o->buf, n) != 0) {
        int fl = fcntl(o->fd, F_GETFL);
        if (!o->direct || errno != EINVAL || fl < 0 ||
            fcntl(o->fd, F_SETFL, fl & ~O_DIRECT) != 0)
            return -1;
        o->direct = 0;
        off_t at = lseek(o->fd, 0, SEEK_CUR);
        if (at < 0 || (uint64_t)at + o->n != o->total ||
            bk_write_all(o->fd, o->buf, o->n) != 0)
            return -1;
    }
    o->n = 0;
    return 0;
}

static int out_put(ckpt_out *o, const void *p, size_t n) {
    const uint8_t *s = p;
    while (n > 0) {
        size_t k = PASS_PIECE - o->n < n ? PASS_PIECE - o->n : n;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        o->total += k;
        s += k;
        n -= k;
        if (o->n == PASS_PIECE && out_flush(o) != 0)
            return -1;
    }
    return 0;
}

/* A failed write's buffer and descriptor let go (nothing: a no-op). */
static void out_abort(ckpt_out *o) {
    free(o->buf);
    o->buf = NULL;
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
}

/* The rest written, the file cut to its length (a padded tail), durable. */
static int out_close(ckpt_out *o) {
    int rc =
        out_flush(o) == 0 && ftruncate(o->fd, (off_t)o->total) == 0 && fsync(o->fd) == 0
            ? 0
            : -1;
    int err = errno;
    out_abort(o);
    errno = err;
    return rc;
}

/* The checkpoint of generation gen + 1 (CKPT_MAGIC), written beside as
 * checkpoint.tmp, durable, then renamed into place (the directory is
 * fsync'ed by journal_start); the snapshot goes from its buffer to the
 * file, never copied whole. */
static int write_checkpoint(br2k_app *a, const uint8_t *snap, size_t slen, bk_err *e) {
    if (slen < 32)
        return bk_err_set(e, BK_E_INVAL, "infodid: a snapshot of %zu bytes", slen);
    char *tmp = path_of(a, "checkpoint.tmp"), *dst = path_of(a, "checkpoint");
    int rc = BK_ERR;
    ckpt_out o = {-1, 0, NULL, 0, 0};
    if (tmp == NULL || dst == NULL) {
        bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        goto out;
    }
    uint8_t head[CKPT_HEAD], h[32];
    ckpt_head(head, a->gen + 1, slen);
    ckpt_sum(head, snap, slen, h);
    if (out_open(&o, tmp) != 0 || out_put(&o, head, CKPT_HEAD) != 0 ||
        out_put(&o, snap, slen) != 0 || out_put(&o, h, 32) != 0 || out_close(&o) != 0) {
        bk_err_set(e, BK_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
        out_abort(&o);
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, dst) != 0) {
        bk_err_set(e, BK_E_IO, "cannot rename '%s' to '%s': %s", tmp, dst,
                   strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = journal_start(a, a->gen + 1, e);
out:
    free(tmp);
    free(dst);
    return rc;
}

/* ---- the checkpoint and the walk of infodid.h ---- */

int bk_infodid_checkpoint(br2k_app *a, bk_err *e) {
    idd_buf s = {0};
    if (idd_encode_snapshot(&a->st, a->lpi, &s, e) != BK_OK) {
        idd_buf_free(&s);
        return BK_ERR;
    }
    int rc = write_checkpoint(a, s.p, s.len, e);
    idd_buf_free(&s);
    return rc;
}

int64_t bk_infodid_active(const br2k_app *a) {
    return a->st.active;
}

int bk_infodid_each(const br2k_app *a, int (*did_cb)(const bk_infodid_did *, void *),
                    int (*id_cb)(const bk_infodid_reqid *, void *), void *opaque,
                    bk_err *e) {
    void **v = idd_map_sorted(&a->st.dids);
    if (v == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    int stop = 0;
    for (size_t i = 0; did_cb != NULL && !stop && i < a->st.dids.n; i++) {
        const did_rec *d = v[i];
        bk_infodid_did x = {d->key,         d->ctrl,   d->revoked, d->created_off,
                            d->updated_off, d->nattrs, {0},        {0}};
        for (uint32_t k = 0; k < d->nattrs && k < BK_INFODID_ATTRS_MAX; k++)
            x.names[k] = d->attrs[k].k, x.values[k] = d->attrs[k].v;
        stop = did_cb(&x, opaque);
    }
    free(v);
    if (!stop && id_cb != NULL) {
        if ((v = idd_map_sorted(&a->st.ids)) == NULL)
            return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        for (size_t i = 0; !stop && i < a->st.ids.n; i++) {
            const id_rec *r = v[i];
            bk_infodid_reqid x = {r->key, r->result};
            stop = id_cb(&x, opaque);
        }
        free(v);
    }
    return stop ? bk_err_set(e, BK_E_STATE, "infodid: the walk was stopped") : BK_OK;
}

/* ---- the journal ---- */

/* Write the pending entries to the journal file (no fsync). On failure
 * the file is cut back to its last good size. */
static int flush_pending(br2k_app *a, bk_err *e) {
    if (a->pend.len == 0)
        return BK_OK;
    if (pwrite_all(a->jfd, a->pend.p, a->pend.len, a->jsize) != BK_OK) {
        int err = errno;
        if (ftruncate(a->jfd, (off_t)a->jsize) != 0)
            BK_WARN("infodid: cannot cut back journal: %s", strerror(errno));
        return bk_err_set(e, BK_E_IO, "cannot write journal.%" PRIu64 " in '%s': %s",
                          a->gen, a->dir, strerror(err));
    }
    a->jsize += a->pend.len;
    a->pend.len = 0;
    return BK_OK;
}

/* Frame one entry body into `pend`: length, CRC-32, body. */
static int append_entry(br2k_app *a, const idd_buf *body, int64_t offset, bk_err *e) {
    idd_put_u32(&a->pend, (uint32_t)body->len);
    idd_put_u32(&a->pend, idd_crc32(body->p, body->len));
    idd_put_bytes(&a->pend, body->p, body->len);
    if (a->pend.oom)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    a->jlpi = offset;
    return BK_OK;
}

static int app_sync(br2k_app *a, bk_err *e) {
    if (a->lpi > a->jlpi) {
        idd_buf body = {0};
        idd_put_u64(&body, (uint64_t)a->lpi);
        idd_put_u8(&body, KIND_LPI);
        int rc = body.oom ? bk_err_set(e, BK_E_NOMEM, "infodid: out of memory")
                          : append_entry(a, &body, a->lpi, e);
        idd_buf_free(&body);
        if (rc != BK_OK)
            return BK_ERR;
    }
    if (a->pend.len == 0)
        return BK_OK;
    if (flush_pending(a, e) != BK_OK)
        return BK_ERR;
    if (fdatasync(a->jfd) != 0)
        return bk_err_set(e, BK_E_IO, "cannot fsync journal.%" PRIu64 " in '%s': %s",
                          a->gen, a->dir, strerror(errno));
    if (a->jsize >= a->ckpt_bytes)
        return bk_infodid_checkpoint(a, e);
    return BK_OK;
}

/* Replay one entry body. Returns BK_ERR with `e` on a corrupt body. */
static int replay_entry(br2k_app *a, const uint8_t *p, size_t n, bk_err *e) {
    idd_rd r = {p, n, 0, 0};
    int64_t off = (int64_t)idd_get_u64(&r);
    uint8_t kind = idd_get_u8(&r);
    id_rec *ir = NULL;
    did_rec *dr = NULL;
    if (kind == KIND_CHANGE) {
        uint8_t has = idd_get_u8(&r);
        if (has & HAS_ID)
            ir = idd_get_id(&r);
        if (has & HAS_DID)
            dr = idd_get_did(&r);
    } else if (kind != KIND_LPI) {
        r.bad = 1;
    }
    if (r.bad || r.pos != r.len) {
        idd_id_free(ir);
        idd_did_free(dr);
        return bk_err_set(e, BK_E_INVAL, "corrupt entry");
    }
    if (off <= a->lpi) { /* covered by the checkpoint already */
        idd_id_free(ir);
        idd_did_free(dr);
        return BK_OK;
    }
    if (idd_state_commit(&a->st, off, ir, dr, e) != BK_OK)
        return BK_ERR;
    a->lpi = off;
    return BK_OK;
}

/* Replay journal.<gen>; cut a torn tail (a crash mid-write) away. */
static int replay_journal(br2k_app *a, bk_err *e) {
    char *p = journal_path(a, a->gen);
    if (p == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    uint8_t *data = NULL;
    size_t len = 0;
    bk_err sub;
    if (read_file(p, &data, &len, &sub) != BK_OK) {
        free(p);
        if (sub.code != BK_E_NOTFOUND) {
            *e = sub;
            return BK_ERR;
        }
        return journal_start(a, a->gen, e);
    }
    size_t pos = 0;
    int rc = BK_OK;
    while (len - pos >= 8) {
        idd_rd r = {data + pos, 8, 0, 0};
        uint32_t n = idd_get_u32(&r), crc = idd_get_u32(&r);
        if (n > ENTRY_MAX || len - pos - 8 < n || idd_crc32(data + pos + 8, n) != crc)
            break;
        if (replay_entry(a, data + pos + 8, n, &sub) != BK_OK) {
            rc = bk_err_set(e, BK_E_STATE, "cannot replay '%s' at byte %zu: %s", p, pos,
                            sub.msg);
            break;
        }
        pos += 8 + (size_t)n;
    }
    free(data);
    int fd = rc == BK_OK ? open(p, O_RDWR | O_CLOEXEC) : -1;
    if (rc == BK_OK && fd < 0)
        rc = bk_err_set(e, BK_E_IO, "cannot open '%s': %s", p, strerror(errno));
    if (rc == BK_OK && pos < len) {
        BK_WARN("infodid: ignoring a torn tail of %zu bytes in '%s'", len - pos, p);
        if (ftruncate(fd, (off_t)pos) != 0 || fsync(fd) != 0)
            rc = bk_err_set(e, BK_E_IO, "cannot cut the torn tail of '%s': %s", p,
                            strerror(errno));
    }
    free(p);
    if (rc != BK_OK) {
        if (fd >= 0)
            close(fd);
        return BK_ERR;
    }
    a->jfd = fd;
    a->jsize = pos;
    a->jlpi = a->lpi;
    return BK_OK;
}

static int load_checkpoint(br2k_app *a, bk_err *e) {
    char *p = path_of(a, "checkpoint");
    if (p == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    uint8_t *data = NULL;
    size_t len = 0;
    bk_err sub;
    if (read_file(p, &data, &len, &sub) != BK_OK) {
        free(p);
        if (sub.code == BK_E_NOTFOUND)
            return BK_OK; /* a new state */
        *e = sub;
        return BK_ERR;
    }
    int rc = BK_OK;
    uint8_t h[32];
    idd_rd r = {data, len, 8, 0};
    int fmt = len < CKPT_HEAD + 64                 ? 0
              : memcmp(data, CKPT_MAGIC, 8) == 0   ? 2
              : memcmp(data, CKPT_MAGIC_1, 8) == 0 ? 1
                                                   : 0;
    if (fmt == 0) {
        rc = bk_err_set(e, BK_E_INVAL, "'%s' is not an infodid checkpoint", p);
    } else {
        a->gen = idd_get_u64(&r);
        uint64_t slen = idd_get_u64(&r);
        int len_ok = slen == len - CKPT_HEAD - 32;
        if (len_ok && fmt == 2)
            ckpt_sum(data, data + CKPT_HEAD, (size_t)slen, h);
        else if (len_ok)
            idd_sha256(data, len - 32, h);
        /* format 2: the snapshot's own checksum, checked by the decode,
         * covers its bytes */
        if (!len_ok || memcmp(h, data + len - 32, 32) != 0)
            rc = bk_err_set(e, BK_E_INVAL, "checkpoint '%s' is corrupt", p);
        else if (idd_decode_snapshot(data + CKPT_HEAD, (size_t)slen, &a->st, &a->lpi,
                                     &sub) != BK_OK)
            rc = bk_err_set(e, BK_E_INVAL, "checkpoint '%s': %s", p, sub.msg);
    }
    free(data);
    free(p);
    return rc;
}

/* Remove leftovers: journals of other generations, temporary files. */
static void remove_stale(br2k_app *a) {
    DIR *d = opendir(a->dir);
    if (d == NULL)
        return;
    char keep[40];
    snprintf(keep, sizeof(keep), "journal.%" PRIu64, a->gen);
    struct dirent *de;
    for (de = readdir(d); de != NULL; de = readdir(d)) {
        int stale =
            (strncmp(de->d_name, "journal.", 8) == 0 && strcmp(de->d_name, keep)) ||
            strcmp(de->d_name, "checkpoint.tmp") == 0;
        if (!stale)
            continue;
        char *p = path_of(a, de->d_name);
        if (p != NULL && unlink(p) == 0)
            BK_INFO("infodid: removed stale '%s'", p);
        free(p);
    }
    closedir(d);
}

static void hold(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Journal the change, then make it in memory (infodid_int.h). */
int idd_record_change(br2k_app *a, int64_t offset, id_rec *ir, did_rec *dr,
                      int is_register, bk_err *e) {
    idd_buf body = {0};
    idd_put_u64(&body, (uint64_t)offset);
    idd_put_u8(&body, KIND_CHANGE);
    idd_put_u8(&body, (uint8_t)((ir ? HAS_ID : 0) | (dr ? HAS_DID : 0)));
    if (ir != NULL)
        idd_put_id(&body, ir);
    if (dr != NULL)
        idd_put_did(&body, dr);
    int rc = body.oom ? bk_err_set(e, BK_E_NOMEM, "infodid: out of memory")
                      : append_entry(a, &body, offset, e);
    idd_buf_free(&body);
    if (rc != BK_OK) {
        idd_id_free(ir);
        idd_did_free(dr);
        return BK_ERR;
    }
    if (is_register && a->hold_ms > 0 &&
        (a->hold_file == NULL || access(a->hold_file, F_OK) == 0)) {
        /* Test hook: the entry is in the file (not fsync'ed), memory and
         * LPI are not changed yet; a kill now lands mid-request. With a
         * hold file, only while that file exists (checked every 10 ms). */
        if (flush_pending(a, e) != BK_OK) {
            idd_id_free(ir);
            idd_did_free(dr);
            return BK_ERR;
        }
        if (a->hold_file == NULL)
            hold(a->hold_ms);
        else
            for (long waited = 0; waited < a->hold_ms && access(a->hold_file, F_OK) == 0;
                 waited += 10)
                hold(10);
    }
    return idd_state_commit(&a->st, offset, ir, dr, e);
}

/* ---- open, close ---- */

static long env_long(const char *name, long dflt) {
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0) {
        BK_WARN("infodid: ignoring %s='%s': not a non-negative integer", name, s);
        return dflt;
    }
    return v;
}

static void app_close(br2k_app *a);

static int app_open(const char *dir, br2k_app **out, int64_t *lpi, bk_err *e) {
    *out = NULL;
    br2k_app *a = calloc(1, sizeof(*a));
    if (a != NULL)
        a->dir = strdup(dir);
    if (a == NULL || a->dir == NULL) {
        free(a);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    a->lock_fd = -1;
    a->jfd = -1;
    a->lpi = -1;
    a->jlpi = -1;
    idd_state_init(&a->st);
    a->limit = (size_t)env_long("BR2K_MAX_REQUEST_BYTES", BK_REQUEST_DEFAULT_LIMIT);
    a->hold_ms = env_long("BR2K_TEST_HOLD_APPLY_MS", 0);
    const char *hf = getenv("BR2K_TEST_HOLD_APPLY_FILE");
    if (hf != NULL && *hf != '\0') {
        if ((a->hold_file = strdup(hf)) == NULL) {
            bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
            goto fail;
        }
        if (a->hold_ms == 0)
            a->hold_ms = 30000;
    }
    a->ckpt_bytes =
        (uint64_t)env_long("BR2K_INFODID_CHECKPOINT_BYTES", BK_INFODID_CHECKPOINT_BYTES);
    /* the window decides results: a bad value stops the worker rather
     * than run with a default another replica may not have */
    const char *w = getenv("BR2K_INFODID_ID_WINDOW");
    a->st.window = BK_INFODID_ID_WINDOW;
    if (w != NULL && *w != '\0') {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(w, &end, 10);
        if (errno != 0 || *end != '\0' || v < 0) {
            bk_err_set(e, BK_E_INVAL,
                       "BR2K_INFODID_ID_WINDOW='%s' is not a number of records >= 0 "
                       "(0: keep every request id)",
                       w);
            goto fail;
        }
        a->st.window = v;
    }

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        bk_err_set(e, BK_E_IO, "cannot create state directory '%s': %s", dir,
                   strerror(errno));
        goto fail;
    }
    char *lock = path_of(a, "LOCK");
    if (lock == NULL) {
        bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        goto fail;
    }
    a->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(lock);
    if (a->lock_fd < 0) {
        bk_err_set(e, BK_E_IO, "cannot open the lock of '%s': %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        bk_err_set(e, BK_E_STATE, "state directory '%s' is in use by another process",
                   dir);
        goto fail;
    }
    if (load_checkpoint(a, e) != BK_OK || replay_journal(a, e) != BK_OK)
        goto fail;
    remove_stale(a);
    if (a->hold_file != NULL)
        BK_WARN("infodid: BR2K_TEST_HOLD_APPLY_FILE=%s: register holds mid-change, up to "
                "%ld ms, while that file exists (tests only)",
                a->hold_file, a->hold_ms);
    else if (a->hold_ms > 0)
        BK_WARN("infodid: BR2K_TEST_HOLD_APPLY_MS=%ld: register holds mid-change (tests "
                "only)",
                a->hold_ms);
    *out = a;
    *lpi = a->lpi;
    return BK_OK;
fail:
    app_close(a);
    return BK_ERR;
}

static void app_close(br2k_app *a) {
    if (a == NULL)
        return;
    if (a->jfd >= 0) {
        bk_err e;
        if (app_sync(a, &e) != BK_OK)
            BK_WARN("infodid: sync at close failed: %s", e.msg);
        close(a->jfd);
    }
    if (a->lock_fd >= 0)
        close(a->lock_fd); /* releases the flock */
    idd_state_release(&a->st);
    idd_buf_free(&a->pend);
    free(a->hold_file);
    free(a->dir);
    free(a);
}

/* ---- snapshot, restore, digest ---- */

static int app_snapshot(br2k_app *a, void **out, size_t *len, int64_t *lpi, bk_err *e) {
    idd_buf b = {0};
    if (idd_encode_snapshot(&a->st, a->lpi, &b, e) != BK_OK) {
        idd_buf_free(&b);
        return BK_ERR;
    }
    *out = b.p;
    *len = b.len;
    *lpi = a->lpi;
    return BK_OK;
}

/* The restore's second thread: while the first reads the snapshot into
 * memory, it checks the snapshot's own SHA-256, takes the SHA-256 of its
 * body (the digest: a body that decodes is exactly the canonical encoding
 * of the state it decodes to, keys strictly ascending, so encoding that
 * state again gives the same bytes), and writes the new checkpoint to
 * checkpoint.tmp and makes it durable: one pass over the bytes, two
 * hashes (the checkpoint's own covers its header and the snapshot's
 * checksum). The caller renames it only when both threads succeeded. */
typedef struct restore_job {
    br2k_app *a;
    const uint8_t *snap;
    size_t len;
    char *tmp;
    int sum_ok;
    uint8_t body[32];
    double ms;
    int rc;
    bk_err e;
} restore_job;

static void *restore_writer(void *arg) {
    restore_job *j = arg;
    double t0 = bk_mono_msf();
    size_t from = 0, to = 0;
    EVP_MD_CTX *sum = EVP_MD_CTX_new(), *body = EVP_MD_CTX_new();
    ckpt_out o = {-1, 0, NULL, 0, 0};
    j->rc = BK_ERR;
    if (sum == NULL || body == NULL || EVP_DigestInit_ex(sum, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(body, EVP_sha256(), NULL) != 1) {
        bk_err_set(&j->e, BK_E_IO, "infodid: sha-256 failed");
        goto done;
    }
    if (!idd_snapshot_body(j->len, &from, &to)) {
        bk_err_set(&j->e, BK_E_INVAL, "infodid: not an infodid snapshot");
        goto done;
    }
    uint8_t head[CKPT_HEAD], c[32];
    ckpt_head(head, j->a->gen + 1, j->len);
    ckpt_sum(head, j->snap, j->len, c);
    int ok = out_open(&o, j->tmp) == 0 && out_put(&o, head, CKPT_HEAD) == 0;
    for (size_t off = 0; ok && off < j->len; off += PASS_PIECE) {
        size_t n = j->len - off < PASS_PIECE ? j->len - off : PASS_PIECE;
        const uint8_t *p = j->snap + off;
        /* [0, to): the snapshot's checksum; [from, to): the body */
        size_t s_end = off + n < to ? n : (to > off ? to - off : 0);
        size_t b_from = from > off ? from - off : 0;
        ok = (s_end == 0 || EVP_DigestUpdate(sum, p, s_end) == 1) &&
             (b_from >= s_end ||
              EVP_DigestUpdate(body, p + b_from, s_end - b_from) == 1) &&
             out_put(&o, p, n) == 0;
    }
    uint8_t d[32];
    unsigned int dn = 0;
    ok = ok && EVP_DigestFinal_ex(sum, d, &dn) == 1 &&
         EVP_DigestFinal_ex(body, j->body, &dn) == 1 && out_put(&o, c, 32) == 0;
    ok = ok && out_close(&o) == 0;
    if (!ok) {
        bk_err_set(&j->e, BK_E_IO, "cannot write '%s': %s", j->tmp, strerror(errno));
        goto done;
    }
    j->sum_ok = memcmp(d, j->snap + to, 32) == 0;
    j->rc = BK_OK;
done:
    out_abort(&o); /* what a failure left */
    EVP_MD_CTX_free(sum);
    EVP_MD_CTX_free(body);
    j->ms = bk_mono_msf() - t0;
    return NULL;
}

/* Replace the state by the snapshot, durably, and make it the open state
 * (no second read): the new checkpoint (generation + 1, written beside the
 * read, restore_writer) is renamed into place only once the snapshot
 * decoded, its checksum held and the checkpoint is on disk; then an empty
 * journal of that generation. On any failure the state, its files and
 * the LPI stay as they were. */
static int app_restore(br2k_app *a, const void *snap, size_t len, bk_err *e) {
    idd_state st;
    idd_state_init(&st);
    st.window = a->st.window;
    int64_t lpi = -1;
    double t0 = bk_mono_msf();
    restore_job j = {a, snap,   len,    path_of(a, "checkpoint.tmp"), 0, {0},
                     0, BK_ERR, {0, ""}};
    char *dst = path_of(a, "checkpoint");
    pthread_t th;
    int threaded = 0;
    if (j.tmp == NULL || dst == NULL) {
        bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        goto fail;
    }
    threaded = pthread_create(&th, NULL, restore_writer, &j) == 0;
    int rc = idd_decode_snapshot_nosum(snap, len, &st, &lpi, e);
    double t1 = bk_mono_msf();
    if (threaded)
        pthread_join(th, NULL);
    else
        restore_writer(&j);
    double t2 = bk_mono_msf();
    if (j.rc == BK_OK && !j.sum_ok) {
        bk_err_set(e, BK_E_INVAL, "infodid: snapshot checksum mismatch");
        rc = BK_ERR;
    } else if (rc == BK_OK && j.rc != BK_OK) {
        *e = j.e;
        rc = BK_ERR;
    }
    if (rc != BK_OK) {
        bk_err_prefix(e, "cannot restore");
        goto fail;
    }
    if (rename(j.tmp, dst) != 0) {
        bk_err_set(e, BK_E_IO, "cannot rename '%s' to '%s': %s", j.tmp, dst,
                   strerror(errno));
        goto fail;
    }
    /* durable now (the directory is fsync'ed by journal_start); the open
     * checkpoint of a later open is this one */
    int64_t old_lpi = a->lpi;
    a->lpi = lpi;
    if (journal_start(a, a->gen + 1, e) != BK_OK) {
        a->lpi = old_lpi;
        goto fail_renamed;
    }
    double t3 = bk_mono_msf();
    idd_state_release(&a->st);
    a->st = st;
    memcpy(a->st.digest, j.body, 32);
    /* a snapshot of format 1 is not the canonical body of today */
    a->st.digest_ok = idd_snapshot_current(snap, len);
    a->jlpi = lpi;
    BK_DEBUG("infodid restore stages: parse=%.0fms write=%.0fms wait=%.0fms "
             "journal=%.0fms release=%.0fms",
             t1 - t0, j.ms, t2 - t1, t3 - t2, bk_mono_msf() - t3);
    free(j.tmp);
    free(dst);
    return BK_OK;
fail_renamed:
    /* the new checkpoint is in place but its journal is not: the next open
     * reads the restored state (generation + 1, no journal yet), which is
     * what the caller asked for; this process keeps the state it had */
fail:
    if (j.tmp != NULL)
        unlink(j.tmp);
    free(j.tmp);
    free(dst);
    idd_state_release(&st);
    return BK_ERR;
}

static int app_digest(br2k_app *a, char hex[65], bk_err *e) {
    if (!a->st.digest_ok) {
        idd_buf b = {0};
        if (idd_encode_body(&a->st, &b, e) != BK_OK) {
            idd_buf_free(&b);
            return BK_ERR;
        }
        idd_sha256(b.p, b.len, a->st.digest);
        idd_buf_free(&b);
        a->st.digest_ok = 1;
    }
    bk_hex_encode(a->st.digest, 32, 0, hex);
    return BK_OK;
}

/* ---- the plug-in (br2k/app.h): the functions above, their bk_err
 * (common/base/err.h, same codes) turned into the public br2k_app_error ---- */

static int pub(int rc, const bk_err *be, br2k_app_error *e) {
    if (rc == BK_OK)
        return BR2K_APP_OK;
    return br2k_app_error_set(e, be->code, "%s", be->msg);
}

static int p_open(const char *dir, br2k_app **app, int64_t *lpi, br2k_app_error *e) {
    bk_err be;
    return pub(app_open(dir, app, lpi, &be), &be, e);
}

static int p_apply(br2k_app *a, int64_t offset, const void *rec, size_t len,
                   char **result, int *applied, br2k_app_error *e) {
    bk_err be;
    return pub(idd_apply(a, offset, rec, len, result, applied, &be), &be, e);
}

static int p_sync(br2k_app *a, br2k_app_error *e) {
    bk_err be;
    return pub(app_sync(a, &be), &be, e);
}

static int p_snapshot(br2k_app *a, void **out, size_t *len, int64_t *lpi,
                      br2k_app_error *e) {
    bk_err be;
    return pub(app_snapshot(a, out, len, lpi, &be), &be, e);
}

static int p_restore(br2k_app *a, const void *snap, size_t len, br2k_app_error *e) {
    bk_err be;
    return pub(app_restore(a, snap, len, &be), &be, e);
}

static int p_digest(br2k_app *a, char hex[65], br2k_app_error *e) {
    bk_err be;
    return pub(app_digest(a, hex, &be), &be, e);
}

static const br2k_app_plugin plugin = {
    .abi_version = BR2K_APP_ABI_VERSION,
    .name = "infodid",
    .open = p_open,
    .apply = p_apply,
    .sync = p_sync,
    .external = idd_external,
    .external_many = idd_external_many,
    .snapshot = p_snapshot,
    .restore = p_restore,
    .digest = p_digest,
    .close = app_close,
    .republish = idd_republish,
};

const br2k_app_plugin *br2k_infodid_entry(void) {
    return &plugin;
}
