/* noop_plugin.h - the no-op application: counts records and chains their
 * SHA-256 (its digest); results carry the request id when the record has
 * one. It rejects nothing and has no external effect. Used by the worker
 * tests and the benchmark. A plug-in (br2k/app.h) like any other. */
#ifndef BK_NOOP_PLUGIN_H
#define BK_NOOP_PLUGIN_H

#include "base/err.h"
#include "br2k/app.h"

/* The plug-in: the worker finds it by the name "noop". */
const br2k_app_plugin *br2k_noop_entry(void);

#endif
