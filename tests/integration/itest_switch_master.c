/* itest_switch_master.c - a sentinel:// connection notices a failover
 * through +switch-master (common/redis/redis.c), without an error and
 * without waiting for its command timeout: the primary is SIGSTOPped (it
 * keeps its TCP connections, so a command sent to it would wait for the
 * whole timeout), Sentinel promotes a replica, and the next command runs on
 * the new primary at once.
 * Usage: itest_switch_master SENTINEL-URL SENTINEL-PORT NAME PRIMARY-PID
 * (run by redis_switch.sh). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "redis/redis.h"

#define TIMEOUT_MS 10000 /* a command to the stopped primary waits this long */

/* The primary Sentinel names now, "HOST:PORT" ("" when it does not answer). */
static void named(int port, const char *name, char *out, size_t size) {
    out[0] = '\0';
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        redisFree(c);
        return;
    }
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        snprintf(out, size, "%s:%s", r->element[0]->str, r->element[1]->str);
    freeReplyObject(r);
    redisFree(c);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr,
                "usage: itest_switch_master SENTINEL-URL SENTINEL-PORT NAME PID\n");
        return 2;
    }
    int sport = atoi(argv[2]);
    pid_t pid = (pid_t)atoi(argv[4]);
    bk_err e;
    bk_redis *r = bk_redis_new(argv[1], TIMEOUT_MS, &e);
    if (r == NULL) {
        fprintf(stderr, "FAIL: connect: %s\n", e.msg);
        return 1;
    }
    redisReply *rep = bk_redis_command(r, &e, "SET itest:switch 1");
    if (rep == NULL) {
        fprintf(stderr, "FAIL: SET: %s\n", e.msg);
        return 1;
    }
    freeReplyObject(rep);
    char before[300], now[300];
    snprintf(before, sizeof(before), "%s", bk_redis_where(r));
    kill(pid, SIGSTOP);
    int64_t t0 = bk_mono_ms();
    do {
        usleep(100 * 1000);
        named(sport, argv[3], now, sizeof(now));
    } while ((now[0] == '\0' || strcmp(now, before) == 0) && bk_mono_ms() - t0 < 30000);
    if (now[0] == '\0' || strcmp(now, before) == 0) {
        kill(pid, SIGCONT);
        fprintf(stderr, "FAIL: Sentinel did not promote a replica within 30 s\n");
        return 1;
    }
    int64_t promoted = bk_mono_ms() - t0;
    /* Sentinel names the promoted replica before the failover ends; its
     * +switch-master comes at the end (the other replica reconfigured):
     * wait for it (what the client needs), with a deadline */
    while (bk_redis_switches(r) < 1 && bk_mono_ms() - t0 < 60000) {
        usleep(20 * 1000);
        bk_redis_check_switch(r);
    }
    int64_t switched = bk_mono_ms() - t0;
    int64_t t1 = bk_mono_ms();
    rep = bk_redis_command(r, &e, "GET itest:switch");
    int64_t took = bk_mono_ms() - t1;
    kill(pid, SIGCONT);
    int ok = rep != NULL && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "1") == 0;
    freeReplyObject(rep);
    int fails = 0;
    if (!ok) {
        fprintf(stderr, "FAIL: GET after the failover: %s (%lld ms)\n",
                e.msg[0] ? e.msg : "wrong value", (long long)took);
        fails++;
    }
    if (ok && took > 2000) {
        fprintf(stderr,
                "FAIL: GET after the failover took %lld ms (the stopped primary)\n",
                (long long)took);
        fails++;
    }
    if (strcmp(bk_redis_where(r), now) != 0) {
        fprintf(stderr, "FAIL: connected to '%s', the primary is '%s'\n",
                bk_redis_where(r), now);
        fails++;
    }
    if (bk_redis_switches(r) < 1) {
        fprintf(stderr, "FAIL: no +switch-master seen\n");
        fails++;
    }
    printf(
        "%s: primary %s stopped, Sentinel named %s after %lld ms, +switch-master after "
        "%lld ms; the next GET ran on %s in %lld ms (%ld +switch-master seen, timeout %d "
        "ms)\n",
        fails ? "FAIL" : "ok", before, now, (long long)promoted, (long long)switched,
        bk_redis_where(r), (long long)took, bk_redis_switches(r), TIMEOUT_MS);
    bk_redis_free(r);
    return fails ? 1 : 0;
}
