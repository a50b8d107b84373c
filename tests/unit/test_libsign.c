/* test_libsign.c - libbr2k's public signing API (br2k.h) against known
 * answers: the canonical form and the signature `cast wallet sign` made
 * of the fixture request (fixtures/infodid/README.md, anvil's first key),
 * and the service's own check of signer and signature. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "br2k.h"
#include "check.h"

#define ANVIL_KEY "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define ANVIL_ADDR "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#define ANVIL_LOWER "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
#define PAYLOAD "{\"attrs\":{\"name\":\"Alice\",\"email\":\"alice@example.org\"}}"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *p = calloc(1, 65536);
    size_t n = p ? fread(p, 1, 65535, f) : 0;
    fclose(f);
    while (p != NULL && n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
        p[--n] = '\0';
    return p;
}

int main(void) {
    char *want_canon = slurp("fixtures/infodid/register.canonical");
    char *want_json = slurp("fixtures/infodid/register.json");
    CHECK(want_canon != NULL && want_json != NULL, "fixtures");
    br2k_error err = {0, ""};
    char *canon = NULL, *req = NULL, addr[43];

    /* the canonical form, byte for byte what cast signed */
    CHECK_INT(br2k_request_canonical("fixture", 1, "register", PAYLOAD, 1700000000000ULL,
                                     ANVIL_LOWER, &canon, &err),
              BR2K_OK);
    CHECK_STR(canon, want_canon);
    free(canon);
    /* a checksummed signer names the same address (written lowercase) */
    CHECK_INT(br2k_request_canonical("fixture", 1, "register", PAYLOAD, 1700000000000ULL,
                                     ANVIL_ADDR, &canon, &err),
              BR2K_OK);
    CHECK_STR(canon, want_canon);
    free(canon);

    /* signing: deterministic (RFC 6979), the same bytes as the fixture */
    CHECK_INT(br2k_request_sign(ANVIL_KEY, "fixture", 1, "register", PAYLOAD,
                                1700000000000ULL, &req, &err),
              BR2K_OK);
    CHECK(req != NULL && strstr(want_json, "\"sig\":") != NULL, "signed");
    char *sig = req ? strstr(req, "\"sig\":\"") : NULL;
    char *wsig = strstr(want_json, "\"sig\":\"");
    CHECK(sig != NULL && wsig != NULL && strncmp(sig, wsig, 7 + 132) == 0,
          "signature %.140s, want %.140s", sig ? sig : "", wsig ? wsig : "");
    CHECK_INT(br2k_request_verify(req, strlen(req), addr, &err), BR2K_OK);
    CHECK_STR(addr, ANVIL_ADDR);
    CHECK_INT(br2k_request_verify(want_json, strlen(want_json), addr, &err), BR2K_OK);

    /* a tampered request recovers another address than its signer */
    char *bad = strdup(req);
    char *p = strstr(bad, "Alice");
    p[0] = 'M';
    CHECK_INT(br2k_request_verify(bad, strlen(bad), addr, &err), BR2K_ERR);
    CHECK_INT(err.code, BR2K_E_INVAL);
    CHECK(strncmp(err.msg, "signer_mismatch: ", 17) == 0, "message '%s'", err.msg);
    free(bad);

    /* bad input: one clear error each */
    CHECK_INT(
        br2k_request_sign("0x12", "fixture", 1, "register", PAYLOAD, 1, &canon, &err),
        BR2K_ERR);
    CHECK_INT(err.code, BR2K_E_INVAL);
    CHECK_INT(
        br2k_request_sign(ANVIL_KEY, "fixture", 1, "register", "[1]", 1, &canon, &err),
        BR2K_ERR);
    CHECK(strstr(err.msg, "payload is not a json object") != NULL, "message '%s'",
          err.msg);
    CHECK_INT(
        br2k_request_sign(ANVIL_KEY, "bad client!", 1, "register", "{}", 1, &canon, &err),
        BR2K_ERR);
    CHECK(strstr(err.msg, "invalid client id") != NULL, "message '%s'", err.msg);
    CHECK_INT(br2k_request_canonical("c", 1, "op", "{}", 1, "0x1234", &canon, &err),
              BR2K_ERR);
    CHECK_INT(br2k_request_verify("{", 1, addr, &err), BR2K_ERR);
    CHECK(strncmp(err.msg, "malformed_json", 14) == 0, "message '%s'", err.msg);

    free(req);
    free(want_canon);
    free(want_json);
    return check_done();
}
