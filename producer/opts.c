/* opts.c - the options of the br2k command; see opts.h. */
#include "opts.h"

#include <stdio.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"

static bk_cfg_opt opts[] = {
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL,
     "Redis address HOST:PORT, or sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY (password: "
     "BR2K_REDIS_PASSWORD or BR2K_REDIS_PASSWORD_FILE)",
     NULL, 0, 0},
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

static bk_cfg cfg = {"br2k",
                     "BR2K client and operator command line: submit requests to a "
                     "replicated\nblockchain application service and inspect it.",
                     "[OPTIONS] COMMAND [ARGS]",
                     opts,
                     NULL,
                     0,
                     0};

/* What the registry told opts_discover (g's strings point here). */
static br2k_discovery found;

int opts_globals(int argc, char **argv, const char *epilog, cli_globals *g, int *argi,
                 int *rc) {
    cfg.epilog = epilog;
    if (bk_cfg_main(&cfg, argc, argv, argi, rc))
        return 1;
    memset(g, 0, sizeof(*g));
    g->service = bk_cfg_str(&cfg, "service");
    g->redis = bk_cfg_str(&cfg, "redis");
    g->kafka = bk_cfg_str(&cfg, "kafka");
    g->kafka_props = bk_cfg_str(&cfg, "kafka-props");
    g->timeout_ms = (int)bk_cfg_int(&cfg, "timeout-ms");
    g->json = bk_cfg_bool(&cfg, "json");
    g->log_level = bk_log_parse_level(bk_cfg_str(&cfg, "log-level"));
    g->log_json = bk_cfg_bool(&cfg, "log-json");
    g->registry = bk_cfg_str(&cfg, "registry");
    g->eth_rpc = bk_cfg_str(&cfg, "eth-rpc");
    return 0;
}

int opts_discover(cli_globals *g) {
    if (g->kafka[0] != '\0' || g->registry[0] == '\0')
        return 0;
    br2k_settings s = {.kafka = g->kafka,
                       .redis = g->redis,
                       .service = g->service,
                       .kafka_props = g->kafka_props};
    br2k_error err;
    if (br2k_discover(g->eth_rpc, g->registry, &found, &s, &err) != BR2K_OK) {
        fprintf(stderr, "br2k: %s\n", err.msg);
        return 2;
    }
    g->kafka = s.kafka;
    g->service = s.service;
    if (bk_cfg_source(&cfg, "redis") == BK_SRC_DEFAULT)
        g->redis = s.redis;
    BK_DEBUG("found service '%s' through registry %s: kafka %s, redis %s", g->service,
             g->registry, g->kafka, g->redis);
    return 0;
}

void opts_help(FILE *out) {
    bk_cfg_help(&cfg, out);
}

void opts_release(void) {
    bk_cfg_release(&cfg);
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
