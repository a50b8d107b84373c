/* backup_stall.c - br2k-bench-changes: the monitor of bench/backup_stall.sh.
 *
 * Subscribes to the service's `changes` channel (schemas/redis-keys.md) and
 * prints one line per message, flushed at once:
 *
 *     <unix time in ms, 3 decimals> <message>
 *
 * where the message is the new SSI in decimal after a leader commit, or a
 * backup phase announcement ("backup hold 3 -1", "backup-clear", ...). The
 * time is taken with CLOCK_REALTIME as soon as hiredis hands over the
 * message, so that the script can compare it with `date +%s%N`. Prints
 * "<time> subscribed" once the subscription is confirmed. Runs until
 * SIGTERM/SIGINT or until the connection drops (exit 2 then).
 *
 * With --lpi ID[,ID...] a second connection also reads the workers' LPI
 * mirrors (`LPI-<id>`, written after each durable batch, at most every 50
 * ms while busy) every 5 ms and prints "<time> lpi <id> <value>" when one
 * changes: how long each follower stands still during a backup.
 *
 * Usage: br2k-bench-changes [--redis HOST:PORT] [--service NAME] [--lpi IDS]
 *        (defaults: BR2K_REDIS or 127.0.0.1:6379, BR2K_SERVICE or default) */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct poller {
    char host[256];
    int port;
    char keys[16][300];
    const char *ids[16];
    char last[16][32];
    int n;
} poller;

static void *poll_lpi(void *arg) {
    poller *p = arg;
    redisContext *c = redisConnect(p->host, p->port);
    if (c == NULL || c->err) {
        fprintf(stderr, "br2k-bench-changes: --lpi: cannot connect: %s\n",
                c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    while (!stop) {
        for (int i = 0; i < p->n; i++)
            redisAppendCommand(c, "GET %s", p->keys[i]);
        for (int i = 0; i < p->n; i++) {
            void *reply = NULL;
            if (redisGetReply(c, &reply) != REDIS_OK) {
                redisFree(c);
                return NULL;
            }
            double t = now_ms();
            redisReply *r = reply;
            if (r->type == REDIS_REPLY_STRING && r->len < sizeof(p->last[i]) &&
                (strlen(p->last[i]) != r->len ||
                 memcmp(p->last[i], r->str, r->len) != 0)) {
                memcpy(p->last[i], r->str, r->len);
                p->last[i][r->len] = '\0';
                pthread_mutex_lock(&out_mu);
                printf("%.3f lpi %s %s\n", t, p->ids[i], p->last[i]);
                fflush(stdout);
                pthread_mutex_unlock(&out_mu);
            }
            freeReplyObject(reply);
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    redisFree(c);
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f,
            "Usage: br2k-bench-changes [--redis HOST:PORT] [--service NAME] [--lpi IDS]\n"
            "Print '<unix ms> <message>' for every message of the channel\n"
            "br2k:{NAME}:changes (defaults: BR2K_REDIS or 127.0.0.1:6379,\n"
            "BR2K_SERVICE or default); with --lpi ID[,ID...] (at most 16) also\n"
            "'<unix ms> lpi <id> <value>' when a worker's LPI mirror changes (read\n"
            "every 5 ms).\n");
}

int main(int argc, char **argv) {
    const char *redis = getenv("BR2K_REDIS"), *service = getenv("BR2K_SERVICE");
    char *lpi_ids = NULL;
    if (redis == NULL || redis[0] == '\0')
        redis = "127.0.0.1:6379";
    if (service == NULL || service[0] == '\0')
        service = "default";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            redis = argv[++i];
        } else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc) {
            service = argv[++i];
        } else if (strcmp(argv[i], "--lpi") == 0 && i + 1 < argc) {
            lpi_ids = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    char host[256];
    const char *colon = strrchr(redis, ':');
    int port = colon != NULL ? atoi(colon + 1) : 6379;
    size_t hl = colon != NULL ? (size_t)(colon - redis) : strlen(redis);
    if (hl == 0 || hl >= sizeof(host) || port <= 0 || port > 65535) {
        fprintf(stderr, "br2k-bench-changes: invalid Redis address '%s'\n", redis);
        return 2;
    }
    memcpy(host, redis, hl);
    host[hl] = '\0';

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read returns */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    static poller pl;
    pthread_t pt;
    int polling = 0;
    if (lpi_ids != NULL) {
        snprintf(pl.host, sizeof(pl.host), "%s", host);
        pl.port = port;
        for (char *save = NULL, *id = strtok_r(lpi_ids, ",", &save); id != NULL;
             id = strtok_r(NULL, ",", &save)) {
            if (pl.n == 16 || strlen(id) > 64) {
                fprintf(stderr, "br2k-bench-changes: --lpi: at most 16 ids of at most 64 "
                                "characters\n");
                return 2;
            }
            pl.ids[pl.n] = id;
            snprintf(pl.keys[pl.n++], sizeof(pl.keys[0]), "br2k:{%s}:LPI-%s", service,
                     id);
        }
    }
    redisContext *c = redisConnect(host, port);
    if (c == NULL || c->err) {
        fprintf(stderr, "br2k-bench-changes: cannot connect to %s: %s\n", redis,
                c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return 2;
    }
    char channel[300];
    snprintf(channel, sizeof(channel), "br2k:{%s}:changes", service);
    redisReply *r = redisCommand(c, "SUBSCRIBE %s", channel);
    if (r == NULL) {
        fprintf(stderr, "br2k-bench-changes: SUBSCRIBE: %s\n", c->errstr);
        redisFree(c);
        return 2;
    }
    freeReplyObject(r);
    printf("%.3f subscribed\n", now_ms());
    fflush(stdout);
    if (pl.n > 0 && pthread_create(&pt, NULL, poll_lpi, &pl) == 0)
        polling = 1;
    int rc = 0;
    while (!stop) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) {
            if (!stop) {
                fprintf(stderr, "br2k-bench-changes: connection lost: %s\n", c->errstr);
                rc = 2;
            }
            break;
        }
        double t = now_ms();
        redisReply *m = reply;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
            m->element[2]->type == REDIS_REPLY_STRING) {
            pthread_mutex_lock(&out_mu);
            printf("%.3f %.*s\n", t, (int)m->element[2]->len, m->element[2]->str);
            fflush(stdout);
            pthread_mutex_unlock(&out_mu);
        }
        freeReplyObject(reply);
    }
    stop = 1;
    if (polling)
        pthread_join(pt, NULL);
    redisFree(c);
    return rc;
}
