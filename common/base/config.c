/* config.c - see config.h. */
#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#ifndef BR2K_VERSION
#define BR2K_VERSION "0.0.0"
#endif

extern char **environ;

static bk_cfg_opt *find_opt(const bk_cfg *cfg, const char *name, size_t len) {
    for (bk_cfg_opt *o = cfg->opts; o->name != NULL; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static bk_cfg_opt *must_find(const bk_cfg *cfg, const char *name) {
    bk_cfg_opt *o = find_opt(cfg, name, strlen(name));
    if (o == NULL) {
        fprintf(stderr, "%s: internal error: no option '%s'\n", cfg->prog, name);
        abort();
    }
    return o;
}

static void env_name(const char *name, char *buf, size_t size) {
    size_t i = 0;
    int n = snprintf(buf, size, "BR2K_");
    for (i = (size_t)n; *name && i + 1 < size; name++, i++)
        buf[i] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    buf[i] = '\0';
}

static int parse_bool(const char *v, int *out) {
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int in_choices(const char *choices, const char *v) {
    size_t len = strlen(v);
    const char *p = choices;
    while (p != NULL && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, v, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

int bk_cfg_set_value(bk_cfg_opt *o, const char *value, int src, const char *where,
                     bk_err *e) {
    long long iv = 0;
    switch (o->type) {
    case BK_CFG_INT: {
        char *end = NULL;
        errno = 0;
        iv = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno != 0 || iv < o->min || iv > o->max)
            return bk_err_set(e, BK_E_INVAL,
                              "invalid value '%s' for '%s' (from %s): expected an "
                              "integer from %lld to %lld",
                              value, o->name, where, o->min, o->max);
        break;
    }
    case BK_CFG_BOOL: {
        int b;
        if (parse_bool(value, &b) != 0)
            return bk_err_set(e, BK_E_INVAL,
                              "invalid value '%s' for '%s' (from %s): expected true or "
                              "false",
                              value, o->name, where);
        iv = b;
        break;
    }
    case BK_CFG_ENUM:
        if (!in_choices(o->choices, value))
            return bk_err_set(e, BK_E_INVAL,
                              "invalid value '%s' for '%s' (from %s): expected one of %s",
                              value, o->name, where, o->choices);
        break;
    case BK_CFG_STR:
        if (strchr(value, '\n') != NULL)
            return bk_err_set(e, BK_E_INVAL,
                              "invalid value for '%s' (from %s): expected a single line",
                              o->name, where);
        break;
    }
    char *copy = strdup(value);
    if (copy == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    free(o->sval);
    o->sval = copy;
    o->ival = iv;
    o->src = src;
    return BK_OK;
}

static int load_flags(bk_cfg *cfg, int argc, char **argv, int *argi, bk_err *e) {
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            break;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 4 && strncmp(name, "help", 4) == 0) {
            cfg->want_help = 1;
            continue;
        }
        if (len == 7 && strncmp(name, "version", 7) == 0) {
            cfg->want_version = 1;
            continue;
        }
        bk_cfg_opt *o = find_opt(cfg, name, len);
        if (o == NULL)
            return bk_err_set(e, BK_E_INVAL, "unknown option '--%.*s' (see --help)",
                              (int)len, name);
        const char *value;
        if (eq != NULL)
            value = eq + 1;
        else if (o->type == BK_CFG_BOOL)
            value = "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return bk_err_set(e, BK_E_INVAL, "option '--%s' needs a value", o->name);
        char where[80];
        snprintf(where, sizeof(where), "--%s", o->name);
        if (bk_cfg_set_value(o, value, BK_SRC_FLAG, where, e) != BK_OK)
            return BK_ERR;
    }
    *argi = i;
    return BK_OK;
}

static const char *env_get(char **envp, const char *name) {
    size_t len = strlen(name);
    for (char **p = envp; p && *p; p++)
        if (strncmp(*p, name, len) == 0 && (*p)[len] == '=')
            return *p + len + 1;
    return NULL;
}

static int load_env(bk_cfg *cfg, char **envp, bk_err *e) {
    for (bk_cfg_opt *o = cfg->opts; o->name != NULL; o++) {
        if (o->src > BK_SRC_ENV)
            continue;
        char name[96];
        env_name(o->name, name, sizeof(name));
        const char *v = env_get(envp, name);
        if (v != NULL && bk_cfg_set_value(o, v, BK_SRC_ENV, name, e) != BK_OK)
            return BK_ERR;
    }
    return BK_OK;
}

static int load_file(bk_cfg *cfg, const char *path, bk_err *e) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (root == NULL)
        return bk_err_set(e, BK_E_INVAL, "cannot read config file '%s': %s (line %d)",
                          path, je.text, je.line);
    if (!json_is_object(root)) {
        json_decref(root);
        return bk_err_set(e, BK_E_INVAL, "config file '%s': expected a JSON object",
                          path);
    }
    const char *key;
    json_t *val;
    int rc = BK_OK;
    json_object_foreach(root, key, val) {
        bk_cfg_opt *o = find_opt(cfg, key, strlen(key));
        if (o == NULL || strcmp(key, "config") == 0) {
            rc = bk_err_set(e, BK_E_INVAL, "unknown key '%s' in config file '%s'", key,
                            path);
            break;
        }
        if (o->src > BK_SRC_FILE)
            continue;
        char buf[64], where[300];
        const char *text = NULL;
        if (json_is_string(val))
            text = json_string_value(val);
        else if (json_is_integer(val))
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(val)),
                text = buf;
        else if (json_is_boolean(val))
            text = json_is_true(val) ? "true" : "false";
        snprintf(where, sizeof(where), "config file '%s'", path);
        if (text == NULL) {
            rc = bk_err_set(e, BK_E_INVAL,
                            "invalid value for '%s' (from %s): expected a string, an "
                            "integer or a boolean",
                            key, where);
            break;
        }
        if (bk_cfg_set_value(o, text, BK_SRC_FILE, where, e) != BK_OK) {
            rc = BK_ERR;
            break;
        }
    }
    json_decref(root);
    return rc;
}

int bk_cfg_load(bk_cfg *cfg, int argc, char **argv, char **envp, int *argi, bk_err *e) {
    if (envp == NULL)
        envp = environ;
    for (bk_cfg_opt *o = cfg->opts; o->name != NULL; o++) {
        o->src = BK_SRC_DEFAULT;
        free(o->sval);
        o->sval = NULL;
    }
    if (load_flags(cfg, argc, argv, argi, e) != BK_OK)
        return BK_ERR;
    if (load_env(cfg, envp, e) != BK_OK)
        return BK_ERR;
    bk_cfg_opt *conf = find_opt(cfg, "config", 6);
    if (conf != NULL && conf->sval != NULL && conf->sval[0] != '\0' &&
        load_file(cfg, conf->sval, e) != BK_OK)
        return BK_ERR;
    for (bk_cfg_opt *o = cfg->opts; o->name != NULL; o++) {
        if (o->sval != NULL)
            continue;
        char where[96];
        snprintf(where, sizeof(where), "the default of '%s'", o->name);
        if (bk_cfg_set_value(o, o->def ? o->def : "", BK_SRC_DEFAULT, where, e) != BK_OK)
            return BK_ERR;
    }
    bk_cfg_opt *lvl = find_opt(cfg, "log-level", 9), *js = find_opt(cfg, "log-json", 8);
    bk_log_init(cfg->prog, lvl ? bk_log_parse_level(lvl->sval) : BK_LOG_INFO,
                js ? (int)js->ival : 0);
    return BK_OK;
}

void bk_cfg_release(bk_cfg *cfg) {
    for (bk_cfg_opt *o = cfg->opts; o->name != NULL; o++) {
        free(o->sval);
        o->sval = NULL;
    }
}

const char *bk_cfg_str(const bk_cfg *cfg, const char *name) {
    bk_cfg_opt *o = must_find(cfg, name);
    return o->sval ? o->sval : "";
}

long long bk_cfg_int(const bk_cfg *cfg, const char *name) {
    return must_find(cfg, name)->ival;
}

int bk_cfg_bool(const bk_cfg *cfg, const char *name) {
    return (int)must_find(cfg, name)->ival;
}

int bk_cfg_source(const bk_cfg *cfg, const char *name) {
    return must_find(cfg, name)->src;
}

void bk_cfg_help(const bk_cfg *cfg, FILE *out) {
    fprintf(out,
            "Usage: %s %s\n\n%s\n\nOptions (flag, then environment, then --config file, "
            "then default):\n",
            cfg->prog, cfg->usage ? cfg->usage : "[OPTIONS]", cfg->summary);
    for (bk_cfg_opt *o = cfg->opts; o->name != NULL; o++) {
        char env[96], arg[128];
        env_name(o->name, env, sizeof(env));
        const char *meta = o->type == BK_CFG_INT    ? " N"
                           : o->type == BK_CFG_BOOL ? ""
                           : o->type == BK_CFG_ENUM ? " CHOICE"
                                                    : " VALUE";
        snprintf(arg, sizeof(arg), "--%s%s", o->name, meta);
        fprintf(out, "  %-26s %s\n", arg, o->help);
        fprintf(out, "  %-26s env %s", "", env);
        if (o->type == BK_CFG_INT)
            fprintf(out, "; %lld..%lld", o->min, o->max);
        if (o->type == BK_CFG_ENUM)
            fprintf(out, "; one of %s", o->choices);
        if (o->def != NULL && o->def[0] != '\0')
            fprintf(out, "; default %s", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-26s %s\n  %-26s %s\n", "--help", "show this help and exit",
            "--version", "show the version and exit");
    if (cfg->epilog != NULL)
        fprintf(out, "\n%s\n", cfg->epilog);
}

void bk_cfg_version(const bk_cfg *cfg, FILE *out) {
    fprintf(out, "%s %s\n", cfg->prog, BR2K_VERSION);
}

int bk_cfg_main(bk_cfg *cfg, int argc, char **argv, int *argi, int *rc) {
    bk_err e;
    bk_err_clear(&e);
    if (bk_cfg_load(cfg, argc, argv, NULL, argi, &e) != BK_OK) {
        fprintf(stderr, "%s: %s\n", cfg->prog, e.msg);
        *rc = 2;
        return 1;
    }
    if (cfg->want_help) {
        bk_cfg_help(cfg, stdout);
        *rc = 0;
        return 1;
    }
    if (cfg->want_version) {
        bk_cfg_version(cfg, stdout);
        *rc = 0;
        return 1;
    }
    return 0;
}
