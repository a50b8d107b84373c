/* test_archive.c - the history archive's plaintext (common/backup/archive.h):
 * records written and read back byte for byte (text, and bytes that are not
 * UTF-8, with NULs), the header in front, and bad input refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/archive.h"
#include "check.h"

int main(void) {
    bk_err e;
    bk_archive_buf b;
    memset(&b, 0, sizeof(b));
    bk_archive_hdr h[2] = {{"br2k-request-id", "c:1", 3}, {"br2k-schema", "1", 1}};
    const char bin[] = {'\xff', '\0', 'a', '\n'};
    CHECK_INT(bk_archive_add(&b, 7, "c", 1, h, 2, "{\"op\":\"x\"}", 10, 1234, &e), BK_OK);
    CHECK_INT(bk_archive_add(&b, 8, "k\xfe", 2, h, 1, bin, sizeof(bin), -1, &e), BK_OK);
    CHECK_INT(bk_archive_add(&b, 9, "", 0, NULL, 0, "", 0, -1, &e), BK_OK);
    CHECK_INT(b.count, 3);
    json_t *hdr = json_pack("{ss sI}", "format", BK_ARCHIVE_FORMAT, "version", 3);
    char *plain = NULL;
    size_t len = 0, pos = 0;
    CHECK_INT(bk_archive_finish(&b, hdr, &plain, &len, &e), BK_OK);
    json_decref(hdr);
    CHECK(b.data == NULL && b.len == 0, "the buffer is emptied");
    json_t *got = NULL;
    CHECK_INT(bk_archive_header(plain, len, &got, &pos, &e), BK_OK);
    CHECK_INT(json_integer_value(json_object_get(got, "version")), 3);
    json_decref(got);
    const char *line;
    size_t llen;
    int64_t off = 0;
    void *v = NULL;
    size_t vlen = 0;
    CHECK(bk_archive_next(plain, len, &pos, &line, &llen) == 1, "record 7");
    CHECK(memchr(line, '\n', llen) == NULL, "one line");
    CHECK_INT(bk_archive_decode(line, llen, &off, &v, &vlen, &e), BK_OK);
    CHECK_INT(off, 7);
    CHECK(vlen == 10 && memcmp(v, "{\"op\":\"x\"}", 10) == 0, "text value");
    json_t *j = json_loadb(line, llen, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "encoding")), "utf-8");
    CHECK_STR(json_string_value(
                  json_array_get(json_array_get(json_object_get(j, "headers"), 0), 1)),
              "c:1");
    CHECK_INT(json_integer_value(json_object_get(j, "ts_ms")), 1234);
    json_decref(j);
    free(v);
    CHECK(bk_archive_next(plain, len, &pos, &line, &llen) == 1, "record 8");
    CHECK_INT(bk_archive_decode(line, llen, &off, &v, &vlen, &e), BK_OK);
    CHECK(off == 8 && vlen == sizeof(bin) && memcmp(v, bin, sizeof(bin)) == 0,
          "bytes that are not UTF-8 come back");
    j = json_loadb(line, llen, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "encoding")), "hex");
    CHECK_STR(json_string_value(json_object_get(j, "key")), "6bfe");
    json_decref(j);
    free(v);
    CHECK(bk_archive_next(plain, len, &pos, &line, &llen) == 1, "record 9");
    CHECK_INT(bk_archive_decode(line, llen, &off, &v, &vlen, &e), BK_OK);
    CHECK(off == 9 && vlen == 0, "empty record");
    free(v);
    CHECK(bk_archive_next(plain, len, &pos, &line, &llen) == 0, "the end");
    free(plain);

    /* bad input */
    CHECK_INT(bk_archive_header("{\"format\":\"other\"}\n", 19, &got, &pos, &e), BK_ERR);
    CHECK(strstr(e.msg, "not a br2k.history-archive.v1 header") != NULL, "%s", e.msg);
    CHECK_INT(bk_archive_header("", 0, &got, &pos, &e), BK_ERR);
    CHECK_INT(bk_archive_decode("{\"offset\":1}", 12, &off, &v, &vlen, &e), BK_ERR);
    CHECK(strstr(e.msg, "not a record") != NULL, "%s", e.msg);
    CHECK_INT(bk_archive_decode("{\"offset\":1,\"value\":\"zz\",\"encoding\":\"hex\"}",
                                42, &off, &v, &vlen, &e),
              BK_ERR);
    CHECK(strstr(e.msg, "record 1") != NULL, "%s", e.msg);
    return check_done();
}
