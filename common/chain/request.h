/* request.h - the request envelope (schemas/request.schema.json, version 1).
 *
 * Pure functions, no I/O. A request is the JSON text
 *   {"v":1,"id":{"client":C,"seq":N},"op":OP,"payload":{...},"ts":MS,"sig":"0x.."}
 * Parsing checks, in this order, and stops at the first failure with a
 * stable reason code (schemas/README.md lists them):
 *   size > limit          too_large
 *   not JSON / dup keys   malformed_json
 *   not an object         not_object
 *   v                     missing_field:v, bad_field:v, bad_version
 *   id, id.client, id.seq missing_field:id..., bad_field:id...
 *   op                    missing_field:op, bad_field:op
 *   payload               missing_field:payload, bad_field:payload
 *   ts                    missing_field:ts, bad_field:ts
 *   sig                   missing_field:sig, bad_field:sig
 *   signer (optional)     bad_field:signer
 *   another field         unknown_field (the name is in the text)
 *   op not in the set     unknown_op
 * "signer" ("0x" and 40 hex digits) names the address that signed; it is
 * part of what is signed, and an application that checks signatures
 * rejects a request whose signature recovers to another address
 * (InfoDID: signer_mismatch; it requires the field).
 * The signed message is the canonical form: the envelope without "sig",
 * keys sorted by bytes, no spaces (jansson JSON_SORT_KEYS|JSON_COMPACT),
 * signed as an EIP-191 personal message (`cast wallet sign "<canonical>"`). */
#ifndef BK_REQUEST_H
#define BK_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "chain/ethkey.h"

#define BK_REQUEST_VERSION 1
#define BK_REQUEST_DEFAULT_LIMIT 65536        /* bytes of the whole JSON text */
#define BK_REQUEST_CLIENT_MAX 64              /* bytes of id.client */
#define BK_REQUEST_OP_MAX 32                  /* bytes of op */
#define BK_REQUEST_INT_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */

/* Why a request was rejected: a stable machine code ("missing_field:op")
 * and one lowercase line for people. */
typedef struct bk_reason {
    char code[48];
    char text[208];
} bk_reason;

/* A parsed envelope. Strings point into `root`, valid until
 * bk_request_release(). `id` is filled as soon as id.client and id.seq are
 * valid, so a result can name the request even when a later check fails;
 * it is "" when they are not. */
typedef struct bk_request {
    json_t *root; /* owned */
    char client[BK_REQUEST_CLIENT_MAX + 1];
    int64_t seq;
    char id[BK_REQUEST_CLIENT_MAX + 24]; /* "<client>:<seq>" */
    const char *op;                      /* NULL until validated */
    json_t *payload;                     /* borrowed from root */
    int64_t ts;
    uint8_t sig[65]; /* r || s || v, v as sent (27/28 or 0/1) */
    int has_signer;  /* "signer" was given: */
    uint8_t signer[20];
} bk_request;

/* Fill `why` (if not NULL) and return BK_ERR. */
int bk_reason_set(bk_reason *why, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parse and validate the request in buf[0..len). `limit` is the size limit
 * in bytes (0: BK_REQUEST_DEFAULT_LIMIT). `ops` is a NULL-terminated list
 * of known operations (NULL: any well-formed op). Returns BK_OK with `req`
 * filled (release it with bk_request_release), or BK_ERR with `why` filled
 * and `req` holding nothing to release except possibly its id (calling
 * bk_request_release is still safe). */
int bk_request_parse(const void *buf, size_t len, size_t limit, const char *const *ops,
                     bk_request *req, bk_reason *why);

/* Free what bk_request_parse kept (safe twice, and on a zeroed struct). */
void bk_request_release(bk_request *req);

/* The canonical signing string of a parsed request (malloc'd, NUL
 * terminated, *len without the NUL). BK_ERR only when out of memory. */
int bk_request_canonical(const bk_request *req, char **out, size_t *len, bk_err *e);

/* The canonical signing string from its parts (payload is not stolen).
 * Fails with BK_E_INVAL when a part is out of the schema's bounds. */
int bk_request_canonical_parts(const char *client, int64_t seq, const char *op,
                               const json_t *payload, int64_t ts, char **out, size_t *len,
                               bk_err *e);

/* The signer of a parsed request: the address recovered from `sig` over
 * the EIP-191 hash of the canonical form. BK_E_INVAL if the signature does
 * not recover (a bad signature), BK_E_NOMEM when out of memory. */
int bk_request_signer(const bk_request *req, uint8_t addr[20], bk_err *e);

/* The same, given the canonical form the caller already built
 * (bk_request_canonical), so that it is serialized only once. */
int bk_request_recover(const bk_request *req, const char *canon, size_t clen,
                       uint8_t addr[20], bk_err *e);

/* The canonical signing string from its parts with a "signer" (the
 * address, 20 bytes; NULL: none). */
int bk_request_canonical_signed(const char *client, int64_t seq, const char *op,
                                const json_t *payload, int64_t ts, const uint8_t *signer,
                                char **out, size_t *len, bk_err *e);

/* Build a signed request: the JSON text (keys sorted, compact, malloc'd)
 * of the envelope, with "signer" the key's address, signed by `key`, with
 * v = 27/28 as `cast wallet sign` writes it. The payload is not stolen.
 * Used by the client library, the load generator and tests. */
int bk_request_build(const bk_eth_key *key, const char *client, int64_t seq,
                     const char *op, const json_t *payload, int64_t ts, char **out,
                     bk_err *e);

#endif
