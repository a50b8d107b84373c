/* log.h - one line per event on stderr, plain or JSON lines.
 *
 * Plain:  2026-11-24T10:00:00.123Z br2k-worker[123] info: message
 * JSON:   {"ts":"...","prog":"br2k-worker","pid":123,"level":"info","msg":"..."}
 * The macros check the level before the arguments are formatted. */
#ifndef BK_LOG_H
#define BK_LOG_H

enum { BK_LOG_DEBUG = 0, BK_LOG_INFO, BK_LOG_WARN, BK_LOG_ERROR, BK_LOG_OFF };

extern int bk_log_level;

/* Set the program name, the minimum level and the format (json != 0). */
void bk_log_init(const char *prog, int level, int json);

/* "debug", "info", "warn", "error", "off" -> level; -1 if unknown. */
int bk_log_parse_level(const char *s);

void bk_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bk_log(level, ...)                                                               \
    do {                                                                                 \
        if ((level) >= bk_log_level)                                                     \
            bk_log_write((level), __VA_ARGS__);                                          \
    } while (0)
#define BK_DEBUG(...) bk_log(BK_LOG_DEBUG, __VA_ARGS__)
#define BK_INFO(...) bk_log(BK_LOG_INFO, __VA_ARGS__)
#define BK_WARN(...) bk_log(BK_LOG_WARN, __VA_ARGS__)
#define BK_ERROR(...) bk_log(BK_LOG_ERROR, __VA_ARGS__)

#endif
