/* main.c - br2k-worker. Its behaviour is built by the issues that follow the
 * foundation; for now it answers --help and --version, validates its
 * configuration, and says plainly that it does nothing else yet. */
#include <stdio.h>

#include "config.h"

static bk_cfg_opt opts[] = {
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL, "Redis address HOST:PORT", NULL,
     0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {
    "br2k-worker",
    "One BR2K worker per node: reads the ordered request log from its LPI + 1,\napplies "
    "every request to its local state, and leads (fenced Redis lease) or\nfollows SSI.",
    "[OPTIONS]",
    opts,
    NULL,
    0,
    0};

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    fprintf(stderr,
            "br2k-worker: not implemented in this version (only --help and --version)\n");
    bk_cfg_release(&cfg);
    return 2;
}
