/* testapp.c - small plug-ins (br2k/app.h) for the tests of the plug-in
 * interface, one source built several times (CMakeLists.txt), each a
 * variant chosen by one definition:
 *   (none)              a well-behaved plug-in: counts records and chains
 *                       their bytes into its digest;
 *   TESTAPP_NONDET      non-deterministic on purpose: apply mixes the
 *                       clock into the state, so replicas diverge (br2k
 *                       verify must catch it);
 *   TESTAPP_BADABI      declares ABI version 999;
 *   TESTAPP_NOSYM       exports no br2k_app_entry;
 *   TESTAPP_NOAPPLY     has no apply operation;
 *   TESTAPP_OPENFAIL    open always fails.
 * State file <dir>/testapp.state: "<lpi> <count> <acc>", replaced
 * atomically by sync. */
#include <br2k/app.h>

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef TESTAPP_BADABI
#define ABI 999u
#else
#define ABI BR2K_APP_ABI_VERSION
#endif

struct br2k_app {
    char path[4096];
    int64_t lpi, count;
    uint64_t acc;
};

static int save(const br2k_app *a, br2k_app_error *e) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", a->path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot create '%s': %s", tmp,
                                  strerror(errno));
    fprintf(f, "%" PRId64 " %" PRId64 " %" PRIu64 "\n", a->lpi, a->count, a->acc);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tmp, a->path))
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot write '%s': %s", a->path,
                                  strerror(errno));
    return BR2K_APP_OK;
}

static int t_open(const char *dir, br2k_app **out, int64_t *lpi, br2k_app_error *e) {
#ifdef TESTAPP_OPENFAIL
    (void)out;
    (void)lpi;
    return br2k_app_error_set(
        e, BR2K_APP_E_IO, "openfail: cannot open the ledger in '%s': the test says no",
        dir);
#else
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot create '%s': %s", dir,
                                  strerror(errno));
    br2k_app *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "out of memory");
    snprintf(a->path, sizeof(a->path), "%s/testapp.state", dir);
    a->lpi = -1;
    FILE *f = fopen(a->path, "r");
    if (f != NULL) {
        long long l, c;
        unsigned long long acc;
        int n = fscanf(f, "%lld %lld %llu", &l, &c, &acc);
        fclose(f);
        if (n != 3) {
            free(a);
            return br2k_app_error_set(e, BR2K_APP_E_STATE, "damaged state '%s'", dir);
        }
        a->lpi = l;
        a->count = c;
        a->acc = acc;
    }
    *out = a;
    *lpi = a->lpi;
    return BR2K_APP_OK;
#endif
}

#ifndef TESTAPP_NOAPPLY
static int t_apply(br2k_app *a, int64_t offset, const void *rec, size_t len,
                   char **result, int *applied, br2k_app_error *e) {
    uint64_t h = a->acc ^ (uint64_t)offset;
    const unsigned char *p = rec;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211u;
#ifdef TESTAPP_NONDET
    struct timespec ts; /* what an application must never do (I4) */
    clock_gettime(CLOCK_REALTIME, &ts);
    h ^= (uint64_t)ts.tv_nsec;
#endif
    a->acc = h;
    a->count++;
    a->lpi = offset;
    *applied = 1;
    char buf[160];
    snprintf(buf, sizeof(buf),
             "{\"data\":{\"count\":%" PRId64 "},\"id\":null,\"offset\":%" PRId64
             ",\"op\":null,\"repeat\":false,\"status\":\"ok\",\"v\":1}",
             a->count, offset);
    *result = strdup(buf);
    return *result ? BR2K_APP_OK
                   : br2k_app_error_set(e, BR2K_APP_E_NOMEM, "out of memory");
}
#endif

static int t_sync(br2k_app *a, br2k_app_error *e) {
    return save(a, e);
}

static int t_snapshot(br2k_app *a, void **buf, size_t *len, int64_t *lpi,
                      br2k_app_error *e) {
    char *s = malloc(80);
    if (s == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "out of memory");
    *len = (size_t)snprintf(s, 80, "%" PRId64 " %" PRId64 " %" PRIu64, a->lpi, a->count,
                            a->acc);
    *buf = s;
    *lpi = a->lpi;
    return BR2K_APP_OK;
}

static int t_restore(br2k_app *a, const void *buf, size_t len, br2k_app_error *e) {
    char s[80];
    long long l, c;
    unsigned long long acc;
    if (len >= sizeof(s))
        return br2k_app_error_set(e, BR2K_APP_E_INVAL, "snapshot too long");
    memcpy(s, buf, len);
    s[len] = '\0';
    if (sscanf(s, "%lld %lld %llu", &l, &c, &acc) != 3)
        return br2k_app_error_set(e, BR2K_APP_E_INVAL, "damaged snapshot");
    a->lpi = l;
    a->count = c;
    a->acc = acc;
    return save(a, e);
}

static int t_digest(br2k_app *a, char hex[65], br2k_app_error *e) {
    char s[64];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int len = snprintf(s, sizeof(s), "%" PRId64 " %" PRIu64, a->count, a->acc);
    if (EVP_Digest(s, (size_t)len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return br2k_app_error_set(e, BR2K_APP_E_STATE, "cannot hash");
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return BR2K_APP_OK;
}

static void t_close(br2k_app *a) {
    free(a);
}

static const br2k_app_plugin plugin = {
    .abi_version = ABI,
#ifdef TESTAPP_NONDET
    .name = "nondet",
#else
    .name = "testapp",
#endif
    .open = t_open,
#ifndef TESTAPP_NOAPPLY
    .apply = t_apply,
#endif
    .sync = t_sync,
    .snapshot = t_snapshot,
    .restore = t_restore,
    .digest = t_digest,
    .close = t_close,
};

#ifdef TESTAPP_NOSYM
BR2K_APP_EXPORT const br2k_app_plugin *br2k_app_entry_v0(void) {
    return &plugin;
}
#else
const br2k_app_plugin *br2k_app_entry(void) {
    return &plugin;
}
#endif
