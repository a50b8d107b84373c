/* test_held.c - worker.held (worker.h): frames written once per batch, a
 * new generation over older frames, torn frames, version 1 files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "worker.h"

static char path[256];

static void rec(bk_held_rec *r, int64_t off, const char *id, const char *json) {
    r->offset = off;
    r->request_id = id;
    r->json = json;
}

/* Read the file: n results, LPI upto, the offsets in order. */
static void expect(int64_t upto, size_t n, const int64_t *offs) {
    bk_err e;
    bk_err_clear(&e);
    bk_held_rec *r = NULL;
    size_t got = 0;
    int64_t up = -2;
    CHECK_INT(bk_held_read(path, &up, &r, &got, &e), BK_OK);
    CHECK_INT(up, upto);
    CHECK_INT(got, n);
    for (size_t i = 0; i < got && i < n; i++) {
        CHECK_INT(r[i].offset, offs[i]);
        free((char *)r[i].request_id);
        free((char *)r[i].json);
    }
    free(r);
}

static size_t file_size(void) {
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

int main(void) {
    bk_err e;
    bk_err_clear(&e);
    char dir[] = "/tmp/br2k-held.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof(path), "%s/worker.held", dir);

    /* no file, then a prepared file of zeros: nothing held, no error */
    expect(-1, 0, NULL);
    bk_held_file f = {-1, 0, -1, 0};
    CHECK_INT(bk_held_prepare(&f, path, &e), BK_OK);
    CHECK_INT(file_size(), BK_HELD_SPACE);
    expect(-1, 0, NULL);

    /* batch 1 (offsets 10, 11; the second without a request id) */
    bk_held_rec r[4];
    rec(&r[0], 10, "c:1", "{\"id\":\"c:1\",\"status\":\"ok\"}");
    rec(&r[1], 11, NULL, "{\"status\":\"rejected\"}");
    CHECK_INT(bk_held_write(&f, path, 0, 11, 10, r, 2, &e), BK_OK);
    CHECK_INT(f.seq, 0); /* the first write starts a generation */
    size_t end1 = f.end;
    {
        int64_t o[] = {10, 11};
        expect(11, 2, o);
    }
    bk_held_rec *back = NULL;
    size_t nb = 0;
    int64_t up = 0;
    CHECK_INT(bk_held_read(path, &up, &back, &nb, &e), BK_OK);
    CHECK_STR(back[0].request_id, "c:1");
    CHECK_STR(back[0].json, "{\"id\":\"c:1\",\"status\":\"ok\"}");
    CHECK(back[1].request_id == NULL, "no request id");
    CHECK_STR(back[1].json, "{\"status\":\"rejected\"}");
    for (size_t i = 0; i < nb; i++) {
        free((char *)back[i].request_id);
        free((char *)back[i].json);
    }
    free(back);

    /* batch 2 appended with its own results only (12..13); 10..11 still in
     * flight: base 10 */
    rec(&r[0], 12, "c:2", "{\"id\":\"c:2\"}");
    rec(&r[1], 13, "c:3", "{\"id\":\"c:3\"}");
    CHECK_INT(bk_held_write(&f, path, 0, 13, 10, r, 2, &e), BK_OK);
    CHECK_INT(f.seq, 1);
    {
        int64_t o[] = {10, 11, 12, 13};
        expect(13, 4, o);
    }
    /* batch 3: 10..11 committed (base 12), nothing new (upto moves) */
    size_t end2 = f.end;
    CHECK_INT(bk_held_write(&f, path, 0, 14, 12, r, 0, &e), BK_OK);
    {
        int64_t o[] = {12, 13};
        expect(14, 2, o);
    }
    /* batch 4: torn (a crash in the middle of its write): the reader stops
     * at the last whole frame */
    size_t end3 = f.end;
    rec(&r[0], 15, "c:4", "{\"id\":\"c:4\"}");
    CHECK_INT(bk_held_write(&f, path, 0, 15, 12, r, 1, &e), BK_OK);
    {
        int fd = open(path, O_WRONLY);
        CHECK(fd >= 0, "open");
        char zero[8] = {0};
        CHECK(pwrite(fd, zero, sizeof(zero), (off_t)(f.end - 4)) == 8, "tear");
        close(fd);
        int64_t o[] = {12, 13};
        expect(14, 2, o);
    }
    CHECK(end1 < end2 && end2 < end3, "frames follow one another");

    /* a new generation at the start (nothing in flight): every result not
     * committed; the older generation's frames after it are ignored */
    rec(&r[0], 16, "c:5", "{\"id\":\"c:5\"}");
    CHECK_INT(bk_held_write(&f, path, 1, 16, 16, r, 1, &e), BK_OK);
    CHECK_INT(f.seq, 0);
    {
        int64_t o[] = {16};
        expect(16, 1, o);
    }
    rec(&r[0], 17, "c:6", "{\"id\":\"c:6\"}");
    CHECK_INT(bk_held_write(&f, path, 0, 17, 16, r, 1, &e), BK_OK);
    {
        int64_t o[] = {16, 17};
        expect(17, 2, o);
    }
    /* a damaged first frame: an error naming the file */
    {
        int fd = open(path, O_WRONLY);
        CHECK(pwrite(fd, "X", 1, 20) == 1, "damage");
        close(fd);
        bk_held_rec *x = NULL;
        size_t nx = 0;
        CHECK_INT(bk_held_read(path, &up, &x, &nx, &e), BK_ERR);
        CHECK(strstr(e.msg, "damaged held-results file") != NULL, "msg: %s", e.msg);
        CHECK(strstr(e.msg, path) != NULL, "msg names the file: %s", e.msg);
    }
    close(f.fd);

    /* a version 1 file (an older worker's): one frame, read whole */
    {
        FILE *o = fopen(path, "w");
        const char *body = "7 3 5\nc:7{\"a\"}8 -1 2\n{}";
        char head[129];
        int m = snprintf(head, sizeof(head), "br2k-held 1 8 2 %zu %08x", strlen(body),
                         bk_text_check(body, strlen(body)));
        CHECK(bk_fixed_line(head, sizeof(head), 128, m) == 128, "v1 header");
        fwrite(head, 1, 128, o);
        fputs(body, o);
        fclose(o);
        int64_t offs[] = {7, 8};
        expect(8, 2, offs);
    }
    unlink(path);
    rmdir(dir);
    return check_done();
}
