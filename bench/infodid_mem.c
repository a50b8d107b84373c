/* infodid_mem.c - br2k-bench-infodid-mem APP_DIR: what InfoDID's state in
 * APP_DIR (a stopped worker's STATE_DIR/app) costs in memory once open:
 * the live heap it takes (mallinfo2, before and after the open), and,
 * table by table, the bytes per entry: the allocations of each record
 * (malloc_usable_size) plus its share of the table's slots, against its
 * encoded size in the snapshot. The request-id table's bytes per entry
 * is its growth per request while the request-id window is not full.
 *
 * br2k-bench-infodid-mem --window W --ids N: the request-id table alone,
 * N request ids (results like InfoDID's `register`) committed one per
 * record through the window of W records, the live heap printed every N/10
 * ids: it grows by the bytes per id up to W ids, then stays flat.
 * Prints figures; asserts nothing (bench/README.md). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "infodid_int.h"

static size_t used(const void *p) {
    return p != NULL ? malloc_usable_size((void *)p) : 0;
}

static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f != NULL)
        fclose(f);
    return v;
}

static size_t live_heap(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* --window W --ids N (the header comment). */
static int window_run(long long window, long long n) {
    idd_state st;
    idd_state_init(&st);
    st.window = window;
    size_t h0 = live_heap();
    double t0 = bk_mono_msf();
    long long step = n / 10 > 0 ? n / 10 : 1;
    printf("request-id table, window %lld records, %lld ids (one per record)\n", window,
           n);
    for (long long i = 0; i < n; i++) {
        id_rec *r = calloc(1, sizeof(*r));
        char key[64], res[320];
        snprintf(key, sizeof(key), "client-%lld:%lld", i % 64, i / 64);
        snprintf(res, sizeof(res),
                 "{\"data\":{\"active\":%lld,\"controller\":"
                 "\"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\",\"did\":"
                 "\"did:br2k:0x%040lld\"},\"id\":\"%s\",\"offset\":%lld,\"op\":"
                 "\"register\",\"repeat\":false,\"status\":\"ok\",\"v\":1}",
                 i + 1, i, key, i);
        bk_err e;
        if (r == NULL || (r->key = strdup(key)) == NULL ||
            (r->result = strdup(res)) == NULL ||
            idd_state_commit(&st, i, r, NULL, &e) != BK_OK) {
            fprintf(stderr, "cannot commit id %lld\n", i);
            return 1;
        }
        if ((i + 1) % step == 0 || i + 1 == n) {
            malloc_trim(0);
            size_t h = live_heap() - h0;
            printf(
                "  after %9lld ids: %9zu kept, %5zu clients with dropped ids, live heap "
                "%7.1f MiB (%.0f bytes per kept id), VmRSS %ld MiB\n",
                i + 1, st.ids.n, st.seqs.n, (double)h / 1048576.0,
                (double)h / (double)(st.ids.n ? st.ids.n : 1), status_kb("VmRSS") / 1024);
        }
    }
    printf("  %.0f ns per id (commit and drop)\n",
           (bk_mono_msf() - t0) * 1e6 / (double)n);
    idd_state_release(&st);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--window") == 0 && strcmp(argv[3], "--ids") == 0) {
        char *e1 = NULL, *e2 = NULL;
        long long w = strtoll(argv[2], &e1, 10), n = strtoll(argv[4], &e2, 10);
        if (*e1 != '\0' || *e2 != '\0' || w < 0 || n < 1) {
            fprintf(stderr,
                    "br2k-bench-infodid-mem: --window takes a number >= 0 and --ids "
                    "a number >= 1\n");
            return 2;
        }
        return window_run(w, n);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: br2k-bench-infodid-mem APP_DIR (a stopped worker's "
                        "STATE_DIR/app)\n"
                        "       br2k-bench-infodid-mem --window W --ids N\n");
        return 2;
    }
    const br2k_app_plugin *p = br2k_infodid_entry();
    struct mallinfo2 m0 = mallinfo2();
    br2k_app *a = NULL;
    int64_t lpi = -1;
    br2k_app_error pe;
    double t0 = bk_mono_msf();
    if (p->open(argv[1], &a, &lpi, &pe) != BR2K_APP_OK) {
        fprintf(stderr, "cannot open '%s': %s\n", argv[1], pe.msg);
        return 1;
    }
    double open_ms = bk_mono_msf() - t0;
    malloc_trim(0);
    struct mallinfo2 m1 = mallinfo2();
    size_t heap = (m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd);

    const idd_map *ids = &a->st.ids, *dids = &a->st.dids;
    size_t id_heap = 0, id_enc = 0, id_key = 0, id_res = 0;
    for (size_t i = 0; i < ids->cap; i++) {
        const id_rec *r = ids->s[i].v;
        if (r == NULL)
            continue;
        /* a decoded record holds its key and result in its own block */
        id_heap += used(r) + (r->one_block ? 0 : used(r->key) + used(r->result));
        id_key += strlen(r->key);
        id_res += strlen(r->result);
        id_enc += 4 + strlen(r->key) + 32 + 4 + strlen(r->result);
    }
    size_t did_heap = 0, did_enc = 0;
    for (size_t i = 0; i < dids->cap; i++) {
        const did_rec *d = dids->s[i].v;
        if (d == NULL)
            continue;
        did_heap += used(d) + (d->one_block ? 0 : used(d->key) + used(d->attrs));
        did_enc += 4 + strlen(d->key) + 20 + 1 + 32 + 4;
        for (uint32_t k = 0; k < d->nattrs; k++) {
            /* a decoded record's strings are in its own block */
            if (!d->one_block)
                did_heap += used(d->attrs[k].k) + used(d->attrs[k].v);
            did_enc += 8 + strlen(d->attrs[k].k) + strlen(d->attrs[k].v);
        }
    }
    size_t n_id = ids->n ? ids->n : 1, n_did = dids->n ? dids->n : 1;
    printf("state '%s': LPI %lld, %zu DIDs, %zu request ids; opened in %.0f ms\n",
           argv[1], (long long)lpi, dids->n, ids->n, open_ms);
    printf("live heap of the open state: %.1f MiB (%.0f bytes per request id)\n",
           (double)heap / 1048576.0, (double)heap / (double)n_id);
    printf(
        "request-id table: %.0f bytes per id in memory (records %.0f + slots %.0f: %zu "
        "slots of 16 bytes); encoded %.0f; key %.0f chars, result %.0f chars\n",
        (double)(id_heap + ids->cap * sizeof(idd_slot)) / (double)n_id,
        (double)id_heap / (double)n_id,
        (double)(ids->cap * sizeof(idd_slot)) / (double)n_id, ids->cap,
        (double)id_enc / (double)n_id, (double)id_key / (double)n_id,
        (double)id_res / (double)n_id);
    printf("DID table: %.0f bytes per DID in memory (records %.0f + slots %.0f); encoded "
           "%.0f\n",
           (double)(did_heap + dids->cap * sizeof(idd_slot)) / (double)n_did,
           (double)did_heap / (double)n_did,
           (double)(dids->cap * sizeof(idd_slot)) / (double)n_did,
           (double)did_enc / (double)n_did);
    printf("this process: VmRSS %ld MiB, VmHWM %ld MiB\n", status_kb("VmRSS") / 1024,
           status_kb("VmHWM") / 1024);
    p->close(a);
    return 0;
}
