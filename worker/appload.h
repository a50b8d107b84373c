/* appload.h - which application a worker hosts (`--app SPEC`), and the
 * adapter from the public plug-in interface (worker/include/br2k/app.h,
 * what applications are written against) to the runtime's internal one
 * (app.h, what the runtime calls).
 *
 * SPEC is one of:
 *   infodid, noop      the built-in plug-ins (worker/apps/), linked in;
 *   a path to a .so    a plug-in loaded with dlopen (a path with a '/',
 *                      or a name ending in ".so", taken from the current
 *                      directory); it exports br2k_app_entry;
 *   exec:CMD, unix:P   an application in any language over the
 *                      application protocol (proto.h).
 *
 * The adapter passes the application's state pointer through unchanged
 * (the runtime's br2k_app is the application's own struct br2k_app),
 * converts errors, and gives `external` a br2k_host whose ext_write is
 * bk_ext_write (common/redis/keys.h) with the leader's fencing token. */
#ifndef BK_APPLOAD_H
#define BK_APPLOAD_H

#include "app.h"
#include "base/err.h"
#include "br2k/app.h"

/* Resolve SPEC into *ops (static, valid until exit). BK_ERR with `e`, one
 * line naming what is wrong: an unknown name, a file that is missing or
 * not a shared library, no br2k_app_entry symbol, a wrong ABI version, a
 * missing operation. */
int bk_app_resolve(const char *spec, const br2k_app_ops **ops, bk_err *e);

/* Check a plug-in table (ABI version, name, the required operations) and
 * adapt it; `origin` names it in errors (a path, "built-in"). At most a
 * few tables per process (8, the built-ins included). */
int bk_app_adapt(const br2k_app_plugin *p, const char *origin, const br2k_app_ops **ops,
                 bk_err *e);

/* The plug-in table behind ops resolved or adapted here (the state
 * pointer is the same), or NULL (an application over the protocol). For
 * br2k-replay, which runs the external effect against a host of its own. */
const br2k_app_plugin *bk_app_plugin(const br2k_app_ops *ops);

/* The built-in plug-ins, adapted: what `--app infodid` and `--app noop`
 * resolve to, and what the tests call. */
extern const br2k_app_ops bk_infodid_ops;
extern const br2k_app_ops bk_noop_ops;

/* Their entry functions (worker/apps/infodid/, worker/apps/noop/). */
const br2k_app_plugin *br2k_infodid_entry(void);
const br2k_app_plugin *br2k_noop_entry(void);

/* The forms of SPEC, for --help. */
extern const char bk_app_spec_help[];

#endif
