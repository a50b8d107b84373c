/* main.c - br2k-backupd. Its behaviour is built by the issues that follow the
 * foundation; for now it answers --help and --version, validates its
 * configuration, and says plainly that it does nothing else yet. */
#include <stdio.h>

#include "config.h"

static bk_cfg_opt opts[] = {
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL, "Redis address HOST:PORT", NULL,
     0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {"br2k-backupd",
                     "The BR2K backup daemon: runs state-version-up (the paper's Table "
                     "1) with the\nleader's fencing token, stores encrypted snapshots "
                     "off-chain and logs each\nbackup in the Ethereum registry.",
                     "[OPTIONS]",
                     opts,
                     NULL,
                     0,
                     0};

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    fprintf(
        stderr,
        "br2k-backupd: not implemented in this version (only --help and --version)\n");
    bk_cfg_release(&cfg);
    return 2;
}
