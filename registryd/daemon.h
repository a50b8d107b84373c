/* daemon.h - br2k-registryd's work: serve the registry channel
 * (common/redis/regchan.h) and carry every leader change to the chain.
 *
 * Methods on the channel ("args" of the request):
 *   setAccessInfo   {"bootstrap": S, "topic": S, "results": S}
 *   setLeader       {"worker": S, "epoch": N, "endpoint": S}   fenced: N, and the
 *                   request's "epoch" when given, must be the current token
 *   appendBackupLog {"version": N, "digest": "0x" 64 hex, "log": "0x" hex}
 *                   fenced: the request's "epoch" must be the current token
 *   addWriter       {"account": "0x" 40 hex}
 *   removeWriter    {"account": "0x" 40 hex}
 *   setGateways     {"urls": S}  the HTTP gateways' URLs, comma-separated
 * Replies: {"ok": true, "tx", "block", "nonce", "gasUsed", "bumps"} or, when
 * the chain already holds what was asked (a repeated request), {"ok": true,
 * "already": true}; failures {"ok": false, "code", "error"} with code
 * "invalid", "fenced", the contract's error name ("BadVersion",
 * "StaleEpoch", "NotWriter", ...; then also "revert": "BadVersion(4, 3)"),
 * or a sender code ("insufficient-funds", "nonce", "rpc", "timeout",
 * "replaced").
 *
 * The fencing check (token == br2k:{svc}:epoch) is made just before the
 * transaction is sent; the contract's own checks (a newer epoch, version ==
 * SV + 1) keep a late write harmless.
 *
 * Leader changes: the lease br2k:{svc}:leader ("<id> <epoch>") is polled;
 * a lease with an epoch newer than the chain's record is sent as
 * setLeader(id, epoch, endpoint), the endpoint read from
 * br2k:{svc}:registry:endpoint:<id> when a worker published one, else the
 * live gateways' URLs (comma-separated; the leader is reached through
 * them), else "". */
#ifndef BK_REGD_H
#define BK_REGD_H

#include <jansson.h>
#include <stdint.h>

#include "chain/jsonrpc.h"
#include "redis/redis.h"
#include "chain/sender.h"

typedef struct bk_regd {
    bk_redis *r;
    bk_rpc *rpc;
    bk_sender *snd;
    const char *svc;
    uint8_t registry[20];
    int lease_poll_ms;
    /* lease watching */
    int64_t leader_done; /* the newest epoch known to be on the chain */
    long long lease_next_ms, lease_backoff_ms, lease_warn_ms;
    long long served, failed;
    /* gateway publishing */
    int publish_gateways, gateways_known;
    char gateways_done[2048]; /* the list the chain holds */
    long long gw_next_ms;
} bk_regd;

/* Handle one channel request; returns the reply (the caller decrefs), or
 * NULL when the daemon is stopping with the request's transaction still in
 * flight (no reply: it stays in `processing` and is resumed at restart). */
json_t *bk_regd_handle(bk_regd *d, json_t *req);

/* Check the lease and send setLeader when it is newer than the chain's. */
void bk_regd_watch_lease(bk_regd *d);

/* With publish_gateways: when the URLs the live gateways advertise in Redis
 * (gateway-<id>, `url`) differ from the chain's gateways(), send
 * setGateways(urls) (sorted, comma-separated). Never publishes an empty
 * list: with no gateway alive the last list stays. Checked once a second. */
void bk_regd_watch_gateways(bk_regd *d);

/* Serve until bk_sig_stop. Returns 0. */
int bk_regd_run(bk_regd *d);

#endif
