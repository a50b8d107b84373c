/* itest_infodid_external.c - InfoDID's external effect against a real
 * Redis: applied once per offset (I5), a stale epoch refused with FENCED
 * (I2), the active count and the DID -> controller hash match the
 * accepted requests, EVAL is used again after SCRIPT FLUSH; after a Redis
 * failover lost external writes (I9): an SSI put back marks ext-lost
 * (the lowest SSI Redis had), and InfoDID's republish replaces the index
 * by its state's, fenced, with ext:applied = its LPI.
 * Usage: itest_infodid_external HOST:PORT (run by infodid_external.sh). */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/ethkey.h"
#include "infodid.h"
#include "chain/request.h"
#include "redis/keys.h"

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

    /* I9: a failover promoted a replica that had SSI 1 and missed the rest:
     * workers put back what they saw, the lowest SSI Redis had is kept */
    const char *lostk = "br2k:{" SVC "}:ext-lost", *ssik = "br2k:{" SVC "}:SSI";
    rep = bk_redis_command(r, &e, "SET %s 1", ssik);
    freeReplyObject(rep);
    int64_t now = -9, lost = -9;
    EXPECT(bk_ssi_restore(r, SVC, 4, &now, &e) == BK_OK && now == 4, "restore: %lld %s",
           (long long)now, e.msg);
    EXPECT(get_int(r, lostk) == 1, "ext-lost %lld after a restore from 1",
           get_int(r, lostk));
    EXPECT(bk_ext_lost_check(r, SVC, 5, &now, &lost, &e) == BK_OK, "%s", e.msg);
    EXPECT(now == 5 && lost == 1, "check: SSI %lld, ext-lost %lld (the lowest stays)",
           (long long)now, (long long)lost);
    EXPECT(bk_ext_lost_check(r, SVC, 3, &now, &lost, &e) == BK_OK && now == 5 &&
               lost == 1,
           "a lower SSI changes nothing: SSI %lld, ext-lost %lld", (long long)now,
           (long long)lost);
    /* what the promoted replica has: the index of offsets 0 and 1, and a key
     * of its own that the state does not give */
    const char *lose[] = {
        "HDEL br2k:{" SVC "}:ext:did did:example:x", "SET br2k:{" SVC "}:ext:active 2",
        "SET br2k:{" SVC "}:ext:applied 1", "SET br2k:{" SVC "}:ext:stray x"};
    for (size_t i = 0; i < sizeof(lose) / sizeof(lose[0]); i++) {
        rep = bk_redis_command(r, &e, lose[i]);
        freeReplyObject(rep);
    }
    EXPECT(bk_infodid_ops.republish != NULL, "InfoDID has republish");
    bk_err_clear(&e);
    EXPECT(bk_infodid_ops.republish(a, r, SVC, 4, &e) == BK_ERR && e.code == BK_E_FENCED,
           "republish with a stale epoch: code %d %s", e.code, e.msg);
    rep = bk_redis_command(r, &e, "EXISTS br2k:{" SVC "}:ext:stray");
    EXPECT(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 &&
               get_int(r, applied) == 1,
           "nothing written when fenced (applied %lld)", get_int(r, applied));
    freeReplyObject(rep);
    EXPECT(get_int(r, lostk) == 1, "ext-lost kept when fenced");
    EXPECT(bk_infodid_ops.republish(a, r, SVC, 5, &e) == BK_OK, "republish: %s", e.msg);
    EXPECT(hash_is(r, DID0, ADDR0) && hash_is(r, DID1, ADDR1) &&
               hash_is(r, "did:example:x", ADDR0),
           "every DID of the state back in the index");
    rep = bk_redis_command(r, &e, "HLEN br2k:{" SVC "}:ext:did");
    EXPECT(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 3, "HLEN %lld",
           rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1);
    freeReplyObject(rep);
    EXPECT(get_int(r, active) == bk_infodid_active(a) && get_int(r, active) == 2,
           "active %lld after republish", get_int(r, active));
    EXPECT(get_int(r, applied) == 5, "applied %lld: the state's LPI",
           get_int(r, applied));
    rep = bk_redis_command(r, &e, "EXISTS br2k:{" SVC "}:ext:stray %s", lostk);
    EXPECT(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0,
           "the stray ext: key and ext-lost deleted");
    freeReplyObject(rep);
    /* the next leader re-running offset 5: nothing (ext:applied) */
    EXPECT(bk_infodid_ops.external(a, r, SVC, 5, 5, res[5], &e) == BK_OK, "%s", e.msg);
    EXPECT(get_int(r, active) == 2, "active %lld after a re-run", get_int(r, active));

    for (int i = 0; i < 6; i++)
        free(res[i]);
    bk_infodid_ops.close(a);
    bk_redis_free(r);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("%s\n", failures ? "FAIL" : "ok: infodid external index");
    return failures ? 1 : 0;
}
