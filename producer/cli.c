/* cli.c - br2k, the client and operator command line.
 *
 * Global options go before the command; a command's own options after it
 * (see cli.h). Here: dispatch, `ping` (does each part of the stack
 * answer?) and `util free-port`; submit.c and ops.c hold the rest. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backups.h"
#include "br2k.h"
#include "cli.h"
#include "base/config.h"
#include "base/err.h"
#include "chain/jsonrpc.h"
#include "log/kafka_conf.h"
#include "base/log.h"
#include "redis/redis.h"
#include "registry_cmd.h"
#include "log/rlog.h"
#include "top.h"

static bk_cfg_opt opts[] = {
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL, "Redis address HOST:PORT", NULL,
     0, 0},
    {"kafka", BK_CFG_STR, "", 0, 0, NULL, "Kafka bootstrap servers HOST:PORT,...", NULL,
     0, 0},
    {"kafka-props", BK_CFG_STR, "", 0, 0, NULL,
     "extra librdkafka properties k=v,k=v (TLS, SASL, ...)", NULL, 0, 0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL,
     "registry contract address: with no --kafka, find the service from its access "
     "information on the chain (needs --eth-rpc)",
     NULL, 0, 0},
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated, tried in turn", NULL, 0, 0},
    {"timeout-ms", BK_CFG_INT, "3000", 100, 600000, NULL, "timeout of each network check",
     NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print results as JSON", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static const char epilog[] =
    "Commands:\n"
    "  submit [OPTIONS]  append a signed request and print its result; or, with\n"
    "                  --clients K --count N, run the load generator (br2k submit "
    "--help)\n"
    "  status [--json] leader, epoch, SSI, SV, backup phase and members with their\n"
    "                  role, LPI, SSV and lag, read from Redis\n"
    "  top [--interval MS] [--once [--json]]\n"
    "                  live view of the same, refreshed every MS (default 1000), with\n"
    "                  per member records/s, caught up / joining and heartbeat age;\n"
    "                  q or Ctrl-C quits; --once: one frame; --once --json: exactly\n"
    "                  the JSON of status --json\n"
    "  probe ready|live --id ID [--timeout-ms MS]\n"
    "                  Kubernetes probes of worker ID: ready exits 0 when its heartbeat\n"
    "                  is present and it has caught up, live when its heartbeat is\n"
    "                  present or Redis cannot be reached; else 1 with the reason\n"
    "  verify [--json] [--timeout-ms MS]\n"
    "                  compare the state digests of the replicas at the same LPI;\n"
    "                  exit 0 only when they are consistent\n"
    "  registry deploy|show|log\n"
    "                  the service registry contract on Ethereum (br2k registry help)\n"
    "  backups [--json] [--service-key FILE]\n"
    "                  every backup version in the registry (needs --eth-rpc and\n"
    "                  --registry) with its state-backup-log decrypted by the service\n"
    "                  key (FILE, or env BR2K_SERVICE_KEY holding the key)\n"
    "  backup now [--wait SECONDS]\n"
    "                  ask br2k-backupd for a backup now and wait until it is done\n"
    "  keygen [--out FILE]\n"
    "                  make a service key pair: private key to FILE (mode 0600),\n"
    "                  print the public key and address\n"
    "  ping            check that Redis answers PING, that the Kafka brokers list the\n"
    "                  service topic, and that the Ethereum node answers eth_chainId;\n"
    "                  exit 0 only when all configured parts answer\n"
    "  util free-port  print a TCP port that is free on 127.0.0.1\n"
    "  help            show this help\n"
    "\n"
    "Global options go before the command, a command's own after it. Exit codes:\n"
    "0 ok, 1 a negative answer (a rejected request, inconsistent replicas, a part\n"
    "that does not answer), 2 an error. The local stack prints the environment that\n"
    "points every br2k program at it: eval \"$(deploy/local/stack env)\".";

static bk_cfg cfg = {"br2k",
                     "BR2K client and operator command line: submit requests to a "
                     "replicated\nblockchain application service and inspect it.",
                     "[OPTIONS] COMMAND [ARGS]",
                     opts,
                     epilog,
                     0,
                     0};

static int ping_redis(const char *addr, int timeout_ms, char *detail, size_t size) {
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

/* The log on Redis Streams: its offsets, through rlog.h. */
static int ping_redis_log(const char *url, const char *topic, int timeout_ms,
                          char *detail, size_t size) {
    bk_err e;
    bk_err_clear(&e);
    bk_rlog_settings s = {url, topic, NULL, timeout_ms};
    bk_rlog *l = bk_rlog_open(&s, &e);
    int64_t first = -1, end = -1;
    int ok = l != NULL && bk_rlog_offsets(l, &first, &end, &e) == BK_OK;
    if (ok)
        snprintf(detail, size, "log '%s' on Redis Streams at %s: offsets %lld..%lld",
                 topic, url, (long long)first, (long long)end - 1);
    else
        snprintf(detail, size, "%s", e.msg);
    bk_rlog_close(l);
    return ok;
}

static int ping_kafka(const char *bootstrap, const char *props, const char *topic,
                      int timeout_ms, char *detail, size_t size) {
    bk_err e;
    bk_err_clear(&e);
    if (bk_rlog_is_redis(bootstrap))
        return ping_redis_log(bootstrap, topic, timeout_ms, detail, size);
    rd_kafka_conf_t *conf = bk_kafka_conf_new(BK_KAFKA_CONSUMER, bootstrap, props, &e);
    rd_kafka_t *rk = conf ? bk_kafka_new(BK_KAFKA_CONSUMER, conf, &e) : NULL;
    conf = NULL; /* owned by rk, or destroyed */
    if (rk == NULL) {
        snprintf(detail, size, "%s", e.msg);
        return 0;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    int ok = 0;
    if (err) {
        snprintf(detail, size, "cannot read metadata from '%s': %s", bootstrap,
                 rd_kafka_err2str(err));
    } else {
        snprintf(detail, size, "topic '%s' not listed by '%s'", topic, bootstrap);
        for (int i = 0; i < md->topic_cnt; i++)
            if (strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].err == 0) {
                snprintf(detail, size, "topic '%s' with %d partition(s) on %d broker(s)",
                         topic, md->topics[i].partition_cnt, md->broker_cnt);
                ok = 1;
            }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return ok;
}

/* eth_chainId through the shared JSON-RPC client (common/chain/jsonrpc.h), which
 * tries the URLs in turn. */
static int ping_eth(const char *urls, int timeout_ms, char *detail, size_t size) {
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

static int cmd_ping(void) {
    int timeout = (int)bk_cfg_int(&cfg, "timeout-ms"), all = 1;
    char topic[256], detail[3][600];
    int ok[3] = {-1, -1, -1};
    bk_err e;
    if (bk_kafka_topic_name(bk_cfg_str(&cfg, "service"), topic, sizeof(topic), &e) !=
        BK_OK) {
        fprintf(stderr, "br2k: %s\n", e.msg);
        return 2;
    }
    ok[0] = ping_redis(bk_cfg_str(&cfg, "redis"), timeout, detail[0], sizeof(detail[0]));
    if (bk_cfg_str(&cfg, "kafka")[0] != '\0')
        ok[1] = ping_kafka(bk_cfg_str(&cfg, "kafka"), bk_cfg_str(&cfg, "kafka-props"),
                           topic, timeout, detail[1], sizeof(detail[1]));
    if (bk_cfg_str(&cfg, "eth-rpc")[0] != '\0')
        ok[2] =
            ping_eth(bk_cfg_str(&cfg, "eth-rpc"), timeout, detail[2], sizeof(detail[2]));
    static const char *names[] = {"redis", "kafka", "ethereum"};
    json_t *js = json_object();
    for (int i = 0; i < 3; i++) {
        if (ok[i] < 0) {
            json_object_set_new(js, names[i],
                                json_pack("{s:s}", "status", "not configured"));
            if (!bk_cfg_bool(&cfg, "json"))
                printf("%-9s not configured\n", names[i]);
            continue;
        }
        all = all && ok[i];
        json_object_set_new(js, names[i],
                            json_pack("{s:s, s:s}", "status", ok[i] ? "ok" : "failed",
                                      "detail", detail[i]));
        if (!bk_cfg_bool(&cfg, "json"))
            printf("%-9s %-6s %s\n", names[i], ok[i] ? "ok" : "FAILED", detail[i]);
    }
    if (bk_cfg_bool(&cfg, "json")) {
        json_object_set_new(js, "ok", json_boolean(all));
        json_dumpf(js, stdout, JSON_COMPACT);
        putchar('\n');
    }
    json_decref(js);
    return all ? 0 : 1;
}

static int cmd_free_port(void) {
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

void cli_settings(const cli_globals *g, br2k_settings *s) {
    memset(s, 0, sizeof(*s));
    s->kafka = g->kafka;
    s->redis = g->redis;
    s->service = g->service;
    s->kafka_props = g->kafka_props;
    s->timeout_ms = g->timeout_ms;
}

int cli_parse(bk_cfg *sub, const cli_globals *g, int argc, char **argv, int *rc) {
    int argi;
    int stop = bk_cfg_main(sub, argc, argv, &argi, rc);
    bk_log_init("br2k", g->log_level, g->log_json);
    if (stop)
        return 1;
    if (argi < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see %s --help)\n", sub->prog,
                argv[argi], sub->prog);
        *rc = 2;
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    const char *cmd = argi < argc ? argv[argi] : "help";
    cli_globals g = {bk_cfg_str(&cfg, "service"),
                     bk_cfg_str(&cfg, "redis"),
                     bk_cfg_str(&cfg, "kafka"),
                     bk_cfg_str(&cfg, "kafka-props"),
                     (int)bk_cfg_int(&cfg, "timeout-ms"),
                     bk_cfg_bool(&cfg, "json"),
                     bk_log_parse_level(bk_cfg_str(&cfg, "log-level")),
                     bk_cfg_bool(&cfg, "log-json")};
    curl_global_init(CURL_GLOBAL_DEFAULT);
    br2k_discovery found;
    if (g.kafka[0] == '\0' && bk_cfg_str(&cfg, "registry")[0] != '\0' &&
        strcmp(cmd, "registry") != 0 && strcmp(cmd, "help") != 0 &&
        strcmp(cmd, "backups") != 0 && strcmp(cmd, "keygen") != 0) {
        /* the paper's clients find the service through the registry alone */
        br2k_settings s = {g.kafka, g.redis, g.service, g.kafka_props, 0, 0};
        br2k_error err;
        if (br2k_discover(bk_cfg_str(&cfg, "eth-rpc"), bk_cfg_str(&cfg, "registry"),
                          &found, &s, &err) != BR2K_OK) {
            fprintf(stderr, "br2k: %s\n", err.msg);
            curl_global_cleanup();
            bk_cfg_release(&cfg);
            return 2;
        }
        g.kafka = s.kafka;
        g.service = s.service;
        if (bk_cfg_source(&cfg, "redis") == BK_SRC_DEFAULT)
            g.redis = s.redis;
        BK_DEBUG("found service '%s' through registry %s: kafka %s, redis %s", g.service,
                 bk_cfg_str(&cfg, "registry"), g.kafka, g.redis);
    }
    if (strcmp(cmd, "help") == 0) {
        bk_cfg_help(&cfg, stdout);
        rc = 0;
    } else if (strcmp(cmd, "ping") == 0 && argi + 1 == argc) {
        rc = cmd_ping();
    } else if (strcmp(cmd, "util") == 0 && argi + 2 == argc &&
               strcmp(argv[argi + 1], "free-port") == 0) {
        rc = cmd_free_port();
    } else if (strcmp(cmd, "submit") == 0) {
        rc = cmd_submit(&g, argc - argi, argv + argi);
    } else if (strcmp(cmd, "status") == 0) {
        rc = cmd_status(&g, argc - argi, argv + argi);
    } else if (strcmp(cmd, "top") == 0) {
        rc = cmd_top(&g, argc - argi, argv + argi);
    } else if (strcmp(cmd, "probe") == 0) {
        rc = cmd_probe(&g, argc - argi, argv + argi);
    } else if (strcmp(cmd, "verify") == 0) {
        rc = cmd_verify(&g, argc - argi, argv + argi);
    } else if (strcmp(cmd, "keygen") == 0) {
        rc = cmd_keygen(&g, argc - argi, argv + argi);
    } else if (strcmp(cmd, "backups") == 0) {
        rc = cmd_backups(&g, bk_cfg_str(&cfg, "eth-rpc"), bk_cfg_str(&cfg, "registry"),
                         argc - argi, argv + argi);
    } else if (strcmp(cmd, "backup") == 0) {
        rc = cmd_backup(&g, argc - argi, argv + argi);
    } else if (strcmp(cmd, "registry") == 0) {
        rc = bk_registry_cli(argc - argi, argv + argi, bk_cfg_str(&cfg, "eth-rpc"),
                             g.json);
    } else {
        fprintf(stderr, "br2k: unknown command '%s' (see br2k --help)\n", cmd);
        rc = 2;
    }
    curl_global_cleanup();
    bk_cfg_release(&cfg);
    return rc;
}
