/* top.c - `br2k top`, a live view of the service.
 *
 * It reads Redis only, through the status object of ops.c (ops.h): top
 * shows exactly what `br2k status --json` prints (and `top --once --json`
 * prints it), redrawn every --interval ms with plain ANSI (clear screen,
 * home cursor), no curses. On a terminal, stdin is put in non-canonical
 * mode (no echo, one key at a time) so that q quits at once; the terminal
 * is restored on exit and on SIGINT, SIGTERM and SIGHUP. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "top.h"

#include "base/clock.h"
#include "base/config.h"
#include "base/err.h"
#include "ops.h"
#include "redis/keys.h"
#include "redis/redis.h"

/* Fields of the metrics hash (schemas/redis-keys.md) shown here. */
#define METRIC_RPS "rps"
#define METRIC_CAUGHT_UP "caught_up"
#define METRIC_JOINING "joining"
#define METRIC_JOIN_REMAINING "join_remaining"
#define METRIC_JOIN_ETA_S "join_eta_s"

#define CLEAR_HOME "\033[H\033[2J"
#define CURSOR_HIDE "\033[?25l"
#define CURSOR_SHOW "\033[?25h"

/* A JSON value as short text: integers, strings, yes/no, "-" for null. */
static const char *text(const json_t *v, char *buf, size_t size) {
    if (json_is_integer(v))
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_string(v))
        snprintf(buf, size, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
    else
        snprintf(buf, size, "-");
    return buf;
}

/* An integer field of an object, `def` when absent or not an integer. */
static json_int_t int_of(const json_t *o, const char *field, json_int_t def) {
    const json_t *v = json_object_get(o, field);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

/* ---- the frame ---- */

/* Catching up: "caught up", "joining, N to go[, eta Ss]" or "behind"; or
 * "stale" when the row's metrics may be old (ops.h). */
static void state_text(const json_t *m, char *buf, size_t size) {
    const json_t *metrics = json_object_get(m, "metrics");
    if (json_is_true(json_object_get(m, "stale"))) {
        snprintf(buf, size, "stale");
        return;
    }
    json_int_t joining = int_of(metrics, METRIC_JOINING, -1);
    json_int_t caught = int_of(metrics, METRIC_CAUGHT_UP, -1);
    if (joining == 1) {
        json_int_t rem = int_of(metrics, METRIC_JOIN_REMAINING, -1);
        json_int_t eta = int_of(metrics, METRIC_JOIN_ETA_S, -1);
        if (rem < 0)
            snprintf(buf, size, "joining");
        else if (eta < 0)
            snprintf(buf, size, "joining, %" JSON_INTEGER_FORMAT " to go", rem);
        else
            snprintf(buf, size,
                     "joining, %" JSON_INTEGER_FORMAT " to go, eta %" JSON_INTEGER_FORMAT
                     "s",
                     rem, eta);
    } else if (caught == 1) {
        snprintf(buf, size, "caught up");
    } else if (caught == 0) {
        snprintf(buf, size, "behind");
    } else {
        snprintf(buf, size, "-");
    }
}

/* Last heartbeat's age ("1.2s ago"), "dead" when alive-<id> is gone. */
static void heartbeat_text(const json_t *m, char *buf, size_t size) {
    const json_t *age = json_object_get(m, "heartbeat_age_ms");
    if (!json_is_true(json_object_get(m, "alive")) || !json_is_integer(age)) {
        snprintf(buf, size, "dead");
        return;
    }
    int64_t a = (int64_t)json_integer_value(age);
    snprintf(buf, size, "%" PRId64 ".%" PRId64 "s ago", a / 1000, (a % 1000) / 100);
}

/* One frame from the status object `st` (NULL: `err` says why). */
static void render(FILE *out, const cli_globals *g, const json_t *st, const char *err,
                   int interval_ms, int live) {
    int64_t now = bk_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    char clock[32] = "";
    if (localtime_r(&secs, &tm) != NULL)
        strftime(clock, sizeof(clock), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(out, "br2k top - service %s - redis %s - %s", g->service, g->redis, clock);
    if (live)
        fprintf(out, " - every %d ms, q quits", interval_ms);
    fputs("\n\n", out);
    if (st == NULL) {
        fprintf(out, "cannot read Redis: %s\n", err);
        return;
    }
    char a[64], b[64], c[64];
    const json_t *lj = json_object_get(st, "leader");
    if (json_is_object(lj))
        fprintf(out, "leader  %s (epoch %s)",
                json_string_value(json_object_get(lj, "id")),
                text(json_object_get(lj, "epoch"), a, sizeof(a)));
    else
        fprintf(out, "leader  none");
    fprintf(out, "   epoch %s   SSI %s   SV %s\n",
            text(json_object_get(st, "epoch"), a, sizeof(a)),
            text(json_object_get(st, "ssi"), b, sizeof(b)),
            text(json_object_get(st, "sv"), c, sizeof(c)));
    const json_t *phase = json_object_get(st, "backup");
    fprintf(out, "backup  %s", json_is_null(phase) ? "none" : text(phase, a, sizeof(a)));
    const json_t *bl = json_object_get(st, "backup_last");
    if (json_is_object(bl))
        fprintf(out, "   last backup: version %s, cut %s\n",
                text(json_object_get(bl, "version"), a, sizeof(a)),
                text(json_object_get(bl, "cut"), b, sizeof(b)));
    else
        fprintf(out, "   last backup: none\n");
    const json_t *members = json_object_get(st, "members");
    fprintf(out, "\n%-16s %-9s %10s %8s %5s %9s  %-28s %s\n", "ID", "ROLE", "LPI", "LAG",
            "SSV", "REC/S", "STATE", "HEARTBEAT");
    size_t i;
    const json_t *m;
    json_array_foreach(members, i, m) {
        const json_t *metrics = json_object_get(m, "metrics");
        char role[32], lpi[32], lag[32], ssv[32], rps[32], state[64], hb[32];
        fprintf(out, "%-16s %-9s %10s %8s %5s %9s  %-28s %s\n",
                json_string_value(json_object_get(m, "id")),
                text(json_object_get(m, "role"), role, sizeof(role)),
                text(json_object_get(m, "lpi"), lpi, sizeof(lpi)),
                text(json_object_get(m, "lag"), lag, sizeof(lag)),
                text(json_object_get(m, "ssv"), ssv, sizeof(ssv)),
                text(json_object_get(metrics, METRIC_RPS), rps, sizeof(rps)),
                (state_text(m, state, sizeof(state)), state),
                (heartbeat_text(m, hb, sizeof(hb)), hb));
    }
    if (json_array_size(members) == 0)
        fprintf(out, "(no members)\n");
}

/* ---- the terminal ---- */

static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t tty_raw = 0;
static struct termios tty_saved;

static void tty_restore(void) {
    if (tty_raw) {
        (void)tcsetattr(STDIN_FILENO, TCSANOW, &tty_saved);
        tty_raw = 0;
    }
}

/* Async-signal-safe: restore the terminal at once, the loop then stops. */
static void on_signal(int sig) {
    tty_restore();
    stop_signal = sig;
}

static void tty_setup(void) {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &tty_saved) != 0)
        return;
    struct termios raw = tty_saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* ISIG stays: Ctrl-C is SIGINT */
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
        tty_raw = 1;
}

/* Wait up to ms for a key; 1 when the user asked to quit (q, Q, Ctrl-C
 * read as a character) or a signal came. *in_open goes to 0 at end of
 * input (stdin is then no longer watched). */
static int wait_key(int ms, int *in_open) {
    int64_t end = bk_mono_ms() + ms;
    for (;;) {
        if (stop_signal)
            return 1;
        int64_t left = end - bk_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
        int n = poll(&p, *in_open ? 1 : 0, (int)left);
        if (n < 0 && errno != EINTR)
            return 0;
        if (n <= 0)
            continue;
        char buf[64];
        ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));
        if (got <= 0) {
            if (got == 0 || (errno != EINTR && errno != EAGAIN))
                *in_open = 0;
            continue;
        }
        for (ssize_t i = 0; i < got; i++)
            if (buf[i] == 'q' || buf[i] == 'Q' || buf[i] == 3)
                return 1;
    }
}

/* ---- br2k top ---- */

static bk_cfg_opt top_opts[] = {
    {"interval", BK_CFG_INT, "1000", 100, 3600000, NULL, "refresh every N milliseconds",
     NULL, 0, 0},
    {"once", BK_CFG_BOOL, "false", 0, 0, NULL, "print one frame and exit", NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL,
     "with --once: print the JSON of `br2k status --json` instead", NULL, 0, 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, NULL, 0, 0}};

static const char top_epilog[] =
    "Reads Redis only. Shows the leader, epoch, SSI, SV, the backup phase ('none'\n"
    "when no backup runs) and the last backup (version, cut), then per member: role,\n"
    "LPI, lag (SSI - LPI), SSV, records/s, caught up / joining (records to go), or\n"
    "'stale' when its metrics may be old (see br2k status --help), and the age of its\n"
    "last heartbeat ('dead' once its heartbeat key alive-<id> has expired). The role\n"
    "comes from the lease and the heartbeat, as in br2k status.\n"
    "Quit with q or Ctrl-C. Exit 0; 2 on bad usage, or with --once when Redis\n"
    "cannot be read (the live view shows the error and keeps trying).";

static bk_cfg top_cfg = {"br2k top",
                         "A live view of the service, refreshed like top(1).",
                         "[--interval MS] [--once [--json]]",
                         top_opts,
                         top_epilog,
                         0,
                         0};

static int top_once(const cli_globals *g, int json) {
    bk_redis *r = ops_connect(g, "top");
    if (r == NULL)
        return 2;
    bk_err e;
    bk_err_clear(&e);
    json_t *st = ops_status_json(r, g->service, &e);
    bk_redis_free(r);
    if (st == NULL) {
        fprintf(stderr, "br2k top: %s\n", e.msg);
        return 2;
    }
    if (json) {
        json_dumpf(st, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        render(stdout, g, st, NULL, 0, 0);
    }
    json_decref(st);
    return 0;
}

int cmd_top(const cli_globals *g, int argc, char **argv) {
    int rc;
    top_opts[2].def = g->json ? "true" : "false";
    if (cli_parse(&top_cfg, g, argc, argv, &rc)) {
        bk_cfg_release(&top_cfg);
        return rc;
    }
    int interval = (int)bk_cfg_int(&top_cfg, "interval");
    int once = bk_cfg_bool(&top_cfg, "once"), json = bk_cfg_bool(&top_cfg, "json");
    bk_cfg_release(&top_cfg);
    if (json && !once) {
        fprintf(stderr, "br2k top: --json needs --once (see br2k top --help)\n");
        return 2;
    }
    bk_err e;
    bk_err_clear(&e);
    if (bk_keys_check_service(g->service, &e) != BK_OK) {
        fprintf(stderr, "br2k top: %s\n", e.msg);
        return 2;
    }
    if (once)
        return top_once(g, json);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns at once */
    sigemptyset(&sa.sa_mask);
    struct sigaction old[3];
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &old[i]);
    tty_setup();
    fputs(CURSOR_HIDE, stdout);

    bk_redis *r = NULL;
    char *frame = NULL;
    size_t frame_len = 0;
    int in_open = 1;
    do {
        bk_err_clear(&e);
        if (r == NULL)
            r = bk_redis_new(g->redis, g->timeout_ms, &e);
        json_t *st = r != NULL ? ops_status_json(r, g->service, &e) : NULL;
        /* build the frame first, then write it at once: no flicker */
        FILE *mem = open_memstream(&frame, &frame_len);
        if (mem == NULL)
            break;
        fputs(CLEAR_HOME, mem);
        render(mem, g, st, e.msg, interval, 1);
        fclose(mem);
        fwrite(frame, 1, frame_len, stdout);
        fflush(stdout);
        free(frame);
        frame = NULL;
        json_decref(st);
    } while (!wait_key(interval, &in_open));

    bk_redis_free(r);
    tty_restore();
    fputs(CURSOR_SHOW, stdout);
    fflush(stdout);
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &old[i], NULL);
    return 0;
}
