/* devkafka.c - br2k-devkafka, the development Kafka broker.
 *
 * Hosts librdkafka's mock cluster (rdkafka_mock.h) in this process, so that
 * any Kafka client (kcat, librdkafka) can talk to it on 127.0.0.1. It
 * creates the service topic itself (the mock has no CreateTopics), prints
 * the bootstrap servers and writes them to a file, and takes fault commands
 * on a Unix-socket control channel, because the mock's fault calls only
 * work inside the process that owns the cluster. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/config.h"
#include "base/err.h"
#include "base/fileio.h"
#include "log/kafka_conf.h"
#include "base/log.h"
#include "base/sig.h"

static bk_cfg_opt opts[] = {
    {"service", BK_CFG_STR, "default", 0, 0, NULL,
     "service name; the topic created is br2k.<service>.requests", NULL, 0, 0},
    {"topic", BK_CFG_STR, "", 0, 0, NULL, "topic to create instead of the service's",
     NULL, 0, 0},
    {"brokers", BK_CFG_INT, "3", 1, 9, NULL,
     "number of mock brokers (3 lets a leader change be shown)", NULL, 0, 0},
    {"partitions", BK_CFG_INT, "1", 1, 64, NULL, "partitions of the topic", NULL, 0, 0},
    {"bootstrap-file", BK_CFG_STR, "", 0, 0, NULL,
     "write the bootstrap servers to this file (atomically) once ready", NULL, 0, 0},
    {"control", BK_CFG_STR, "", 0, 0, NULL,
     "Unix socket path for fault commands (see below); none if empty", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static const char summary[] =
    "The development Kafka broker: librdkafka's mock cluster served on 127.0.0.1.\n"
    "Prints 'bootstrap: HOST:PORT,...' on stdout when ready; stops cleanly on\n"
    "SIGTERM or SIGINT.\n"
    "\n"
    "LIMITS (this is not Kafka; production runs a real Kafka cluster):\n"
    "  - everything is in memory: a restart loses the whole log, and offsets\n"
    "    start again at 0;\n"
    "  - each partition keeps only about 5 MiB: older batches are dropped;\n"
    "  - DeleteRecords answers UNSUPPORTED_FEATURE;\n"
    "  - transactions are not real.\n"
    "No BR2K code may depend on this broker's behaviour.";

static const char epilog[] =
    "Control commands (one per connection, one line; reply 'ok ...' or 'error ...'):\n"
    "  ping                          check that the broker answers\n"
    "  broker down ID | broker up ID take a broker down (connections closed) or up\n"
    "  leader ID [TOPIC [PARTITION]] move the partition's leadership to broker ID\n"
    "  rtt ID MS                     add MS of round-trip delay to broker ID\n"
    "  error API COUNT ERR           fail the next COUNT requests of API (a name\n"
    "                                such as Produce, Fetch, Metadata, or a number)\n"
    "                                with ERR (a Kafka error name or number)\n"
    "  clear API                     drop the errors still queued for API\n"
    "  topic NAME [PARTITIONS]       create another topic\n"
    "Client side: br2k-devkafka ctl SOCKET COMMAND...";

static bk_cfg cfg = {
    "br2k-devkafka", summary, "[OPTIONS] | ctl SOCKET COMMAND...", opts, epilog, 0, 0};

static rd_kafka_mock_cluster_t *mcluster;
static char topic[256];

static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {{"Produce", 0},          {"Fetch", 1},           {"ListOffsets", 2},
                {"Metadata", 3},         {"OffsetCommit", 8},    {"OffsetFetch", 9},
                {"FindCoordinator", 10}, {"JoinGroup", 11},      {"Heartbeat", 12},
                {"ApiVersions", 18},     {"InitProducerId", 22}, {"DeleteRecords", 21}};

static int parse_int(const char *s, long min, long max, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_api(const char *s, int16_t *key) {
    long v;
    for (size_t i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++)
        if (strcasecmp(s, api_keys[i].name) == 0)
            return *key = api_keys[i].key, 0;
    if (parse_int(s, 0, 100, &v) != 0)
        return -1;
    *key = (int16_t)v;
    return 0;
}

static int parse_kafka_err(const char *s, rd_kafka_resp_err_t *err) {
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    long v;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++)
        if (descs[i].name != NULL && strcasecmp(descs[i].name, s) == 0)
            return *err = descs[i].code, 0;
    if (parse_int(s, -200, 200, &v) != 0)
        return -1;
    *err = (rd_kafka_resp_err_t)v;
    return 0;
}

/* Run one control command; write the one-line reply into `reply`. */
static void run_command(char *line, char *reply, size_t size) {
    char *argv[8], *save = NULL;
    int argc = 0;
    for (char *t = strtok_r(line, " \t\r\n", &save); t && argc < 8;
         t = strtok_r(NULL, " \t\r\n", &save))
        argv[argc++] = t;
    long id, n;
    if (argc == 0) {
        snprintf(reply, size, "error empty command");
    } else if (strcmp(argv[0], "ping") == 0 && argc == 1) {
        snprintf(reply, size, "ok pong %s", rd_kafka_mock_cluster_bootstraps(mcluster));
    } else if (strcmp(argv[0], "broker") == 0 && argc == 3 &&
               (strcmp(argv[1], "down") == 0 || strcmp(argv[1], "up") == 0)) {
        if (parse_int(argv[2], 1, 9, &id) != 0) {
            snprintf(reply, size, "error invalid broker id '%s'", argv[2]);
            return;
        }
        rd_kafka_resp_err_t err = argv[1][0] == 'd'
                                      ? rd_kafka_mock_broker_set_down(mcluster, (int)id)
                                      : rd_kafka_mock_broker_set_up(mcluster, (int)id);
        if (err)
            snprintf(reply, size, "error broker %ld: %s", id, rd_kafka_err2str(err));
        else {
            snprintf(reply, size, "ok broker %ld %s", id, argv[1]);
            BK_WARN("fault: broker %ld %s", id, argv[1]);
        }
    } else if (strcmp(argv[0], "leader") == 0 && argc >= 2 && argc <= 4) {
        long part = 0;
        const char *t = argc >= 3 ? argv[2] : topic;
        if (parse_int(argv[1], 1, 9, &id) != 0 ||
            (argc == 4 && parse_int(argv[3], 0, 1000, &part) != 0)) {
            snprintf(reply, size, "error usage: leader ID [TOPIC [PARTITION]]");
            return;
        }
        rd_kafka_resp_err_t err =
            rd_kafka_mock_partition_set_leader(mcluster, t, (int)part, (int)id);
        if (err)
            snprintf(reply, size, "error leader of %s [%ld]: %s", t, part,
                     rd_kafka_err2str(err));
        else {
            snprintf(reply, size, "ok leader of %s [%ld] is broker %ld", t, part, id);
            BK_WARN("fault: leader of %s [%ld] moved to broker %ld", t, part, id);
        }
    } else if (strcmp(argv[0], "rtt") == 0 && argc == 3) {
        if (parse_int(argv[1], 1, 9, &id) != 0 || parse_int(argv[2], 0, 60000, &n) != 0) {
            snprintf(reply, size, "error usage: rtt ID MS (MS from 0 to 60000)");
            return;
        }
        rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_rtt(mcluster, (int)id, (int)n);
        if (err)
            snprintf(reply, size, "error rtt: %s", rd_kafka_err2str(err));
        else
            snprintf(reply, size, "ok rtt of broker %ld is %ld ms", id, n);
    } else if (strcmp(argv[0], "error") == 0 && argc == 4) {
        int16_t key;
        rd_kafka_resp_err_t kerr;
        if (parse_api(argv[1], &key) != 0) {
            snprintf(reply, size, "error unknown API '%s'", argv[1]);
            return;
        }
        if (parse_int(argv[2], 1, 10000, &n) != 0) {
            snprintf(reply, size, "error invalid count '%s': expected 1 to 10000",
                     argv[2]);
            return;
        }
        if (parse_kafka_err(argv[3], &kerr) != 0) {
            snprintf(reply, size, "error unknown Kafka error '%s'", argv[3]);
            return;
        }
        rd_kafka_resp_err_t *errs = malloc(sizeof(*errs) * (size_t)n);
        if (errs == NULL) {
            snprintf(reply, size, "error out of memory");
            return;
        }
        for (long i = 0; i < n; i++)
            errs[i] = kerr;
        rd_kafka_mock_push_request_errors_array(mcluster, key, (size_t)n, errs);
        free(errs);
        snprintf(reply, size, "ok next %ld %s requests fail with %s", n, argv[1],
                 rd_kafka_err2name(kerr));
        BK_WARN("fault: next %ld %s requests fail with %s", n, argv[1],
                rd_kafka_err2name(kerr));
    } else if (strcmp(argv[0], "clear") == 0 && argc == 2) {
        int16_t key;
        if (parse_api(argv[1], &key) != 0) {
            snprintf(reply, size, "error unknown API '%s'", argv[1]);
            return;
        }
        rd_kafka_mock_clear_request_errors(mcluster, key);
        snprintf(reply, size, "ok cleared %s", argv[1]);
    } else if (strcmp(argv[0], "topic") == 0 && (argc == 2 || argc == 3)) {
        n = 1;
        if (argc == 3 && parse_int(argv[2], 1, 64, &n) != 0) {
            snprintf(reply, size, "error invalid partition count '%s'", argv[2]);
            return;
        }
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mcluster, argv[1], (int)n, 1);
        if (err)
            snprintf(reply, size, "error topic %s: %s", argv[1], rd_kafka_err2str(err));
        else
            snprintf(reply, size, "ok topic %s", argv[1]);
    } else {
        snprintf(reply, size, "error unknown command '%s' (see --help)", argv[0]);
    }
}

static int ctl_listen(const char *path, bk_err *e) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return bk_err_set(e, BK_E_INVAL, "control socket path '%s' is too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return bk_err_set(e, BK_E_IO, "cannot create control socket: %s",
                          strerror(errno));
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0) {
        bk_err_set(e, BK_E_IO, "cannot listen on control socket '%s': %s", path,
                   strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void ctl_serve_one(int lfd) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char line[512], reply[600];
    size_t len = 0;
    while (len + 1 < sizeof(line)) {
        ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (memchr(line, '\n', len) != NULL)
            break;
    }
    line[len] = '\0';
    run_command(line, reply, sizeof(reply));
    size_t rlen = strlen(reply);
    reply[rlen++] = '\n';
    if (write(fd, reply, rlen) < 0)
        BK_DEBUG("control reply lost: %s", strerror(errno));
    close(fd);
}

/* Client side: send one command, print the reply; exit 0 on "ok". */
static int ctl_client(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "br2k-devkafka: usage: ctl SOCKET COMMAND...\n");
        return 2;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[0]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "br2k-devkafka: control socket path '%s' is too long\n", argv[0]);
        return 2;
    }
    memcpy(sa.sun_path, argv[0], strlen(argv[0]) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "br2k-devkafka: cannot connect to control socket '%s': %s\n",
                argv[0], strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char line[512] = "";
    size_t len = 0;
    for (int i = 1; i < argc; i++)
        len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s", i > 1 ? " " : "",
                                argv[i]);
    if (len + 1 >= sizeof(line)) {
        fprintf(stderr, "br2k-devkafka: control command too long\n");
        close(fd);
        return 2;
    }
    line[len++] = '\n';
    char reply[600];
    ssize_t n =
        write(fd, line, len) == (ssize_t)len ? read(fd, reply, sizeof(reply) - 1) : -1;
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "br2k-devkafka: no reply on control socket '%s'\n", argv[0]);
        return 1;
    }
    reply[n] = '\0';
    fputs(reply, stdout);
    return strncmp(reply, "ok", 2) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int argi, rc;
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return ctl_client(argc - 2, argv + 2);
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    bk_err e;
    bk_err_clear(&e);
    if (argi < argc) {
        fprintf(stderr, "br2k-devkafka: unexpected argument '%s' (see --help)\n",
                argv[argi]);
        return 2;
    }
    if (bk_cfg_str(&cfg, "topic")[0] != '\0')
        snprintf(topic, sizeof(topic), "%s", bk_cfg_str(&cfg, "topic"));
    else if (bk_kafka_topic_name(bk_cfg_str(&cfg, "service"), topic, sizeof(topic), &e) !=
             BK_OK) {
        fprintf(stderr, "br2k-devkafka: %s\n", e.msg);
        return 2;
    }
    bk_sig_install();

    /* The mock cluster needs a client instance to own its thread. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "4", NULL, 0); /* no "no bootstrap" notice */
    rd_kafka_t *rk = bk_kafka_new(BK_KAFKA_PRODUCER, conf, &e);
    conf = NULL; /* now owned (or destroyed) by bk_kafka_new */
    if (rk == NULL) {
        BK_ERROR("%s", e.msg);
        return 1;
    }
    int nbrokers = (int)bk_cfg_int(&cfg, "brokers");
    mcluster = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (mcluster == NULL) {
        BK_ERROR("cannot start the mock cluster");
        rd_kafka_destroy(rk);
        return 1;
    }
    int parts = (int)bk_cfg_int(&cfg, "partitions");
    rd_kafka_resp_err_t kerr =
        rd_kafka_mock_topic_create(mcluster, topic, parts, nbrokers);
    if (kerr) {
        BK_ERROR("cannot create topic '%s': %s", topic, rd_kafka_err2str(kerr));
        rc = 1;
        goto out;
    }
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
    int lfd = -1;
    const char *ctl = bk_cfg_str(&cfg, "control");
    if (ctl[0] != '\0' && (lfd = ctl_listen(ctl, &e)) < 0) {
        BK_ERROR("%s", e.msg);
        rc = 1;
        goto out;
    }
    const char *bfile = bk_cfg_str(&cfg, "bootstrap-file");
    char line[4096];
    size_t n = (size_t)snprintf(line, sizeof(line), "%s\n", bootstraps);
    n = n < sizeof(line) ? n : sizeof(line) - 1;
    if (bfile[0] != '\0' && bk_file_replace(bfile, line, n, &e) != BK_OK) {
        BK_ERROR("%s", e.msg);
        rc = 1;
        goto out_ctl;
    }
    printf("bootstrap: %s\ntopic: %s\n", bootstraps, topic);
    fflush(stdout);
    BK_INFO("serving topic '%s' (%d partition%s) on %s with %d brokers", topic, parts,
            parts == 1 ? "" : "s", bootstraps, nbrokers);

    while (!bk_sig_stop) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        int n = poll(&pfd, lfd >= 0 ? 1 : 0, 200);
        if (n > 0 && (pfd.revents & POLLIN))
            ctl_serve_one(lfd);
    }
    BK_INFO("stopping on signal %d", (int)bk_sig_last);
    rc = 0;
out_ctl:
    if (lfd >= 0) {
        close(lfd);
        unlink(ctl);
    }
out:
    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    bk_cfg_release(&cfg);
    return rc;
}
