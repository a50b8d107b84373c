/* test_storage_s3.c - the pure parts of the s3:// storage back end
 * (storage_int.h): URL parsing with its defaults and clear refusals,
 * SigV4 query encoding and sorting, ListObjectsV2 and error XML; and
 * bk_storage_open's checks of the credentials variables (no server). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "backup/storage.h"
#include "backup/storage_int.h"

static void good(const char *url, const char *bucket, const char *prefix,
                 const char *endpoint, const char *region, int path_style) {
    bk_s3_cfg c;
    bk_err e;
    e.msg[0] = '\0';
    CHECK(bk_s3_parse_url(url, &c, &e) == BK_OK, "'%s': %s", url, e.msg);
    CHECK_STR(c.bucket, bucket);
    CHECK_STR(c.prefix, prefix);
    CHECK_STR(c.endpoint, endpoint);
    CHECK_STR(c.region, region);
    CHECK_INT(c.path_style, path_style);
}

static void bad(const char *url, const char *want) {
    bk_s3_cfg c;
    bk_err e;
    CHECK_INT(bk_s3_parse_url(url, &c, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK_STR(e.msg, want);
    /* and the same through bk_storage_open */
    bk_storage *s = (bk_storage *)1;
    CHECK_INT(bk_storage_open(url, &s, &e), BK_ERR);
    CHECK(s == NULL, "no handle for '%s'", url);
    CHECK_STR(e.msg, want);
}

static void sorted(const char *in, const char *want) {
    char *got = bk_s3_sort_query(in);
    CHECK_STR(got, want);
    free(got);
}

static void encoded(const char *in, int keep_slash, const char *want) {
    char *got = bk_s3_uri_encode(in, keep_slash);
    CHECK_STR(got, want);
    free(got);
}

static void text(const char *xml, const char *tag, const char *want) {
    char *got = bk_s3_xml_text(xml, strlen(xml), tag);
    if (want == NULL)
        CHECK(got == NULL, "<%s> in '%s': got '%s'", tag, xml, got);
    else
        CHECK_STR(got, want);
    free(got);
}

static void open_fails(const char *url, int code, const char *want) {
    bk_err e;
    bk_storage *s = (bk_storage *)1;
    CHECK_INT(bk_storage_open(url, &s, &e), BK_ERR);
    CHECK(s == NULL, "no handle");
    CHECK_INT(e.code, code);
    CHECK_STR(e.msg, want);
}

int main(void) {
    /* ---- URLs ---- */
    good("s3://br2k-backups", "br2k-backups", "", "https://s3.us-east-1.amazonaws.com",
         "us-east-1", 0);
    good("s3://br2k-backups/", "br2k-backups", "", "https://s3.us-east-1.amazonaws.com",
         "us-east-1", 0);
    good("s3://br2k-backups/infodid", "br2k-backups", "infodid",
         "https://s3.us-east-1.amazonaws.com", "us-east-1", 0);
    good("s3://br2k-backups/svc/infodid.v1/?region=eu-west-3", "br2k-backups",
         "svc/infodid.v1", "https://s3.eu-west-3.amazonaws.com", "eu-west-3", 0);
    good("s3://b.with.dots/p?region=eu-west-3&path_style=1", "b.with.dots", "p",
         "https://s3.eu-west-3.amazonaws.com", "eu-west-3", 1);
    /* an endpoint: path style unless told otherwise; a trailing '/' dropped */
    good("s3://bk1/p?endpoint=http://127.0.0.1:4569", "bk1", "p", "http://127.0.0.1:4569",
         "us-east-1", 1);
    good("s3://bk1/"
         "p?endpoint=http%3A%2F%2F127.0.0.1%3A4569%2F&region=us-east-1&path_style=0",
         "bk1", "p", "http://127.0.0.1:4569", "us-east-1", 0);
    good("s3://bk1?path_style=1&endpoint=https://minio.example:9000/&region=local-1",
         "bk1", "", "https://minio.example:9000", "local-1", 1);
    good("s3://bk1/a/b/c//?endpoint=http://[::1]:9000", "bk1", "a/b/c",
         "http://[::1]:9000", "us-east-1", 1);

    bad("s3://", "storage: bad url 's3://': no bucket");
    bad("s3:///x", "storage: bad url 's3:///x': no bucket");
    bad("s3://?region=x", "storage: bad url 's3://?region=x': no bucket");
    bad("s3://ab/x",
        "storage: bad url 's3://ab/x': bucket name must have 3 to 63 characters");
    bad("s3://Upper/x",
        "storage: bad url 's3://Upper/x': bucket name must be of [a-z0-9.-]");
    bad("s3://-abc/x",
        "storage: bad url 's3://-abc/x': bucket name must start and end with a letter or "
        "digit");
    bad("s3://AKIA:secret@bkt/x",
        "storage: bad url 's3://...': credentials never go in the url; set "
        "BR2K_S3_ACCESS_KEY_ID and BR2K_S3_SECRET_ACCESS_KEY");
    bad("s3://bkt/x?secret_access_key=abc",
        "storage: bad url 's3://bkt/...': credentials never go in the url (found "
        "'secret_access_key'); set BR2K_S3_ACCESS_KEY_ID and BR2K_S3_SECRET_ACCESS_KEY");
    bad("s3://bkt/x?endpoint=http://user:pw@host:1",
        "storage: bad url 's3://bkt/...': credentials never go in the url; set "
        "BR2K_S3_ACCESS_KEY_ID and BR2K_S3_SECRET_ACCESS_KEY");
    bad("s3://bkt/a//b", "storage: bad url 's3://bkt/a//b': empty segment in the prefix");
    bad("s3://bkt/a/../b",
        "storage: bad url 's3://bkt/a/../b': '.' or '..' segment in the "
        "prefix");
    bad("s3://bkt/a b",
        "storage: bad url 's3://bkt/a b': prefix must be of [A-Za-z0-9._-] and '/'");
    bad("s3://bkt/x#frag", "storage: bad url 's3://bkt/x#frag': no '#' fragment allowed");
    bad("s3://bkt/x?endpoint=ftp://h", "storage: bad url 's3://bkt/x?endpoint=ftp://h': "
                                       "endpoint must start with http:// "
                                       "or https://");
    bad("s3://bkt/x?endpoint=http://h/path",
        "storage: bad url 's3://bkt/x?endpoint=http://h/path': endpoint must be "
        "scheme://HOST[:PORT], without a path");
    bad("s3://bkt/x?endpoint=http://",
        "storage: bad url 's3://bkt/x?endpoint=http://': endpoint has no host");
    bad("s3://bkt/x?region=US_EAST",
        "storage: bad url 's3://bkt/x?region=US_EAST': region must be of [a-z0-9-]");
    bad("s3://bkt/x?region=",
        "storage: bad url 's3://bkt/x?region=': bad value for 'region'");
    bad("s3://bkt/x?region=a%zz",
        "storage: bad url 's3://bkt/x?region=a%zz': bad value for 'region'");
    bad("s3://bkt/x?path_style=yes",
        "storage: bad url 's3://bkt/x?path_style=yes': path_style must be 0 or 1");
    bad("s3://bkt/x?region=a&region=b",
        "storage: bad url 's3://bkt/x?region=a&region=b': 'region' given twice");
    bad("s3://bkt/x?bucket=y",
        "storage: bad url 's3://bkt/x?bucket=y': unknown parameter "
        "'bucket' (want endpoint, region, path_style)");
    bad("s3://b.dots/x", "storage: bad url 's3://b.dots/x': a bucket name with '.' needs "
                         "path_style=1 over "
                         "https (its virtual host name does not match the certificate)");

    /* ---- credentials: from the environment only ---- */
    unsetenv("BR2K_S3_ACCESS_KEY_ID");
    unsetenv("BR2K_S3_SECRET_ACCESS_KEY");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("BR2K_S3_MAX_KEYS");
    open_fails(
        "s3://bkt/x?endpoint=http://127.0.0.1:9", BK_E_INVAL,
        "storage: s3://bkt/x: no credentials: set BR2K_S3_ACCESS_KEY_ID and "
        "BR2K_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    setenv("BR2K_S3_ACCESS_KEY_ID", "AKID", 1);
    open_fails(
        "s3://bkt/x", BK_E_INVAL,
        "storage: s3://bkt/x: incomplete credentials: BR2K_S3_ACCESS_KEY_ID is set "
        "but BR2K_S3_SECRET_ACCESS_KEY is not");
    unsetenv("BR2K_S3_ACCESS_KEY_ID");
    setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
    open_fails(
        "s3://bkt/x", BK_E_INVAL,
        "storage: s3://bkt/x: incomplete credentials: AWS_SECRET_ACCESS_KEY is set "
        "but AWS_ACCESS_KEY_ID is not");
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    bk_storage *s = NULL;
    bk_err e;
    const char *url = "s3://bkt/x/y?endpoint=http://127.0.0.1:9&region=r-1";
    CHECK_INT(bk_storage_open(url, &s, &e), BK_OK);
    if (s != NULL) {
        /* the URL comes back as given (it never holds a secret) */
        CHECK_STR(bk_storage_url(s), url);
        /* a bad name is refused before any request, naming bucket and prefix */
        CHECK_INT(bk_storage_put(s, "a/b", "x", 1, &e), BK_ERR);
        CHECK_INT(e.code, BK_E_INVAL);
        CHECK(strstr(e.msg, "for 's3://bkt/x/y'") != NULL, "msg: %s", e.msg);
        bk_storage_close(s);
    }
    setenv("BR2K_S3_MAX_KEYS", "0", 1);
    open_fails(
        "s3://bkt/x", BK_E_INVAL,
        "storage: invalid value '0' for BR2K_S3_MAX_KEYS: expected an integer from 1 "
        "to 1000");
    unsetenv("BR2K_S3_MAX_KEYS");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");

    /* ---- SigV4 query strings ---- */
    encoded("run1/page-", 0, "run1%2Fpage-");
    encoded("a b+c=d&e~f_g.h-i", 0, "a%20b%2Bc%3Dd%26e~f_g.h-i");
    encoded("p/q r", 1, "p/q%20r");
    encoded("\xc3\xa9", 0, "%C3%A9");
    encoded("", 0, "");
    sorted("prefix=p&list-type=2&max-keys=3&delimiter=%2F",
           "delimiter=%2F&list-type=2&max-keys=3&prefix=p");
    sorted("list-type=2&prefix=run1%2F&continuation-token=1d8%2B%3D",
           "continuation-token=1d8%2B%3D&list-type=2&prefix=run1%2F");
    /* by name first: "a" before "a-b" although '=' > '-' */
    sorted("a-b=1&a=2", "a=2&a-b=1");
    sorted("k=2&k=1", "k=1&k=2");
    sorted("", "");
    sorted("only=1", "only=1");

    /* ---- XML ---- */
    text("<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature &amp; "
         "&lt;x&gt; &quot;q&quot; &apos;a&apos; &#65;&#x42;</Message></Error>",
         "Message", "The request signature & <x> \"q\" 'a' AB");
    text("<Error><Code>NoSuchBucket</Code></Error>", "Code", "NoSuchBucket");
    text("<Error><Code>X</Code></Error>", "Message", NULL);
    text("<a>&unknown; &#;</a>", "a", "&unknown; &#;");
    text("<a>&#233;</a>", "a", "\xc3\xa9");

    const char *page1 =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bkt</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
        "<IsTruncated>true</IsTruncated>"
        "<Contents><Key>p/a.seal</Key><LastModified>2024-01-01T00:00:00.000Z</"
        "LastModified><ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag>"
        "<Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>p/b&amp;c</Key><Size>2</Size></Contents>"
        "<Contents><Key>p/x-&#49;.seal</Key><Size>2</Size></Contents>"
        "<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes>"
        "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
        "NextContinuationToken></ListBucketResult>";
    char **keys = NULL, *next = NULL;
    size_t n = 0;
    int trunc = -1;
    CHECK_INT(bk_s3_parse_list(page1, strlen(page1), &keys, &n, &trunc, &next, &e),
              BK_OK);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_STR(keys[0], "p/a.seal");
        CHECK_STR(keys[1], "p/b&c");
        CHECK_STR(keys[2], "p/x-1.seal");
    }
    CHECK_INT(trunc, 1);
    CHECK_STR(next, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    bk_storage_names_free(keys, n);
    free(next);

    const char *last = "<ListBucketResult><Name>bkt</Name><KeyCount>0</KeyCount>"
                       "<IsTruncated>false</IsTruncated></ListBucketResult>";
    CHECK_INT(bk_s3_parse_list(last, strlen(last), &keys, &n, &trunc, &next, &e), BK_OK);
    CHECK_INT(n, 0);
    CHECK(keys == NULL && next == NULL, "empty page");
    CHECK_INT(trunc, 0);

    const char *notoken = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                          "<Contents><Key>k</Key></Contents></ListBucketResult>";
    CHECK_INT(bk_s3_parse_list(notoken, strlen(notoken), &keys, &n, &trunc, &next, &e),
              BK_ERR);
    CHECK_INT(e.code, BK_E_PROTO);
    CHECK_STR(e.msg, "truncated ListBucketResult without NextContinuationToken");
    CHECK(keys == NULL && n == 0 && next == NULL, "nothing returned");

    const char *err = "<Error><Code>AccessDenied</Code></Error>";
    CHECK_INT(bk_s3_parse_list(err, strlen(err), &keys, &n, &trunc, &next, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_PROTO);
    CHECK_STR(e.msg, "not a ListBucketResult");
    return check_done();
}
