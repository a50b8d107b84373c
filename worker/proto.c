/* proto.c - the worker's side of the BR2K application protocol
 * (schemas/app-protocol.md): the internal interface (app.h) implemented by
 * framed messages to an application process.
 *
 * One connection per open application: a Unix stream socket, either one
 * end of a socketpair whose other end is the child's fd 3 (exec:) or a
 * connection to the operator's listening socket (unix:). Strictly one
 * request at a time, answered in order; every read of a frame has the
 * timeout (BR2K_APP_TIMEOUT_MS). Any failure (EOF, timeout, a malformed or
 * error reply) kills an exec'd child and leaves the handle dead: every
 * later call fails at once, so the worker stops with its in-flight mark
 * (I6) and recovers on its restart.
 *
 * Snapshots: the worker takes its backup snapshot in a process forked at
 * the cut (svu.c, snapshot.c); that process cannot talk to the application
 * (the parent goes on applying on the same connection). So a fork handler
 * (pthread_atfork) asks the application, in the parent and at the cut,
 * for its snapshot and digest and spools the chunks to an unlinked file
 * in the worker's state directory (O_TMPFILE); the child's `snapshot`
 * reads that file into the one buffer snapshot.c wants, its `digest`
 * returns the spooled one. The leader holds for the transfer (not only
 * for the fork). The worker's own spawn of the application (fork + exec)
 * is told apart by g_spawning.
 *
 * The external effect (External, 0x08; only to an application whose Open
 * reply said "external": true): the worker's commit thread calls it while
 * the main thread applies, so every call holds g_mu for its round trip
 * (the application answers one request at a time, in order); the ops it
 * answers are written by the engine with bk_ext_write (fenced, once per
 * offset: I2, I5). Any failure of the application there is BK_E_APP: the
 * commit is not retried, the worker restarts as for a crash.
 *
 * Republish (0x09; only to an application whose Open reply said
 * "republish": true as well): after a Redis failover lost external writes
 * (claim.c), the new leader asks for the whole external view as of the
 * application's LPI and replaces the view with it (bk_ext_replace: fenced,
 * atomic, ext:applied = that LPI). The adapter keeps the application's LPI
 * (Open, Apply, Restore) to check the reply's. */
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "br2k/app_wire.h"
#include "redis/keys.h"

#define FRAME_MAX (256u << 20) /* the largest frame either side accepts */
#define CHUNK_MAX (1u << 20)   /* restore chunks the engine sends */

struct br2k_app {
    int fd;      /* the connection, -1: closed */
    pid_t pid;   /* exec: the child, 0: none */
    pid_t owner; /* the process that opened it */
    int timeout_ms;
    int dead;      /* a call failed: no more calls */
    int external;  /* Open said "external": true: External calls */
    int republish; /* Open said "republish": true: Republish calls */
    int64_t lpi;   /* the application's LPI (Open, Apply, Restore) */
    char why[256]; /* ... why */
    char name[64]; /* the application's name (OPEN reply) */
    uint8_t *buf;  /* the last frame read (payload) */
    size_t cap, len;
    uint8_t *out; /* the frame being written */
    size_t ocap;
    /* the snapshot spooled by the fork handler */
    int spool_fd;
    int spool_ok;
    int64_t spool_lpi;
    size_t spool_len;
    char spool_digest[65];
    char spool_err[256];
    char spool_dir[4096]; /* where the spool file lives: the state's parent */
};

/* ---- the spec (one per process: the worker hosts one application) ---- */

static char g_spec[4096];
static char g_name[80] = "proto";
static br2k_app *g_open; /* the open application, for the fork handler */
static int g_forked;     /* this process is a child forked with g_open */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* one round trip at a time on the connection (main and commit threads) */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
#define LOCK() pthread_mutex_lock(&g_mu)
#define UNLOCK() pthread_mutex_unlock(&g_mu)

static const char *call_name(int t) {
    switch (t) {
    case BR2K_WIRE_OPEN:
        return "open";
    case BR2K_WIRE_APPLY:
        return "apply";
    case BR2K_WIRE_SYNC:
        return "sync";
    case BR2K_WIRE_DIGEST:
        return "digest";
    case BR2K_WIRE_SNAPSHOT:
        return "snapshot";
    case BR2K_WIRE_RESTORE:
        return "restore";
    case BR2K_WIRE_CLOSE:
        return "close";
    case BR2K_WIRE_EXTERNAL:
        return "external";
    case BR2K_WIRE_REPUBLISH:
        return "republish";
    default:
        return "?";
    }
}

/* ---- failure: the handle is dead, an exec'd child killed ---- */

static void reap(br2k_app *a, int kill_it) {
    if (a->pid <= 0 || a->owner != getpid())
        return;
    if (kill_it)
        kill(a->pid, SIGKILL);
    int st = 0;
    int64_t until = bk_mono_ms() + 3000;
    pid_t p;
    while ((p = waitpid(a->pid, &st, WNOHANG)) == 0 && bk_mono_ms() < until)
        usleep(5000);
    if (p == 0) {
        kill(a->pid, SIGKILL);
        waitpid(a->pid, &st, 0);
    }
    if (WIFSIGNALED(st))
        BK_WARN("application '%s' (process %d) ended by signal %d", a->name, (int)a->pid,
                WTERMSIG(st));
    else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        BK_WARN("application '%s' (process %d) exited with status %d", a->name,
                (int)a->pid, WEXITSTATUS(st));
    a->pid = 0;
}

/* Mark the handle dead with e's message, kill the child, return BK_ERR. */
static int fail(br2k_app *a, bk_err *e) {
    if (!a->dead) {
        a->dead = 1;
        snprintf(a->why, sizeof(a->why), "%.250s", e->msg);
    }
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    reap(a, 1);
    return BK_ERR;
}

static int check_alive(br2k_app *a, int t, bk_err *e) {
    if (g_forked && t != BR2K_WIRE_SNAPSHOT && t != BR2K_WIRE_DIGEST)
        return bk_err_set(e, BK_E_STATE,
                          "application '%s': %s is not possible in a forked process",
                          a->name, call_name(t));
    if (a->dead)
        return bk_err_set(e, BK_E_APP, "application '%s' is not running (%s)", a->name,
                          a->why);
    return BK_OK;
}

/* ---- frames ---- */

static int wait_fd(br2k_app *a, short ev, int64_t deadline, int t, bk_err *e) {
    for (;;) {
        int64_t left = deadline - bk_mono_ms();
        if (left <= 0) {
            bk_err_set(e, BK_E_TIMEOUT, "application '%s' did not answer %s within %d ms",
                       a->name, call_name(t), a->timeout_ms);
            return fail(a, e);
        }
        struct pollfd p = {a->fd, ev, 0};
        int r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (r > 0)
            return BK_OK;
        if (r < 0 && errno != EINTR) {
            bk_err_set(e, BK_E_IO, "application '%s': poll: %s", a->name,
                       strerror(errno));
            return fail(a, e);
        }
    }
}

/* How an exec'd child that closed its connection ended ("" if it runs on
 * or is not ours): it is given 200 ms to finish exiting. */
static void child_end(br2k_app *a, char *buf, size_t size) {
    buf[0] = '\0';
    if (a->pid <= 0 || a->owner != getpid())
        return;
    int st = 0;
    pid_t p = 0;
    for (int i = 0; i < 40 && (p = waitpid(a->pid, &st, WNOHANG)) == 0; i++)
        usleep(5000);
    if (p != a->pid)
        return;
    a->pid = 0;
    if (WIFEXITED(st))
        snprintf(buf, size, " (it exited with status %d)", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, size, " (it was killed by signal %d)", WTERMSIG(st));
}

static int closed_err(br2k_app *a, int t, const char *how, bk_err *e) {
    char end[64];
    child_end(a, end, sizeof(end));
    bk_err_set(e, BK_E_IO, "application '%s' closed the connection during %s%s%s%s",
               a->name, call_name(t), how ? ": " : "", how ? how : "", end);
    return fail(a, e);
}

static int send_all(br2k_app *a, const void *p, size_t n, int t, bk_err *e) {
    const uint8_t *b = p;
    int64_t deadline = bk_mono_ms() + a->timeout_ms;
    while (n > 0) {
        ssize_t k = send(a->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            b += k;
            n -= (size_t)k;
            deadline = bk_mono_ms() + a->timeout_ms; /* progress */
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(a, POLLOUT, deadline, t, e) != BK_OK)
                return BK_ERR;
            continue;
        }
        return closed_err(a, t, strerror(errno), e);
    }
    return BK_OK;
}

static int recv_all(br2k_app *a, void *p, size_t n, int64_t deadline, int t, bk_err *e) {
    uint8_t *b = p;
    while (n > 0) {
        ssize_t k = recv(a->fd, b, n, MSG_DONTWAIT);
        if (k > 0) {
            b += k;
            n -= (size_t)k;
            continue;
        }
        if (k == 0)
            return closed_err(a, t, NULL, e);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(a, POLLIN, deadline, t, e) != BK_OK)
                return BK_ERR;
            continue;
        }
        return closed_err(a, t, strerror(errno), e);
    }
    return BK_OK;
}

/* Room for a frame of `payload` bytes in a->out; its payload at a->out + 5. */
static int out_room(br2k_app *a, size_t payload, bk_err *e) {
    if (payload + 1 > FRAME_MAX)
        return bk_err_set(e, BK_E_INVAL, "a frame of %zu bytes is too large", payload);
    if (a->ocap < payload + 5) {
        size_t c = payload + 5 < 4096 ? 4096 : payload + 5;
        uint8_t *n = realloc(a->out, c);
        if (n == NULL)
            return bk_err_set(e, BK_E_NOMEM, "out of memory");
        a->out = n;
        a->ocap = c;
    }
    return BK_OK;
}

/* Write the frame in a->out whose payload (at a->out + 5) has n bytes. */
static int send_frame(br2k_app *a, int type, size_t n, int call, bk_err *e) {
    br2k_wire_put32(a->out, (uint32_t)(n + 1));
    a->out[4] = (uint8_t)type;
    return send_all(a, a->out, n + 5, call, e);
}

/* Read one frame into a->buf/a->len; *type gets its type. An ERROR frame
 * is the application's refusal of `call`: BK_E_REMOTE. */
static int recv_frame(br2k_app *a, int call, int *type, bk_err *e) {
    uint8_t h[5];
    int64_t deadline = bk_mono_ms() + a->timeout_ms;
    if (recv_all(a, h, 5, deadline, call, e) != BK_OK)
        return BK_ERR;
    uint32_t n = br2k_wire_get32(h);
    if (n < 1 || n > FRAME_MAX) {
        bk_err_set(e, BK_E_PROTO,
                   "application '%s': malformed reply to %s: frame length %" PRIu32
                   " (1 to %u expected)",
                   a->name, call_name(call), n, FRAME_MAX);
        return fail(a, e);
    }
    if (a->cap < n) {
        uint8_t *b = realloc(a->buf, n);
        if (b == NULL) {
            bk_err_set(e, BK_E_NOMEM, "out of memory");
            return fail(a, e);
        }
        a->buf = b;
        a->cap = n;
    }
    a->len = n - 1;
    if (recv_all(a, a->buf, a->len, deadline, call, e) != BK_OK)
        return BK_ERR;
    *type = h[4];
    if (*type == BR2K_WIRE_ERROR) {
        bk_err_set(e, BK_E_REMOTE, "application '%s' failed in %s: %.*s", a->name,
                   call_name(call), (int)(a->len > 300 ? 300 : a->len), (char *)a->buf);
        return fail(a, e);
    }
    return BK_OK;
}

static int malformed(br2k_app *a, int call, const char *what, bk_err *e) {
    bk_err_set(e, BK_E_PROTO, "application '%s': malformed reply to %s: %s", a->name,
               call_name(call), what);
    return fail(a, e);
}

/* Read the reply of `call`: a frame of type call | BR2K_WIRE_REPLY. */
static int recv_reply(br2k_app *a, int call, bk_err *e) {
    int t = 0;
    if (recv_frame(a, call, &t, e) != BK_OK)
        return BK_ERR;
    if (t != (call | BR2K_WIRE_REPLY)) {
        char what[64];
        snprintf(what, sizeof(what), "frame type 0x%02x, 0x%02x expected", t,
                 call | BR2K_WIRE_REPLY);
        return malformed(a, call, what, e);
    }
    return BK_OK;
}

/* A request with no payload, and its reply. */
static int call0(br2k_app *a, int call, bk_err *e) {
    if (check_alive(a, call, e) != BK_OK || out_room(a, 0, e) != BK_OK ||
        send_frame(a, call, 0, call, e) != BK_OK)
        return BK_ERR;
    return recv_reply(a, call, e);
}

/* ---- connecting ---- */

/* Split "COMMAND ARGS..." at blanks ('...' and "..." group, no escapes). */
static char **split_args(const char *s, bk_err *e) {
    size_t n = strlen(s), argc = 0;
    char **argv = calloc(n / 2 + 2, sizeof(char *));
    char *tok = malloc(n + 1);
    if (argv == NULL || tok == NULL) {
        free(argv);
        free(tok);
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t k = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                while (*p && *p != q)
                    tok[k++] = *p++;
                if (*p == q)
                    p++;
            } else {
                tok[k++] = *p++;
            }
        }
        tok[k] = '\0';
        argv[argc++] = strdup(tok);
    }
    free(tok);
    if (argc == 0) {
        free(argv);
        bk_err_set(e, BK_E_INVAL, "application spec 'exec:' names no command");
        return NULL;
    }
    return argv;
}

static void free_args(char **argv) {
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

static int g_spawning; /* our own fork: the fork handlers do nothing */

static int spawn(br2k_app *a, const char *cmd, bk_err *e) {
    char **argv = split_args(cmd, e);
    if (argv == NULL)
        return BK_ERR;
    snprintf(a->name, sizeof(a->name), "%s", argv[0]);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        free_args(argv);
        return bk_err_set(e, BK_E_IO, "cannot create the application's socket: %s",
                          strerror(errno));
    }
    pid_t parent = getpid();
    fflush(NULL);
    g_spawning = 1;
    pid_t pid = fork();
    g_spawning = 0;
    if (pid == 0) {
        /* the child: fd 3 is the protocol, stdin /dev/null, stdout to stderr;
         * it dies with the worker */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(2, 1) < 0 || dup2(sv[1], 3) < 0)
            _exit(127);
        setenv("BR2K_APP_FD", "3", 1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "br2k-worker: cannot run application '%s': %s\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    int err = errno;
    close(sv[1]);
    free_args(argv);
    if (pid < 0) {
        close(sv[0]);
        return bk_err_set(e, BK_E_IO, "cannot start application '%s': %s", cmd,
                          strerror(err));
    }
    a->fd = sv[0];
    a->pid = pid;
    return BK_OK;
}

static int connect_unix(br2k_app *a, const char *path, bk_err *e) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path))
        return bk_err_set(e, BK_E_INVAL, "socket path '%s' is too long", path);
    memcpy(sa.sun_path, path, strlen(path));
    snprintf(a->name, sizeof(a->name), "%.63s", path);
    int64_t until = bk_mono_ms() + a->timeout_ms;
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return bk_err_set(e, BK_E_IO, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            a->fd = fd;
            return BK_OK;
        }
        int err = errno;
        close(fd);
        if (bk_mono_ms() >= until || (err != ENOENT && err != ECONNREFUSED))
            return bk_err_set(e, BK_E_IO, "cannot connect to application socket '%s': %s",
                              path, strerror(err));
        usleep(100000);
    }
}

/* ---- the fork handlers: the snapshot at the cut ---- */

static int spool_snapshot(br2k_app *a, bk_err *e);

static void at_prepare(void) {
    br2k_app *a = g_open;
    if (g_spawning || g_forked || a == NULL || a->owner != getpid())
        return;
    a->spool_ok = 0;
    a->spool_err[0] = '\0';
    bk_err e;
    bk_err_clear(&e);
    if (spool_snapshot(a, &e) != BK_OK) {
        snprintf(a->spool_err, sizeof(a->spool_err), "%.250s", e.msg);
        BK_WARN("cannot take the snapshot for the backup: %s", e.msg);
    } else {
        a->spool_ok = 1;
    }
}

static void at_parent(void) {
    br2k_app *a = g_open;
    if (g_spawning || a == NULL || a->owner != getpid())
        return;
    if (a->spool_fd >= 0)
        close(a->spool_fd); /* the child has its copy */
    a->spool_fd = -1;
    a->spool_ok = 0;
}

static void at_child(void) {
    br2k_app *a = g_open;
    if (g_spawning || a == NULL)
        return;
    g_forked = 1;
    pthread_mutex_init(&g_mu, NULL); /* perhaps held by another thread at the fork */
    if (a->fd >= 0)
        close(a->fd); /* never ours to use: the parent goes on with it */
    a->fd = -1;
}

static void install_handlers(void) {
    pthread_atfork(at_prepare, at_parent, at_child);
}

/* ---- the operations ---- */

/* The application's name (Open reply): 1 to 63 of A-Z a-z 0-9 . _ - */
static int name_ok(const char *n) {
    size_t len = n != NULL ? strlen(n) : 0;
    if (len < 1 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '.' || n[i] == '_' || n[i] == '-'))
            return 0;
    return 1;
}

static int p_open(const char *dir, br2k_app **out, int64_t *lpi, bk_err *e) {
    *out = NULL;
    br2k_app *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    a->fd = -1;
    a->spool_fd = -1;
    a->owner = getpid();
    const char *t = getenv("BR2K_APP_TIMEOUT_MS");
    char *end = NULL;
    long ms = t != NULL ? strtol(t, &end, 10) : 30000;
    a->timeout_ms =
        (t != NULL && (end == t || *end != '\0' || ms < 10)) ? 30000 : (int)ms;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        bk_err_set(e, BK_E_IO, "cannot create '%s': %s", dir, strerror(errno));
        free(a);
        return BK_ERR;
    }
    char abs[4096];
    if (realpath(dir, abs) == NULL)
        snprintf(abs, sizeof(abs), "%s", dir);
    snprintf(a->spool_dir, sizeof(a->spool_dir), "%s", abs);
    char *slash = strrchr(a->spool_dir, '/');
    if (slash != NULL && slash != a->spool_dir)
        *slash = '\0'; /* the worker's state directory, on the same disk */
    int rc = strncmp(g_spec, "exec:", 5) == 0 ? spawn(a, g_spec + 5, e)
                                              : connect_unix(a, g_spec + 5, e);
    json_t *req = NULL, *rep = NULL;
    char *text = NULL;
    if (rc == BK_OK) {
        req = json_pack("{si ss ss}", "protocol", BR2K_WIRE_VERSION, "dir", abs, "engine",
                        "br2k-worker");
        text = req ? json_dumps(req, JSON_COMPACT) : NULL;
        if (text == NULL)
            rc = bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    if (rc == BK_OK &&
        (out_room(a, strlen(text), e) != BK_OK ||
         (memcpy(a->out + 5, text, strlen(text)),
          send_frame(a, BR2K_WIRE_OPEN, strlen(text), BR2K_WIRE_OPEN, e)) != BK_OK ||
         recv_reply(a, BR2K_WIRE_OPEN, e) != BK_OK))
        rc = BK_ERR;
    if (rc == BK_OK) {
        json_error_t je;
        rep = json_loadb((const char *)a->buf, a->len, 0, &je);
        json_t *jl = json_object_get(rep, "lpi");
        const char *name = json_string_value(json_object_get(rep, "name"));
        json_int_t pv = json_integer_value(json_object_get(rep, "protocol"));
        if (rep == NULL || !json_is_integer(jl) || json_integer_value(jl) < -1 ||
            !name_ok(name))
            rc = malformed(a, BR2K_WIRE_OPEN,
                           "not {\"protocol\":1,\"name\":\"[A-Za-z0-9._-]{1,63}\","
                           "\"lpi\":N}",
                           e);
        else if (pv != BR2K_WIRE_VERSION) {
            bk_err_set(e, BK_E_PROTO,
                       "application '%s' speaks protocol %" JSON_INTEGER_FORMAT
                       ", this worker %d",
                       a->name, pv, BR2K_WIRE_VERSION);
            rc = fail(a, e);
        } else if (json_object_get(rep, "external") != NULL &&
                   !json_is_boolean(json_object_get(rep, "external"))) {
            rc = malformed(a, BR2K_WIRE_OPEN, "\"external\" is not true or false", e);
        } else if (json_object_get(rep, "republish") != NULL &&
                   !json_is_boolean(json_object_get(rep, "republish"))) {
            rc = malformed(a, BR2K_WIRE_OPEN, "\"republish\" is not true or false", e);
        } else if (json_is_true(json_object_get(rep, "republish")) &&
                   !json_is_true(json_object_get(rep, "external"))) {
            rc = malformed(a, BR2K_WIRE_OPEN,
                           "\"republish\": true without \"external\": true", e);
        } else {
            a->external = json_is_true(json_object_get(rep, "external"));
            a->republish = json_is_true(json_object_get(rep, "republish"));
            *lpi = json_integer_value(jl);
            a->lpi = *lpi;
            snprintf(a->name, sizeof(a->name), "%s", name);
            snprintf(g_name, sizeof(g_name), "%s", name);
        }
    }
    json_decref(req);
    json_decref(rep);
    free(text);
    if (rc != BK_OK) {
        if (a->fd >= 0)
            close(a->fd);
        reap(a, 1);
        free(a->buf);
        free(a->out);
        free(a);
        return BK_ERR;
    }
    const char *ext = !a->external   ? ""
                      : a->republish ? ", with an external effect it can republish"
                                     : ", with an external effect";
    if (a->pid > 0)
        BK_INFO("application '%s' open over the protocol (process %d): LPI %" PRId64 "%s",
                a->name, (int)a->pid, *lpi, ext);
    else
        BK_INFO("application '%s' open over the protocol (socket '%s'): LPI %" PRId64
                "%s",
                a->name, g_spec + 5, *lpi, ext);
    g_open = a;
    *out = a;
    return BK_OK;
}

/* Apply n records: one APPLY frame, one reply. */
static int apply_call(br2k_app *a, const int64_t *offsets, const void *const *recs,
                      const size_t *lens, size_t n, char **results, int *applied,
                      bk_err *e) {
    for (size_t i = 0; i < n; i++)
        results[i] = NULL;
    if (check_alive(a, BR2K_WIRE_APPLY, e) != BK_OK)
        return BK_ERR;
    size_t total = 4;
    for (size_t i = 0; i < n; i++)
        total += 12 + lens[i];
    if (out_room(a, total, e) != BK_OK)
        return BK_ERR;
    uint8_t *p = a->out + 5;
    br2k_wire_put32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        br2k_wire_put64(p, (uint64_t)offsets[i]);
        br2k_wire_put32(p + 8, (uint32_t)lens[i]);
        if (lens[i] > 0)
            memcpy(p + 12, recs[i], lens[i]);
        p += 12 + lens[i];
    }
    if (send_frame(a, BR2K_WIRE_APPLY, total, BR2K_WIRE_APPLY, e) != BK_OK ||
        recv_reply(a, BR2K_WIRE_APPLY, e) != BK_OK)
        return BK_ERR;
    const uint8_t *q = a->buf, *end = a->buf + a->len;
    if (a->len < 4 || br2k_wire_get32(q) != n) {
        char what[96];
        snprintf(what, sizeof(what), "%" PRIu32 " results for %zu records",
                 a->len < 4 ? 0 : br2k_wire_get32(q), n);
        return malformed(a, BR2K_WIRE_APPLY, what, e);
    }
    q += 4;
    for (size_t i = 0; i < n; i++) {
        if (end - q < 5 || q[0] > 1 || (size_t)(end - q - 5) < br2k_wire_get32(q + 1)) {
            for (size_t j = 0; j < i; j++) {
                free(results[j]);
                results[j] = NULL;
            }
            char what[96];
            snprintf(what, sizeof(what), "result %zu of %zu is truncated or bad", i + 1,
                     n);
            return malformed(a, BR2K_WIRE_APPLY, what, e);
        }
        uint32_t len = br2k_wire_get32(q + 1);
        applied[i] = q[0];
        if (len > 0) {
            results[i] = malloc(len + 1);
            if (results[i] == NULL) {
                for (size_t j = 0; j < i; j++)
                    free(results[j]);
                bk_err_set(e, BK_E_NOMEM, "out of memory");
                return fail(a, e);
            }
            memcpy(results[i], q + 5, len);
            results[i][len] = '\0';
        }
        q += 5 + len;
    }
    if (n > 0)
        a->lpi = offsets[n - 1];
    return BK_OK;
}

static int p_apply_many(br2k_app *a, const int64_t *offsets, const void *const *recs,
                        const size_t *lens, size_t n, char **results, int *applied,
                        bk_err *e) {
    LOCK();
    int rc = apply_call(a, offsets, recs, lens, n, results, applied, e);
    UNLOCK();
    return rc;
}

static int p_apply(br2k_app *a, int64_t offset, const void *rec, size_t len,
                   char **result, int *applied, bk_err *e) {
    const void *r[1] = {rec};
    return p_apply_many(a, &offset, r, &len, 1, result, applied, e);
}

static int p_sync(br2k_app *a, bk_err *e) {
    LOCK();
    int rc = call0(a, BR2K_WIRE_SYNC, e);
    UNLOCK();
    return rc;
}

static int digest_call(br2k_app *a, char hex[65], bk_err *e) {
    if (call0(a, BR2K_WIRE_DIGEST, e) != BK_OK)
        return BK_ERR;
    if (a->len != 64)
        return malformed(a, BR2K_WIRE_DIGEST, "not 64 hex digits", e);
    for (size_t i = 0; i < 64; i++) {
        char c = (char)a->buf[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return malformed(a, BR2K_WIRE_DIGEST, "not 64 lowercase hex digits", e);
        hex[i] = c;
    }
    hex[64] = '\0';
    return BK_OK;
}

static int p_digest(br2k_app *a, char hex[65], bk_err *e) {
    if (g_forked) {
        if (!a->spool_ok)
            return bk_err_set(e, BK_E_STATE, "no snapshot was taken at the fork (%s)",
                              a->spool_err);
        memcpy(hex, a->spool_digest, 65);
        return BK_OK;
    }
    LOCK();
    int rc = digest_call(a, hex, e);
    UNLOCK();
    return rc;
}

/* SNAPSHOT: the header (LPI), then CHUNK frames, then END; each chunk
 * goes to sink(ctx, bytes, n). */
static int stream_snapshot(br2k_app *a, int64_t *lpi,
                           int (*sink)(void *ctx, const void *p, size_t n, bk_err *e),
                           void *ctx, bk_err *e) {
    if (call0(a, BR2K_WIRE_SNAPSHOT, e) != BK_OK)
        return BK_ERR;
    if (a->len != 8)
        return malformed(a, BR2K_WIRE_SNAPSHOT, "header is not an 8-byte LPI", e);
    *lpi = (int64_t)br2k_wire_get64(a->buf);
    for (;;) {
        int t = 0;
        if (recv_frame(a, BR2K_WIRE_SNAPSHOT, &t, e) != BK_OK)
            return BK_ERR;
        if (t == BR2K_WIRE_END)
            return BK_OK;
        if (t != BR2K_WIRE_CHUNK)
            return malformed(a, BR2K_WIRE_SNAPSHOT,
                             "a frame that is neither CHUNK nor END", e);
        if (sink(ctx, a->buf, a->len, e) != BK_OK)
            return fail(a, e);
    }
}

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static int mem_sink(void *ctx, const void *p, size_t n, bk_err *e) {
    membuf *m = ctx;
    if (m->n + n > m->cap) {
        size_t c = m->cap ? m->cap : 1 << 16;
        while (c < m->n + n)
            c *= 2;
        uint8_t *q = realloc(m->p, c);
        if (q == NULL)
            return bk_err_set(e, BK_E_NOMEM, "out of memory for a snapshot of %zu bytes",
                              m->n + n);
        m->p = q;
        m->cap = c;
    }
    memcpy(m->p + m->n, p, n);
    m->n += n;
    return BK_OK;
}

static int file_sink(void *ctx, const void *p, size_t n, bk_err *e) {
    br2k_app *a = ctx;
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = write(a->spool_fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return bk_err_set(e, BK_E_IO, "cannot spool the snapshot: %s",
                              strerror(errno));
        b += k;
        n -= (size_t)k;
        a->spool_len += (size_t)k;
    }
    return BK_OK;
}

static int spool_call(br2k_app *a, bk_err *e) {
    if (check_alive(a, BR2K_WIRE_SNAPSHOT, e) != BK_OK)
        return BK_ERR;
    if (a->spool_fd >= 0)
        close(a->spool_fd);
    a->spool_len = 0;
    a->spool_fd = open(a->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (a->spool_fd < 0) {
        FILE *f = tmpfile();
        a->spool_fd = f ? dup(fileno(f)) : -1;
        if (f)
            fclose(f);
    }
    if (a->spool_fd < 0)
        return bk_err_set(e, BK_E_IO, "cannot create a file for the snapshot: %s",
                          strerror(errno));
    if (stream_snapshot(a, &a->spool_lpi, file_sink, a, e) != BK_OK ||
        digest_call(a, a->spool_digest, e) != BK_OK)
        return BK_ERR;
    return BK_OK;
}

static int spool_snapshot(br2k_app *a, bk_err *e) {
    LOCK();
    int rc = spool_call(a, e);
    UNLOCK();
    return rc;
}

static int p_snapshot(br2k_app *a, void **buf, size_t *len, int64_t *lpi, bk_err *e) {
    *buf = NULL;
    *len = 0;
    if (!g_forked) {
        membuf m = {NULL, 0, 0};
        LOCK();
        int rc = stream_snapshot(a, lpi, mem_sink, &m, e);
        UNLOCK();
        if (rc != BK_OK) {
            free(m.p);
            return BK_ERR;
        }
        *buf = m.p ? m.p : malloc(1);
        *len = m.n;
        return *buf ? BK_OK : bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    if (!a->spool_ok)
        return bk_err_set(e, BK_E_STATE, "no snapshot was taken at the fork (%s)",
                          a->spool_err);
    uint8_t *p = malloc(a->spool_len ? a->spool_len : 1);
    if (p == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory for a snapshot of %zu bytes",
                          a->spool_len);
    size_t off = 0;
    while (off < a->spool_len) {
        ssize_t k = pread(a->spool_fd, p + off, a->spool_len - off, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            free(p);
            return bk_err_set(e, BK_E_IO, "cannot read the spooled snapshot: %s",
                              k < 0 ? strerror(errno) : "short file");
        }
        off += (size_t)k;
    }
    *buf = p;
    *len = a->spool_len;
    *lpi = a->spool_lpi;
    return BK_OK;
}

static int restore_call(br2k_app *a, const void *buf, size_t len, bk_err *e) {
    if (check_alive(a, BR2K_WIRE_RESTORE, e) != BK_OK ||
        out_room(a, CHUNK_MAX, e) != BK_OK)
        return BK_ERR;
    br2k_wire_put64(a->out + 5, (uint64_t)len);
    if (send_frame(a, BR2K_WIRE_RESTORE, 8, BR2K_WIRE_RESTORE, e) != BK_OK)
        return BK_ERR;
    const uint8_t *p = buf;
    for (size_t off = 0; off < len;) {
        size_t k = len - off < CHUNK_MAX ? len - off : CHUNK_MAX;
        memcpy(a->out + 5, p + off, k);
        if (send_frame(a, BR2K_WIRE_CHUNK, k, BR2K_WIRE_RESTORE, e) != BK_OK)
            return BK_ERR;
        off += k;
    }
    if (send_frame(a, BR2K_WIRE_END, 0, BR2K_WIRE_RESTORE, e) != BK_OK ||
        recv_reply(a, BR2K_WIRE_RESTORE, e) != BK_OK)
        return BK_ERR;
    if (a->len != 8)
        return malformed(a, BR2K_WIRE_RESTORE, "not an 8-byte LPI", e);
    a->lpi = (int64_t)br2k_wire_get64(a->buf);
    BK_INFO("application '%s' restored %zu bytes: LPI %" PRId64, a->name, len,
            (int64_t)br2k_wire_get64(a->buf));
    return BK_OK;
}

static int p_restore(br2k_app *a, const void *buf, size_t len, bk_err *e) {
    LOCK();
    int rc = restore_call(a, buf, len, e);
    UNLOCK();
    return rc;
}

/* ---- the external effect ---- */

/* Room for the ops of a reply of len bytes (every op takes at least 21
 * bytes, so the length bounds their number) and their strings. */
static int ops_alloc(size_t len, bk_ext_op **ops, char **arena, size_t *maxops,
                     bk_err *e) {
    *maxops = len / 21 + 1;
    *ops = calloc(*maxops, sizeof(**ops));
    *arena = malloc(len + 3 * *maxops + 1);
    if (*ops == NULL || *arena == NULL) {
        free(*ops);
        free(*arena);
        *ops = NULL;
        *arena = NULL;
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    return BK_OK;
}

/* nops ops (of `offset`; -1: the view of a Republish) at *qp into
 * ops[*k...] and their strings, NUL-terminated, into arena at *at:
 * BK_OK, or BK_ERR with what[] set. The encoding of an External-reply's
 * op and a Republish-reply's is the same. */
static int parse_ops(const uint8_t **qp, const uint8_t *end, uint32_t nops,
                     int64_t offset, bk_ext_op *ops, size_t maxops, size_t *k,
                     char *arena, size_t *at, char *what, size_t wsize) {
    const uint8_t *q = *qp;
    char of[48] = "of the view";
    if (offset >= 0)
        snprintf(of, sizeof(of), "of offset %" PRId64, offset);
    for (uint32_t j = 0; j < nops; j++) {
        if (end - q < 1 || *k >= maxops)
            goto bad_len;
        bk_ext_op *op = &ops[(*k)++];
        op->kind = q[0];
        q++;
        const char **dst[3] = {&op->name, &op->field, &op->value};
        for (int f = 0; f < 3; f++) {
            if (end - q < 4 || (size_t)(end - q - 4) < br2k_wire_get32(q))
                goto bad_len;
            uint32_t len = br2k_wire_get32(q);
            if (len > 0 && memchr(q + 4, 0, len) != NULL) {
                snprintf(what, wsize, "op %" PRIu32 " %s has a NUL byte in a string",
                         j + 1, of);
                return BK_ERR;
            }
            memcpy(arena + *at, q + 4, len);
            arena[*at + len] = '\0';
            *dst[f] = arena + *at; /* "" for a field the kind does not use */
            *at += len + 1;
            q += 4 + len;
        }
        if (end - q < 8)
            goto bad_len;
        op->by = (int64_t)br2k_wire_get64(q);
        q += 8;
        if (op->kind < BR2K_WIRE_EXT_SET || op->kind > BR2K_WIRE_EXT_INCRBY ||
            !bk_ext_name_ok(op->name)) {
            snprintf(what, wsize,
                     "op %" PRIu32 " %s is bad (kind %d, key '%.40s': 1 to %d of A-Z a-z "
                     "0-9 . _ - :, not 'applied')",
                     j + 1, of, op->kind, op->name, BK_EXT_NAME_MAX);
            return BK_ERR;
        }
    }
    *qp = q;
    return BK_OK;
bad_len:
    snprintf(what, wsize, "the answers are truncated");
    return BK_ERR;
}

/* Parse an External reply (a->buf) for n records into recs[] and ops
 * (strings copied into *arena): BK_OK, or fail(). */
static int parse_external(br2k_app *a, const int64_t *offsets, size_t n, bk_ext_rec *recs,
                          bk_ext_op **ops_out, char **arena_out, bk_err *e) {
    const uint8_t *q = a->buf, *end = a->buf + a->len;
    char what[160];
    *ops_out = NULL;
    *arena_out = NULL;
    if (a->len < 4 || br2k_wire_get32(q) != n) {
        snprintf(what, sizeof(what), "%" PRIu32 " answers for %zu records",
                 a->len < 4 ? 0 : br2k_wire_get32(q), n);
        return malformed(a, BR2K_WIRE_EXTERNAL, what, e);
    }
    bk_ext_op *ops = NULL;
    char *arena = NULL;
    size_t maxops = 0, k = 0, at = 0;
    if (ops_alloc(a->len, &ops, &arena, &maxops, e) != BK_OK)
        return fail(a, e);
    q += 4;
    for (size_t i = 0; i < n; i++) {
        if (end - q < 4) {
            snprintf(what, sizeof(what), "the answers are truncated");
            goto bad;
        }
        uint32_t nops = br2k_wire_get32(q);
        q += 4;
        recs[i] = (bk_ext_rec){offsets[i], ops + k, nops};
        if (parse_ops(&q, end, nops, offsets[i], ops, maxops, &k, arena, &at, what,
                      sizeof(what)) != BK_OK)
            goto bad;
    }
    if (q != end) {
        snprintf(what, sizeof(what), "%zu bytes after the last answer",
                 (size_t)(end - q));
        goto bad;
    }
    *ops_out = ops;
    *arena_out = arena;
    return BK_OK;
bad:
    free(ops);
    free(arena);
    return malformed(a, BR2K_WIRE_EXTERNAL, what, e);
}

static int external_call(br2k_app *a, int64_t epoch, const int64_t *offsets,
                         const char *const *results, size_t n, bk_ext_rec *recs,
                         bk_ext_op **ops, char **arena, bk_err *e) {
    if (check_alive(a, BR2K_WIRE_EXTERNAL, e) != BK_OK)
        return BK_ERR;
    size_t total = 12;
    for (size_t i = 0; i < n; i++)
        total += 12 + (results[i] ? strlen(results[i]) : 0);
    if (out_room(a, total, e) != BK_OK)
        return BK_ERR;
    uint8_t *p = a->out + 5;
    br2k_wire_put64(p, (uint64_t)epoch);
    br2k_wire_put32(p + 8, (uint32_t)n);
    p += 12;
    for (size_t i = 0; i < n; i++) {
        size_t len = results[i] ? strlen(results[i]) : 0;
        br2k_wire_put64(p, (uint64_t)offsets[i]);
        br2k_wire_put32(p + 8, (uint32_t)len);
        if (len > 0)
            memcpy(p + 12, results[i], len);
        p += 12 + len;
    }
    if (send_frame(a, BR2K_WIRE_EXTERNAL, total, BR2K_WIRE_EXTERNAL, e) != BK_OK ||
        recv_reply(a, BR2K_WIRE_EXTERNAL, e) != BK_OK)
        return BK_ERR;
    return parse_external(a, offsets, n, recs, ops, arena, e);
}

/* The external effects of n records (the commit thread, while main may
 * apply): one External round trip, then the ops it answered, fenced and
 * once per offset, in one script. Nothing for an application that asked
 * for no external effect. */
static int p_external_many(br2k_app *a, bk_redis *r, const char *svc, int64_t epoch,
                           const int64_t *offsets, const char *const *results, size_t n,
                           bk_err *e) {
    if (!a->external || n == 0)
        return BK_OK;
    bk_ext_rec *recs = calloc(n, sizeof(*recs));
    if (recs == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    bk_ext_op *ops = NULL;
    char *arena = NULL;
    LOCK();
    int rc = external_call(a, epoch, offsets, results, n, recs, &ops, &arena, e);
    UNLOCK();
    if (rc != BK_OK)
        e->code = BK_E_APP; /* the application failed: no retry helps */
    else
        rc = bk_ext_write(r, svc, epoch, recs, n, NULL, e);
    free(recs);
    free(ops);
    free(arena);
    return rc;
}

/* The whole external view as of the application's LPI (Republish), put in
 * place of the one in Redis (bk_ext_replace: fenced with `epoch`, atomic,
 * ext:applied = that LPI). The main thread only (nothing applies
 * meanwhile). BK_E_UNSUPPORTED for an application whose Open did not say
 * "republish": true. */
static int p_republish(br2k_app *a, bk_redis *r, const char *svc, int64_t epoch,
                       bk_err *e) {
    if (!a->republish)
        return bk_err_set(e, BK_E_UNSUPPORTED,
                          "application '%s' cannot republish its external view (its Open "
                          "did not say \"republish\": true)",
                          a->name);
    bk_ext_op *ops = NULL;
    char *arena = NULL, what[160];
    size_t maxops = 0, k = 0, at = 0;
    int64_t lpi = -1;
    LOCK();
    int rc = check_alive(a, BR2K_WIRE_REPUBLISH, e);
    if (rc == BK_OK &&
        (out_room(a, 8, e) != BK_OK ||
         (br2k_wire_put64(a->out + 5, (uint64_t)epoch),
          send_frame(a, BR2K_WIRE_REPUBLISH, 8, BR2K_WIRE_REPUBLISH, e)) != BK_OK ||
         recv_reply(a, BR2K_WIRE_REPUBLISH, e) != BK_OK))
        rc = BK_ERR;
    if (rc == BK_OK && a->len < 12) {
        rc = malformed(a, BR2K_WIRE_REPUBLISH, "shorter than an LPI and a count", e);
    } else if (rc == BK_OK) {
        const uint8_t *q = a->buf + 12, *end = a->buf + a->len;
        lpi = (int64_t)br2k_wire_get64(a->buf);
        uint32_t nops = br2k_wire_get32(a->buf + 8);
        if (lpi != a->lpi) {
            snprintf(what, sizeof(what),
                     "the view of LPI %" PRId64 ", the application's LPI is %" PRId64,
                     lpi, a->lpi);
            rc = malformed(a, BR2K_WIRE_REPUBLISH, what, e);
        } else if (ops_alloc(a->len, &ops, &arena, &maxops, e) != BK_OK) {
            rc = fail(a, e);
        } else if (parse_ops(&q, end, nops, -1, ops, maxops, &k, arena, &at, what,
                             sizeof(what)) != BK_OK) {
            rc = malformed(a, BR2K_WIRE_REPUBLISH, what, e);
        } else if (q != end) {
            snprintf(what, sizeof(what), "%zu bytes after the last op",
                     (size_t)(end - q));
            rc = malformed(a, BR2K_WIRE_REPUBLISH, what, e);
        }
    }
    UNLOCK();
    if (rc != BK_OK)
        e->code = BK_E_APP; /* as External: the application failed */
    else
        rc = bk_ext_replace(r, svc, epoch, lpi, ops, k, e);
    free(ops);
    free(arena);
    return rc;
}

static void p_close(br2k_app *a) {
    if (a == NULL)
        return;
    if (g_open == a)
        g_open = NULL;
    if (!g_forked && !a->dead && a->fd >= 0) {
        bk_err e;
        bk_err_clear(&e);
        int keep = a->timeout_ms;
        a->timeout_ms = keep < 5000 ? keep : 5000;
        LOCK();
        if (call0(a, BR2K_WIRE_CLOSE, &e) != BK_OK)
            BK_WARN("%s", e.msg);
        UNLOCK();
    }
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    reap(a, 0); /* CLOSE answered: it exits by itself; else killed after 3 s */
    if (a->spool_fd >= 0)
        close(a->spool_fd);
    free(a->buf);
    free(a->out);
    free(a);
}

static br2k_app_ops g_ops = {
    .name = g_name,
    .open = p_open,
    .apply = p_apply,
    .sync = p_sync,
    .snapshot = p_snapshot,
    .restore = p_restore,
    .digest = p_digest,
    .close = p_close,
    .external_many = p_external_many,
    .republish = p_republish,
};

bk_apply_many_fn bk_app_apply_many(const br2k_app_ops *ops) {
    return ops == &g_ops ? p_apply_many : NULL;
}

int bk_proto_app_ops(const char *spec, const br2k_app_ops **ops, bk_err *e) {
    *ops = NULL;
    if (spec == NULL ||
        (strncmp(spec, "exec:", 5) != 0 && strncmp(spec, "unix:", 5) != 0))
        return bk_err_set(e, BK_E_INVAL,
                          "application spec '%s' is neither exec:COMMAND nor unix:PATH",
                          spec ? spec : "");
    const char *rest = spec + 5;
    while (*rest == ' ')
        rest++;
    if (*rest == '\0')
        return bk_err_set(e, BK_E_INVAL, "application spec '%s' names no %s", spec,
                          spec[0] == 'e' ? "command" : "socket path");
    if (strlen(spec) >= sizeof(g_spec))
        return bk_err_set(e, BK_E_INVAL, "application spec is too long");
    if (g_spec[0] != '\0' && strcmp(g_spec, spec) != 0)
        return bk_err_set(e, BK_E_STATE,
                          "one protocol application per process: '%s' already, not '%s'",
                          g_spec, spec);
    snprintf(g_spec, sizeof(g_spec), "%s", spec);
    /* the spec names the application until it names itself (Open) */
    snprintf(g_name, sizeof(g_name), "%.79s", spec);
    pthread_once(&g_once, install_handlers);
    *ops = &g_ops;
    return BK_OK;
}
