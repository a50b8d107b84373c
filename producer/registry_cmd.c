/* registry_cmd.c - `br2k registry deploy|show`; see registry_cmd.h. */
#include "registry_cmd.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "chain/ethkey.h"
#include "base/hex.h"
#include "chain/jsonrpc.h"
#include "base/log.h"
#include "chain/registry.h"
#include "chain/sender.h"

#define RPC_TIMEOUT_MS 5000

/* ---- deploy ---- */

static bk_cfg_opt deploy_opts[] = {
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated (default: the global --eth-rpc)", NULL, 0,
     0},
    {"key-file", BK_CFG_STR, "", 0, 0, NULL,
     "file holding the deployer's private key (hex); else env BR2K_ETH_KEY", NULL, 0, 0},
    {"writer", BK_CFG_STR, "", 0, 0, NULL,
     "authorize this address to write (registryd's)", NULL, 0, 0},
    {"writer-key-file", BK_CFG_STR, "", 0, 0, NULL,
     "authorize the address of the key in this file (registryd's key file)", NULL, 0, 0},
    {"bootstrap", BK_CFG_STR, "", 0, 0, NULL,
     "publish access information: Kafka bootstrap servers", NULL, 0, 0},
    {"topic", BK_CFG_STR, "", 0, 0, NULL, "publish access information: the request topic",
     NULL, 0, 0},
    {"results", BK_CFG_STR, "", 0, 0, NULL,
     "publish access information: where results are read", NULL, 0, 0},
    {"confirmations", BK_CFG_INT, "1", 1, 1000, NULL,
     "blocks that must include or follow each transaction", NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print the result as JSON", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg deploy_cfg = {"br2k registry deploy",
                            "Deploy the BR2K registry contract and print its address.",
                            "[OPTIONS]",
                            deploy_opts,
                            NULL,
                            0,
                            0};

/* ---- show ---- */

static bk_cfg_opt show_opts[] = {
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated (default: the global --eth-rpc)", NULL, 0,
     0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL, "address of the registry contract", NULL, 0,
     0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print the result as JSON", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg show_cfg = {"br2k registry show",
                          "Show the registry: access information, leader record, state "
                          "version\nand the latest backup.",
                          "[OPTIONS]",
                          show_opts,
                          NULL,
                          0,
                          0};

/* Parse a subcommand's options; default --eth-rpc to the global one.
 * Returns 1 when the caller should return *rc. */
static int parse(bk_cfg *c, int argc, char **argv, const char *eth_rpc, int *rc) {
    int argi;
    for (bk_cfg_opt *o = c->opts; o->name != NULL; o++)
        if (strcmp(o->name, "eth-rpc") == 0)
            o->def = eth_rpc ? eth_rpc : "";
    if (bk_cfg_main(c, argc, argv, &argi, rc))
        return 1;
    /* the global --eth-rpc already took flag > environment > file: it wins
     * over this option's own environment or file value */
    for (bk_cfg_opt *o = c->opts; o->name != NULL; o++) {
        char *g = eth_rpc && *eth_rpc && strcmp(o->name, "eth-rpc") == 0 &&
                          o->src != BK_SRC_FLAG
                      ? strdup(eth_rpc)
                      : NULL;
        if (g != NULL) {
            free(o->sval);
            o->sval = g;
        }
    }
    if (argi < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see %s --help)\n", c->prog,
                argv[argi], c->prog);
        *rc = 2;
        return 1;
    }
    if (bk_cfg_str(c, "eth-rpc")[0] == '\0') {
        fprintf(stderr, "%s: no Ethereum RPC URL: give --eth-rpc\n", c->prog);
        *rc = 2;
        return 1;
    }
    return 0;
}

static int send_call(bk_sender *s, const char *what, const uint8_t reg[20], uint8_t *cd,
                     size_t len, bk_err *e) {
    bk_send_result res;
    int rc = bk_sender_send(s, what, reg, cd, len, NULL, &res, e);
    free(cd);
    return rc;
}

static int cmd_deploy(int argc, char **argv, const char *eth_rpc, int json) {
    bk_cfg *c = &deploy_cfg;
    int rc = 2;
    if (parse(c, argc, argv, eth_rpc, &rc))
        goto out_cfg;
    json = json || bk_cfg_bool(c, "json");
    bk_err e;
    bk_eth_key key, wkey;
    bk_rpc *rpc = NULL;
    bk_sender *s = NULL;
    uint8_t *code = NULL, writer[20] = {0}, *cd = NULL;
    size_t len = 0;
    int has_writer = 0;
    const char *boot = bk_cfg_str(c, "bootstrap"), *topic = bk_cfg_str(c, "topic");
    memset(&key, 0, sizeof(key));
    if ((boot[0] != '\0') != (topic[0] != '\0')) {
        bk_err_set(&e, BK_E_INVAL, "--bootstrap and --topic go together");
        goto fail;
    }
    if (bk_cfg_str(c, "writer")[0] != '\0') {
        if (bk_eth_addr_parse(bk_cfg_str(c, "writer"), writer, &e) != BK_OK) {
            bk_err_prefix(&e, "--writer '%s'", bk_cfg_str(c, "writer"));
            goto fail;
        }
        has_writer = 1;
    } else if (bk_cfg_str(c, "writer-key-file")[0] != '\0') {
        if (bk_eth_key_load(bk_cfg_str(c, "writer-key-file"), "", &wkey, &e) != BK_OK)
            goto fail;
        memcpy(writer, wkey.addr, 20);
        bk_eth_key_clear(&wkey);
        has_writer = 1;
    }
    if (bk_eth_key_load(bk_cfg_str(c, "key-file"), "BR2K_ETH_KEY", &key, &e) != BK_OK)
        goto fail;
    rpc = bk_rpc_new_list(bk_cfg_str(c, "eth-rpc"), RPC_TIMEOUT_MS, &e);
    if (rpc == NULL)
        goto fail;
    bk_sender_conf sc = {NULL, (int)bk_cfg_int(c, "confirmations"), 30000, 300000, 50, 0,
                         0};
    s = bk_sender_new(rpc, NULL, &key, &sc, &e);
    if (s == NULL)
        goto fail;
    if (bk_reg_creation_code(&code, &len, &e) != BK_OK)
        goto fail;
    bk_send_result res;
    int src = bk_sender_send(s, "deploy", NULL, code, len, NULL, &res, &e);
    free(code);
    if (src != BK_OK)
        goto fail;
    if (!res.has_contract) {
        bk_err_set(&e, BK_E_PROTO, "the deployment's receipt names no contract address");
        goto fail;
    }
    uint8_t *rt = NULL;
    size_t rtlen = 0;
    char *rthex = NULL;
    if (bk_rpc_get_code(rpc, res.contract, &rt, &rtlen, &e) != BK_OK)
        goto fail;
    rthex = bk_hex_encode_alloc(rt, rtlen, 1);
    free(rt);
    int same = rthex != NULL && strcmp(rthex, bk_reg_runtime_code_hex()) == 0;
    free(rthex);
    if (!same) {
        bk_err_set(&e, BK_E_STATE, "the code at the new address is not the registry's");
        goto fail;
    }
    if (has_writer && (bk_reg_enc_add_writer(writer, &cd, &len, &e) != BK_OK ||
                       send_call(s, "addWriter", res.contract, cd, len, &e) != BK_OK))
        goto fail;
    if (boot[0] != '\0' &&
        (bk_reg_enc_set_access_info(boot, topic, bk_cfg_str(c, "results"), &cd, &len,
                                    &e) != BK_OK ||
         send_call(s, "setAccessInfo", res.contract, cd, len, &e) != BK_OK))
        goto fail;
    char addr[43], owner[43], wr[43], tx[67];
    bk_eth_addr_hex(res.contract, addr);
    bk_eth_addr_hex(key.addr, owner);
    bk_eth_addr_hex(writer, wr);
    bk_hex_encode(res.hash, 32, 1, tx);
    if (json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I}", "registry", addr, "owner",
                              owner, "tx", tx, "block", (json_int_t)res.block, "chainId",
                              (json_int_t)bk_sender_chain_id(s));
        if (has_writer)
            json_object_set_new(j, "writer", json_string(wr));
        if (boot[0] != '\0')
            json_object_set_new(j, "accessInfo",
                                json_pack("{s:s, s:s, s:s}", "bootstrap", boot, "topic",
                                          topic, "results", bk_cfg_str(c, "results")));
        json_dumpf(j, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(j);
    } else {
        printf("%s\n", addr);
        fprintf(stderr, "registry deployed at %s in block %" PRIu64 " by %s%s%s%s\n",
                addr, res.block, owner, has_writer ? "; writer " : "",
                has_writer ? wr : "", boot[0] ? "; access information published" : "");
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "br2k registry deploy: %s\n", e.msg);
out:
    bk_sender_free(s);
    bk_rpc_free(rpc);
    bk_eth_key_clear(&key);
out_cfg:
    bk_cfg_release(c);
    return rc;
}

/* The contract address of --registry and a client of the --eth-rpc URLs;
 * NULL with *e set when either is missing or invalid. */
static bk_rpc *open_registry(const bk_cfg *c, uint8_t reg[20], bk_err *e) {
    if (bk_cfg_str(c, "registry")[0] == '\0' ||
        bk_eth_addr_parse(bk_cfg_str(c, "registry"), reg, e) != BK_OK) {
        bk_err_set(e, BK_E_INVAL, "--registry needs the contract's address, got '%s'",
                   bk_cfg_str(c, "registry"));
        return NULL;
    }
    return bk_rpc_new_list(bk_cfg_str(c, "eth-rpc"), RPC_TIMEOUT_MS, e);
}

static int cmd_show(int argc, char **argv, const char *eth_rpc, int json) {
    bk_cfg *c = &show_cfg;
    int rc = 2;
    bk_rpc *rpc = NULL;
    bk_reg_access a;
    bk_reg_leader l;
    bk_reg_backup b;
    uint64_t sv = 0;
    uint8_t reg[20], owner[20];
    char *gws = NULL;
    bk_err e;
    memset(&a, 0, sizeof(a));
    memset(&l, 0, sizeof(l));
    if (parse(c, argc, argv, eth_rpc, &rc))
        goto out_cfg;
    json = json || bk_cfg_bool(c, "json");
    rpc = open_registry(c, reg, &e);
    if (rpc == NULL)
        goto fail;
    if (bk_reg_get_owner(rpc, reg, owner, &e) != BK_OK ||
        bk_reg_get_access_info(rpc, reg, &a, &e) != BK_OK ||
        bk_reg_get_leader(rpc, reg, &l, &e) != BK_OK ||
        bk_reg_get_state_version(rpc, reg, &sv, &e) != BK_OK ||
        bk_reg_get_latest_backup(rpc, reg, &b, &e) != BK_OK)
        goto fail;
    bk_err ge;
    if (bk_reg_get_gateways(rpc, reg, &gws, &ge) != BK_OK) /* a registry from before */
        gws = NULL;
    char addr[43], own[43], dg[67];
    bk_eth_addr_hex(reg, addr);
    bk_eth_addr_hex(owner, own);
    bk_hex_encode(b.digest, 32, 1, dg);
    if (json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:I, s:s}, s:I, s:{s:I, s:s, "
            "s:I}}",
            "registry", addr, "owner", own, "rpc", bk_rpc_current_url(rpc), "accessInfo",
            "bootstrap", a.bootstrap, "topic", a.topic, "results", a.results, "leader",
            "worker", l.worker_id, "epoch", (json_int_t)l.epoch, "endpoint", l.endpoint,
            "stateVersion", (json_int_t)sv, "latestBackup", "version",
            (json_int_t)b.version, "digest", dg, "block", (json_int_t)b.block);
        json_object_set_new(j, "gateways", gws != NULL ? json_string(gws) : json_null());
        json_dumpf(j, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(j);
    } else {
        printf("registry       %s (owner %s, read from %s)\n", addr, own,
               bk_rpc_current_url(rpc));
        printf("gateways       %s\n", gws == NULL ? "(not in this contract)"
                                      : gws[0]    ? gws
                                                  : "none published");
        if (a.topic[0] != '\0')
            printf("access         bootstrap %s, topic %s, results %s\n", a.bootstrap,
                   a.topic, a.results[0] ? a.results : "-");
        else
            printf("access         not published\n");
        if (l.epoch > 0)
            printf("leader         %s, epoch %" PRIu64 ", endpoint %s\n", l.worker_id,
                   l.epoch, l.endpoint[0] ? l.endpoint : "-");
        else
            printf("leader         none recorded\n");
        printf("state version  %" PRIu64 "\n", sv);
        printf("latest backup  version %" PRIu64 ", digest %s, block %" PRIu64 "%s\n",
               b.version, dg, b.block,
               b.version == 1 ? " (the initial, empty state)" : "");
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "br2k registry show: %s\n", e.msg);
out:
    bk_reg_access_release(&a);
    bk_reg_leader_release(&l);
    free(gws);
    bk_rpc_free(rpc);
out_cfg:
    bk_cfg_release(c);
    return rc;
}

/* ---- log ---- */

static bk_cfg_opt log_opts[] = {
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated (default: the global --eth-rpc)", NULL, 0,
     0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL, "address of the registry contract", NULL, 0,
     0},
    {"backup-version", BK_CFG_INT, "0", 0, INT64_MAX, NULL,
     "backup version (0: the latest)", NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print the result as JSON", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg log_cfg = {"br2k registry log",
                         "Print the encrypted state-backup-log of a backup version (from "
                         "its\nBackupLogged event), as hex, with its digest and block.",
                         "[OPTIONS]",
                         log_opts,
                         NULL,
                         0,
                         0};

static int cmd_log(int argc, char **argv, const char *eth_rpc, int json) {
    bk_cfg *c = &log_cfg;
    int rc = 2;
    bk_rpc *rpc = NULL;
    uint8_t reg[20], digest[32], *log = NULL;
    size_t loglen = 0;
    uint64_t version;
    bk_reg_backup b;
    bk_err e;
    if (parse(c, argc, argv, eth_rpc, &rc))
        goto out_cfg;
    json = json || bk_cfg_bool(c, "json");
    rpc = open_registry(c, reg, &e);
    if (rpc == NULL)
        goto fail;
    version = (uint64_t)bk_cfg_int(c, "backup-version");
    if (version == 0) {
        if (bk_reg_get_latest_backup(rpc, reg, &b, &e) != BK_OK)
            goto fail;
        version = b.version;
    }
    if (version == 1) {
        bk_err_set(&e, BK_E_NOTFOUND, "version 1 is the initial, empty state: no log");
        goto fail;
    }
    if (bk_reg_get_backup(rpc, reg, version, &b, &e) != BK_OK ||
        bk_reg_get_backup_log(rpc, reg, version, &log, &loglen, digest, &e) != BK_OK)
        goto fail;
    char dg[67];
    char *hex = bk_hex_encode_alloc(log, loglen, 1);
    bk_hex_encode(digest, 32, 1, dg);
    if (hex == NULL) {
        bk_err_set(&e, BK_E_NOMEM, "out of memory");
        goto fail;
    }
    if (json)
        printf("{\"version\":%" PRIu64 ",\"digest\":\"%s\",\"block\":%" PRIu64
               ",\"log\":\"%s\"}\n",
               version, dg, b.block, hex);
    else
        printf("version %" PRIu64 "\ndigest  %s\nblock   %" PRIu64 "\nlog     %s\n",
               version, dg, b.block, hex);
    free(hex);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "br2k registry log: %s\n", e.msg);
out:
    free(log);
    bk_rpc_free(rpc);
out_cfg:
    bk_cfg_release(c);
    return rc;
}

/* ---- gateways ---- */

static bk_cfg_opt gateways_opts[] = {
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated (default: the global --eth-rpc)", NULL, 0,
     0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL, "address of the registry contract", NULL, 0,
     0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print a JSON array", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg gateways_cfg = {"br2k registry gateways",
                              "Print the HTTP gateways' URLs the registry lists, one a "
                              "line (what an\nend user's client finds from the contract "
                              "alone). Exit 1 when it lists none.",
                              "[OPTIONS]",
                              gateways_opts,
                              NULL,
                              0,
                              0};

static int cmd_gateways(int argc, char **argv, const char *eth_rpc, int json) {
    bk_cfg *c = &gateways_cfg;
    int rc = 2;
    char *urls = NULL;
    size_t n = 0;
    bk_err e;
    if (parse(c, argc, argv, eth_rpc, &rc))
        goto out;
    json = json || bk_cfg_bool(c, "json");
    if (bk_reg_discover_gateways(bk_cfg_str(c, "eth-rpc"), bk_cfg_str(c, "registry"),
                                 RPC_TIMEOUT_MS, &urls, &n, &e) != BK_OK &&
        e.code != BK_E_NOTFOUND) {
        fprintf(stderr, "br2k registry gateways: %s\n", e.msg);
        goto out;
    }
    json_t *arr = json_array();
    for (const char *p = urls ? urls : ""; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len > 0)
            json_array_append_new(arr, json_stringn(p, len));
        p += len + (p[len] == ',');
    }
    if (json) {
        json_dumpf(arr, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        for (size_t i = 0; i < json_array_size(arr); i++)
            printf("%s\n", json_string_value(json_array_get(arr, i)));
        if (n == 0)
            fprintf(stderr, "br2k registry gateways: %s\n", e.msg);
    }
    json_decref(arr);
    rc = n > 0 ? 0 : 1;
out:
    free(urls);
    bk_cfg_release(c);
    return rc;
}

/* ---- set-gateways ---- */

static bk_cfg_opt set_gateways_opts[] = {
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated (default: the global --eth-rpc)", NULL, 0,
     0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL, "address of the registry contract", NULL, 0,
     0},
    {"key-file", BK_CFG_STR, "", 0, 0, NULL,
     "file holding a writer's private key (hex); else env BR2K_ETH_KEY", NULL, 0, 0},
    {"urls", BK_CFG_STR, "", 0, 0, NULL,
     "the gateways' URLs, comma-separated (\"\": none)", NULL, 0, 0},
    {"confirmations", BK_CFG_INT, "1", 1, 1000, NULL,
     "blocks that must include or follow the transaction", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg set_gateways_cfg = {
    "br2k registry set-gateways",
    "Publish the HTTP gateways' URLs in the registry (setGateways), signed with a\n"
    "writer's key. br2k-registryd does this by itself from what running gateways\n"
    "advertise (br2k-gateway --advertise); this sets them by hand.",
    "--urls URLS [OPTIONS]",
    set_gateways_opts,
    NULL,
    0,
    0};

static int cmd_set_gateways(int argc, char **argv, const char *eth_rpc, int json) {
    (void)json;
    bk_cfg *c = &set_gateways_cfg;
    int rc = 2;
    bk_err e;
    bk_eth_key key;
    bk_rpc *rpc = NULL;
    bk_sender *s = NULL;
    uint8_t reg[20], *cd = NULL;
    size_t len = 0;
    memset(&key, 0, sizeof(key));
    if (parse(c, argc, argv, eth_rpc, &rc))
        goto out_cfg;
    rc = 2;
    const char *urls = bk_cfg_str(c, "urls");
    for (const char *p = urls; *p; p++)
        if (*p == ' ' || (unsigned char)*p < 0x20) {
            bk_err_set(&e, BK_E_INVAL,
                       "--urls '%s': no spaces or controls (comma-separated)", urls);
            goto fail;
        }
    if (bk_eth_key_load(bk_cfg_str(c, "key-file"), "BR2K_ETH_KEY", &key, &e) != BK_OK)
        goto fail;
    rpc = open_registry(c, reg, &e);
    if (rpc == NULL)
        goto fail;
    bk_sender_conf sc = {NULL, (int)bk_cfg_int(c, "confirmations"), 30000, 300000, 50, 0,
                         0};
    s = bk_sender_new(rpc, NULL, &key, &sc, &e);
    if (s == NULL || bk_reg_enc_set_gateways(urls, &cd, &len, &e) != BK_OK ||
        send_call(s, "setGateways", reg, cd, len, &e) != BK_OK)
        goto fail;
    fprintf(stderr, "gateways published: %s\n", urls[0] ? urls : "(none)");
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "br2k registry set-gateways: %s\n", e.msg);
out:
    bk_sender_free(s);
    bk_rpc_free(rpc);
    bk_eth_key_clear(&key);
out_cfg:
    bk_cfg_release(c);
    return rc;
}

int bk_registry_cli(int argc, char **argv, const char *eth_rpc, int json) {
    const char *sub = argc > 1 ? argv[1] : "help";
    if (strcmp(sub, "deploy") == 0)
        return cmd_deploy(argc - 1, argv + 1, eth_rpc, json);
    if (strcmp(sub, "show") == 0)
        return cmd_show(argc - 1, argv + 1, eth_rpc, json);
    if (strcmp(sub, "log") == 0)
        return cmd_log(argc - 1, argv + 1, eth_rpc, json);
    if (strcmp(sub, "gateways") == 0)
        return cmd_gateways(argc - 1, argv + 1, eth_rpc, json);
    if (strcmp(sub, "set-gateways") == 0)
        return cmd_set_gateways(argc - 1, argv + 1, eth_rpc, json);
    FILE *out = strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 ? stdout : stderr;
    if (out == stderr)
        fprintf(stderr, "br2k registry: unknown command '%s'\n", sub);
    fprintf(
        out,
        "Usage: br2k [--eth-rpc URLS] registry deploy [OPTIONS]   deploy the "
        "contract, print its address\n"
        "       br2k [--eth-rpc URLS] registry show --registry ADDR [--json]\n"
        "       br2k [--eth-rpc URLS] registry log --registry ADDR [--backup-version N] "
        "[--json]\n"
        "       br2k [--eth-rpc URLS] registry gateways --registry ADDR [--json]\n"
        "       br2k [--eth-rpc URLS] registry set-gateways --registry ADDR --urls URLS "
        "[--key-file F]\n"
        "See br2k registry COMMAND --help.\n");
    return out == stdout ? 0 : 2;
}

int cmd_registry(const cli_globals *g, int argc, char **argv) {
    return bk_registry_cli(argc, argv, g->eth_rpc, g->json);
}
