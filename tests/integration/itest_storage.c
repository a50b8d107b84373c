/* itest_storage.c - the storage interface (storage.h) against a real back
 * end, the same checks for file:// and s3:// (run by storage_s3.sh).
 *
 *   itest_storage suite URL                  put/get/head/list/delete, no
 *                                            overwrite, idempotent puts,
 *                                            pagination (BR2K_S3_MAX_KEYS)
 *   itest_storage put-fails URL CODE TEXT    a put fails with that error code
 *                                            (bk_errcode_name) and a message
 *                                            containing TEXT
 *   itest_storage list-fails URL CODE TEXT   the same for a list
 *   itest_storage open-fails URL CODE TEXT   the same for bk_storage_open
 *   itest_storage fill URL                   file:// on a small file system:
 *                                            a put too large fails clearly
 *                                            with ENOSPC and leaves nothing */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/check.h"
#include "backup/storage.h"

static bk_storage *open_or_die(const char *url) {
    bk_err e;
    bk_storage *s = NULL;
    if (bk_storage_open(url, &s, &e) != BK_OK) {
        fprintf(stderr, "itest_storage: %s\n", e.msg);
        exit(1);
    }
    return s;
}

static int list_count(bk_storage *s, const char *prefix) {
    bk_err e;
    char **names = NULL;
    size_t n = 0;
    if (bk_storage_list(s, prefix, &names, &n, &e) != BK_OK) {
        fprintf(stderr, "list: %s\n", e.msg);
        return -1;
    }
    bk_storage_names_free(names, n);
    return (int)n;
}

static int suite(const char *url) {
    bk_err e;
    bk_storage *s = open_or_die(url);
    CHECK_STR(bk_storage_url(s), url);
    CHECK_INT(list_count(s, NULL), 0); /* a fresh place */

    /* put, get, head */
    const char *a = "sealed snapshot bytes \x01\x02";
    size_t alen = strlen(a);
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", a, alen, &e), BK_OK);
    void *d = NULL;
    size_t n = 0;
    CHECK_INT(bk_storage_get(s, "infodid-v2-abc.seal", &d, &n, &e), BK_OK);
    CHECK(n == alen && d != NULL && memcmp(d, a, n) == 0 && ((char *)d)[n] == '\0',
          "get returns the bytes");
    free(d);
    int ex = -1;
    uint64_t size = 99;
    CHECK_INT(bk_storage_head(s, "infodid-v2-abc.seal", &ex, &size, &e), BK_OK);
    CHECK_INT(ex, 1);
    CHECK_INT(size, alen);
    CHECK_INT(bk_storage_head(s, "missing", &ex, &size, &e), BK_OK);
    CHECK_INT(ex, 0);
    CHECK_INT(size, 0);
    d = (void *)1;
    n = 5;
    CHECK_INT(bk_storage_get(s, "missing", &d, &n, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_NOTFOUND);
    CHECK(strncmp(e.msg, "storage: object 'missing' not found in '", 40) == 0, "msg: %s",
          e.msg);
    CHECK(d == NULL && n == 0, "outputs cleared");

    /* no overwrite; an identical put is idempotent */
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", a, alen, &e), BK_OK);
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", "other", 5, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_STATE);
    CHECK(strstr(e.msg, "storage: object 'infodid-v2-abc.seal' already exists in '") ==
                  e.msg &&
              strstr(e.msg, "' with different content") != NULL,
          "msg: %s", e.msg);
    printf("different content refused: %s\n", e.msg);
    /* same size, other bytes: caught by the content check, not the size */
    char same_len[64];
    memcpy(same_len, a, alen);
    same_len[0] = 'S';
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", same_len, alen, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_STATE);
    CHECK_INT(bk_storage_get(s, "infodid-v2-abc.seal", &d, &n, &e), BK_OK);
    CHECK(n == alen && memcmp(d, a, n) == 0, "the first bytes are kept");
    free(d);

    /* empty and larger objects; names with dots */
    CHECK_INT(bk_storage_put(s, "empty", NULL, 0, &e), BK_OK);
    CHECK_INT(bk_storage_put(s, "empty", "", 0, &e), BK_OK);
    CHECK_INT(bk_storage_get(s, "empty", &d, &n, &e), BK_OK);
    CHECK_INT(n, 0);
    free(d);
    size_t big = 3 * 1024 * 1024 + 17;
    uint8_t *bb = malloc(big);
    for (size_t i = 0; i < big; i++)
        bb[i] = (uint8_t)(i * 7 + (i >> 12));
    CHECK_INT(bk_storage_put(s, "infodid-v3-def.seal", bb, big, &e), BK_OK);
    CHECK_INT(bk_storage_put(s, "infodid-v3-def.seal", bb, big, &e), BK_OK);
    CHECK_INT(bk_storage_get(s, "infodid-v3-def.seal", &d, &n, &e), BK_OK);
    CHECK(n == big && d != NULL && memcmp(d, bb, big) == 0, "3 MB object");
    free(d);
    free(bb);
    CHECK_INT(bk_storage_put(s, "a.b.c", "dots", 4, &e), BK_OK);
    CHECK_INT(bk_storage_put(s, "x-1_2.v.seal", "mixed", 5, &e), BK_OK);
    CHECK_INT(bk_storage_get(s, "a.b.c", &d, &n, &e), BK_OK);
    CHECK(n == 4 && memcmp(d, "dots", 4) == 0, "a.b.c");
    free(d);

    /* list: sorted, by prefix */
    char **names = NULL;
    size_t count = 0;
    CHECK_INT(bk_storage_list(s, NULL, &names, &count, &e), BK_OK);
    CHECK_INT(count, 5);
    if (count == 5) {
        CHECK_STR(names[0], "a.b.c");
        CHECK_STR(names[1], "empty");
        CHECK_STR(names[2], "infodid-v2-abc.seal");
        CHECK_STR(names[3], "infodid-v3-def.seal");
        CHECK_STR(names[4], "x-1_2.v.seal");
    }
    bk_storage_names_free(names, count);
    CHECK_INT(bk_storage_list(s, "infodid-", &names, &count, &e), BK_OK);
    CHECK_INT(count, 2);
    if (count == 2) {
        CHECK_STR(names[0], "infodid-v2-abc.seal");
        CHECK_STR(names[1], "infodid-v3-def.seal");
    }
    bk_storage_names_free(names, count);
    CHECK_INT(bk_storage_list(s, "nothing", &names, &count, &e), BK_OK);
    CHECK_INT(count, 0);
    CHECK(names == NULL, "no names");

    /* more objects than one page holds (BR2K_S3_MAX_KEYS) */
    char nm[32];
    for (int i = 0; i < 7; i++) {
        snprintf(nm, sizeof nm, "page-%02d", i);
        CHECK_INT(bk_storage_put(s, nm, nm, strlen(nm), &e), BK_OK);
    }
    CHECK_INT(bk_storage_list(s, "page-", &names, &count, &e), BK_OK);
    CHECK_INT(count, 7);
    for (size_t i = 0; i < count && i < 7; i++) {
        snprintf(nm, sizeof nm, "page-%02zu", i);
        CHECK_STR(names[i], nm);
    }
    bk_storage_names_free(names, count);
    CHECK_INT(list_count(s, NULL), 12);

    /* delete, also of an absent object; then the name can hold other bytes */
    CHECK_INT(bk_storage_delete(s, "infodid-v2-abc.seal", &e), BK_OK);
    CHECK_INT(bk_storage_head(s, "infodid-v2-abc.seal", &ex, NULL, &e), BK_OK);
    CHECK_INT(ex, 0);
    CHECK_INT(bk_storage_delete(s, "infodid-v2-abc.seal", &e), BK_OK);
    CHECK_INT(bk_storage_get(s, "infodid-v2-abc.seal", &d, &n, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_NOTFOUND);
    CHECK_INT(list_count(s, "infodid-"), 1);
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", "new", 3, &e), BK_OK);
    CHECK_INT(bk_storage_get(s, "infodid-v2-abc.seal", &d, &n, &e), BK_OK);
    CHECK(n == 3 && memcmp(d, "new", 3) == 0, "new bytes");
    free(d);

    /* bad names are refused before any I/O */
    CHECK_INT(bk_storage_put(s, "a/b", "x", 1, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK_INT(bk_storage_put(s, ".hidden", "x", 1, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);

    /* a second handle sees the same objects and refuses other bytes */
    bk_storage *s2 = open_or_die(url);
    CHECK_INT(list_count(s2, NULL), 12);
    CHECK_INT(bk_storage_put(s2, "infodid-v3-def.seal", "not the same", 12, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_STATE);
    bk_storage_close(s2);
    bk_storage_close(s);
    return check_done();
}

static int expect_fail(const char *what, int rc, const bk_err *e, const char *code,
                       const char *text) {
    CHECK_INT(rc, BK_ERR);
    if (rc == BK_ERR) {
        printf("%s failed as expected: [%s] %s\n", what, bk_errcode_name(e->code),
               e->msg);
        CHECK_STR(bk_errcode_name(e->code), code);
        CHECK(strstr(e->msg, text) != NULL, "message '%s' lacks '%s'", e->msg, text);
        CHECK(strchr(e->msg, '\n') == NULL, "one line");
    }
    return check_done();
}

static int fill(const char *url) {
    bk_err e;
    bk_storage *s = open_or_die(url);
    const char *dir = url + 7;
    size_t big = 4u << 20;
    uint8_t *bb = calloc(1, big);
    int rc = bk_storage_put(s, "too-big.seal", bb, big, &e);
    free(bb);
    CHECK_INT(rc, BK_ERR);
    if (rc == BK_ERR) {
        printf("full disk: [%s] %s\n", bk_errcode_name(e.code), e.msg);
        CHECK_INT(e.code, BK_E_IO);
        CHECK(strstr(e.msg, "No space left on device") != NULL, "msg: %s", e.msg);
        CHECK(strstr(e.msg, "'too-big.seal'") != NULL, "names the object: %s", e.msg);
    }
    int ex = -1;
    CHECK_INT(bk_storage_head(s, "too-big.seal", &ex, NULL, &e), BK_OK);
    CHECK_INT(ex, 0);
    CHECK_INT(list_count(s, NULL), 0);
    DIR *dd = opendir(dir);
    int entries = 0;
    for (struct dirent *de = dd ? readdir(dd) : NULL; de != NULL; de = readdir(dd))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            fprintf(stderr, "left behind: %s\n", de->d_name);
            entries++;
        }
    if (dd != NULL)
        closedir(dd);
    CHECK_INT(entries, 0);
    /* a put that fits still works */
    CHECK_INT(bk_storage_put(s, "small.seal", "fits", 4, &e), BK_OK);
    bk_storage_close(s);
    return check_done();
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "suite") == 0)
        return suite(argv[2]);
    if (argc == 3 && strcmp(argv[1], "fill") == 0)
        return fill(argv[2]);
    if (argc == 5 && strcmp(argv[1], "open-fails") == 0) {
        bk_err e;
        bk_storage *s = NULL;
        int rc = bk_storage_open(argv[2], &s, &e);
        bk_storage_close(s);
        return expect_fail("open", rc, &e, argv[3], argv[4]);
    }
    if (argc == 5 && strcmp(argv[1], "put-fails") == 0) {
        bk_err e;
        bk_storage *s = open_or_die(argv[2]);
        int rc = bk_storage_put(s, "refused.seal", "x", 1, &e);
        bk_storage_close(s);
        return expect_fail("put", rc, &e, argv[3], argv[4]);
    }
    if (argc == 5 && strcmp(argv[1], "list-fails") == 0) {
        bk_err e;
        bk_storage *s = open_or_die(argv[2]);
        char **names = NULL;
        size_t n = 0;
        int rc = bk_storage_list(s, NULL, &names, &n, &e);
        bk_storage_names_free(names, n);
        bk_storage_close(s);
        return expect_fail("list", rc, &e, argv[3], argv[4]);
    }
    fprintf(stderr, "usage: itest_storage suite|fill URL | "
                    "put-fails|list-fails|open-fails URL CODE TEXT\n");
    return 2;
}
