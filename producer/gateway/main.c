/* main.c - br2k-gateway: the service's HTTP front door for end users
 * (README.md). Stateless: any number may run, each appends with libbr2k's
 * idempotent producer and reads results from Redis. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/config.h"
#include "base/log.h"
#include "base/sig.h"
#include "gateway.h"
#include "redis/keys.h"

static bk_cfg_opt opts[] = {
    {"listen", BK_CFG_STR, "127.0.0.1:8080", 0, 0, NULL,
     "HTTP address HOST:PORT (IPv4; 0.0.0.0 for every interface)", NULL, 0, 0},
    {"advertise", BK_CFG_STR, "", 0, 0, NULL,
     "the URL clients reach this gateway at, published in Redis for the registry "
     "(default http://<listen>; none when listening on 0.0.0.0)",
     NULL, 0, 0},
    {"id", BK_CFG_STR, "", 0, 0, NULL,
     "gateway id in the metrics key gateway-<id> (default: gw-<port>)", NULL, 0, 0},
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL,
     "Redis address HOST:PORT (results, status)", NULL, 0, 0},
    {"kafka", BK_CFG_STR, "", 0, 0, NULL,
     "request log: Kafka bootstrap HOST:PORT,... or redis://HOST:PORT", NULL, 0, 0},
    {"kafka-props", BK_CFG_STR, "", 0, 0, NULL, "extra librdkafka properties k=v,k=v",
     NULL, 0, 0},
    {"max-body", BK_CFG_INT, "65536", 64, 1048576, NULL,
     "largest request body in bytes (413 above; keep it <= the service's request limit)",
     NULL, 0, 0},
    {"max-waits", BK_CFG_INT, "10000", 1, 1000000, NULL,
     "POSTs waiting for their result at once (503 + Retry-After above)", NULL, 0, 0},
    {"max-connections", BK_CFG_INT, "16384", 16, 1000000, NULL,
     "open HTTP connections at once", NULL, 0, 0},
    {"wait-ms", BK_CFG_INT, "5000", 0, 3600000, NULL,
     "default wait for a result before answering 202 (client: ?wait_ms= or Prefer: "
     "wait=S)",
     NULL, 0, 0},
    {"max-wait-ms", BK_CFG_INT, "30000", 0, 3600000, NULL, "cap of a client's wait", NULL,
     0, 0},
    {"rate-addr", BK_CFG_INT, "2000", 0, 10000000, NULL,
     "HTTP requests a second per remote address (0: no limit; 429 above)", NULL, 0, 0},
    {"burst-addr", BK_CFG_INT, "4000", 1, 10000000, NULL,
     "burst of requests per remote address", NULL, 0, 0},
    {"rate-client", BK_CFG_INT, "200", 0, 10000000, NULL,
     "requests a second per request client (id.client; 0: no limit; 429 above)", NULL, 0,
     0},
    {"burst-client", BK_CFG_INT, "400", 1, 10000000, NULL,
     "burst of requests per request client", NULL, 0, 0},
    {"timeout-ms", BK_CFG_INT, "3000", 100, 600000, NULL,
     "Redis connect and command timeout", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {
    "br2k-gateway",
    "The BR2K HTTP gateway: end users POST signed requests "
    "(schemas/request.schema.json)\n"
    "and read results over HTTP; no Kafka or Redis access needed on their side.\n"
    "Stateless: run any number.",
    "[OPTIONS]",
    opts,
    "Routes (schemas/gateway.openapi.yaml):\n"
    "  POST /v1/requests            append a signed request; 200 with its result, or "
    "202\n"
    "                               with Location: /v1/results/ID past the wait\n"
    "  GET  /v1/results/CLIENT:SEQ  200 with the result, 404 while there is none\n"
    "  GET  /v1/status              the JSON of `br2k status --json`\n"
    "  GET  /healthz                alive\n"
    "  GET  /readyz                 ready: Redis, the log and a leader answer\n"
    "  GET  /                       a live status page\n"
    "Errors are {\"error\":{\"code\":...,\"message\":...}}. Metrics: the Redis hash\n"
    "br2k:{SERVICE}:gateway-ID (schemas/redis-keys.md). SIGTERM answers the waiting\n"
    "requests and exits 0.",
    0,
    0};

int main(int argc, char **argv) {
    int argi = 0, rc = 0;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    if (argi < argc) {
        fprintf(stderr, "br2k-gateway: unexpected argument '%s' (see --help)\n",
                argv[argi]);
        bk_cfg_release(&cfg);
        return 2;
    }
    static gw g;
    memset(&g, 0, sizeof(g));
    char idbuf[BK_ID_MAX + 1], adv[512];
    const char *listen = bk_cfg_str(&cfg, "listen");
    const char *port = strrchr(listen, ':');
    g.cfg.service = bk_cfg_str(&cfg, "service");
    g.cfg.redis = bk_cfg_str(&cfg, "redis");
    g.cfg.kafka = bk_cfg_str(&cfg, "kafka");
    g.cfg.kafka_props = bk_cfg_str(&cfg, "kafka-props");
    g.cfg.listen = listen;
    g.cfg.id = bk_cfg_str(&cfg, "id");
    if (g.cfg.id[0] == '\0') {
        snprintf(idbuf, sizeof(idbuf), "gw-%s", port != NULL ? port + 1 : "0");
        g.cfg.id = idbuf;
    }
    g.cfg.advertise = bk_cfg_str(&cfg, "advertise");
    if (g.cfg.advertise[0] == '\0' && strncmp(listen, "0.0.0.0:", 8) != 0) {
        snprintf(adv, sizeof(adv), "http://%s", listen);
        g.cfg.advertise = adv;
    }
    g.cfg.max_body = (int)bk_cfg_int(&cfg, "max-body");
    g.cfg.max_waits = (int)bk_cfg_int(&cfg, "max-waits");
    g.cfg.wait_ms = (int)bk_cfg_int(&cfg, "wait-ms");
    g.cfg.max_wait_ms = (int)bk_cfg_int(&cfg, "max-wait-ms");
    g.cfg.redis_timeout_ms = (int)bk_cfg_int(&cfg, "timeout-ms");
    g.cfg.rate_addr = (double)bk_cfg_int(&cfg, "rate-addr");
    g.cfg.burst_addr = (double)bk_cfg_int(&cfg, "burst-addr");
    g.cfg.rate_client = (double)bk_cfg_int(&cfg, "rate-client");
    g.cfg.burst_client = (double)bk_cfg_int(&cfg, "burst-client");
    bk_err e;
    char err[512] = "";
    if (bk_keys_check_service(g.cfg.service, &e) != BK_OK ||
        bk_keys_check_id(g.cfg.id, &e) != BK_OK) {
        snprintf(err, sizeof(err), "%s", e.msg);
        goto fail_early;
    }
    if (g.cfg.kafka[0] == '\0') {
        snprintf(err, sizeof(err), "--kafka needs the request log's address");
        goto fail_early;
    }
    if (g.cfg.wait_ms > g.cfg.max_wait_ms)
        g.cfg.wait_ms = g.cfg.max_wait_ms;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cond, NULL);
    g.lim_addr = gw_limiter_new(g.cfg.rate_addr, g.cfg.burst_addr, 4096);
    g.lim_client = gw_limiter_new(g.cfg.rate_client, g.cfg.burst_client, 16384);
    bk_sig_install();
    pthread_t sub_th, keep_th;
    if (g.lim_addr == NULL || g.lim_client == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail_early;
    }
    if (gw_submitter_start(&g, &sub_th, err, sizeof(err)) != 0)
        goto fail_early;
    int max_conns = (int)bk_cfg_int(&cfg, "max-connections");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)max_conns + 64 > rl.rlim_cur) {
        /* a connection is a descriptor: keep 64 for the log, Redis and the rest */
        int cap = rl.rlim_cur > 128 ? (int)(rl.rlim_cur - 64) : 64;
        BK_WARN("--max-connections %d is above the open files limit %llu: using %d",
                max_conns, (unsigned long long)rl.rlim_cur, cap);
        max_conns = cap;
    }
    struct MHD_Daemon *d = gw_http_start(&g, listen, max_conns, err, sizeof(err));
    if (d == NULL || gw_keeper_start(&g, &keep_th) != 0) {
        if (d != NULL)
            MHD_stop_daemon(d);
        atomic_store(&g.stop, 1);
        pthread_join(sub_th, NULL);
        gw_submitter_release(&g);
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "cannot start the keeper thread");
        goto fail_early;
    }
    BK_INFO("listening on %s (advertised %s), service '%s', log %s, redis %s, id %s",
            listen, g.cfg.advertise[0] ? g.cfg.advertise : "nowhere", g.cfg.service,
            g.cfg.kafka, g.cfg.redis, g.cfg.id);
    if (g.cfg.advertise[0] == '\0')
        BK_WARN("no --advertise: the registry will not list this gateway");
    while (!bk_sig_stop)
        bk_sleep_ms(100);
    BK_INFO("signal %d: stopping", (int)bk_sig_last);
    MHD_socket lsock = MHD_quiesce_daemon(d); /* no new connections */
    atomic_store(&g.stop, 1);
    pthread_mutex_lock(&g.mu);
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.mu);
    pthread_join(sub_th, NULL);
    pthread_join(keep_th, NULL);
    MHD_stop_daemon(d);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    gw_submitter_release(&g);
    bk_redis_free(g.http_redis);
    gw_limiter_free(g.lim_addr);
    gw_limiter_free(g.lim_client);
    bk_cfg_release(&cfg);
    return 0;
fail_early:
    fprintf(stderr, "br2k-gateway: %s\n", err);
    gw_limiter_free(g.lim_addr);
    gw_limiter_free(g.lim_client);
    bk_cfg_release(&cfg);
    return 2;
}
