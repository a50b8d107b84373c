/* gateway_load.c - br2k-bench-gateway-load: the HTTP side of
 * bench/gateway.sh, `br2k submit`'s load generator through br2k-gateway.
 *
 *   br2k-bench-gateway-load URL CLIENTS COUNT RATE PREFIX [UPDATES]
 *
 * The same requests as `br2k submit --clients K --count N --updates`
 * (producer/loadgen.h: client i is PREFIX-i with key keccak256("PREFIX-i")),
 * all signed before the clock starts, interleaved across the clients, POSTed
 * to URL/v1/requests?wait_ms=30000 at RATE requests a second (paced from the
 * start: request r is due at r / RATE s) with libcurl's multi interface on
 * keep-alive connections, as many in flight as needed. Latency is from the
 * moment a request is sent to its answer. Prints one JSON line: sent, ok
 * (200 with status ok), rejected (200 with status rejected), pending (202),
 * http_errors {status: count}, elapsed_s, throughput_rps (answered 200 per
 * second), latency_ms {p50, p90, p99, max}. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "loadgen.h"

typedef struct req {
    char *body;
    struct curl_slist *hdr;
    char *resp;
    size_t rlen;
    double t0;
} req;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    req *r = ud;
    char *b = realloc(r->resp, r->rlen + sz * n + 1);
    if (b == NULL)
        return 0;
    memcpy(b + r->rlen, p, sz * n);
    r->rlen += sz * n;
    b[r->rlen] = '\0';
    r->resp = b;
    return sz * n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p) {
    return n ? v[(size_t)((double)(n - 1) * p)] : 0.0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: br2k-bench-gateway-load URL CLIENTS COUNT RATE PREFIX "
                        "[UPDATES]\n");
        return 2;
    }
    const char *base = argv[1];
    long k = strtol(argv[2], NULL, 10), n = strtol(argv[3], NULL, 10);
    double rate = strtod(argv[4], NULL);
    const char *prefix = argv[5];
    int updates = argc > 6 && strcmp(argv[6], "0") != 0;
    long total = k * n;
    if (k <= 0 || n <= 0 || rate <= 0) {
        fprintf(stderr, "br2k-bench-gateway-load: CLIENTS, COUNT and RATE must be > 0\n");
        return 2;
    }
    bk_lg_client *cl = calloc((size_t)k, sizeof(*cl));
    req *rs = calloc((size_t)total, sizeof(*rs));
    double *lat = calloc((size_t)total, sizeof(double));
    if (cl == NULL || rs == NULL || lat == NULL)
        return 2;
    bk_err e;
    for (long i = 0; i < k; i++)
        if (bk_lg_client_init(&cl[i], prefix, i, &e) != BK_OK) {
            fprintf(stderr, "br2k-bench-gateway-load: %s\n", e.msg);
            return 2;
        }
    int64_t ts = bk_wall_ms();
    for (long r = 0; r < total; r++) { /* interleaved: r -> client r % k, seq r / k + 1 */
        long seq = r / k + 1;
        rs[r].body = bk_lg_request(&cl[r % k], seq, updates && seq % 2 == 0, ts, &e);
        if (rs[r].body == NULL) {
            fprintf(stderr, "br2k-bench-gateway-load: %s\n", e.msg);
            return 2;
        }
    }
    char url[1024];
    snprintf(url, sizeof(url), "%s/v1/requests?wait_ms=30000", base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 1024L);
    json_t *errs = json_object();
    long sent = 0, done = 0, ok = 0, rejected = 0, pending = 0, nlat = 0;
    double t_start = bk_mono_msf();
    while (done < total) {
        double now = bk_mono_msf();
        while (sent < total && now - t_start >= (double)sent * 1000.0 / rate) {
            req *r = &rs[sent];
            CURL *h = curl_easy_init();
            r->hdr = curl_slist_append(NULL, "Content-Type: application/json");
            r->hdr = curl_slist_append(r->hdr, "Expect:");
            curl_easy_setopt(h, CURLOPT_URL, url);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdr);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
            curl_easy_setopt(h, CURLOPT_PRIVATE, r);
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
            r->t0 = bk_mono_msf();
            curl_multi_add_handle(m, h);
            sent++;
        }
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *h = msg->easy_handle;
            req *r = NULL;
            long code = 0;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&r);
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
            double t = bk_mono_msf() - r->t0;
            if (msg->data.result != CURLE_OK)
                code = 0;
            if (code == 200 && r->resp != NULL && strstr(r->resp, "\"status\":\"ok\"")) {
                ok++;
                lat[nlat++] = t;
            } else if (code == 200) {
                rejected++;
                lat[nlat++] = t;
            } else if (code == 202) {
                pending++;
            } else {
                char c[16];
                snprintf(c, sizeof(c), "%ld", code);
                json_int_t was = json_integer_value(json_object_get(errs, c));
                json_object_set_new(errs, c, json_integer(was + 1));
            }
            curl_multi_remove_handle(m, h);
            curl_easy_cleanup(h);
            curl_slist_free_all(r->hdr);
            free(r->resp);
            free(r->body);
            r->body = r->resp = NULL;
            done++;
        }
        /* wake for the next due request or an answer */
        double next =
            sent < total ? t_start + (double)sent * 1000.0 / rate - bk_mono_msf() : 50.0;
        int wait = next < 0 ? 0 : next > 50 ? 50 : (int)next;
        curl_multi_poll(m, NULL, 0, wait, NULL);
    }
    double elapsed = bk_mono_msf() - t_start;
    qsort(lat, (size_t)nlat, sizeof(double), cmp_double);
    json_t *sum = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:f, s:f, s:{s:f, s:f, s:f, s:f}}",
        "path", "gateway", "clients", (json_int_t)k, "sent", (json_int_t)sent,
        "succeeded", (json_int_t)ok, "rejected", (json_int_t)rejected, "pending",
        (json_int_t)pending, "answered", (json_int_t)nlat, "http_errors", errs,
        "elapsed_s", elapsed / 1e3, "throughput_rps",
        elapsed > 0 ? (double)nlat * 1e3 / elapsed : 0.0, "latency_ms", "p50",
        pct(lat, (size_t)nlat, 0.50), "p90", pct(lat, (size_t)nlat, 0.90), "p99",
        pct(lat, (size_t)nlat, 0.99), "max", nlat ? lat[nlat - 1] : 0.0);
    json_dumpf(sum, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(sum);
    json_decref(errs);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    for (long i = 0; i < k; i++)
        bk_eth_key_clear(&cl[i].key);
    free(cl);
    free(rs);
    free(lat);
    return ok + rejected == total ? 0 : 1;
}
