/* test_view.c - the external state a backup takes from an application's
 * view (worker/snapshot.c, bk_wsnap_view_keys): the ops of a whole view
 * leave the keys Redis would hold, in the form backupd writes when it reads
 * them from Redis (backuplog.h; backup_external.sh shows that form). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "snapshot.h"

#define P "br2k:{svc}:ext:"

static char *keys_of(const bk_ext_op *ops, size_t n, bk_err *e) {
    json_t *k = NULL;
    if (bk_wsnap_view_keys(P, ops, n, &k, e) != BK_OK)
        return NULL;
    char *s = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(k);
    return s;
}

int main(void) {
    bk_err e;
    /* every kind of op, in order */
    const bk_ext_op ops[] = {
        {BK_EXT_SET, "applied.note", NULL, "1", 0},
        {BK_EXT_HSET, "did", "did:a", "0xA", 0},
        {BK_EXT_HSET, "did", "did:b", "0xB", 0},
        {BK_EXT_HSET, "did", "did:a", "0xC", 0}, /* replaced */
        {BK_EXT_HDEL, "did", "did:b", NULL, 0},
        {BK_EXT_INCRBY, "active", NULL, NULL, 5},
        {BK_EXT_INCRBY, "active", NULL, NULL, -2},
        {BK_EXT_SET, "gone", NULL, "x", 0},
        {BK_EXT_DEL, "gone", NULL, NULL, 0},
        {BK_EXT_HSET, "empty", "f", "v", 0},
        {BK_EXT_HDEL, "empty", "f", NULL, 0}, /* Redis drops an empty hash */
        {BK_EXT_HDEL, "never", "f", NULL, 0},
        {BK_EXT_HSET, "bin", "ok", "v", 0},
        {BK_EXT_HSET, "bin", "\xff", "w", 0}, /* not UTF-8: the whole key in hex */
        {BK_EXT_SET, "total", NULL, "7", 0},
        {BK_EXT_INCRBY, "total", NULL, NULL, 3},
    };
    char *got = keys_of(ops, sizeof(ops) / sizeof(ops[0]), &e);
    CHECK(got != NULL, "view: %s", e.msg);
    CHECK_STR(
        got,
        "{\"" P "active\":{\"encoding\":\"utf-8\",\"type\":\"string\",\"value\":\"3\"},"
        "\"" P
        "applied.note\":{\"encoding\":\"utf-8\",\"type\":\"string\",\"value\":\"1\"},"
        "\"" P "bin\":{\"encoding\":\"hex\",\"type\":\"hash\",\"value\":{\"6f6b\":\"76\","
        "\"ff\":\"77\"}},"
        "\"" P
        "did\":{\"encoding\":\"utf-8\",\"type\":\"hash\",\"value\":{\"did:a\":\"0xC\"}},"
        "\"" P "total\":{\"encoding\":\"utf-8\",\"type\":\"string\",\"value\":\"10\"}}");
    free(got);

    /* an empty view: no key */
    got = keys_of(NULL, 0, &e);
    CHECK_STR(got, "{}");
    free(got);

    /* what Redis refuses, the view refuses: one line naming the key */
    const bk_ext_op wrongtype[] = {{BK_EXT_SET, "s", NULL, "x", 0},
                                   {BK_EXT_HSET, "s", "f", "v", 0}};
    CHECK(keys_of(wrongtype, 2, &e) == NULL && e.code == BK_E_INVAL &&
              strstr(e.msg, "'s'") != NULL && strstr(e.msg, "WRONGTYPE") != NULL,
          "hash op on a string: %s", e.msg);
    const bk_ext_op notint[] = {{BK_EXT_SET, "n", NULL, "abc", 0},
                                {BK_EXT_INCRBY, "n", NULL, NULL, 1}};
    CHECK(keys_of(notint, 2, &e) == NULL && strstr(e.msg, "not an integer") != NULL,
          "INCRBY of text: %s", e.msg);
    const bk_ext_op onhash[] = {{BK_EXT_HSET, "h", "f", "v", 0},
                                {BK_EXT_INCRBY, "h", NULL, NULL, 1}};
    CHECK(keys_of(onhash, 2, &e) == NULL && strstr(e.msg, "'h'") != NULL,
          "INCRBY of a hash: %s", e.msg);
    const bk_ext_op badname[] = {{BK_EXT_SET, "a b", NULL, "x", 0}};
    CHECK(keys_of(badname, 1, &e) == NULL && strstr(e.msg, "bad key name") != NULL,
          "a bad name: %s", e.msg);
    const bk_ext_op nofield[] = {{BK_EXT_HSET, "h", NULL, "v", 0}};
    CHECK(keys_of(nofield, 1, &e) == NULL && e.code == BK_E_INVAL,
          "HSET without a field");
    return check_done();
}
