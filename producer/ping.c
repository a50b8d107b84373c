/* ping.c - `br2k ping` (does each part of the stack answer?) and `br2k
 * util free-port`; see ping.h. The log is asked through log/rlog.h only,
 * never through a Kafka or Redis client of its own. */
#include "ping.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/err.h"
#include "chain/jsonrpc.h"
#include "log/kafka_conf.h"
#include "log/rlog.h"
#include "redis/redis.h"

int ping_redis(const char *addr, int timeout_ms, char *detail, size_t size) {
    bk_err e;
    bk_err_clear(&e);
    bk_redis *r = bk_redis_new(addr, timeout_ms, &e);
    redisReply *rep = r ? bk_redis_command(r, &e, "PING") : NULL;
    int ok =
        rep != NULL && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (ok)
        snprintf(detail, size, "PONG from %s", addr);
    else
        snprintf(detail, size, "%s", rep ? "unexpected reply to PING" : e.msg);
    if (rep)
        freeReplyObject(rep);
    bk_redis_free(r);
    return ok;
}

int ping_log(const char *bootstrap, const char *props, const char *service,
             int timeout_ms, char *detail, size_t size) {
    bk_err e;
    bk_err_clear(&e);
    char topic[256];
    if (bk_kafka_topic_name(service, topic, sizeof(topic), &e) != BK_OK) {
        snprintf(detail, size, "%s", e.msg);
        return 0;
    }
    bk_rlog_settings s = {bootstrap, topic, props, timeout_ms};
    bk_rlog *l = bk_rlog_open(&s, &e);
    int64_t first = -1, end = -1;
    int ok = l != NULL && bk_rlog_offsets(l, &first, &end, &e) == BK_OK;
    const char *kind = bk_rlog_is_redis(bootstrap) ? "Redis Streams" : "Kafka";
    if (ok && first < end)
        snprintf(detail, size, "log '%s' on %s at %s: offsets %lld..%lld", topic, kind,
                 bootstrap, (long long)first, (long long)end - 1);
    else if (ok)
        snprintf(detail, size, "log '%s' on %s at %s: empty, next offset %lld", topic,
                 kind, bootstrap, (long long)end);
    else
        snprintf(detail, size, "%s", e.msg);
    bk_rlog_close(l);
    return ok;
}

/* eth_chainId through the shared JSON-RPC client (common/chain/jsonrpc.h), which
 * tries the URLs in turn. */
int ping_eth(const char *urls, int timeout_ms, char *detail, size_t size) {
    bk_err e;
    bk_err_clear(&e);
    uint64_t id = 0;
    bk_rpc *rpc = bk_rpc_new_list(urls, timeout_ms, &e);
    int ok = rpc != NULL && bk_rpc_chain_id(rpc, &id, &e) == BK_OK;
    if (ok)
        snprintf(detail, size, "chain id %llu at %s", (unsigned long long)id,
                 bk_rpc_current_url(rpc));
    else
        snprintf(detail, size, "%s", e.msg);
    bk_rpc_free(rpc);
    return ok;
}

int cmd_ping(const cli_globals *g, int argc, char **argv) {
    if (argc > 1) {
        fprintf(stderr, "br2k ping: unexpected argument '%s' (see br2k --help)\n",
                argv[1]);
        return 2;
    }
    int timeout = g->timeout_ms, all = 1;
    char detail[3][600];
    int ok[3] = {-1, -1, -1};
    char topic[256];
    bk_err e;
    if (bk_kafka_topic_name(g->service, topic, sizeof(topic), &e) != BK_OK) {
        fprintf(stderr, "br2k: %s\n", e.msg);
        return 2;
    }
    ok[0] = ping_redis(g->redis, timeout, detail[0], sizeof(detail[0]));
    if (g->kafka[0] != '\0')
        ok[1] = ping_log(g->kafka, g->kafka_props, g->service, timeout, detail[1],
                         sizeof(detail[1]));
    if (g->eth_rpc[0] != '\0')
        ok[2] = ping_eth(g->eth_rpc, timeout, detail[2], sizeof(detail[2]));
    static const char *names[] = {"redis", "kafka", "ethereum"};
    json_t *js = json_object();
    for (int i = 0; i < 3; i++) {
        if (ok[i] < 0) {
            json_object_set_new(js, names[i],
                                json_pack("{s:s}", "status", "not configured"));
            if (!g->json)
                printf("%-9s not configured\n", names[i]);
            continue;
        }
        all = all && ok[i];
        json_object_set_new(js, names[i],
                            json_pack("{s:s, s:s}", "status", ok[i] ? "ok" : "failed",
                                      "detail", detail[i]));
        if (!g->json)
            printf("%-9s %-6s %s\n", names[i], ok[i] ? "ok" : "FAILED", detail[i]);
    }
    if (g->json) {
        json_object_set_new(js, "ok", json_boolean(all));
        json_dumpf(js, stdout, JSON_COMPACT);
        putchar('\n');
    }
    json_decref(js);
    return all ? 0 : 1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        fprintf(stderr, "br2k: cannot find a free port: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    printf("%d\n", ntohs(sa.sin_port));
    close(fd);
    return 0;
}

int cmd_util(const cli_globals *g, int argc, char **argv) {
    (void)g;
    if (argc == 2 && strcmp(argv[1], "free-port") == 0)
        return free_port();
    fprintf(stderr, "br2k: unknown command 'util%s%s' (see br2k --help)\n",
            argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
    return 2;
}
