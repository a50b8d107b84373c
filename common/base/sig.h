/* sig.h - signal handling: handlers only set flags; loops poll them. */
#ifndef BK_SIG_H
#define BK_SIG_H

#include <signal.h>

/* Set by SIGINT and SIGTERM; the main loop polls it and shuts down. */
extern volatile sig_atomic_t bk_sig_stop;
/* The last signal that set bk_sig_stop (for the log). */
extern volatile sig_atomic_t bk_sig_last;

/* Install the handlers for SIGINT and SIGTERM, and ignore SIGPIPE. */
void bk_sig_install(void);

#endif
