/* test_gateway_limits.c - the gateway's token buckets
 * (producer/gateway/limits.c): a burst is allowed, then one token per
 * 1/rate s; Retry-After rounds up to whole seconds (at least 1); keys are
 * independent; rate 0 is no limit; more keys than slots: the bucket idle
 * longest is reused (a new key starts full). */
#include <stdio.h>

#include "check.h"
#include "gateway.h"

static void test_burst_and_refill(void) {
    gw_limiter *l = gw_limiter_new(2, 5, 64);
    int ra = 0, ok = 0;
    for (int i = 0; i < 8; i++)
        ok += gw_limiter_take(l, "alice", 1000, &ra);
    CHECK_INT(ok, 5);
    CHECK_INT(ra, 1); /* 1 token at 2/s: 0.5 s, rounded up */
    CHECK(gw_limiter_take(l, "alice", 1499, &ra) == 0, "a token before 0.5 s");
    CHECK(gw_limiter_take(l, "alice", 1500, &ra) == 1, "no token after 0.5 s");
    CHECK(gw_limiter_take(l, "alice", 1500, &ra) == 0, "two tokens after 0.5 s");
    CHECK(gw_limiter_take(l, "bob", 1500, &ra) == 1, "bob limited by alice");
    /* after a long idle the bucket is full again, not fuller */
    ok = 0;
    for (int i = 0; i < 10; i++)
        ok += gw_limiter_take(l, "alice", 100000, &ra);
    CHECK_INT(ok, 5);
    gw_limiter_free(l);
}

static void test_slow_rate(void) {
    gw_limiter *l = gw_limiter_new(0.25, 1, 8); /* one every 4 s */
    int ra = 0;
    CHECK(gw_limiter_take(l, "c", 0, &ra) == 1, "first");
    CHECK(gw_limiter_take(l, "c", 1000, &ra) == 0, "second within 4 s");
    CHECK_INT(ra, 3); /* 0.25 token there: 3 s to go */
    gw_limiter_free(l);
}

static void test_unlimited_and_eviction(void) {
    gw_limiter *l = gw_limiter_new(0, 1, 8);
    int ok = 0;
    for (int i = 0; i < 1000; i++)
        ok += gw_limiter_take(l, "x", 0, NULL);
    CHECK_INT(ok, 1000);
    gw_limiter_free(l);
    l = gw_limiter_new(1, 1, 8); /* 8 slots, 100 keys */
    char k[16];
    ok = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        ok += gw_limiter_take(l, k, i, NULL);
    }
    CHECK_INT(ok, 100); /* every new key starts with its burst */
    CHECK(gw_limiter_take(l, "k99", 99, NULL) == 0, "the newest key kept its state");
    gw_limiter_free(l);
}

int main(void) {
    test_burst_and_refill();
    test_slow_rate();
    test_unlimited_and_eviction();
    return check_done();
}
