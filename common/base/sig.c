/* sig.c - see sig.h. */
#include "base/sig.h"

#include <string.h>

volatile sig_atomic_t bk_sig_stop = 0;
volatile sig_atomic_t bk_sig_last = 0;

static void on_stop(int sig) {
    bk_sig_last = sig;
    bk_sig_stop = 1;
}

void bk_sig_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}
