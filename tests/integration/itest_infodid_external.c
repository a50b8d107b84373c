/* itest_infodid_external.c - InfoDID's external effect against a real
 * Redis: applied once per offset (I5), a stale epoch refused with FENCED
 * (I2), the active count and the DID -> controller hash match the
 * accepted requests, EVAL is used again after SCRIPT FLUSH.
 * Usage: itest_infodid_external HOST:PORT (run by infodid_external.sh). */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/ethkey.h"
#include "infodid.h"
#include "chain/request.h"

#define KEY0 "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define ADDR0 "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#define DID0 "did:br2k:0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
#define KEY1 "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
#define ADDR1 "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
#define DID1 "did:br2k:0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
#define SVC "itest"

static int failures;
#define EXPECT(cond, ...)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            failures++;                                                                  \
            fprintf(stderr, "FAIL line %d: %s: ", __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static char *apply(br2k_app *a, int64_t off, const bk_eth_key *k, const char *client,
                   const char *op, const char *payload) {
    json_t *p = json_loads(payload, 0, NULL);
    char *text = NULL, *res = NULL;
    int applied = 0;
    bk_err e;
    if (p == NULL ||
        bk_request_build(k, client, off, op, p, 1000 + off, &text, &e) != BK_OK ||
        bk_infodid_ops.apply(a, off, text, strlen(text), &res, &applied, &e) != BK_OK) {
        fprintf(stderr, "cannot apply offset %lld\n", (long long)off);
        exit(1);
    }
    json_decref(p);
    free(text);
    return res;
}

static long long get_int(bk_redis *r, const char *key) {
    bk_err e;
    redisReply *rep = bk_redis_command(r, &e, "GET %s", key);
    long long v =
        rep && rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : -99;
    freeReplyObject(rep);
    return v;
}

static int hash_is(bk_redis *r, const char *did, const char *want) {
    bk_err e;
    redisReply *rep = bk_redis_command(r, &e, "HGET br2k:{" SVC "}:ext:did %s", did);
    int ok = rep && (want == NULL ? rep->type == REDIS_REPLY_NIL
                                  : rep->type == REDIS_REPLY_STRING &&
                                        strcmp(rep->str, want) == 0);
    freeReplyObject(rep);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: itest_infodid_external HOST:PORT\n");
        return 2;
    }
    bk_err e;
    bk_redis *r = bk_redis_new(argv[1], 2000, &e);
    char dir[] = "/tmp/br2k-itest-infodid.XXXXXX";
    bk_eth_key k0, k1;
    if (r == NULL || mkdtemp(dir) == NULL ||
        bk_eth_key_from_hex(KEY0, &k0, &e) != BK_OK ||
        bk_eth_key_from_hex(KEY1, &k1, &e) != BK_OK) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return 1;
    }
    br2k_app *a = NULL;
    int64_t lpi;
    if (bk_infodid_ops.open(dir, &a, &lpi, &e) != BK_OK) {
        fprintf(stderr, "open: %s\n", e.msg);
        return 1;
    }
    char *res[6];
    res[0] = apply(a, 0, &k0, "a", "register", "{}");
    res[1] = apply(a, 1, &k1, "b", "register", "{}");
    res[2] = apply(a, 2, &k1, "b", "revoke", "{}");
    res[3] = apply(a, 3, &k0, "a", "register", "{\"did\":\"did:example:x\"}");
    res[4] = apply(a, 4, &k0, "a", "update", "{\"attrs\":{\"n\":\"v\"}}");
    res[5] = apply(a, 5, &k0, "a", "register", "{}"); /* already registered */

    redisReply *rep = bk_redis_command(r, &e, "SET br2k:{" SVC "}:epoch 5");
    freeReplyObject(rep);
    const char *applied = "br2k:{" SVC "}:ext:applied",
               *active = "br2k:{" SVC "}:ext:active";
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 0, res[0], &e) == BK_OK, "%s", e.msg);
    EXPECT(get_int(r, active) == 1, "active %lld", get_int(r, active));
    EXPECT(hash_is(r, DID0, ADDR0), "hash has " DID0);
    /* the same offset again (a new leader re-running it): nothing changes */
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 0, res[0], &e) == BK_OK, "%s", e.msg);
    EXPECT(get_int(r, active) == 1, "active %lld after a re-run", get_int(r, active));
    EXPECT(get_int(r, applied) == 0, "applied %lld", get_int(r, applied));
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 1, res[1], &e) == BK_OK, "%s", e.msg);
    EXPECT(get_int(r, active) == 2, "active %lld", get_int(r, active));
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 2, res[2], &e) == BK_OK, "%s", e.msg);
    EXPECT(get_int(r, active) == 1, "active %lld after revoke", get_int(r, active));
    EXPECT(hash_is(r, DID1, ADDR1), "a revoked DID keeps its controller");

    /* a stale epoch is refused atomically */
    bk_err_clear(&e);
    EXPECT(bk_infodid_ops.external(a, r, SVC, 4, 3, res[3], &e) == BK_ERR, "stale epoch");
    EXPECT(e.code == BK_E_FENCED, "code %d: %s", e.code, e.msg);
    EXPECT(get_int(r, applied) == 2, "applied %lld after refusal", get_int(r, applied));
    EXPECT(hash_is(r, "did:example:x", NULL), "nothing written when fenced");

    /* the script cache emptied (a Redis restart): EVAL loads it again */
    rep = bk_redis_command(r, &e, "SCRIPT FLUSH");
    freeReplyObject(rep);
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 3, res[3], &e) == BK_OK, "%s", e.msg);
    EXPECT(hash_is(r, "did:example:x", ADDR0), "custom DID indexed");
    /* no external effect for updates and rejections */
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 4, res[4], &e) == BK_OK, "%s", e.msg);
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 5, res[5], &e) == BK_OK, "%s", e.msg);
    EXPECT(get_int(r, active) == 2, "active %lld", get_int(r, active));
    EXPECT(get_int(r, applied) == 3, "applied %lld", get_int(r, applied));
    EXPECT(get_int(r, active) == bk_infodid_active(a), "index matches the local state");

    for (int i = 0; i < 6; i++)
        free(res[i]);
    bk_infodid_ops.close(a);
    bk_redis_free(r);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("%s\n", failures ? "FAIL" : "ok: infodid external index");
    return failures ? 1 : 0;
}
