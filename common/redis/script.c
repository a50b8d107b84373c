/* script.c - see script.h. */
#include "redis/script.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARGV_STACK 32 /* arguments held on the stack; more are malloc'd */

/* Guards the one-time computation of a script's sha (a few microseconds;
 * loading and running never hold it). */
static pthread_mutex_t sha_mu = PTHREAD_MUTEX_INITIALIZER;

void bk_script_after_fork(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&sha_mu, &fresh, sizeof(fresh));
}

const char *bk_script_sha(bk_script *s) {
    if (atomic_load_explicit(&s->state, memory_order_acquire) >= 1)
        return s->sha;
    pthread_mutex_lock(&sha_mu);
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == 0) {
        static const char digits[] = "0123456789abcdef";
        unsigned char h[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_Digest(s->src, strlen(s->src), h, &n, EVP_sha1(), NULL) != 1 || n != 20)
            abort(); /* only on allocation failure */
        for (unsigned int i = 0; i < 20; i++) {
            s->sha[2 * i] = digits[h[i] >> 4];
            s->sha[2 * i + 1] = digits[h[i] & 15];
        }
        s->sha[40] = '\0';
        atomic_store_explicit(&s->state, 1, memory_order_release);
    }
    pthread_mutex_unlock(&sha_mu);
    return s->sha;
}

int bk_script_reload(bk_redis *r, bk_script *s, bk_err *e) {
    const char *sha = bk_script_sha(s);
    redisReply *rep = bk_redis_command(r, e, "SCRIPT LOAD %s", s->src);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot load a Redis script");
    int ok = rep->type == REDIS_REPLY_STRING && rep->len == 40 &&
             strncasecmp(rep->str, sha, 40) == 0;
    freeReplyObject(rep);
    if (!ok)
        return bk_err_set(e, BK_E_PROTO, "unexpected reply to SCRIPT LOAD");
    atomic_store_explicit(&s->state, 2, memory_order_release);
    return BK_OK;
}

int bk_script_load(bk_redis *r, bk_script *s, bk_err *e) {
    if (atomic_load_explicit(&s->state, memory_order_acquire) == 2)
        return BK_OK;
    return bk_script_reload(r, s, e);
}

int bk_script_noscript(const char *msg) {
    return msg != NULL && strstr(msg, "NOSCRIPT") != NULL;
}

/* "EVALSHA <sha> <nkeys>" then the arguments, into the arrays v and l of
 * argc + 3 entries. */
static void full_argv(bk_script *s, const char *nk, int argc, const char **argv,
                      const size_t *argvlen, const char **v, size_t *l) {
    v[0] = "EVALSHA";
    v[1] = bk_script_sha(s);
    v[2] = nk;
    for (int i = 0; i < argc; i++)
        v[3 + i] = argv[i];
    for (int i = 0; i < argc + 3; i++)
        l[i] = i >= 3 && argvlen != NULL ? argvlen[i - 3] : strlen(v[i]);
}

/* The arrays for full_argv: on the stack when they fit, else malloc'd
 * (*heap set, free both). */
static int arrays(int argc, const char **sv, size_t *sl, const char ***v, size_t **l,
                  int *heap, bk_err *e) {
    *heap = argc + 3 > ARGV_STACK;
    if (!*heap) {
        *v = sv;
        *l = sl;
        return BK_OK;
    }
    *v = malloc(sizeof(**v) * (size_t)(argc + 3));
    *l = malloc(sizeof(**l) * (size_t)(argc + 3));
    if (*v == NULL || *l == NULL) {
        free(*v);
        free(*l);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    return BK_OK;
}

redisReply *bk_script_eval(bk_redis *r, bk_script *s, int nkeys, int argc,
                           const char **argv, const size_t *argvlen, bk_err *e) {
    if (argc < 0 || nkeys < 0 || nkeys > argc) {
        bk_err_set(e, BK_E_INVAL, "bad script arguments");
        return NULL;
    }
    const char *sv[ARGV_STACK], **v = NULL;
    size_t sl[ARGV_STACK], *l = NULL;
    int heap = 0;
    if (arrays(argc, sv, sl, &v, &l, &heap, e) != BK_OK)
        return NULL;
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    full_argv(s, nk, argc, argv, argvlen, v, l);
    redisReply *rep = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (bk_script_load(r, s, e) != BK_OK)
            break;
        bk_err le;
        bk_err_clear(&le);
        rep = bk_redis_commandv(r, &le, argc + 3, v, l);
        if (rep != NULL)
            break;
        if (le.code == BK_E_REMOTE && bk_script_noscript(le.msg) && attempt == 0) {
            /* flushed, or a restarted server: it did not run; load again */
            atomic_store_explicit(&s->state, 1, memory_order_release);
            continue;
        }
        if (e != NULL)
            *e = le;
        break;
    }
    if (heap) {
        free(v);
        free(l);
    }
    return rep;
}

int bk_script_format(bk_script *s, int nkeys, int argc, const char **argv,
                     const size_t *argvlen, char **cmd, size_t *len, bk_err *e) {
    *cmd = NULL;
    *len = 0;
    if (argc < 0 || nkeys < 0 || nkeys > argc)
        return bk_err_set(e, BK_E_INVAL, "bad script arguments");
    const char *sv[ARGV_STACK], **v = NULL;
    size_t sl[ARGV_STACK], *l = NULL;
    int heap = 0;
    if (arrays(argc, sv, sl, &v, &l, &heap, e) != BK_OK)
        return BK_ERR;
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    full_argv(s, nk, argc, argv, argvlen, v, l);
    long long n = redisFormatCommandArgv(cmd, argc + 3, v, l);
    if (heap) {
        free(v);
        free(l);
    }
    if (n < 0) {
        *cmd = NULL;
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    *len = (size_t)n;
    return BK_OK;
}
