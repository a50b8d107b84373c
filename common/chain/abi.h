/* abi.h - Solidity ABI encoding and decoding for the types a registry
 * contract uses: uintN, intN, bool, address, bytesN (fixed, 1..32), and the
 * dynamic bytes and string. No arrays or tuples.
 *
 * Encoding is a builder: start with a function signature (or none), append
 * arguments in order, then finish, which lays out the heads (one 32-byte
 * word per argument, an offset for a dynamic one) and the tails.
 *
 *     bk_abi_enc a;
 *     bk_abi_enc_init(&a, "appendBackupLog(uint64,bytes32,bytes)");
 *     bk_abi_put_uint(&a, 7);
 *     bk_abi_put_bytes32(&a, digest);
 *     bk_abi_put_bytes(&a, log, log_len);
 *     if (bk_abi_enc_finish(&a, &calldata, &calldata_len, e) != BK_OK) ...
 *
 * Decoding takes a type list as text ("uint64,bytes32,bytes") and the bytes;
 * the values point into the caller's bytes (keep them alive). It is strict:
 * an offset or length outside the data, a bool that is not 0 or 1, an
 * address or uintN/intN with stray high bits, a bytesN with non-zero
 * padding are errors (BK_E_PROTO). */
#ifndef BK_ABI_H
#define BK_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define BK_ABI_MAX_ARGS 16
#define BK_ABI_NAME_MAX 64

typedef enum bk_abi_kind {
    BK_ABI_UINT = 1,
    BK_ABI_INT,
    BK_ABI_BOOL,
    BK_ABI_ADDRESS,
    BK_ABI_FIXED_BYTES, /* bytes1 .. bytes32 */
    BK_ABI_BYTES,
    BK_ABI_STRING
} bk_abi_kind;

typedef struct bk_abi_type {
    bk_abi_kind kind;
    int size;    /* bits for uintN/intN, bytes for bytesN */
    int indexed; /* for event parameters: "uint64 indexed" */
} bk_abi_type;

/* A decoded value. Static types are in word (the raw 32-byte word); bytes
 * and string are data[len], pointing into the decoded buffer (a string is
 * not NUL-terminated). An indexed dynamic event parameter has only its
 * keccak hash, in word (kind BK_ABI_FIXED_BYTES, size 32). */
typedef struct bk_abi_val {
    bk_abi_type type;
    uint8_t word[32];
    const uint8_t *data;
    size_t len;
} bk_abi_val;

/* ---- signatures and types ---- */

/* The 4-byte selector of a canonical signature, "transfer(address,uint256)":
 * the first 4 bytes of its keccak256. */
void bk_abi_selector(const char *signature, uint8_t sel[4]);

/* Parse a comma-separated type list ("uint256, bytes,string"; spaces and an
 * " indexed" suffix allowed) into types[max]; count in *n. Returns BK_OK or
 * BK_ERR (BK_E_INVAL) for an unknown or unsupported type. */
int bk_abi_parse_types(const char *list, bk_abi_type *types, size_t max, size_t *n,
                       bk_err *e);

/* Split "name(types)" into the name (into name[BK_ABI_NAME_MAX]) and its
 * parsed types, and write the canonical signature (spaces and "indexed"
 * removed) into canon[canon_size] when canon is not NULL. Returns BK_OK or
 * BK_ERR (BK_E_INVAL). */
int bk_abi_parse_signature(const char *sig, char name[BK_ABI_NAME_MAX],
                           bk_abi_type *types, size_t max, size_t *n, char *canon,
                           size_t canon_size, bk_err *e);

/* ---- encoding ---- */

typedef struct bk_abi_slot {
    int dynamic;
    uint8_t word[32];
    uint8_t *data; /* dynamic payload (owned) */
    size_t len;
} bk_abi_slot;

typedef struct bk_abi_enc {
    uint8_t selector[4];
    int has_selector;
    bk_abi_slot slots[BK_ABI_MAX_ARGS];
    size_t n;
    int failed; /* too many arguments, or out of memory */
} bk_abi_enc;

/* Start an encoding; with a signature (not NULL) the output starts with its
 * selector (calldata), without one it is the bare argument encoding (as
 * `cast abi-encode` gives it). */
void bk_abi_enc_init(bk_abi_enc *a, const char *signature);

/* Free what the encoder holds (safe to call twice). */
void bk_abi_enc_release(bk_abi_enc *a);

void bk_abi_put_uint(bk_abi_enc *a, uint64_t v);              /* any uintN */
void bk_abi_put_uint256(bk_abi_enc *a, const uint8_t be[32]); /* big-endian */
void bk_abi_put_int(bk_abi_enc *a, int64_t v);                /* any intN */
void bk_abi_put_bool(bk_abi_enc *a, int v);                   /* 0 or 1 */
void bk_abi_put_address(bk_abi_enc *a, const uint8_t addr[20]);
void bk_abi_put_bytes32(bk_abi_enc *a, const uint8_t b[32]);
/* bytesN with N = len (1..32): left-aligned, zero-padded. */
void bk_abi_put_fixed_bytes(bk_abi_enc *a, const void *b, size_t len);
void bk_abi_put_bytes(bk_abi_enc *a, const void *data, size_t len); /* dynamic */
void bk_abi_put_string(bk_abi_enc *a, const char *s);               /* dynamic */

/* Lay out the encoding into *out (malloc'd, the caller frees; non-NULL even
 * when empty) and *len. Returns BK_OK, or BK_ERR when an append failed (too
 * many arguments, out of memory). The encoder is released either way. */
int bk_abi_enc_finish(bk_abi_enc *a, uint8_t **out, size_t *len, bk_err *e);

/* ---- decoding ---- */

/* Decode data[len] (return data, or calldata without its selector) as the
 * comma-separated types, into vals[max]; count in *n. Returns BK_OK or
 * BK_ERR (bad type list: BK_E_INVAL; bad data: BK_E_PROTO). Extra bytes
 * after the encoding are allowed (the ABI allows them). */
int bk_abi_decode(const uint8_t *data, size_t len, const char *types, bk_abi_val *vals,
                  size_t max, size_t *n, bk_err *e);

/* Decode with already-parsed types (types[n] into vals[n]). */
int bk_abi_decode_types(const uint8_t *data, size_t len, const bk_abi_type *types,
                        size_t n, bk_abi_val *vals, bk_err *e);

/* A uint (or a non-negative int) value as uint64. Returns BK_OK, or BK_ERR
 * (BK_E_INVAL) when it does not fit. */
int bk_abi_val_u64(const bk_abi_val *v, uint64_t *out, bk_err *e);

/* An int value as int64. Returns BK_OK, or BK_ERR when it does not fit. */
int bk_abi_val_i64(const bk_abi_val *v, int64_t *out, bk_err *e);

/* A bytes or string value as a malloc'd NUL-terminated copy (the caller
 * frees); NULL when out of memory or not bytes/string. */
char *bk_abi_val_strdup(const bk_abi_val *v);

/* A readable form of a value into buf[size]: decimal for integers,
 * true/false, a checksummed address, 0x-hex for bytes, a quoted string
 * (truncated with "..." when it does not fit). */
void bk_abi_val_format(const bk_abi_val *v, char *buf, size_t size);

/* ---- revert data ---- */

typedef enum bk_abi_revert_kind {
    BK_REVERT_EMPTY = 0, /* no data: require(false) or out of gas */
    BK_REVERT_ERROR,     /* Error(string) */
    BK_REVERT_PANIC,     /* Panic(uint256) */
    BK_REVERT_CUSTOM,    /* one of the caller's error signatures */
    BK_REVERT_UNKNOWN    /* a selector we were not told about */
} bk_abi_revert_kind;

typedef struct bk_abi_revert {
    bk_abi_revert_kind kind;
    uint8_t selector[4];
    char name[BK_ABI_NAME_MAX];       /* "Error", "Panic", the custom name, or "" */
    const char *signature;            /* the matched entry of the caller's list */
    bk_abi_val args[BK_ABI_MAX_ARGS]; /* Error: the string; Panic: the code */
    size_t nargs;
} bk_abi_revert;

/* Decode revert data (pointing into data; keep it alive). error_sigs[nsigs]
 * are custom error signatures such as "StaleEpoch(uint64,uint64)". Returns
 * BK_OK (any kind, UNKNOWN included), or BK_ERR (BK_E_PROTO) when the data
 * is shorter than a selector or its arguments do not decode. */
int bk_abi_decode_revert(const uint8_t *data, size_t len, const char *const *error_sigs,
                         size_t nsigs, bk_abi_revert *r, bk_err *e);

/* A one-line description: `StaleEpoch(5, 7)`, `Error("not owner")`,
 * `Panic(0x11: arithmetic overflow)`, `unknown error 0x12345678`, `empty
 * revert`. Writes into buf[size]. */
void bk_abi_revert_format(const bk_abi_revert *r, char *buf, size_t size);

/* ---- event logs ---- */

/* topic0 of an event: keccak256 of its canonical signature; the
 * description may mark parameters " indexed". Returns BK_OK or BK_ERR. */
int bk_abi_event_topic(const char *event_desc, uint8_t topic[32], bk_err *e);

/* Decode a log of the event described as "Name(type [indexed], ...)":
 * topics[0] must be its topic0, indexed parameters come from the following
 * topics, the others from data. Values go into vals[max] in parameter
 * order; count in *n. Returns BK_OK, or BK_ERR (BK_E_INVAL for a bad
 * description, BK_E_PROTO for a log that is not this event or does not
 * decode). */
int bk_abi_decode_log(const char *event_desc, const uint8_t (*topics)[32], size_t ntopics,
                      const uint8_t *data, size_t len, bk_abi_val *vals, size_t max,
                      size_t *n, bk_err *e);

#endif
