/* jsonrpc.c - Ethereum JSON-RPC: pure reply parsing, and a libcurl client
 * that fails over between URLs. */
#include "chain/jsonrpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "base/log.h"

struct bk_rpc {
    char *urls[BK_RPC_MAX_URLS];
    size_t n;
    size_t cur; /* the URL tried first */
    long timeout_ms;
    long long next_id;
    CURL *curl;
    bk_rpc_reply last; /* the last error object */
    int has_last;
};

/* ---- pure parsing ---- */

void bk_rpc_reply_release(bk_rpc_reply *r) {
    json_decref(r->result);
    json_decref(r->err_data);
    r->result = NULL;
    r->err_data = NULL;
}

int bk_rpc_parse_reply(const char *buf, size_t len, long long want_id, bk_rpc_reply *r,
                       bk_err *e) {
    memset(r, 0, sizeof *r);
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_ALLOW_NUL,
                           &je); /* anvil puts raw revert bytes in messages */
    if (j == NULL)
        return bk_err_set(e, BK_E_PROTO, "rpc reply: bad JSON at line %d column %d: %s",
                          je.line, je.column, je.text);
    int rc = BK_ERR;
    if (!json_is_object(j)) {
        bk_err_set(e, BK_E_PROTO, "rpc reply: not a JSON object");
        goto out;
    }
    const char *ver = json_string_value(json_object_get(j, "jsonrpc"));
    if (ver == NULL || strcmp(ver, "2.0") != 0) {
        bk_err_set(e, BK_E_PROTO, "rpc reply: missing \"jsonrpc\": \"2.0\"");
        goto out;
    }
    json_t *id = json_object_get(j, "id");
    if (!json_is_integer(id) || json_integer_value(id) != want_id) {
        bk_err_set(e, BK_E_PROTO, "rpc reply: id is not %lld", want_id);
        goto out;
    }
    json_t *res = json_object_get(j, "result");
    json_t *err = json_object_get(j, "error");
    if ((res == NULL) == (err == NULL)) {
        bk_err_set(e, BK_E_PROTO, "rpc reply: %s",
                   res == NULL ? "no result and no error" : "both result and error");
        goto out;
    }
    if (res != NULL) {
        r->result = json_incref(res);
        rc = BK_OK;
        goto out;
    }
    json_t *code = json_object_get(err, "code");
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (!json_is_object(err) || !json_is_integer(code) || msg == NULL) {
        bk_err_set(e, BK_E_PROTO, "rpc reply: malformed error object");
        goto out;
    }
    r->is_error = 1;
    r->err_code = json_integer_value(code);
    /* Keep the message one printable line: anvil embeds raw revert bytes. */
    size_t mlen = json_string_length(json_object_get(err, "message")), o = 0;
    for (size_t i = 0; i < mlen && o + 1 < sizeof r->err_message; i++) {
        unsigned char ch = (unsigned char)msg[i];
        if (ch == 0 && i + 1 < mlen && msg[i + 1] == 0)
            continue; /* collapse runs of NUL */
        r->err_message[o++] = (ch >= 0x20 && ch != 0x7f) ? (char)ch : '?';
    }
    r->err_message[o] = '\0';
    json_t *data = json_object_get(err, "data");
    r->err_data = data != NULL ? json_incref(data) : NULL;
    rc = BK_OK;
out:
    json_decref(j);
    return rc;
}

/* Check "0x" + hex digits (at least one); returns the digits or NULL. */
static const char *qty_digits(const json_t *j, bk_err *e) {
    const char *s = json_string_value(j);
    if (s == NULL) {
        bk_err_set(e, BK_E_PROTO, "rpc: quantity is not a string");
        return NULL;
    }
    if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || s[2] == '\0') {
        bk_err_set(e, BK_E_PROTO, "rpc: bad quantity '%.40s'", s);
        return NULL;
    }
    for (const char *p = s + 2; *p != '\0'; p++) {
        if (bk_hex_digit((unsigned char)*p) < 0) {
            bk_err_set(e, BK_E_PROTO, "rpc: bad quantity '%.40s'", s);
            return NULL;
        }
    }
    return s + 2;
}

int bk_rpc_parse_qty(const json_t *j, uint64_t *v, bk_err *e) {
    const char *d = qty_digits(j, e);
    if (d == NULL)
        return BK_ERR;
    while (d[0] == '0' && d[1] != '\0')
        d++;
    if (strlen(d) > 16)
        return bk_err_set(e, BK_E_PROTO, "rpc: quantity 0x%.40s exceeds 64 bits", d);
    uint64_t x = 0;
    for (; *d != '\0'; d++)
        x = x << 4 | (uint64_t)bk_hex_digit((unsigned char)*d);
    *v = x;
    return BK_OK;
}

int bk_rpc_parse_qty256(const json_t *j, uint8_t out[32], bk_err *e) {
    const char *d = qty_digits(j, e);
    if (d == NULL)
        return BK_ERR;
    while (d[0] == '0' && d[1] != '\0')
        d++;
    size_t n = strlen(d);
    if (n > 64)
        return bk_err_set(e, BK_E_PROTO, "rpc: quantity exceeds 256 bits");
    memset(out, 0, 32);
    for (size_t i = 0; i < n; i++) {
        int v = bk_hex_digit((unsigned char)d[n - 1 - i]);
        out[31 - i / 2] |= (uint8_t)(i % 2 ? v << 4 : v);
    }
    return BK_OK;
}

int bk_rpc_parse_data(const json_t *j, uint8_t **out, size_t *len, bk_err *e) {
    const char *s = json_string_value(j);
    *out = NULL;
    *len = 0;
    if (s == NULL)
        return bk_err_set(e, BK_E_PROTO, "rpc: data is not a string");
    if (s[0] != '0' || s[1] != 'x')
        return bk_err_set(e, BK_E_PROTO, "rpc: data does not start with 0x");
    bk_err he;
    if (bk_hex_decode_alloc(s, out, len, &he) != BK_OK)
        return bk_err_set(e, BK_E_PROTO, "rpc data: %s", he.msg);
    return BK_OK;
}

/* Fixed-size hex data (an address, a hash). */
static int parse_fixed(const json_t *j, uint8_t *out, size_t n, const char *what,
                       bk_err *e) {
    const char *s = json_string_value(j);
    if (s == NULL || bk_hex_decode_exact(s, out, n, NULL) != BK_OK)
        return bk_err_set(e, BK_E_PROTO, "rpc: bad %s", what);
    return BK_OK;
}

/* ---- transport ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

bk_rpc *bk_rpc_new(const char *const *urls, size_t n, long timeout_ms, bk_err *e) {
    if (n == 0 || n > BK_RPC_MAX_URLS) {
        bk_err_set(e, BK_E_INVAL, "rpc: %zu URLs (want 1 to %d)", n, BK_RPC_MAX_URLS);
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    bk_rpc *c = calloc(1, sizeof *c);
    if (c == NULL) {
        bk_err_set(e, BK_E_NOMEM, "rpc: out of memory");
        return NULL;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    c->next_id = 1;
    for (size_t i = 0; i < n; i++) {
        if (urls[i] == NULL || urls[i][0] == '\0') {
            bk_err_set(e, BK_E_INVAL, "rpc: URL %zu is empty", i + 1);
            bk_rpc_free(c);
            return NULL;
        }
        c->urls[i] = strdup(urls[i]);
        if (c->urls[i] == NULL) {
            bk_err_set(e, BK_E_NOMEM, "rpc: out of memory");
            bk_rpc_free(c);
            return NULL;
        }
        c->n = i + 1;
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        bk_err_set(e, BK_E_NOMEM, "rpc: cannot create a curl handle");
        bk_rpc_free(c);
        return NULL;
    }
    return c;
}

bk_rpc *bk_rpc_new_list(const char *csv, long timeout_ms, bk_err *e) {
    if (csv == NULL) {
        bk_err_set(e, BK_E_INVAL, "rpc: no URL list");
        return NULL;
    }
    char *copy = strdup(csv);
    if (copy == NULL) {
        bk_err_set(e, BK_E_NOMEM, "rpc: out of memory");
        return NULL;
    }
    const char *urls[BK_RPC_MAX_URLS];
    size_t n = 0;
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*p == ' ')
            p++;
        size_t l = strlen(p);
        while (l > 0 && p[l - 1] == ' ')
            p[--l] = '\0';
        if (n == BK_RPC_MAX_URLS) {
            free(copy);
            bk_err_set(e, BK_E_INVAL, "rpc: more than %d URLs", BK_RPC_MAX_URLS);
            return NULL;
        }
        urls[n++] = p;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    bk_rpc *c = bk_rpc_new(urls, n, timeout_ms, e);
    free(copy);
    return c;
}

void bk_rpc_free(bk_rpc *c) {
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->urls[i]);
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    bk_rpc_reply_release(&c->last);
    free(c);
}

const char *bk_rpc_current_url(const bk_rpc *c) {
    return c->urls[c->cur];
}

const bk_rpc_reply *bk_rpc_last_error(const bk_rpc *c) {
    return c->has_last ? &c->last : NULL;
}

typedef struct body {
    char *p;
    size_t len, cap;
    int too_big;
} body;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
    body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > BK_RPC_MAX_REPLY) {
        b->too_big = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, ptr, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* POST req to one URL and parse the reply. BK_OK: a reply (result or
 * error object) in *r. BK_ERR: a transport or protocol failure. */
static int post_one(bk_rpc *c, const char *url, const char *req, long long id,
                    bk_rpc_reply *r, bk_err *e) {
    body b = {0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (hdr == NULL)
        return bk_err_set(e, BK_E_NOMEM, "rpc: out of memory");
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    int rc = BK_ERR;
    long status = 0;
    if (cc != CURLE_OK) {
        if (b.too_big)
            bk_err_set(e, BK_E_PROTO, "rpc '%s': reply larger than %u bytes", url,
                       BK_RPC_MAX_REPLY);
        else
            bk_err_set(e, cc == CURLE_OPERATION_TIMEDOUT ? BK_E_TIMEOUT : BK_E_IO,
                       "rpc '%s': %s", url, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        bk_err_set(e, BK_E_IO, "rpc '%s': HTTP status %ld", url, status);
        goto out;
    }
    if (bk_rpc_parse_reply(b.p ? b.p : "", b.len, id, r, e) != BK_OK) {
        bk_err_prefix(e, "rpc '%s'", url);
        goto out;
    }
    rc = BK_OK;
out:
    free(b.p);
    return rc;
}

int bk_rpc_call(bk_rpc *c, const char *method, json_t *params, json_t **result,
                bk_err *e) {
    *result = NULL;
    bk_rpc_reply_release(&c->last);
    c->has_last = 0;
    if (params == NULL)
        params = json_array();
    long long id = c->next_id++;
    json_t *req = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id",
                            (json_int_t)id, "method", method, "params", params);
    params = NULL; /* stolen by json_pack, also on failure */
    char *text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "%s: cannot build the request", method);
    int rc = BK_ERR;
    for (size_t k = 0; k < c->n; k++) {
        size_t i = (c->cur + k) % c->n;
        bk_rpc_reply r;
        bk_err te;
        if (post_one(c, c->urls[i], text, id, &r, &te) != BK_OK) {
            BK_WARN("%s: %s", method, te.msg);
            if (e != NULL)
                *e = te;
            bk_err_prefix(e, "%s", method);
            continue;
        }
        c->cur = i;
        if (r.is_error) {
            c->last = r;
            c->has_last = 1;
            rc = bk_err_set(e, BK_E_REMOTE, "%s: rpc error %lld: %s", method, r.err_code,
                            r.err_message);
        } else {
            *result = r.result;
            rc = BK_OK;
        }
        break;
    }
    free(text);
    return rc;
}

int bk_rpc_last_revert(const bk_rpc *c, uint8_t **out, size_t *len, bk_err *e) {
    *out = NULL;
    *len = 0;
    const json_t *d = c->has_last ? c->last.err_data : NULL;
    if (json_is_object(d))
        d = json_object_get(d, "data");
    if (!json_is_string(d))
        return bk_err_set(e, BK_E_NOTFOUND, "rpc: the error carries no revert data");
    return bk_rpc_parse_data(d, out, len, e);
}

/* ---- typed helpers ---- */

static json_t *hex_str(const uint8_t *p, size_t n) {
    char *s = bk_hex_encode_alloc(p, n, 1);
    if (s == NULL)
        return NULL;
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* Call and parse a quantity result. */
static int call_qty(bk_rpc *c, const char *method, json_t *params, uint64_t *v,
                    bk_err *e) {
    json_t *res;
    if (bk_rpc_call(c, method, params, &res, e) != BK_OK)
        return BK_ERR;
    int rc = bk_rpc_parse_qty(res, v, e);
    json_decref(res);
    if (rc != BK_OK)
        return bk_err_prefix(e, "%s", method);
    return BK_OK;
}

int bk_rpc_chain_id(bk_rpc *c, uint64_t *id, bk_err *e) {
    return call_qty(c, "eth_chainId", NULL, id, e);
}

int bk_rpc_block_number(bk_rpc *c, uint64_t *n, bk_err *e) {
    return call_qty(c, "eth_blockNumber", NULL, n, e);
}

int bk_rpc_nonce(bk_rpc *c, const uint8_t addr[20], uint64_t *nonce, bk_err *e) {
    return call_qty(c, "eth_getTransactionCount",
                    json_pack("[o,s]", hex_str(addr, 20), "pending"), nonce, e);
}

int bk_rpc_balance(bk_rpc *c, const uint8_t addr[20], uint8_t wei[32], bk_err *e) {
    json_t *res;
    if (bk_rpc_call(c, "eth_getBalance", json_pack("[o,s]", hex_str(addr, 20), "latest"),
                    &res, e) != BK_OK)
        return BK_ERR;
    int rc = bk_rpc_parse_qty256(res, wei, e);
    json_decref(res);
    return rc;
}

/* The transaction object of eth_call / eth_estimateGas. */
static json_t *msg_json(const bk_rpc_msg *m) {
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (m->from != NULL)
        json_object_set_new(o, "from", hex_str(m->from, 20));
    if (m->to != NULL)
        json_object_set_new(o, "to", hex_str(m->to, 20));
    if (m->value != NULL) {
        size_t k = 0;
        while (k < 31 && m->value[k] == 0)
            k++;
        char hx[70];
        bk_hex_encode(m->value + k, 32 - k, 0, hx);
        const char *p = hx;
        while (p[0] == '0' && p[1] != '\0')
            p++;
        char q[72];
        snprintf(q, sizeof q, "0x%s", p);
        json_object_set_new(o, "value", json_string(q));
    }
    json_object_set_new(o, "input", hex_str(m->data, m->data_len));
    return o;
}

int bk_rpc_estimate_gas(bk_rpc *c, const bk_rpc_msg *m, uint64_t *gas, bk_err *e) {
    return call_qty(c, "eth_estimateGas", json_pack("[o]", msg_json(m)), gas, e);
}

int bk_rpc_base_fee(bk_rpc *c, uint64_t *fee, bk_err *e) {
    json_t *res;
    if (bk_rpc_call(c, "eth_getBlockByNumber", json_pack("[s,b]", "latest", 0), &res,
                    e) != BK_OK)
        return BK_ERR;
    int rc = BK_OK;
    json_t *bf = json_is_object(res) ? json_object_get(res, "baseFeePerGas") : NULL;
    if (!json_is_object(res))
        rc = bk_err_set(e, BK_E_PROTO, "eth_getBlockByNumber: no latest block");
    else if (bf == NULL)
        *fee = 0;
    else if (bk_rpc_parse_qty(bf, fee, e) != BK_OK)
        rc = bk_err_prefix(e, "eth_getBlockByNumber baseFeePerGas");
    json_decref(res);
    return rc;
}

/* The median reward of the latest block, from eth_feeHistory. */
static int fee_history_reward(bk_rpc *c, uint64_t *fee, bk_err *e) {
    json_t *res;
    if (bk_rpc_call(c, "eth_feeHistory", json_pack("[s,s,[i]]", "0x1", "latest", 50),
                    &res, e) != BK_OK)
        return BK_ERR;
    json_t *reward = json_is_object(res) ? json_object_get(res, "reward") : NULL;
    json_t *first = json_array_get(json_array_get(reward, 0), 0);
    int rc = bk_rpc_parse_qty(first, fee, e);
    json_decref(res);
    if (rc != BK_OK)
        return bk_err_prefix(e, "eth_feeHistory reward");
    return BK_OK;
}

int bk_rpc_priority_fee(bk_rpc *c, uint64_t *fee, bk_err *e) {
    bk_err e1;
    if (call_qty(c, "eth_maxPriorityFeePerGas", NULL, fee, &e1) == BK_OK)
        return BK_OK;
    BK_DEBUG("%s; trying eth_feeHistory", e1.msg);
    if (fee_history_reward(c, fee, &e1) == BK_OK)
        return BK_OK;
    BK_DEBUG("%s; trying eth_gasPrice", e1.msg);
    uint64_t price = 0, base = 0;
    if (call_qty(c, "eth_gasPrice", NULL, &price, e) != BK_OK ||
        bk_rpc_base_fee(c, &base, e) != BK_OK)
        return BK_ERR;
    *fee = price > base ? price - base : 0;
    return BK_OK;
}

int bk_rpc_send_raw(bk_rpc *c, const uint8_t *raw, size_t len, uint8_t hash[32],
                    bk_err *e) {
    json_t *res;
    if (bk_rpc_call(c, "eth_sendRawTransaction", json_pack("[o]", hex_str(raw, len)),
                    &res, e) != BK_OK)
        return BK_ERR;
    int rc = BK_OK;
    if (hash != NULL)
        rc = parse_fixed(res, hash, 32, "transaction hash", e);
    json_decref(res);
    if (rc != BK_OK)
        return bk_err_prefix(e, "eth_sendRawTransaction");
    return BK_OK;
}

int bk_rpc_parse_receipt(const json_t *j, bk_eth_receipt *r, bk_err *e) {
    memset(r, 0, sizeof *r);
    if (!json_is_object(j))
        return bk_err_set(e, BK_E_PROTO, "receipt: not an object");
    uint64_t status = 0;
    if (bk_rpc_parse_qty(json_object_get(j, "status"), &status, e) != BK_OK ||
        bk_rpc_parse_qty(json_object_get(j, "blockNumber"), &r->block_number, e) !=
            BK_OK ||
        bk_rpc_parse_qty(json_object_get(j, "gasUsed"), &r->gas_used, e) != BK_OK ||
        parse_fixed(json_object_get(j, "transactionHash"), r->tx_hash, 32,
                    "transactionHash", e) != BK_OK)
        return bk_err_prefix(e, "receipt");
    if (status > 1)
        return bk_err_set(e, BK_E_PROTO, "receipt: status %llu",
                          (unsigned long long)status);
    r->status = (int)status;
    json_t *egp = json_object_get(j, "effectiveGasPrice");
    if (egp != NULL && bk_rpc_parse_qty(egp, &r->effective_gas_price, e) != BK_OK)
        return bk_err_prefix(e, "receipt effectiveGasPrice");
    json_t *ca = json_object_get(j, "contractAddress");
    if (json_is_string(ca)) {
        if (parse_fixed(ca, r->contract_address, 20, "contractAddress", e) != BK_OK)
            return bk_err_prefix(e, "receipt");
        r->has_contract = 1;
    }
    return BK_OK;
}

int bk_rpc_receipt(bk_rpc *c, const uint8_t hash[32], int *found, bk_eth_receipt *r,
                   bk_err *e) {
    *found = 0;
    json_t *res;
    if (bk_rpc_call(c, "eth_getTransactionReceipt", json_pack("[o]", hex_str(hash, 32)),
                    &res, e) != BK_OK)
        return BK_ERR;
    int rc = BK_OK;
    if (!json_is_null(res)) {
        rc = bk_rpc_parse_receipt(res, r, e);
        *found = rc == BK_OK;
    }
    json_decref(res);
    return rc;
}

int bk_rpc_call_contract(bk_rpc *c, const bk_rpc_msg *m, const char *block, uint8_t **out,
                         size_t *out_len, uint8_t **revert, size_t *revert_len,
                         bk_err *e) {
    *out = NULL;
    *out_len = 0;
    if (revert != NULL) {
        *revert = NULL;
        *revert_len = 0;
    }
    json_t *res;
    if (bk_rpc_call(c, "eth_call",
                    json_pack("[o,s]", msg_json(m), block != NULL ? block : "latest"),
                    &res, e) != BK_OK) {
        if (revert != NULL && e != NULL && e->code == BK_E_REMOTE)
            bk_rpc_last_revert(c, revert, revert_len, NULL);
        return BK_ERR;
    }
    int rc = bk_rpc_parse_data(res, out, out_len, e);
    json_decref(res);
    if (rc != BK_OK)
        return bk_err_prefix(e, "eth_call");
    return BK_OK;
}

int bk_rpc_get_code(bk_rpc *c, const uint8_t addr[20], uint8_t **code, size_t *len,
                    bk_err *e) {
    *code = NULL;
    *len = 0;
    json_t *res;
    if (bk_rpc_call(c, "eth_getCode", json_pack("[o,s]", hex_str(addr, 20), "latest"),
                    &res, e) != BK_OK)
        return BK_ERR;
    int rc = bk_rpc_parse_data(res, code, len, e);
    json_decref(res);
    if (rc != BK_OK)
        return bk_err_prefix(e, "eth_getCode");
    return BK_OK;
}

static json_t *block_tag(uint64_t n) {
    if (n == UINT64_MAX)
        return json_string("latest");
    char b[24];
    snprintf(b, sizeof b, "0x%llx", (unsigned long long)n);
    return json_string(b);
}

int bk_rpc_get_logs(bk_rpc *c, const uint8_t *address, const uint8_t *topic0,
                    uint64_t from_block, uint64_t to_block, json_t **logs, bk_err *e) {
    *logs = NULL;
    json_t *f = json_object();
    if (f == NULL)
        return bk_err_set(e, BK_E_NOMEM, "eth_getLogs: out of memory");
    json_object_set_new(f, "fromBlock", block_tag(from_block));
    json_object_set_new(f, "toBlock", block_tag(to_block));
    if (address != NULL)
        json_object_set_new(f, "address", hex_str(address, 20));
    if (topic0 != NULL)
        json_object_set_new(f, "topics", json_pack("[o]", hex_str(topic0, 32)));
    json_t *res;
    if (bk_rpc_call(c, "eth_getLogs", json_pack("[o]", f), &res, e) != BK_OK)
        return BK_ERR;
    if (!json_is_array(res)) {
        json_decref(res);
        return bk_err_set(e, BK_E_PROTO, "eth_getLogs: result is not an array");
    }
    *logs = res;
    return BK_OK;
}

void bk_eth_log_release(bk_eth_log *l) {
    free(l->data);
    l->data = NULL;
}

int bk_rpc_parse_log(const json_t *j, bk_eth_log *l, bk_err *e) {
    memset(l, 0, sizeof *l);
    if (!json_is_object(j))
        return bk_err_set(e, BK_E_PROTO, "log: not an object");
    json_t *topics = json_object_get(j, "topics");
    if (!json_is_array(topics) || json_array_size(topics) > 4)
        return bk_err_set(e, BK_E_PROTO, "log: bad topics");
    if (parse_fixed(json_object_get(j, "address"), l->address, 20, "log address", e) !=
        BK_OK)
        return BK_ERR;
    for (size_t i = 0; i < json_array_size(topics); i++)
        if (parse_fixed(json_array_get(topics, i), l->topics[i], 32, "log topic", e) !=
            BK_OK)
            return BK_ERR;
    l->ntopics = json_array_size(topics);
    if (bk_rpc_parse_qty(json_object_get(j, "blockNumber"), &l->block_number, e) !=
            BK_OK ||
        bk_rpc_parse_qty(json_object_get(j, "logIndex"), &l->log_index, e) != BK_OK ||
        parse_fixed(json_object_get(j, "transactionHash"), l->tx_hash, 32,
                    "log transactionHash", e) != BK_OK)
        return bk_err_prefix(e, "log");
    l->removed = json_is_true(json_object_get(j, "removed"));
    if (bk_rpc_parse_data(json_object_get(j, "data"), &l->data, &l->data_len, e) != BK_OK)
        return bk_err_prefix(e, "log");
    return BK_OK;
}
