/* suite_config.c - runs one bad-configuration case folder.
 *
 * A case folder holds `args` (one argument per line), optionally `env`
 * (NAME=VALUE lines) and `config.json` (passed as --config when present),
 * and `expected`: the one-line error the configuration must give. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"

static bk_cfg_opt opts[] = {
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL, "redis", NULL, 0, 0},
    {"lease-ms", BK_CFG_INT, "1000", 100, 10000, NULL, "lease", NULL, 0, 0},
    {"workers", BK_CFG_INT, "3", 1, 64, NULL, "workers", NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "json", NULL, 0, 0},
    {"storage", BK_CFG_ENUM, "file", 0, 0, "file|s3", "storage", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};
static bk_cfg cfg = {"suite", "summary", NULL, opts, NULL, 0, 0};

/* Read the lines of DIR/NAME into a NULL-terminated array starting at
 * slot `first`; returns the count, 0 if the file does not exist. */
static int read_lines(const char *dir, const char *name, char **out, int first, int max) {
    char path[1024], line[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    int n = first;
    if (f == NULL)
        return 0;
    while (n < max - 1 && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        out[n++] = strdup(line);
    }
    fclose(f);
    out[n] = NULL;
    return n - first;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: suite_config CASE_DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char *args[40] = {"suite"}, *env[40] = {NULL}, *want[2] = {NULL}, cfgflag[1100];
    int n = 1 + read_lines(dir, "args", args, 1, 38);
    snprintf(cfgflag, sizeof(cfgflag), "--config=%s/config.json", dir);
    FILE *f = fopen(cfgflag + 9, "r");
    if (f != NULL) {
        fclose(f);
        args[n++] = cfgflag;
        args[n] = NULL;
    }
    read_lines(dir, "env", env, 0, 40);
    if (read_lines(dir, "expected", want, 0, 2) != 1) {
        fprintf(stderr, "%s: no 'expected' line\n", dir);
        return 2;
    }
    /* a case may name its own folder in the message as DIR */
    char expected[1024], *at = strstr(want[0], "DIR");
    if (at != NULL)
        snprintf(expected, sizeof(expected), "%.*s%s%s", (int)(at - want[0]), want[0],
                 dir, at + 3);
    else
        snprintf(expected, sizeof(expected), "%s", want[0]);
    bk_err e;
    int argi;
    bk_err_clear(&e);
    int rc = bk_cfg_load(&cfg, n, args, env, &argi, &e);
    int ok = rc == BK_ERR && strcmp(e.msg, expected) == 0;
    if (!ok)
        fprintf(stderr, "%s:\n  got:  %s\n  want: %s\n", dir,
                rc == BK_OK ? "(no error)" : e.msg, expected);
    printf("%d passed, %d failed\n", ok, !ok);
    bk_cfg_release(&cfg);
    for (int i = 1; args[i] != NULL; i++)
        if (args[i] != cfgflag)
            free(args[i]);
    for (int i = 0; env[i] != NULL; i++)
        free(env[i]);
    free(want[0]);
    return ok ? 0 : 1;
}
