/* config.h - configuration as a table (after redis' config.c).
 *
 * Each option has a name, a type, bounds and a default. A value comes from,
 * in order of precedence: the command line (`--name VALUE` or `--name=VALUE`;
 * a bool also as `--name`), the environment (`BR2K_NAME`, upper case, '-' as
 * '_'), the JSON file given by `--config FILE` or `BR2K_CONFIG` (keys are the
 * option names), then the default. Every value is validated; an error names
 * the key, the value, where it came from and what was expected.
 *
 * Parsing stops at the first argument that is not an option (or after
 * `--`); its index is returned so that a CLI can read subcommands. */
#ifndef BK_CONFIG_H
#define BK_CONFIG_H

#include <stdio.h>

#include "base/err.h"

typedef enum bk_cfg_type { BK_CFG_STR, BK_CFG_INT, BK_CFG_BOOL, BK_CFG_ENUM } bk_cfg_type;

typedef enum bk_cfg_src {
    BK_SRC_DEFAULT = 0,
    BK_SRC_FILE,
    BK_SRC_ENV,
    BK_SRC_FLAG
} bk_cfg_src;

typedef struct bk_cfg_opt {
    const char *name; /* "lease-ms": --lease-ms, BR2K_LEASE_MS, "lease-ms" */
    bk_cfg_type type;
    const char *def;     /* default as text; NULL: no default (empty string) */
    long long min, max;  /* BK_CFG_INT bounds, inclusive */
    const char *choices; /* BK_CFG_ENUM: "a|b|c" */
    const char *help;
    /* filled by bk_cfg_load */
    char *sval;
    long long ival;
    int src;
} bk_cfg_opt;

typedef struct bk_cfg {
    const char *prog;    /* "br2k-worker" */
    const char *summary; /* one paragraph for --help */
    const char *usage;   /* "[OPTIONS]" or "COMMAND [ARGS]" */
    bk_cfg_opt *opts;    /* ends with an entry whose name is NULL */
    const char *epilog;  /* more text for --help, may be NULL */
    int want_help, want_version;
} bk_cfg;

/* Options every BR2K program has; put at the end of a table. */
#define BK_CFG_COMMON_OPTS                                                               \
    {"config", BK_CFG_STR, "", 0, 0, NULL, "JSON file with option values", NULL, 0, 0},  \
        {"log-level",                                                                    \
         BK_CFG_ENUM,                                                                    \
         "info",                                                                         \
         0,                                                                              \
         0,                                                                              \
         "debug|info|warn|error|off",                                                    \
         "minimum level of log lines on stderr",                                         \
         NULL,                                                                           \
         0,                                                                              \
         0},                                                                             \
        {"log-json", BK_CFG_BOOL, "false", 0, 0, NULL, "write log lines as JSON",        \
         NULL,       0,           0},                                                    \
    {                                                                                    \
        NULL, 0, NULL, 0, 0, NULL, NULL, NULL, 0, 0                                      \
    }

/* Parse argv[1..] up to the first non-option, then the environment `envp`
 * (NULL: the process environment), then the config file. Recognises --help
 * and --version (sets want_help / want_version, no error). On success
 * returns BK_OK and stores the index of the first non-option in *argi.
 * Also sets up logging from log-level and log-json. */
int bk_cfg_load(bk_cfg *cfg, int argc, char **argv, char **envp, int *argi, bk_err *e);

/* Free the values (the table itself is the caller's). */
void bk_cfg_release(bk_cfg *cfg);

/* Look a value up; the name must be in the table (abort otherwise). */
const char *bk_cfg_str(const bk_cfg *cfg, const char *name);
long long bk_cfg_int(const bk_cfg *cfg, const char *name);
int bk_cfg_bool(const bk_cfg *cfg, const char *name);

/* Where a value came from (BK_SRC_DEFAULT, _FILE, _ENV or _FLAG). */
int bk_cfg_source(const bk_cfg *cfg, const char *name);

/* Print usage, the summary and the options with defaults and env names. */
void bk_cfg_help(const bk_cfg *cfg, FILE *out);

/* Print "PROG VERSION". */
void bk_cfg_version(const bk_cfg *cfg, FILE *out);

/* Standard main() prologue: load; on --help/--version print and return 1
 * with *rc = 0; on error print the one-line error and return 1 with
 * *rc = 2; otherwise return 0. */
int bk_cfg_main(bk_cfg *cfg, int argc, char **argv, int *argi, int *rc);

/* Pure validation of one textual value against an option, used by all
 * sources. `where` names the source in the message ("--x", "BR2K_X"). */
int bk_cfg_set_value(bk_cfg_opt *o, const char *value, int src, const char *where,
                     bk_err *e);

#endif
