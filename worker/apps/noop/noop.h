/* noop.h - the no-op application as the runtime and the tests see it: its
 * plug-in (noop_plugin.h) and its operations adapted to the runtime's
 * interface, bk_noop_ops (worker/appload.h). noop.c never includes this
 * header. */
#ifndef BK_NOOP_H
#define BK_NOOP_H

#include "appload.h"
#include "noop_plugin.h"

#endif
