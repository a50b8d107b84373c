/* snapshot.h - the leader's snapshot at the cut offset (snapshot.c). */
#ifndef BK_WORKER_SNAPSHOT_H
#define BK_WORKER_SNAPSHOT_H
#include <jansson.h>
#include <stdint.h>

#include "app.h"

typedef struct bk_wsnap_args {
    const br2k_app_ops *ops;
    br2k_app *app;
    const char *redis, *svc, *id;
    const char *type;          /* "<app>-snapshot" */
    int64_t epoch, cut;        /* the leader's token and C (= its LPI) */
    const char *record_digest; /* of the record at C (worker.pos) */
} bk_wsnap_args;

/* In the child forked by the leader at C: read backup-req, snapshot the
 * state, seal it (seal.h), store it as v<version>-state-<sha256>, wrap the
 * data key to the service public key (ECIES of its 64 hex digits), and
 * write backup-report (fenced; JSON with object, sha256, size, plain_size,
 * state_digest, record_digest, data_key, or "error"). When backup-req says
 * "external": true, the external state too, from the application's view
 * (`view`, app.h), sealed and stored as v<version>-external-<sha256>, its
 * log entry under "external" in the report. Returns the child's exit
 * status (0: reported). */
int bk_wsnap_child(const bk_wsnap_args *a);

/* The external state's "keys" (backuplog.h) that a whole view's ops leave
 * under `prefix`, in order: what ext_replace would leave in Redis (every
 * key under ext: deleted first), as backupd reads it (type string or hash;
 * a key with a name or value that is not UTF-8 all hex). BK_E_INVAL on an
 * op Redis would refuse (a hash op on a string, INCRBY of a non-integer, a
 * bad name). Pure: the conversion the snapshot process runs on the
 * application's view (snapshot.c: view_cb, called by the view). */
int bk_wsnap_view_keys(const char *prefix, const bk_ext_op *ops, size_t n, json_t **keys,
                       bk_err *e);

#endif
