/* test_config.c - configuration, errors, and the pure helpers of common/. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "base/config.h"
#include "base/err.h"
#include "log/kafka_conf.h"
#include "redis/redis.h"

static bk_cfg_opt opts[] = {
    {"redis", BK_CFG_STR, "127.0.0.1:6379", 0, 0, NULL, "redis", NULL, 0, 0},
    {"lease-ms", BK_CFG_INT, "1000", 100, 10000, NULL, "lease", NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "json", NULL, 0, 0},
    {"role", BK_CFG_ENUM, "follower", 0, 0, "leader|follower", "role", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};
static bk_cfg cfg = {"test", "summary", NULL, opts, NULL, 0, 0};

static int load(char **argv, char **envp, bk_err *e, int *argi) {
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    bk_err_clear(e);
    return bk_cfg_load(&cfg, argc, argv, envp, argi, e);
}

static void test_defaults_and_precedence(void) {
    bk_err e;
    int argi;
    char *noenv[] = {NULL};
    char *a0[] = {"p", NULL};
    CHECK_INT(load(a0, noenv, &e, &argi), BK_OK);
    CHECK_STR(bk_cfg_str(&cfg, "redis"), "127.0.0.1:6379");
    CHECK_INT(bk_cfg_int(&cfg, "lease-ms"), 1000);
    CHECK_INT(bk_cfg_bool(&cfg, "json"), 0);
    CHECK_INT(argi, 1);

    /* env beats the default, a flag beats the env */
    char *env[] = {"BR2K_LEASE_MS=500", "BR2K_REDIS=10.0.0.1:1", NULL};
    char *a1[] = {"p", "--lease-ms", "700", "--json", "sub", "--x", NULL};
    CHECK_INT(load(a1, env, &e, &argi), BK_OK);
    CHECK_INT(bk_cfg_int(&cfg, "lease-ms"), 700);
    CHECK_STR(bk_cfg_str(&cfg, "redis"), "10.0.0.1:1");
    CHECK_INT(bk_cfg_bool(&cfg, "json"), 1);
    CHECK_INT(argi, 4); /* parsing stops at the subcommand */

    /* the file is below env and flags */
    char path[] = "/tmp/br2k-cfg-XXXXXX";
    int fd = mkstemp(path);
    const char *js = "{\"lease-ms\": 300, \"role\": \"leader\", \"redis\": \"f:2\"}";
    CHECK(write(fd, js, strlen(js)) == (ssize_t)strlen(js), "write");
    close(fd);
    char flag[64];
    snprintf(flag, sizeof(flag), "--config=%s", path);
    char *a2[] = {"p", flag, NULL};
    char *env2[] = {"BR2K_REDIS=e:3", NULL};
    CHECK_INT(load(a2, env2, &e, &argi), BK_OK);
    CHECK_INT(bk_cfg_int(&cfg, "lease-ms"), 300);
    CHECK_STR(bk_cfg_str(&cfg, "role"), "leader");
    CHECK_STR(bk_cfg_str(&cfg, "redis"), "e:3");
    unlink(path);
}

static void test_errors_name_key_and_value(void) {
    bk_err e;
    int argi;
    char *noenv[] = {NULL};
    char *a1[] = {"p", "--lease-ms", "abc", NULL};
    CHECK_INT(load(a1, noenv, &e, &argi), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK_STR(e.msg, "invalid value 'abc' for 'lease-ms' (from --lease-ms): expected an "
                     "integer from 100 to 10000");
    char *env[] = {"BR2K_LEASE_MS=99", NULL};
    CHECK_INT(load((char *[]){"p", NULL}, env, &e, &argi), BK_ERR);
    CHECK_STR(e.msg,
              "invalid value '99' for 'lease-ms' (from BR2K_LEASE_MS): expected an "
              "integer from 100 to 10000");
    char *a2[] = {"p", "--role=boss", NULL};
    CHECK_INT(load(a2, noenv, &e, &argi), BK_ERR);
    CHECK_STR(e.msg, "invalid value 'boss' for 'role' (from --role): expected one of "
                     "leader|follower");
    char *a3[] = {"p", "--nope", NULL};
    CHECK_INT(load(a3, noenv, &e, &argi), BK_ERR);
    CHECK_STR(e.msg, "unknown option '--nope' (see --help)");
    char *a4[] = {"p", "--redis", NULL};
    CHECK_INT(load(a4, noenv, &e, &argi), BK_ERR);
    CHECK_STR(e.msg, "option '--redis' needs a value");
    char *a5[] = {"p", "--json=maybe", NULL};
    CHECK_INT(load(a5, noenv, &e, &argi), BK_ERR);
    CHECK_STR(e.msg,
              "invalid value 'maybe' for 'json' (from --json): expected true or false");
    char *a6[] = {"p", "--config", "/nonexistent/br2k.json", NULL};
    CHECK_INT(load(a6, noenv, &e, &argi), BK_ERR);
    CHECK(strstr(e.msg, "cannot read config file '/nonexistent/br2k.json'") == e.msg,
          "got '%s'", e.msg);
    char *a7[] = {"p", "--help", "--version", NULL};
    CHECK_INT(load(a7, noenv, &e, &argi), BK_OK);
    CHECK_INT(cfg.want_help, 1);
    CHECK_INT(cfg.want_version, 1);
    cfg.want_help = cfg.want_version = 0;
}

static void test_err(void) {
    bk_err e;
    bk_err_clear(&e);
    CHECK_INT(bk_err_set(&e, BK_E_IO, "cannot open '%s'\nsecond line", "x"), BK_ERR);
    CHECK_STR(e.msg, "cannot open 'x' second line");
    bk_err_prefix(&e, "snapshot %d", 7);
    CHECK_STR(e.msg, "snapshot 7: cannot open 'x' second line");
    CHECK_STR(bk_errcode_name(BK_E_FENCED), "fenced");
    CHECK_INT(bk_err_set(NULL, BK_E_IO, "ignored"), BK_ERR);
}

static void test_redis_addr(void) {
    char host[64];
    int port;
    bk_err e;
    CHECK_INT(
        bk_redis_parse_addr("redis://127.0.0.1:7000/", host, sizeof(host), &port, &e),
        BK_OK);
    CHECK_STR(host, "127.0.0.1");
    CHECK_INT(port, 7000);
    CHECK_INT(bk_redis_parse_addr("localhost", host, sizeof(host), &port, &e), BK_OK);
    CHECK_INT(port, 6379);
    CHECK_INT(bk_redis_parse_addr("h:0", host, sizeof(host), &port, &e), BK_ERR);
    CHECK_STR(e.msg, "invalid Redis address 'h:0': expected a port from 1 to 65535");
    CHECK_INT(bk_redis_parse_addr("h:12x", host, sizeof(host), &port, &e), BK_ERR);
    CHECK_INT(bk_redis_parse_addr(":80", host, sizeof(host), &port, &e), BK_ERR);
    CHECK_STR(e.msg, "invalid Redis address ':80': expected HOST:PORT");
    CHECK_INT(bk_redis_parse_addr("sentinel://h:1/m", host, sizeof(host), &port, &e),
              BK_ERR);
    CHECK_STR(e.msg, "invalid Redis address 'sentinel://h:1/m': a single HOST:PORT is "
                     "needed here");
}

static void test_redis_sentinel_addr(void) {
    bk_redis_addr a;
    bk_err e;
    CHECK_INT(bk_redis_addr_parse("sentinel://10.0.0.1:26379,s2,s3:26381/br2k", &a, &e),
              BK_OK);
    CHECK_INT(a.sentinel, 1);
    CHECK_INT(a.nnodes, 3);
    CHECK_STR(a.nodes[0].host, "10.0.0.1");
    CHECK_INT(a.nodes[0].port, 26379);
    CHECK_STR(a.nodes[1].host, "s2");
    CHECK_INT(a.nodes[1].port, 6379);
    CHECK_STR(a.nodes[2].host, "s3");
    CHECK_INT(a.nodes[2].port, 26381);
    CHECK_STR(a.name, "br2k");
    CHECK_INT(bk_redis_addr_parse("sentinel://h:1/m/", &a, &e), BK_OK);
    CHECK_STR(a.name, "m");
    CHECK_INT(bk_redis_addr_parse("redis://127.0.0.1:7000", &a, &e), BK_OK);
    CHECK_INT(a.sentinel, 0);
    CHECK_INT(a.nnodes, 1);
    CHECK_INT(a.nodes[0].port, 7000);
    CHECK_INT(bk_redis_addr_parse("sentinel://h:1", &a, &e), BK_ERR);
    CHECK_STR(e.msg, "invalid Redis address 'sentinel://h:1': expected "
                     "sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY-NAME");
    CHECK_INT(bk_redis_addr_parse("sentinel://h:1/", &a, &e), BK_ERR);
    CHECK_INT(bk_redis_addr_parse("sentinel:///m", &a, &e), BK_ERR);
    CHECK_INT(bk_redis_addr_parse("sentinel://h:1,/m", &a, &e), BK_ERR);
    CHECK_STR(e.msg, "invalid Redis address 'sentinel://h:1,/m': expected HOST:PORT");
    CHECK_INT(bk_redis_addr_parse("sentinel://h:1,,h:2/m", &a, &e), BK_ERR);
    CHECK_INT(bk_redis_addr_parse("sentinel://h:99999/m", &a, &e), BK_ERR);
    CHECK_STR(e.msg, "invalid Redis address 'sentinel://h:99999/m': expected a port from "
                     "1 to 65535");
    CHECK_INT(bk_redis_addr_parse("sentinel://h:1/a/b", &a, &e), BK_ERR);
    CHECK_STR(
        e.msg,
        "invalid Redis address 'sentinel://h:1/a/b': bad primary name after the '/'");
    CHECK_INT(bk_redis_addr_parse("sentinel://a,b,c,d,e,f,g,h,i/m", &a, &e), BK_ERR);
    CHECK_STR(e.msg, "invalid Redis address 'sentinel://a,b,c,d,e,f,g,h,i/m': more than "
                     "8 Sentinels");
    CHECK_INT(bk_redis_addr_parse("", &a, &e), BK_ERR);
    /* credentials: never from the address; a bad setting is one clear error */
    setenv("BR2K_REDIS_PASSWORD", "x", 1);
    setenv("BR2K_REDIS_PASSWORD_FILE", "/nonexistent", 1);
    CHECK(bk_redis_connect("127.0.0.1:1", 100, &e) == NULL, "connect refused");
    CHECK_STR(e.msg, "both BR2K_REDIS_PASSWORD and BR2K_REDIS_PASSWORD_FILE are set");
    unsetenv("BR2K_REDIS_PASSWORD");
    CHECK(bk_redis_connect("127.0.0.1:1", 100, &e) == NULL, "connect refused");
    CHECK_STR(e.msg, "cannot read BR2K_REDIS_PASSWORD_FILE '/nonexistent'");
    unsetenv("BR2K_REDIS_PASSWORD_FILE");
    setenv("BR2K_REDIS_WAIT_REPLICAS", "x", 1);
    CHECK(bk_redis_new("127.0.0.1:1", 100, &e) == NULL, "new refused");
    CHECK_STR(e.msg, "invalid BR2K_REDIS_WAIT_REPLICAS 'x': expected 0 to 16");
    unsetenv("BR2K_REDIS_WAIT_REPLICAS");
}

static void test_kafka_conf(void) {
    char topic[64];
    bk_err e;
    CHECK_INT(bk_kafka_topic_name("infodid", topic, sizeof(topic), &e), BK_OK);
    CHECK_STR(topic, "br2k.infodid.requests");
    CHECK_INT(bk_kafka_topic_name("a b", topic, sizeof(topic), &e), BK_ERR);
    CHECK_STR(e.msg, "invalid service name 'a b': expected letters, digits, '-' or '_'");
    rd_kafka_conf_t *c = bk_kafka_conf_new(BK_KAFKA_PRODUCER, "127.0.0.1:1", "", &e);
    CHECK(c != NULL, "%s", e.msg);
    char val[64];
    size_t n = sizeof(val);
    CHECK_INT(rd_kafka_conf_get(c, "enable.idempotence", val, &n), RD_KAFKA_CONF_OK);
    CHECK_STR(val, "true");
    n = sizeof(val);
    CHECK_INT(rd_kafka_conf_get(c, "acks", val, &n), RD_KAFKA_CONF_OK);
    CHECK(strcmp(val, "all") == 0 || strcmp(val, "-1") == 0, "acks is '%s'", val);
    CHECK_INT(bk_kafka_conf_apply(c, "linger.ms=5,bogus", &e), BK_ERR);
    CHECK_STR(e.msg, "invalid Kafka property 'bogus': expected key=value");
    CHECK_INT(bk_kafka_conf_apply(c, "no.such.prop=1", &e), BK_ERR);
    CHECK(strstr(e.msg, "invalid Kafka property 'no.such.prop=1'") == e.msg, "%s", e.msg);
    rd_kafka_conf_destroy(c);
    CHECK(bk_kafka_conf_new(BK_KAFKA_CONSUMER, "", NULL, &e) == NULL, "empty bootstrap");
    CHECK_STR(e.msg, "no Kafka bootstrap servers: set --kafka or BR2K_KAFKA");
}

int main(void) {
    test_defaults_and_precedence();
    test_errors_name_key_and_value();
    test_err();
    test_redis_addr();
    test_redis_sentinel_addr();
    test_kafka_conf();
    bk_cfg_release(&cfg);
    return check_done();
}
