/* test_storage.c - off-chain storage, file:// back end (storage.h): put,
 * get, head, list, delete; no overwrite; idempotent puts; temporary files
 * left by a crash are invisible; bad URLs and names refused clearly. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "backup/storage.h"

static char base[64];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot create %s", path);
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

/* Entries of dir whose name starts with prefix. */
static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *de = readdir(d); de != NULL; de = readdir(d))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static void bad_url(const char *url, const char *want) {
    bk_err e;
    bk_storage *s = (bk_storage *)1;
    CHECK_INT(bk_storage_open(url, &s, &e), BK_ERR);
    CHECK(s == NULL, "no handle for '%s'", url);
    CHECK_STR(e.msg, want);
    CHECK(strchr(e.msg, '\n') == NULL, "one line");
}

static void bad_name(bk_storage *s, const char *name) {
    bk_err e;
    void *d = NULL;
    size_t n = 0;
    int ex = 0;
    CHECK_INT(bk_storage_put(s, name, "x", 1, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK(strncmp(e.msg, "storage: bad object name '", 26) == 0, "msg: %s", e.msg);
    CHECK_INT(bk_storage_get(s, name, &d, &n, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK_INT(bk_storage_head(s, name, &ex, NULL, &e), BK_ERR);
    CHECK_INT(bk_storage_delete(s, name, &e), BK_ERR);
}

int main(void) {
    bk_err e;
    snprintf(base, sizeof base, "/tmp/br2k-test-storage.XXXXXX");
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char dir[128], url[160], path[256];
    snprintf(dir, sizeof dir, "%s/store/objs", base); /* created by open */
    snprintf(url, sizeof url, "file://%s", dir);

    bk_storage *s = NULL;
    CHECK_INT(bk_storage_open(url, &s, &e), BK_OK);
    if (s == NULL)
        return check_done();
    CHECK_STR(bk_storage_url(s), url);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "directory created");

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
    snprintf(path, sizeof path, "storage: object 'missing' not found in '%s'", url);
    CHECK_STR(e.msg, path);
    CHECK(d == NULL && n == 0, "outputs cleared");
    /* the file itself holds the bytes */
    snprintf(path, sizeof path, "%s/infodid-v2-abc.seal", dir);
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size == alen, "the file on disk");

    /* no overwrite; an identical put is idempotent */
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", a, alen, &e), BK_OK);
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", "other", 5, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_STATE);
    snprintf(
        path, sizeof path,
        "storage: object 'infodid-v2-abc.seal' already exists in '%s' with different "
        "content",
        url);
    CHECK_STR(e.msg, path);
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", a, alen - 1, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_STATE);
    CHECK_INT(bk_storage_get(s, "infodid-v2-abc.seal", &d, &n, &e), BK_OK);
    CHECK(n == alen && memcmp(d, a, n) == 0, "the first bytes are kept");
    free(d);

    /* empty and larger objects */
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
    CHECK_INT(bk_storage_get(s, "infodid-v3-def.seal", &d, &n, &e), BK_OK);
    CHECK(n == big && memcmp(d, bb, big) == 0, "3 MB object");
    free(d);
    free(bb);
    CHECK_INT(count_entries(dir, ".tmp-"), 0);

    /* a crash-left temporary file and a subdirectory are not objects */
    snprintf(path, sizeof path, "%s/.tmp-infodid-v4-ghi.seal.4242.0123456789ab", dir);
    write_file(path, "half written");
    snprintf(path, sizeof path, "%s/infodid-subdir", dir);
    CHECK_INT(mkdir(path, 0700), 0);
    char **names = NULL;
    size_t count = 0;
    CHECK_INT(bk_storage_list(s, NULL, &names, &count, &e), BK_OK);
    CHECK_INT(count, 3);
    if (count == 3) {
        CHECK_STR(names[0], "empty");
        CHECK_STR(names[1], "infodid-v2-abc.seal");
        CHECK_STR(names[2], "infodid-v3-def.seal");
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
    CHECK_INT(bk_storage_get(s, "infodid-v4-ghi.seal", &d, &n, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_NOTFOUND);
    CHECK_INT(bk_storage_head(s, "infodid-v4-ghi.seal", &ex, NULL, &e), BK_OK);
    CHECK_INT(ex, 0);
    CHECK_INT(bk_storage_get(s, ".tmp-infodid-v4-ghi.seal.4242.0123456789ab", &d, &n, &e),
              BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    /* the interrupted object can be put afresh */
    CHECK_INT(bk_storage_put(s, "infodid-v4-ghi.seal", "v4", 2, &e), BK_OK);
    CHECK_INT(bk_storage_get(s, "infodid-v4-ghi.seal", &d, &n, &e), BK_OK);
    CHECK(n == 2 && memcmp(d, "v4", 2) == 0, "v4 bytes");
    free(d);
    CHECK_INT(count_entries(dir, ".tmp-"), 1); /* only the crash-left one */

    /* delete, also of an absent object */
    CHECK_INT(bk_storage_delete(s, "infodid-v2-abc.seal", &e), BK_OK);
    CHECK_INT(bk_storage_head(s, "infodid-v2-abc.seal", &ex, NULL, &e), BK_OK);
    CHECK_INT(ex, 0);
    CHECK_INT(bk_storage_delete(s, "infodid-v2-abc.seal", &e), BK_OK);
    CHECK_INT(bk_storage_list(s, "infodid-", &names, &count, &e), BK_OK);
    CHECK_INT(count, 2);
    if (count == 2) {
        CHECK_STR(names[0], "infodid-v3-def.seal");
        CHECK_STR(names[1], "infodid-v4-ghi.seal");
    }
    bk_storage_names_free(names, count);
    /* after a delete the name can hold other bytes */
    CHECK_INT(bk_storage_put(s, "infodid-v2-abc.seal", "new", 3, &e), BK_OK);

    /* bad names */
    bad_name(s, "");
    bad_name(s, ".hidden");
    bad_name(s, "a/b");
    bad_name(s, "../escape");
    bad_name(s, "sp ace");
    bad_name(s, NULL);
    char longname[BK_STORAGE_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    bad_name(s, longname);
    longname[BK_STORAGE_NAME_MAX] = '\0';
    CHECK_INT(bk_storage_put(s, longname, "x", 1, &e), BK_OK);

    /* a second handle on the same directory sees the same objects */
    bk_storage *s2 = NULL;
    CHECK_INT(bk_storage_open(url, &s2, &e), BK_OK);
    if (s2 != NULL) {
        CHECK_INT(bk_storage_put(s2, "infodid-v3-def.seal", "not the same", 12, &e),
                  BK_ERR);
        CHECK_INT(e.code, BK_E_STATE);
        bk_storage_close(s2);
    }
    bk_storage_close(s);

    /* bad URLs: one line, naming the URL */
    bad_url("", "storage: bad url '': want file://DIR or s3://BUCKET/PREFIX");
    bad_url(
        "http://example.com/x",
        "storage: bad url 'http://example.com/x': want file://DIR or s3://BUCKET/PREFIX");
    bad_url("/var/backups",
            "storage: bad url '/var/backups': want file://DIR or s3://BUCKET/PREFIX");
    bad_url("file://", "storage: bad url 'file://': no directory");
    bad_url("s3://", "storage: bad url 's3://': no bucket");
    /* s3:// URLs: test_storage_s3.c */
    bad_url(
        "s3://ab/infodid",
        "storage: bad url 's3://ab/infodid': bucket name must have 3 to 63 characters");
    bad_url("file:///tmp/a\nb", "storage: bad url 'file:///tmp/a b': control character");
    /* a directory that cannot be created: a file is in the way */
    snprintf(path, sizeof path, "%s/afile", base);
    write_file(path, "x");
    snprintf(url, sizeof url, "file://%s/afile/sub", base);
    bk_storage *s3 = (bk_storage *)1;
    CHECK_INT(bk_storage_open(url, &s3, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_IO);
    CHECK(s3 == NULL, "no handle");
    char want[300];
    snprintf(want, sizeof want,
             "storage: cannot create directory '%s/afile/sub' for '%s':", base, url);
    CHECK(strncmp(e.msg, want, strlen(want)) == 0, "got '%s'", e.msg);

    /* a relative directory */
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    CHECK_INT(chdir(base), 0);
    CHECK_INT(bk_storage_open("file://rel/objs", &s, &e), BK_OK);
    if (s != NULL) {
        CHECK_INT(bk_storage_put(s, "x", "1", 1, &e), BK_OK);
        CHECK(stat("rel/objs/x", &st) == 0, "relative object");
        bk_storage_close(s);
    }
    CHECK_INT(chdir(cwd), 0);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK_INT(system(cmd), 0);
    return check_done();
}
