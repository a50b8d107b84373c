/* infodid_plugin.h - InfoDID, the reference application (after the paper's
 * pilot): its plug-in entry and what it offers tests and operators.
 *
 * Users register, update and revoke identity records: a DID with personal
 * attributes (a flat object of strings), each request signed by the DID
 * controller's secp256k1 key as an EIP-191 personal message over the
 * canonical form of common/chain/request.h. INFODID.md (next to this
 * file) describes the operations, the reasons of rejection, the state
 * files and the external index in Redis. A plug-in like any other: built
 * against the public interface (worker/include/br2k/app.h) and common/
 * only; its functions below take the state the plug-in's `open` made. */
#ifndef BK_INFODID_PLUGIN_H
#define BK_INFODID_PLUGIN_H

#include <stdint.h>

#include "base/err.h"
#include "br2k/app.h"

#define BK_INFODID_DID_MAX 128    /* bytes of a DID */
#define BK_INFODID_ATTRS_MAX 32   /* attributes per DID */
#define BK_INFODID_KEY_MAX 64     /* bytes of an attribute name */
#define BK_INFODID_VALUE_MAX 1024 /* bytes of an attribute value */

/* Default size of the journal beyond which `sync` writes a checkpoint;
 * BR2K_INFODID_CHECKPOINT_BYTES overrides it (read by open). */
#define BK_INFODID_CHECKPOINT_BYTES (64L * 1024 * 1024)
/* Request ids are kept for this many records after their first (a repeat
 * within it gets the first result again; a retry after it, `expired`):
 * INFODID.md, "Repeats". BR2K_INFODID_ID_WINDOW overrides it (read by
 * open; 0: keep every request id). It decides results, so every replica
 * of a service must have the same value. */
#define BK_INFODID_ID_WINDOW 1000000L

/* The plug-in (br2k/app.h): the worker finds it by the name "infodid". */
const br2k_app_plugin *br2k_infodid_entry(void);

/* The operations, NULL-terminated: "register", "update", "revoke". */
extern const char *const bk_infodid_op_names[];

/* Write a checkpoint of the whole state now and start an empty journal
 * (what `sync` does when the journal grows past its threshold). For tests
 * and operators; BK_ERR with `e` on an I/O failure. */
int bk_infodid_checkpoint(br2k_app *app, bk_err *e);

/* Number of active (registered, not revoked) DIDs. */
int64_t bk_infodid_active(const br2k_app *app);

/* What bk_infodid_each shows of the state (valid during the callback). */
typedef struct bk_infodid_did {
    const char *did;
    const uint8_t *controller; /* 20 bytes */
    int revoked;
    int64_t created_off, updated_off;
    uint32_t nattrs;
    const char *names[BK_INFODID_ATTRS_MAX], *values[BK_INFODID_ATTRS_MAX]; /* by name */
} bk_infodid_did;

typedef struct bk_infodid_reqid {
    const char *id;     /* "<client>:<seq>" */
    const char *result; /* the JSON of its first result */
} bk_infodid_reqid;

/* Call did_cb for every DID, then id_cb for every request id, each in key
 * order (either callback may be NULL); a callback returning non-zero
 * stops the walk. Returns BK_OK, or BK_ERR with `e` (out of memory, or a
 * callback stopped it). For tests and operators: it reads the state as
 * the checker of tests/chaos compares it, without knowing its encoding. */
int bk_infodid_each(const br2k_app *app, int (*did_cb)(const bk_infodid_did *, void *),
                    int (*id_cb)(const bk_infodid_reqid *, void *), void *opaque,
                    bk_err *e);

#endif
