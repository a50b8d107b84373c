/* log.c - see log.h. */
#include "base/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int bk_log_level = BK_LOG_INFO;
static int log_json;
static char log_prog[64] = "br2k";

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void bk_log_init(const char *prog, int level, int json) {
    if (prog != NULL)
        snprintf(log_prog, sizeof(log_prog), "%s", prog);
    bk_log_level = level;
    log_json = json;
}

int bk_log_parse_level(const char *s) {
    for (int i = 0; i <= BK_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return BK_LOG_WARN;
    return -1;
}

static void format_time(char *buf, size_t size) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

void bk_log_write(int level, const char *fmt, ...) {
    if (level < 0 || level >= BK_LOG_OFF)
        return;
    char msg[1024], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* one line per event */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    format_time(ts, sizeof(ts));
    if (!log_json) {
        fprintf(stderr, "%s %s[%d] %s: %s\n", ts, log_prog, (int)getpid(),
                level_names[level], msg);
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s}", "ts", ts, "prog", log_prog, "pid",
                          (int)getpid(), "level", level_names[level], "msg", msg);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (line != NULL)
        fprintf(stderr, "%s\n", line);
    free(line);
    json_decref(o);
}
