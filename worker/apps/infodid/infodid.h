/* infodid.h - InfoDID as the runtime and the tests see it: the plug-in's
 * own declarations (infodid_plugin.h) and its operations adapted to the
 * runtime's interface, bk_infodid_ops (worker/appload.h; the state pointer
 * they pass around is InfoDID's, so bk_infodid_each and the others take
 * it). InfoDID's own files never include this header. */
#ifndef BK_INFODID_H
#define BK_INFODID_H

#include "appload.h"
#include "infodid_plugin.h"

#endif
