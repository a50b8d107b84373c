/* br2k.h - libbr2k, the BR2K client library.
 *
 * A client appends requests to the service's ordered log (the Kafka topic
 * br2k.<svc>.requests, one partition) and, optionally, waits for the
 * leader's result, which the worker publishes in Redis: field <seq> of the
 * hash br2k:{<svc>}:results:<client>:<seq / 1024> (br2k_result_key).
 *
 * A request is the JSON text of schemas/request.schema.json: the library
 * reads its request id (fields "client" and "seq") to build the Kafka
 * record: key = client id, value = the JSON text as given, headers
 * br2k-request-id = "<client>:<seq>" and br2k-schema = "1".
 *
 * Errors follow hiredis: a function that can fail returns BR2K_OK or
 * BR2K_ERR and fills the caller's `br2k_error` (may be NULL) with a code
 * and a one-line lowercase message that names the failing thing first.
 *
 * Threads: a br2k_client is used by one thread at a time; callbacks run
 * inside br2k_submit(), br2k_poll(), br2k_flush(), br2k_submit_wait() and
 * br2k_free(), on the caller's thread, and must not call any of them on
 * the same client (record what happened; act after the call returns). */
#ifndef BR2K_H
#define BR2K_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BR2K_OK 0
#define BR2K_ERR -1

/* Error codes (the same numbers as BR2K's internal codes). */
enum br2k_errcode {
    BR2K_E_NONE = 0,
    BR2K_E_INVAL = 1,   /* a bad setting or request */
    BR2K_E_IO = 2,      /* a connection or file failed */
    BR2K_E_NOMEM = 3,   /* allocation failed */
    BR2K_E_PROTO = 4,   /* a peer answered something we cannot parse */
    BR2K_E_REMOTE = 5,  /* a peer answered with an error (Kafka, Redis) */
    BR2K_E_TIMEOUT = 6, /* a deadline passed */
    BR2K_E_STATE = 9    /* not allowed now (closed client, ...) */
};

typedef struct br2k_error {
    int code;      /* BR2K_E_*; 0 when there is no error */
    char msg[256]; /* one line, lowercase, no full stop */
} br2k_error;

/* Connection settings. Every field may be NULL or 0 for its default. */
typedef struct br2k_settings {
    const char *kafka;       /* bootstrap servers HOST:PORT,...; required */
    const char *redis;       /* HOST:PORT; default 127.0.0.1:6379 (results) */
    const char *service;     /* service name; default "default" */
    const char *kafka_props; /* extra librdkafka properties "k=v,k=v" */
    int timeout_ms;          /* Redis connect and command timeout; default 3000 */
    int result_timeout_ms;   /* default wait for a result; default 30000 */
    /* Retries, as the paper's clients do (0: one attempt, as before). With
     * attempt_ms > 0, a request that waits for its result and fails (its
     * append failed, or no result within attempt_ms, or its results cannot
     * be read) is sent again, the same request id and bytes (the service
     * applies a request id once: I5), after a back-off (backoff_ms, doubled
     * up to 2 s), until its result wait (result_timeout_ms, or
     * br2k_submit_wait's timeout) is over. With eth_rpc and registry too,
     * a failure also makes the client read the registry's access
     * information again, and when it names another log or results
     * location, reconnect there and send every waiting request again. */
    int attempt_ms;
    int backoff_ms;       /* first pause before sending again; default 100 */
    const char *eth_rpc;  /* Ethereum JSON-RPC URLs (comma-separated) */
    const char *registry; /* the registry contract's address (0x...) */
} br2k_settings;

/* What the retries did (br2k_stats). */
typedef struct br2k_stats {
    long attempts;      /* appends made (first ones and retries) */
    long retries;       /* requests sent again */
    long rediscoveries; /* reads of the registry after a failure */
    long reconnects;    /* ... that moved the client to another location */
} br2k_stats;

typedef struct br2k_client br2k_client;

/* What a callback is told. */
typedef enum br2k_event_type {
    BR2K_EV_APPENDED = 1, /* the record is durably in the log at `offset` */
    BR2K_EV_RESULT = 2,   /* the leader's result arrived (BR2K_WANT_RESULT) */
    BR2K_EV_FAILED = 3    /* the append failed, or the result wait timed out */
} br2k_event_type;

typedef struct br2k_event {
    br2k_event_type type;
    const char *request_id;  /* "<client>:<seq>" */
    int64_t offset;          /* log offset of this append; -1 if not appended */
    const char *result;      /* BR2K_EV_RESULT: the result JSON text */
    int accepted;            /* BR2K_EV_RESULT: 1 status "ok", 0 rejected */
    const br2k_error *error; /* BR2K_EV_FAILED: why */
    double latency_ms;       /* from br2k_submit() to this event */
    void *opaque;            /* as given to br2k_submit() */
    int attempts;            /* appends made for it so far (retries: attempt_ms) */
} br2k_event;

/* Called from br2k_poll() and friends. Every pointer in `ev` is valid only
 * during the call. With BR2K_WANT_RESULT a request gets BR2K_EV_APPENDED
 * (once, for its first append that reached the log, even when retries
 * append it again) then exactly one of BR2K_EV_RESULT or BR2K_EV_FAILED (the result can
 * arrive before the append is confirmed; APPENDED then comes first anyway
 * unless the append failed). Without it, exactly one of APPENDED or
 * FAILED. */
typedef void (*br2k_event_cb)(const br2k_event *ev);

/* Flags of br2k_submit(). */
#define BR2K_WANT_RESULT 1 /* also wait for the leader's result */

/* Where br2k_discover puts the strings it found (the settings point here). */
typedef struct br2k_discovery {
    char kafka[1024];
    char redis[256];
    char service[201];
} br2k_discovery;

/* Find the service from its registry contract alone, as the paper's clients
 * do: read the access information at `registry` (0x address) from the first
 * answering URL of `eth_rpc` (comma-separated) and set s->kafka, s->service
 * and (when the registry names a redis:// results location) s->redis, all
 * pointing into *d. Other fields of *s are left as they are. Returns
 * BR2K_OK, or BR2K_ERR with *err naming what failed. */
int br2k_discover(const char *eth_rpc, const char *registry, br2k_discovery *d,
                  br2k_settings *s, br2k_error *err);
/* Connect. `s` NULL means the BR2K_* environment: BR2K_KAFKA, BR2K_REDIS,
 * BR2K_SERVICE, BR2K_KAFKA_PROPS. Creates the idempotent Kafka producer
 * (acks=all) at once; Redis is connected at the first result wait, so a
 * submit-only client does not need it (its address is checked here).
 * Returns NULL on error (a setting that is missing or invalid is named in
 * the message); the caller frees the client with br2k_free(). */
br2k_client *br2k_connect(const br2k_settings *s, br2k_error *err);

/* Append one request asynchronously: `value` (`len` bytes, normally the
 * JSON text of a request) with request id `client_id`:`seq`. A NULL
 * `client_id` means: read the id from the JSON's "client" and "seq"
 * fields (BR2K_ERR if it is not JSON or has no valid id). The value is sent
 * as given, even if it is not valid JSON: the service answers a malformed
 * request with a rejected result. Returns BR2K_ERR at once when the
 * producer refuses the record; otherwise BR2K_OK, and `cb` (may be NULL)
 * is later called from br2k_poll() as described above. Blocks, serving
 * callbacks, while the producer's queue is full. */
int br2k_submit(br2k_client *c, const char *client_id, uint64_t seq, const void *value,
                size_t len, int flags, br2k_event_cb cb, void *opaque, br2k_error *err);

/* Serve callbacks: deliveries and results, waiting up to `timeout_ms` for
 * the first one. Returns the number of events served; 0 when none came in
 * time; BR2K_ERR when none came and Redis could not be read meanwhile (the
 * requests keep waiting: a later poll retries, and their deadlines still
 * run). Not to be called from a callback. */
int br2k_poll(br2k_client *c, int timeout_ms, br2k_error *err);

/* Requests submitted whose final event has not been served yet. */
size_t br2k_pending(const br2k_client *c);

/* The client's retry counters so far. */
void br2k_get_stats(const br2k_client *c, br2k_stats *st);

/* Poll until nothing is pending or `timeout_ms` passes (BR2K_ERR with
 * BR2K_E_TIMEOUT). */
int br2k_flush(br2k_client *c, int timeout_ms, br2k_error *err);

/* The result of br2k_submit_wait(). */
typedef struct br2k_result {
    int64_t offset; /* where this append landed */
    int accepted;   /* 1 accepted, 0 rejected */
    char *json;     /* the result JSON text (malloc'd) */
} br2k_result;

/* Append a request (as br2k_submit() with BR2K_WANT_RESULT) and wait up
 * to `timeout_ms` (0: the settings' default) for the leader's result.
 * Submitting the same request id again returns the first result (the
 * worker applies a request id once). Returns BR2K_OK with `res` filled
 * (free with br2k_result_release), or BR2K_ERR (BR2K_E_TIMEOUT when no
 * result came in time). Other pending requests are served meanwhile. */
int br2k_submit_wait(br2k_client *c, const char *client_id, uint64_t seq,
                     const void *value, size_t len, int timeout_ms, br2k_result *res,
                     br2k_error *err);

/* Free what a result holds (safe on a zeroed or released struct). */
void br2k_result_release(br2k_result *res);

/* The Redis key of a request's result: the hash
 * "br2k:{<svc>}:results:<client>:<seq / 1024>", whose field "<seq>"
 * (decimal) holds the result (schemas/redis-keys.md). Returns BR2K_ERR if
 * it does not fit in `size` or the client id holds '{' or '}'. */
int br2k_result_key(const br2k_client *c, const char *client_id, uint64_t seq, char *buf,
                    size_t size);

/* The service name and the topic the client writes to. */
const char *br2k_service(const br2k_client *c);
const char *br2k_topic(const br2k_client *c);

/* ---- signed requests (schemas/request.schema.json, schemas/README.md) ----
 * All a client needs to make a request the service accepts, from this
 * header alone. Strings returned in *out are malloc'd: free() them. */

/* The canonical form of a request (what its signer signs): the envelope
 * {v, id:{client, seq}, op, payload, ts, signer} with keys sorted and no
 * spaces. `payload_json` is a JSON object (integers only); `signer` is the
 * signing address "0x" + 40 hex digits (NULL: none). */
int br2k_request_canonical(const char *client, uint64_t seq, const char *op,
                           const char *payload_json, uint64_t ts_ms, const char *signer,
                           char **out, br2k_error *err);

/* A signed request, ready for br2k_submit or a gateway: the canonical form
 * with "signer" the key's address, signed as an EIP-191 personal message
 * (what `cast wallet sign` and wallets' personal_sign produce) by the
 * secp256k1 private key `key_hex` (64 hex digits, "0x" optional). */
int br2k_request_sign(const char *key_hex, const char *client, uint64_t seq,
                      const char *op, const char *payload_json, uint64_t ts_ms,
                      char **out, br2k_error *err);

/* Check a request's signature the way the service does: it parses, its
 * signature recovers an address, and that address is its "signer". Fills
 * address[43] ("0x..." checksummed) with the recovered one when it
 * recovers. BR2K_ERR (BR2K_E_INVAL) names what is wrong. */
int br2k_request_verify(const char *request_json, size_t len, char address[43],
                        br2k_error *err);

/* Flush appends for up to 10 s (their callbacks still run), then free;
 * requests still waiting for a result are dropped without a callback.
 * NULL is fine. */
void br2k_free(br2k_client *c);

#ifdef __cplusplus
}
#endif

#endif
