/* noop.h - the no-op application: counts records and chains their
 * SHA-256 (its digest); results carry the request id when the record has
 * one. It rejects nothing and has no external effect. Used by the worker
 * tests and the benchmark. */
#ifndef BK_NOOP_H
#define BK_NOOP_H

#include "app.h"

extern const br2k_app_ops bk_noop_ops;

#endif
