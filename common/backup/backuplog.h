/* backuplog.h - the state-backup-log codec (the paper's Table 2; DESIGN.md
 * "State-version-up" step 5 and I8; schemas/state-backup-log.schema.json).
 *
 * A state-backup-log is a JSON object (format "br2k.state-backup-log.v1")
 * that says what a backup version holds and where: start and end time,
 * members and alive members, the subject (the leader) and its epoch, the cut
 * offset, the application's state digest, the sealed objects (the
 * application state, the store snapshot and, since it was added, the
 * external state: name, SHA-256, sizes, type, owner, creation time, and the
 * data key that opens it, itself encrypted to the service key) and the
 * off-chain storage (location, authentication and stored form; never a
 * credential).
 *
 * The external state (external_state, optional: logs written before it was
 * added have none and still decode) is the application's state outside the
 * replicas: every Redis key of the service under br2k:{svc}:ext: (written
 * by the leader's external effect, fenced, idempotent per offset: I5),
 * read atomically while the leader holds at the cut, or (a large view of an
 * application that offers one: br2k-backupd --view-fields) written by the
 * leader's snapshot process from the application's view of its state at
 * the cut (owner: the worker). Its meta adds cut_offset (the log's),
 * applied_offset (what <prefix>applied records, -1 when absent: a
 * watermark, every effect up to it is in; read from Redis, the last record
 * that had an effect, or the LPI after a republish; from the view, the
 * cut; it may exceed the cut only by records whose effect an earlier
 * leader made before it was fenced, which replaying changes nothing of;
 * `br2k history verify` takes any value from the replay's to the cut) and
 * key_count. The sealed plaintext is JSON, format
 * BK_EXTERNAL_FORMAT:
 *   {"format": "br2k.external-state.v1", "service", "taken" (time),
 *    "epoch", "cut_offset", "applied_offset", "prefix": "br2k:{svc}:ext:",
 *    "keys": {"<full key name>": {"type": "string"|"hash"|"set"|"list"|
 *             "zset", "encoding": "utf-8"|"hex", "value": ...}}}
 * value: a string (string), an object field -> value (hash), an array
 * (list, in order; set, sorted), an object member -> score as text (zset);
 * with encoding "hex" every name and value of the key is lowercase hex
 * (used when one of them is not UTF-8).
 *
 * On chain it is encrypted to the service's public key with ECIES in the
 * format of the npm package eth-crypto (common/backup/ecies.h): the plaintext is
 * the compact JSON text with sorted keys (UTF-8), so that
 * `EthCrypto.decryptWithPrivateKey(priv, EthCrypto.cipher.parse(hex))`
 * returns it as a string. A data key is wrapped the same way: the ECIES of
 * its 64 lowercase hex digits, as text.
 *
 * The service key pair (`br2k keygen`): the private key is read from a file
 * or the environment variable BR2K_SERVICE_KEY; the public key (0x04 || X
 * || Y, 130 hex digits) may be given on its own to whoever only encrypts
 * (backupd, the leader). No key ever appears in an error message. */
#ifndef BK_BACKUPLOG_H
#define BK_BACKUPLOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "backup/storage.h"
#include "chain/ethkey.h"

#define BK_BLOG_FORMAT "br2k.state-backup-log.v1"
#define BK_EXTERNAL_FORMAT "br2k.external-state.v1"
/* The environment variables that hold the service's private key (hex), or
 * the name of a file holding it (what `deploy/local/stack env` exports). */
#define BK_SERVICE_KEY_ENV "BR2K_SERVICE_KEY"
#define BK_SERVICE_KEY_FILE_ENV "BR2K_SERVICE_KEY_FILE"
/* Hex digits of a wrapped data key: iv 16 + key 33 + mac 32 + 80 bytes of
 * AES-CBC (64 bytes of text and one block of padding). */
#define BK_BLOG_WRAPPED_KEY_HEX (2 * (16 + 33 + 32 + 80))

/* Check that log is a complete v1 state-backup-log: every required field
 * present with its type and range, times in the form of bk_blog_time, end
 * not before start, alive_members a subset of members, digests of 64
 * lowercase hex digits, data keys of BK_BLOG_WRAPPED_KEY_HEX hex digits, and
 * no credential in storage.url ("secret", "@", "X-Amz-Credential" or
 * "AccessKey" in any case); external_state, when present, checked like
 * the other objects plus cut_offset equal to the log's, applied_offset >=
 * -1 and key_count >= 0. Unknown fields are allowed (a later minor
 * addition). Returns BK_OK, or BK_ERR (BK_E_INVAL) with a one-line message
 * naming the field: "backup log: 'state_data.sha256' is not 64 lowercase
 * hex digits", "backup log: 'members' is missing". */
int bk_blog_check(const json_t *log, bk_err *e);

/* The plaintext of a log: compact JSON text, keys sorted, UTF-8
 * (malloc'd, NUL-terminated; the caller frees). NULL when out of memory. */
char *bk_blog_text(const json_t *log);

/* Encrypt log (checked with bk_blog_check first) to the uncompressed public
 * key pub: *hex (malloc'd, the caller frees) is the lowercase hex of
 * eth-crypto's cipher.stringify, without "0x". Returns BK_OK or BK_ERR
 * (the check's error, BK_E_INVAL for a bad key, BK_E_NOMEM, BK_E_IO); then
 * *hex is NULL. */
int bk_blog_encrypt(const json_t *log, const uint8_t pub[65], char **hex, bk_err *e);

/* Decrypt an encrypted log in hex (optional "0x") with the service's
 * private key k, parse it and check it: *log (the caller decrefs). Returns
 * BK_OK, or BK_ERR; then *log is NULL:
 *   "backup log: cannot decrypt: bad mac (wrong service key or tampered
 *    log)" (BK_E_INVAL)
 *   "backup log: cannot decrypt: <ecies error>" (not hex, too short, ...)
 *   "backup log: not JSON: <jansson's message>"
 *   any error of bk_blog_check.
 * Callers that know the version prefix it: "backup log of version 3: ...". */
int bk_blog_decrypt(const char *hex, const bk_eth_key *k, json_t **log, bk_err *e);

/* The same from the raw ECIES bytes (what the BackupLogged event carries). */
int bk_blog_decrypt_raw(const uint8_t *raw, size_t len, const bk_eth_key *k, json_t **log,
                        bk_err *e);

/* Wrap a 32-byte data key for pub: *hex (malloc'd, the caller frees) is the
 * ECIES of its 64 lowercase hex digits (as text), in cipher.stringify hex.
 * Returns BK_OK or BK_ERR (as bk_blog_encrypt). */
int bk_blog_wrap_key(const uint8_t key[32], const uint8_t pub[65], char **hex, bk_err *e);

/* One object of a backup, as the log describes it: seal plain[len]
 * (seal.h, a fresh data key), store it under "v<version>-<kind>-<sha256>"
 * in st (read back before it counts, storage.h), and wrap the data key
 * to pub. On success name[BK_STORAGE_NAME_MAX + 1], sha[65], *size (the
 * sealed bytes) and *wrapped (malloc'd, the caller frees) are set; the
 * data key is wiped either way. */
int bk_blog_put_sealed(bk_storage *st, int64_t version, const char *kind,
                       const void *plain, size_t len, const uint8_t pub[65], char *name,
                       char sha[65], size_t *size, char **wrapped, bk_err *e);

/* The log entry of an object bk_blog_put_sealed stored: object, sha256,
 * size, plain_size, created (now, as bk_blog_time writes it), data_key,
 * type, owner and form (the seal's). NULL when out of memory. */
json_t *bk_blog_object_meta(const char *name, const char *sha, size_t size,
                            size_t plain_size, const char *data_key, const char *type,
                            const char *owner);

/* The reverse, for any object part of a log (state_data, snapshot,
 * external_state): read meta.object from st, check its size and SHA-256
 * against meta, unwrap meta.data_key with the service's private key k and
 * open it (seal.h). On success *plain (malloc'd, NUL-terminated, *len
 * bytes not counting the NUL; the caller frees). Returns BK_OK, or BK_ERR
 * naming the object: "object 'v...': storage: object ... not found",
 * "object 'v...': seal: digest mismatch: ...", "data key: cannot
 * decrypt: bad mac ..."; then *plain is NULL. */
int bk_blog_get_sealed(bk_storage *st, const json_t *meta, const bk_eth_key *k,
                       void **plain, size_t *len, bk_err *e);

/* Unwrap a data key wrapped by bk_blog_wrap_key (or by eth-crypto's
 * encryptWithPublicKey of the 64 hex digits). Returns BK_OK, or BK_ERR
 * (BK_E_INVAL): "data key: cannot decrypt: bad mac (wrong service key or
 * tampered log)", "data key: not 64 hex digits"; key is then zeroed. */
int bk_blog_unwrap_key(const char *hex, const bk_eth_key *k, uint8_t key[32], bk_err *e);

/* The service's private key: from the file path_or_empty (hex, optional
 * 0x, surrounding whitespace ignored) when it is not empty (or NULL), else
 * from the environment variable BR2K_SERVICE_KEY (the key itself), else
 * from the file named by BR2K_SERVICE_KEY_FILE. Returns BK_OK, or BK_ERR:
 * BK_E_NOTFOUND "no service key: give a key file, or set BR2K_SERVICE_KEY
 * (the key) or BR2K_SERVICE_KEY_FILE (br2k keygen makes one)", BK_E_IO,
 * BK_E_INVAL (not a key); messages name the file or variable, never the
 * key. */
int bk_service_key_load(const char *path_or_empty, bk_eth_key *k, bk_err *e);

/* The service's public key (0x04 || X || Y) from hex_or_path: 130 hex
 * digits starting 04 (optional 0x, surrounding whitespace ignored), or a
 * file holding them; when empty (or NULL), derived from the private key of
 * bk_service_key_load(""). The point is checked to be on the curve.
 * Returns BK_OK or BK_ERR (BK_E_INVAL, BK_E_IO, BK_E_NOTFOUND). */
int bk_service_pub_load(const char *hex_or_path, uint8_t pub[65], bk_err *e);

/* Format unix_ms as ISO-8601 UTC with milliseconds into out[32]:
 * "2026-11-24T13:20:01.123Z". A negative time is written as the epoch. */
void bk_blog_time(int64_t unix_ms, char out[32]);

/* Parse a time in exactly the form bk_blog_time writes into *unix_ms.
 * Returns BK_OK, or BK_ERR (BK_E_INVAL) naming the text. */
int bk_blog_time_parse(const char *s, int64_t *unix_ms, bk_err *e);

#endif
