/* discover.c - br2k_discover: find the service from the registry alone.
 *
 * The paper's clients reach the service through its registry contract on
 * Ethereum: given only the contract's address and any Ethereum RPC URL,
 * read the access information the operator published (Kafka bootstrap
 * servers, the request topic, where results are read) and turn it into
 * br2k_settings. */
#include <stdio.h>
#include <string.h>

#include "br2k.h"
#include "base/err.h"
#include "chain/ethkey.h"
#include "chain/jsonrpc.h"
#include "chain/registry.h"

static int set_err(br2k_error *err, int code, const bk_err *e, const char *what) {
    bk_err tmp;
    bk_err_clear(&tmp);
    if (e != NULL) {
        tmp = *e;
        bk_err_prefix(&tmp, "%s", what);
    } else {
        bk_err_set(&tmp, code, "%s", what);
    }
    if (err != NULL) {
        err->code = code;
        memcpy(err->msg, tmp.msg,
               sizeof(err->msg) < sizeof(tmp.msg) ? sizeof(err->msg) : sizeof(tmp.msg));
        err->msg[sizeof(err->msg) - 1] = '\0';
    }
    return BR2K_ERR;
}

/* "br2k.<svc>.requests" -> svc; 0 if the topic has another shape. */
static int service_of(const char *topic, char *svc, size_t size) {
    size_t n = strlen(topic);
    const char *pre = "br2k.", *suf = ".requests";
    size_t lp = strlen(pre), ls = strlen(suf);
    if (n <= lp + ls || strncmp(topic, pre, lp) != 0 ||
        strcmp(topic + n - ls, suf) != 0 || n - lp - ls >= size)
        return 0;
    memcpy(svc, topic + lp, n - lp - ls);
    svc[n - lp - ls] = '\0';
    return 1;
}

int br2k_discover(const char *eth_rpc, const char *registry, br2k_discovery *d,
                  br2k_settings *s, br2k_error *err) {
    bk_err e;
    bk_err_clear(&e);
    memset(d, 0, sizeof(*d));
    uint8_t reg[20];
    if (eth_rpc == NULL || *eth_rpc == '\0')
        return set_err(err, BR2K_E_INVAL, NULL,
                       "no Ethereum RPC URL to read the registry from: set BR2K_ETH_RPC");
    if (registry == NULL || bk_eth_addr_parse(registry, reg, &e) != BK_OK)
        return set_err(err, BR2K_E_INVAL, registry ? &e : NULL,
                       "invalid registry address (BR2K_REGISTRY)");
    bk_rpc *rpc = bk_rpc_new_list(eth_rpc, 5000, &e);
    if (rpc == NULL)
        return set_err(err, BR2K_E_INVAL, &e, "invalid Ethereum RPC URLs");
    bk_reg_access a = {0};
    int rc = bk_reg_get_access_info(rpc, reg, &a, &e);
    bk_rpc_free(rpc);
    if (rc != BK_OK)
        return set_err(err, BR2K_E_IO, &e,
                       "cannot read the registry's access information");
    if (a.bootstrap[0] == '\0' || !service_of(a.topic, d->service, sizeof(d->service))) {
        bk_reg_access_release(&a);
        return set_err(
            err, BR2K_E_PROTO, NULL,
            "the registry holds no usable access information (bootstrap servers "
            "and a br2k.<service>.requests topic)");
    }
    snprintf(d->kafka, sizeof(d->kafka), "%s", a.bootstrap);
    const char *res = a.results;
    if (strncmp(res, "sentinel://", 11) == 0) /* the Sentinels and the primary's name */
        snprintf(d->redis, sizeof(d->redis), "%s", res);
    else {
        if (strncmp(res, "redis://", 8) == 0)
            res += 8;
        snprintf(d->redis, sizeof(d->redis), "%.*s", (int)strcspn(res, "/"), res);
    }
    bk_reg_access_release(&a);
    s->kafka = d->kafka;
    s->service = d->service;
    if (d->redis[0] != '\0')
        s->redis = d->redis;
    return BR2K_OK;
}
