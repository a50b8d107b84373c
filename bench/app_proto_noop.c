/* app_proto_noop.c - br2k-bench-proto-noop: the no-op application of
 * worker/apps/noop, the same work (a SHA-256 chain over each offset and
 * record, a count, the same result JSON, state and LPI in one small file
 * fdatasync'd on each sync), as a separate process over the application
 * protocol (schemas/app-protocol.md) on the fd of $BR2K_APP_FD: what
 * bench/app_proto.sh compares with the in-process no-op, so that the ratio
 * is the protocol's cost alone. Written against the wire, no SDK; the
 * result's id and op are found by a plain scan (the bench's records are
 * compact JSON). */
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "br2k/app_wire.h"

static int fd = -1, sfd = -1;
static int64_t lpi = -1, count;
static unsigned char chain[32];
static unsigned char *in, *out;
static size_t incap, outcap;

static int readn(void *p, size_t n) {
    for (size_t k = 0; k < n;) {
        ssize_t r = read(fd, (char *)p + k, n - k);
        if (r <= 0)
            return -1;
        k += (size_t)r;
    }
    return 0;
}
static void writen(const void *p, size_t n) {
    for (size_t k = 0; k < n;) {
        ssize_t r = write(fd, (const char *)p + k, n - k);
        if (r <= 0)
            exit(1);
        k += (size_t)r;
    }
}
static unsigned char *room(size_t n) {
    if (outcap < n) {
        outcap = n * 2;
        out = realloc(out, outcap);
        if (out == NULL)
            exit(1);
    }
    return out;
}
static void reply(int type, size_t n) { /* payload already at out + 5 */
    br2k_wire_put32(out, (uint32_t)(n + 1));
    out[4] = (unsigned char)type;
    writen(out, n + 5);
}

static int line(char *buf, size_t size) {
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", chain[i]);
    return snprintf(buf, size, "br2k-noop-c 1 %" PRId64 " %" PRId64 " %s\n", lpi, count,
                    hex);
}

/* The value of "key":"..." (a string) or "key":N in rec, or NULL. */
static const char *find(const char *rec, size_t len, const char *key, size_t *vlen) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 3 < len; i++) {
        if (rec[i] == '"' && memcmp(rec + i + 1, key, kl) == 0 &&
            rec[i + 1 + kl] == '"' && rec[i + 2 + kl] == ':') {
            const char *v = rec + i + 3 + kl, *end = rec + len;
            const char *e = v;
            if (*v == '"') {
                for (e = ++v; e < end && *e != '"'; e++)
                    ;
            } else {
                while (e < end && *e >= '0' && *e <= '9')
                    e++;
            }
            *vlen = (size_t)(e - v);
            return e < end ? v : NULL;
        }
    }
    return NULL;
}

static void apply(const unsigned char *p, size_t len, EVP_MD_CTX *md) {
    uint32_t n = br2k_wire_get32(p);
    size_t pos = 4, o = 9; /* out: 5 header + 4 count */
    room(5 + 4 + (size_t)n * 400);
    br2k_wire_put32(out + 5, n);
    for (uint32_t i = 0; i < n && pos + 12 <= len; i++) {
        int64_t off = (int64_t)((uint64_t)br2k_wire_get32(p + pos) << 32 |
                                br2k_wire_get32(p + pos + 4));
        uint32_t rl = br2k_wire_get32(p + pos + 8);
        const char *rec = (const char *)p + pos + 12;
        unsigned char ob[8];
        unsigned int mdlen = 0;
        br2k_wire_put64(ob, (uint64_t)off);
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        EVP_DigestUpdate(md, chain, 32);
        EVP_DigestUpdate(md, ob, 8);
        EVP_DigestUpdate(md, rec, rl);
        EVP_DigestFinal_ex(md, chain, &mdlen);
        lpi = off;
        count++;
        size_t cl = 0, sl = 0, ol = 0;
        const char *c = find(rec, rl, "client", &cl), *s = find(rec, rl, "seq", &sl);
        const char *op = find(rec, rl, "op", &ol);
        char res[400];
        int m =
            c && s && op && cl + sl + ol < 300
                ? snprintf(res, sizeof(res),
                           "{\"data\":{},\"id\":\"%.*s:%.*s\",\"offset\":%" PRId64
                           ",\"op\":\"%.*s\",\"repeat\":false,\"status\":\"ok\",\"v\":1}",
                           (int)cl, c, (int)sl, s, off, (int)ol, op)
                : snprintf(res, sizeof(res),
                           "{\"data\":{},\"id\":null,\"offset\":%" PRId64
                           ",\"op\":null,\"repeat\":false,\"status\":\"ok\",\"v\":1}",
                           off);
        out[o] = 1;
        br2k_wire_put32(out + o + 1, (uint32_t)m);
        memcpy(out + o + 5, res, (size_t)m);
        o += 5 + (size_t)m;
        pos += 12 + rl;
    }
    reply(BR2K_WIRE_REPLY | BR2K_WIRE_APPLY, o - 5);
}

static void sync_state(void) {
    char buf[256];
    int n = line(buf, sizeof(buf));
    if (pwrite(sfd, buf, (size_t)n, 0) != n || fdatasync(sfd) != 0)
        exit(1);
}

int main(void) {
    const char *f = getenv("BR2K_APP_FD");
    if (f == NULL) {
        fprintf(stderr,
                "br2k-bench-proto-noop: run me with br2k-worker --app exec:...\n");
        return 2;
    }
    fd = atoi(f);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[5];
    while (readn(h, 5) == 0) {
        uint32_t n = br2k_wire_get32(h) - 1;
        if (incap < n + 1) {
            incap = n + 1;
            in = realloc(in, incap);
        }
        if (in == NULL || readn(in, n) != 0)
            return 1;
        in[n] = 0;
        char buf[4352];
        switch (h[4]) {
        case BR2K_WIRE_OPEN: { /* Open: {"protocol":1,"dir":"..."}: a new state each run
                                */
            size_t dl = 0;
            const char *d = find((const char *)in, n, "dir", &dl);
            snprintf(buf, sizeof(buf), "%.*s/noop.state", (int)dl, d ? d : ".");
            sfd = open(buf, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (sfd < 0)
                return 1;
            sync_state();
            int m =
                snprintf((char *)room(300) + 5, 290,
                         "{\"protocol\":1,\"name\":\"noop-c\",\"lpi\":%" PRId64 "}", lpi);
            reply(BR2K_WIRE_REPLY | BR2K_WIRE_OPEN, (size_t)m);
            break;
        }
        case BR2K_WIRE_APPLY:
            apply(in, n, md);
            break;
        case BR2K_WIRE_SYNC:
            sync_state();
            room(5);
            reply(BR2K_WIRE_REPLY | BR2K_WIRE_SYNC, 0);
            break;
        case BR2K_WIRE_DIGEST: {
            unsigned char d[32];
            unsigned int dl = 0;
            int m = line(buf, sizeof(buf));
            EVP_Digest(buf, (size_t)m, d, &dl, EVP_sha256(), NULL);
            room(80);
            for (int i = 0; i < 32; i++)
                snprintf((char *)out + 5 + 2 * i, 3, "%02x", d[i]);
            reply(BR2K_WIRE_REPLY | BR2K_WIRE_DIGEST, 64);
            break;
        }
        case BR2K_WIRE_CLOSE:
            room(5);
            reply(BR2K_WIRE_REPLY | BR2K_WIRE_CLOSE, 0);
            return 0;
        default: /* snapshots are not part of this bench */
            room(40);
            memcpy(out + 5, "not supported by the bench", 26);
            reply(BR2K_WIRE_ERROR, 26);
            return 1;
        }
    }
    return 0;
}
