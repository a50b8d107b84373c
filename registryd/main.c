/* main.c - br2k-registryd: the only holder of the service's Ethereum key.
 * Sends the registry's transactions, one at a time and in order, for the
 * processes that ask through the registry channel, and records every
 * leader change on the chain (daemon.h). */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/config.h"
#include "daemon.h"
#include "chain/ethkey.h"
#include "redis/keys.h"
#include "base/log.h"
#include "base/sig.h"

static bk_cfg_opt opts[] = {
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL,
     "Redis address HOST:PORT, or sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY (password: "
     "BR2K_REDIS_PASSWORD or BR2K_REDIS_PASSWORD_FILE)",
     NULL, 0, 0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL, "address of the registry contract (0x...)",
     NULL, 0, 0},
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated, tried in turn", NULL, 0, 0},
    {"key-file", BK_CFG_STR, "", 0, 0, NULL,
     "file holding the Ethereum private key (hex); else env BR2K_ETH_KEY", NULL, 0, 0},
    {"chain-id", BK_CFG_INT, "0", 0, 1LL << 53, NULL, "chain id (0: ask the node)", NULL,
     0, 0},
    {"confirmations", BK_CFG_INT, "1", 0, 1000, NULL,
     "blocks that must include or follow a transaction (0: do not wait for it)", NULL, 0,
     0},
    {"stuck-ms", BK_CFG_INT, "30000", 100, 3600000, NULL,
     "raise the fees of a transaction not mined after this long", NULL, 0, 0},
    {"receipt-timeout-ms", BK_CFG_INT, "300000", 1000, 86400000, NULL,
     "give up waiting for a receipt (the transaction stays in flight)", NULL, 0, 0},
    {"rpc-timeout-ms", BK_CFG_INT, "5000", 100, 600000, NULL,
     "timeout of each JSON-RPC call", NULL, 0, 0},
    {"poll-ms", BK_CFG_INT, "100", 5, 60000, NULL, "receipt polling interval", NULL, 0,
     0},
    {"lease-poll-ms", BK_CFG_INT, "200", 10, 60000, NULL,
     "how often the leader lease is checked", NULL, 0, 0},
    {"publish-gateways", BK_CFG_BOOL, "true", 0, 0, NULL,
     "record the URLs the live br2k-gateways advertise (Redis gateway-<id>) in the "
     "registry's gateways()",
     NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {
    "br2k-registryd",
    "The BR2K registry daemon: the only holder of the Ethereum key; sends the\nservice "
    "registry's transactions (leader record, backup logs) in order.",
    "[OPTIONS]",
    opts,
    "Requests arrive on the Redis list br2k:{SERVICE}:registry:queue (see\n"
    "common/redis/regchan.h and registryd/README.md). SIGTERM finishes the transaction\n"
    "in hand, or leaves it recorded in flight for the next start, and exits 0.",
    0,
    0};

static int run(void) {
    const char *svc = bk_cfg_str(&cfg, "service");
    bk_regd d;
    bk_eth_key key;
    bk_err e;
    bk_redis *r = NULL;
    bk_rpc *rpc = NULL;
    int rc = 2;
    memset(&d, 0, sizeof(d));
    memset(&key, 0, sizeof(key));
    if (bk_keys_check_service(svc, &e) != BK_OK)
        goto fail;
    if (bk_cfg_str(&cfg, "registry")[0] == '\0' ||
        bk_eth_addr_parse(bk_cfg_str(&cfg, "registry"), d.registry, &e) != BK_OK) {
        bk_err_set(&e, BK_E_INVAL, "--registry needs the contract's address, got '%s'",
                   bk_cfg_str(&cfg, "registry"));
        goto fail;
    }
    if (bk_cfg_str(&cfg, "eth-rpc")[0] == '\0') {
        bk_err_set(&e, BK_E_INVAL, "--eth-rpc needs at least one URL");
        goto fail;
    }
    if (bk_eth_key_load(bk_cfg_str(&cfg, "key-file"), "BR2K_ETH_KEY", &key, &e) != BK_OK)
        goto fail;
    rpc = bk_rpc_new_list(bk_cfg_str(&cfg, "eth-rpc"), bk_cfg_int(&cfg, "rpc-timeout-ms"),
                          &e);
    if (rpc == NULL)
        goto fail;
    r = bk_redis_new(bk_cfg_str(&cfg, "redis"), 5000, &e);
    if (r == NULL)
        goto fail;
    bk_sender_conf sc = {svc,
                         (int)bk_cfg_int(&cfg, "confirmations"),
                         (int)bk_cfg_int(&cfg, "stuck-ms"),
                         (int)bk_cfg_int(&cfg, "receipt-timeout-ms"),
                         (int)bk_cfg_int(&cfg, "poll-ms"),
                         (uint64_t)bk_cfg_int(&cfg, "chain-id"),
                         0};
    d.snd = bk_sender_new(rpc, r, &key, &sc, &e);
    if (d.snd == NULL)
        goto fail;
    d.r = r;
    d.rpc = rpc;
    d.svc = svc;
    d.lease_poll_ms = (int)bk_cfg_int(&cfg, "lease-poll-ms");
    d.publish_gateways = bk_cfg_bool(&cfg, "publish-gateways");
    char addr[43], reg[43];
    bk_eth_addr_hex(key.addr, addr);
    bk_eth_addr_hex(d.registry, reg);
    BK_INFO("service '%s', registry %s, chain %" PRIu64 ", sender %s, %lld "
            "confirmation(s)",
            svc, reg, bk_sender_chain_id(d.snd), addr, bk_cfg_int(&cfg, "confirmations"));
    int had = 0;
    if (bk_sender_recover(d.snd, &had, NULL, &e) != BK_OK)
        BK_WARN("%s", e.msg);
    else if (had)
        BK_INFO("the transaction left in flight by the previous run is resolved");
    rc = bk_regd_run(&d);
    BK_INFO("stopped (signal %d): %lld served, %lld failed", (int)bk_sig_last, d.served,
            d.failed);
    goto out;
fail:
    fprintf(stderr, "br2k-registryd: %s\n", e.msg);
out:
    bk_sender_free(d.snd);
    bk_eth_key_clear(&key);
    bk_redis_free(r);
    bk_rpc_free(rpc);
    return rc;
}

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    if (argi < argc) {
        fprintf(stderr, "br2k-registryd: unexpected argument '%s'\n", argv[argi]);
        bk_cfg_release(&cfg);
        return 2;
    }
    bk_sig_install();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = run();
    curl_global_cleanup();
    bk_cfg_release(&cfg);
    return rc;
}
