/* proto.h - applications in any language, over the BR2K application
 * protocol (schemas/app-protocol.md): a child process started by the
 * worker (`--app exec:COMMAND ARGS...`, framed messages on its stdin and
 * stdout) or one the operator runs (`--app unix:PATH`, a Unix stream
 * socket). The adapter implements the internal interface (app.h) with one
 * round trip per call, records sent in batches (apply_many), snapshots and
 * restores streamed in chunks. */
#ifndef BK_PROTO_H
#define BK_PROTO_H

#include "app.h"
#include "base/err.h"

/* The operations for `spec` ("exec:COMMAND ARGS..." or "unix:PATH"). They
 * are static and shared; each `open` starts (exec:) or connects to (unix:)
 * its own application. Returns BK_OK with *ops set, or BK_ERR with *e (a
 * spec of neither form, an empty command or path). The per-call timeout
 * comes from BR2K_APP_TIMEOUT_MS (default 30000). */
int bk_proto_app_ops(const char *spec, const br2k_app_ops **ops, bk_err *e);

/* A batched apply: the n records recs[i] (lens[i] bytes) at offsets[i],
 * contiguous and increasing, applied in one call exactly as n calls of
 * `apply` would, setting results[i] (malloc'd JSON, or NULL) and
 * applied[i]. On BK_ERR no results[] are left allocated. */
typedef int (*bk_apply_many_fn)(br2k_app *app, const int64_t *offsets,
                                const void *const *recs, const size_t *lens, size_t n,
                                char **results, int *applied, bk_err *e);

/* The batched apply of `ops` (one round trip per batch) when `ops` are the
 * protocol's, NULL for any other application (the worker then calls
 * `apply` per record). It stands for an optional `apply_many` member of
 * br2k_app_ops, which may replace it once every application's table uses
 * designated initializers. */
bk_apply_many_fn bk_app_apply_many(const br2k_app_ops *ops);

#endif
