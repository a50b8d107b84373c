/* keys.c - every Redis key name and every Lua script of the service (see
 * keys.h): nothing else builds a key or holds a script. The operations on
 * the keys are in ops.c, the script loader in script.c. */
#include "redis/keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key names ---- */

static int name_ok(const char *s, size_t max, int dot) {
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || (dot && *p == '.')))
            return 0;
    return 1;
}

int bk_keys_check_service(const char *svc, bk_err *e) {
    if (svc == NULL || !name_ok(svc, 200, 0))
        return bk_err_set(e, BK_E_INVAL,
                          "invalid service name '%s': expected 1 to 200 letters, digits, "
                          "'-' or '_'",
                          svc ? svc : "");
    return BK_OK;
}

int bk_keys_check_id(const char *id, bk_err *e) {
    if (id == NULL || !name_ok(id, BK_ID_MAX, 1))
        return bk_err_set(
            e, BK_E_INVAL,
            "invalid worker id '%s': expected 1 to %d letters, digits, '-', "
            "'_' or '.'",
            id ? id : "", BK_ID_MAX);
    return BK_OK;
}

/* "br2k:{<svc>}:<name><arg>" */
static int key(char *buf, size_t size, const char *svc, const char *name, const char *arg,
               bk_err *e) {
    if (bk_keys_check_service(svc, e) != BK_OK)
        return BK_ERR;
    int n = snprintf(buf, size, "br2k:{%s}:%s%s", svc, name, arg ? arg : "");
    if (n < 0 || (size_t)n >= size)
        return bk_err_set(e, BK_E_INVAL, "key 'br2k:{%s}:%s' is too long", svc, name);
    return BK_OK;
}

static int key_id(char *buf, size_t size, const char *svc, const char *name,
                  const char *id, bk_err *e) {
    if (bk_keys_check_id(id, e) != BK_OK)
        return BK_ERR;
    return key(buf, size, svc, name, id, e);
}

int bk_key_sv(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "Service-State", NULL, e);
}
int bk_key_ssv(char *buf, size_t size, const char *svc, const char *id, bk_err *e) {
    return key_id(buf, size, svc, "State-", id, e);
}
int bk_key_ssi(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "SSI", NULL, e);
}
int bk_key_lpi(char *buf, size_t size, const char *svc, const char *id, bk_err *e) {
    return key_id(buf, size, svc, "LPI-", id, e);
}
int bk_key_backup(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "backup", NULL, e);
}
int bk_key_epoch(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "epoch", NULL, e);
}
int bk_key_leader(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "leader", NULL, e);
}
int bk_key_members(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "members", NULL, e);
}
int bk_key_alive(char *buf, size_t size, const char *svc, const char *id, bk_err *e) {
    return key_id(buf, size, svc, "alive-", id, e);
}
int bk_key_metrics(char *buf, size_t size, const char *svc, const char *id, bk_err *e) {
    return key_id(buf, size, svc, "metrics-", id, e);
}
int bk_key_result(char *buf, size_t size, const char *svc, const char *request_id,
                  bk_err *e) {
    if (request_id == NULL || *request_id == '\0' || strchr(request_id, '{') ||
        strchr(request_id, '}'))
        return bk_err_set(e, BK_E_INVAL, "invalid request id '%s'",
                          request_id ? request_id : "");
    return key(buf, size, svc, "result:", request_id, e);
}
int bk_key_results(char *buf, size_t size, char *field, size_t fsize, const char *svc,
                   const char *request_id, bk_err *e) {
    const char *colon = request_id != NULL ? strrchr(request_id, ':') : NULL;
    if (colon == NULL || colon == request_id || strchr(request_id, '{') ||
        strchr(request_id, '}'))
        return bk_err_set(e, BK_E_INVAL, "request id '%s' is not <client>:<seq>",
                          request_id ? request_id : "");
    const char *seq = colon + 1;
    size_t ns = strlen(seq);
    int digits = ns >= 1 && ns <= 20 && (seq[0] != '0' || ns == 1);
    for (size_t i = 0; digits && i < ns; i++)
        digits = seq[i] >= '0' && seq[i] <= '9';
    /* 20 digits: at most UINT64_MAX (compared as text, same length) */
    if (!digits || (ns == 20 && strcmp(seq, "18446744073709551615") > 0))
        return bk_err_set(e, BK_E_INVAL,
                          "request id '%s': the sequence is not a decimal 0 to 2^64-1",
                          request_id);
    uint64_t v = strtoull(seq, NULL, 10);
    char rest[BK_KEY_MAX];
    int n = snprintf(rest, sizeof(rest), "%.*s:%" PRIu64, (int)(colon - request_id),
                     request_id, v / BK_RESULTS_PER_HASH);
    if (n < 0 || (size_t)n >= sizeof(rest) || ns >= fsize)
        return bk_err_set(e, BK_E_INVAL, "request id '%.40s...' is too long", request_id);
    memcpy(field, seq, ns + 1);
    return key(buf, size, svc, "results:", rest, e);
}
int bk_key_result_at(char *buf, size_t size, const char *svc, const char *request_id,
                     int64_t offset, bk_err *e) {
    char k[BK_KEY_MAX];
    if (bk_key_result(k, sizeof(k), svc, request_id, e) != BK_OK)
        return BK_ERR;
    int n = snprintf(buf, size, "%s@%" PRId64, k, offset);
    if (n < 0 || (size_t)n >= size)
        return bk_err_set(e, BK_E_INVAL, "result key of '%s' at %" PRId64 " is too long",
                          request_id, offset);
    return BK_OK;
}
int bk_key_changes(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "changes", NULL, e);
}

/* ---- the registry channel and registryd ---- */

int bk_key_registry_queue(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "registry:queue", NULL, e);
}
int bk_key_registry_processing(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "registry:processing", NULL, e);
}
int bk_key_registry_reply(char *buf, size_t size, const char *svc, const char *req_id,
                          bk_err *e) {
    if (req_id == NULL) /* any id the caller chose: registryd answers every one */
        return bk_err_set(e, BK_E_INVAL, "no registry request id");
    return key(buf, size, svc, "registry:reply:", req_id, e);
}
int bk_key_registry_inflight(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "registry:inflight", NULL, e);
}
int bk_key_registry_endpoint(char *buf, size_t size, const char *svc, const char *id,
                             bk_err *e) {
    return key_id(buf, size, svc, "registry:endpoint:", id, e);
}

/* ---- the HTTP gateways (producer/gateway/) ---- */

int bk_key_gateway(char *buf, size_t size, const char *svc, const char *id, bk_err *e) {
    return key_id(buf, size, svc, "gateway-", id, e);
}
int bk_key_gateways(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "gateways", NULL, e);
}

/* ---- the applications' external state (and InfoDID's index) ---- */

int bk_ext_name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > BK_EXT_NAME_MAX || strcmp(name, "applied") == 0)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
              *p == ':'))
            return 0;
    return 1;
}

int bk_key_ext_prefix(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "ext:", NULL, e);
}
int bk_key_ext(char *buf, size_t size, const char *svc, const char *name, bk_err *e) {
    if (!bk_ext_name_ok(name))
        return bk_err_set(e, BK_E_INVAL,
                          "invalid external key name '%.140s': expected 1 to %d bytes of "
                          "A-Z a-z 0-9 . _ - : and not 'applied'",
                          name ? name : "", BK_EXT_NAME_MAX);
    return key(buf, size, svc, "ext:", name, e);
}
int bk_key_ext_applied(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "ext:applied", NULL, e);
}
int bk_key_ext_active(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "ext:active", NULL, e);
}
int bk_key_ext_did(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "ext:did", NULL, e);
}
int bk_key_ext_lost(char *buf, size_t size, const char *svc, bk_err *e) {
    return key(buf, size, svc, "ext-lost", NULL, e);
}

/* ---- backup keys ---- */

int bk_key_backup_aux(char *buf, size_t size, const char *svc, const char *name,
                      bk_err *e) {
    if (name == NULL || strncmp(name, "backup-", 7) != 0 || !name_ok(name, 32, 1))
        return bk_err_set(e, BK_E_INVAL, "invalid backup key name '%s'",
                          name ? name : "");
    return key(buf, size, svc, name, NULL, e);
}

/* ---- scripts (run by script.c; keys.h lists the KEYS and ARGV of each) ---- */

#define FENCE_CHECK                                                                      \
    "local cur = redis.call('GET', KEYS[1])\n"                                           \
    "if cur ~= ARGV[1] then\n"                                                           \
    "  return redis.error_reply('FENCED stale token ' .. ARGV[1] .. ', epoch is ' .. "   \
    "tostring(cur))\n"                                                                   \
    "end\n"

/* KEYS leader epoch ssi; ARGV id max_ssi lease_ms min_ssi min_epoch. The
 * new epoch is above both the current one and min_epoch (the highest
 * epoch the caller saw claimed in the log, I9). A lease held: -1 - its
 * PTTL in ms (the caller waits that long and takes it the moment it
 * expires); not caught up: 0. */
bk_script bk_lua_lease_take = BK_SCRIPT_INIT(
    "local ttl = redis.call('PTTL', KEYS[1])\n"
    "if ttl ~= -2 then return -1 - math.max(ttl, 0) end\n"
    "local ssi = tonumber(redis.call('GET', KEYS[3]) or '-1')\n"
    "if ssi < tonumber(ARGV[4]) or ssi > tonumber(ARGV[2]) then return 0 end\n"
    "local ep = redis.call('INCR', KEYS[2])\n"
    "if ep <= tonumber(ARGV[5]) then\n"
    "  ep = tonumber(ARGV[5]) + 1\n"
    "  redis.call('SET', KEYS[2], ep)\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ep, 'PX', ARGV[3])\n"
    "return ep\n");

/* KEYS epoch leader; ARGV token id lease_ms. A lease that
 * expired while nobody took it is ours again: no take happened, since a
 * take increments the epoch.. */
bk_script bk_lua_lease_renew = BK_SCRIPT_INIT(
    FENCE_CHECK "local want = ARGV[2] .. ' ' .. ARGV[1]\n"
                "local v = redis.call('GET', KEYS[2])\n"
                "if v and v ~= want then\n"
                "  return redis.error_reply('FENCED lease held by ' .. v)\n"
                "end\n"
                "redis.call('SET', KEYS[2], want, 'PX', ARGV[3])\n"
                "return 1\n");

/* KEYS leader; ARGV value. */
bk_script bk_lua_lease_release =
    BK_SCRIPT_INIT("if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                   "  return redis.call('DEL', KEYS[1])\n"
                   "end\n"
                   "return 0\n");

/* KEYS epoch ssi result...; ARGV token ssi ttl channel json.... */
bk_script bk_lua_commit = BK_SCRIPT_INIT(
    FENCE_CHECK "local ttl = tonumber(ARGV[3])\n"
                "for j = 1, (#KEYS - 2) / 2 do\n"
                "  local main, at = KEYS[1 + 2 * j], KEYS[2 + 2 * j]\n"
                "  local v, mode, f = ARGV[2 + 3 * j], ARGV[3 + 3 * j], ARGV[4 + 3 * j]\n"
                "  local done = false\n"
                "  if mode == 'h' then\n"
                "    done = redis.call('HSETNX', main, f, v) == 1\n"
                "    if done and ttl > 0 then\n"
                "      redis.call('EXPIRE', main, ttl)\n"
                "    end\n"
                "  elseif mode == 'p' then\n"
                "    if ttl > 0 then\n"
                "      done = redis.call('SET', main, v, 'NX', 'EX', ttl)\n"
                "    else\n"
                "      done = redis.call('SET', main, v, 'NX')\n"
                "    end\n"
                "  end\n"
                "  if not done then\n"
                "    if ttl > 0 then\n"
                "      redis.call('SET', at, v, 'EX', ttl)\n"
                "    else\n"
                "      redis.call('SET', at, v)\n"
                "    end\n"
                "  end\n"
                "end\n"
                "local s = tonumber(redis.call('GET', KEYS[2]) or '-1')\n"
                "local want = tonumber(ARGV[2])\n"
                "if want >= 0 and want > s then\n"
                "  redis.call('SET', KEYS[2], ARGV[2])\n"
                "  redis.call('PUBLISH', ARGV[4], ARGV[2])\n"
                "  s = want\n"
                "end\n"
                "return s\n");

/* KEYS epoch ssi ext-lost; ARGV token ssi floor channel (keys.h): SSI
 * below the floor the caller saw committed means that this server lost
 * writes (a stale replica promoted): ext-lost is marked in the same step
 * as the raise that would hide it. */
bk_script bk_lua_ssi_commit =
    BK_SCRIPT_INIT(FENCE_CHECK "local s = tonumber(redis.call('GET', KEYS[2]) or '-1')\n"
                               "if s < tonumber(ARGV[3]) then\n"
                               "  local m = redis.call('GET', KEYS[3])\n"
                               "  if not m or tonumber(m) > s then\n"
                               "    redis.call('SET', KEYS[3], string.format('%d', s))\n"
                               "  end\n"
                               "end\n"
                               "if tonumber(ARGV[2]) > s then\n"
                               "  redis.call('SET', KEYS[2], ARGV[2])\n"
                               "  redis.call('PUBLISH', ARGV[4], ARGV[2])\n"
                               "  s = tonumber(ARGV[2])\n"
                               "end\n"
                               "return s\n");

/* KEYS epoch target; ARGV token v. */
bk_script bk_lua_fenced_raise =
    BK_SCRIPT_INIT(FENCE_CHECK "local v = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
                               "if tonumber(ARGV[2]) > v then\n"
                               "  redis.call('SET', KEYS[2], ARGV[2])\n"
                               "  v = tonumber(ARGV[2])\n"
                               "end\n"
                               "return v\n");

/* KEYS target; ARGV v. */
bk_script bk_lua_raise =
    BK_SCRIPT_INIT("local v = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
                   "if tonumber(ARGV[1]) > v then\n"
                   "  redis.call('SET', KEYS[1], ARGV[1])\n"
                   "  v = tonumber(ARGV[1])\n"
                   "end\n"
                   "return v\n");

/* KEYS epoch backup aux; ARGV token mode expect to ttl_ms
 * channel aux_val. mode: '*' any current value, '-' none, '=' equal
 * to expect. to: '' deletes, '=' keeps the value. aux_val '': aux not
 * written (KEYS[3] is then a placeholder).. */
bk_script bk_lua_backup_step = BK_SCRIPT_INIT(
    FENCE_CHECK
    "local cur = redis.call('GET', KEYS[2])\n"
    "if ARGV[2] == '-' and cur then return 0 end\n"
    "if ARGV[2] == '=' and cur ~= ARGV[3] then return 0 end\n"
    "if ARGV[4] == '' then\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('PUBLISH', ARGV[6], 'backup-clear')\n"
    "elseif ARGV[4] ~= '=' then\n"
    "  if tonumber(ARGV[5]) > 0 then\n"
    "    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])\n"
    "  elseif ARGV[5] == '-1' then\n"
    "    redis.call('SET', KEYS[2], ARGV[4], 'KEEPTTL')\n"
    "  else\n"
    "    redis.call('SET', KEYS[2], ARGV[4])\n"
    "  end\n"
    "  redis.call('PUBLISH', ARGV[6], 'backup ' .. ARGV[4])\n"
    "end\n"
    "if ARGV[7] ~= '' then\n"
    "  redis.call('SET', KEYS[3], ARGV[7])\n"
    "  if ARGV[4] == '=' then redis.call('PUBLISH', ARGV[6], 'backup-aux') end\n"
    "end\n"
    "return 1\n");

/* KEYS members alive; ARGV id now_ms ttl_ms. */
bk_script bk_lua_heartbeat =
    BK_SCRIPT_INIT("redis.call('SADD', KEYS[1], ARGV[1])\n"
                   "redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n"
                   "return 1\n");

/* KEYS ssi ext-lost; ARGV v (keys.h). An SSI put back means that Redis
 * lost writes after the SSI it had, the external ones of those records
 * included (a commit writes them before it raises SSI): ext-lost keeps the
 * lowest such SSI until a leader republishes the external view. */
bk_script bk_lua_ssi_restore =
    BK_SCRIPT_INIT("local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')\n"
                   "local v = tonumber(ARGV[1])\n"
                   "if v > cur then\n"
                   "  redis.call('SET', KEYS[1], ARGV[1])\n"
                   "  local m = redis.call('GET', KEYS[2])\n"
                   "  if not m or tonumber(m) > cur then\n"
                   "    redis.call('SET', KEYS[2], string.format('%d', cur))\n"
                   "  end\n"
                   "  cur = v\n"
                   "end\n"
                   "return {cur, tonumber(redis.call('GET', KEYS[2]) or '-2')}\n");

/* KEYS epoch sv ssv last backup; ARGV token version cut channel. */
bk_script bk_lua_backup_finish = BK_SCRIPT_INIT(
    FENCE_CHECK "local v = tonumber(ARGV[2])\n"
                "for i = 2, 3 do\n"
                "  if v > tonumber(redis.call('GET', KEYS[i]) or '0') then\n"
                "    redis.call('SET', KEYS[i], ARGV[2])\n"
                "  end\n"
                "end\n"
                "local last = redis.call('GET', KEYS[4])\n"
                "if not last or v > tonumber(string.match(last, '^(%d+)')) then\n"
                "  redis.call('SET', KEYS[4], ARGV[2] .. ' ' .. ARGV[3])\n"
                "end\n"
                "redis.call('DEL', KEYS[5])\n"
                "redis.call('PUBLISH', ARGV[4], 'backup-clear')\n"
                "return tonumber(redis.call('GET', KEYS[2]))\n");

/* What the external write and the republish share: the fence (KEYS[1] the
 * epoch, ARGV[1] the token) and one op on a key (kind, then its
 * arguments; keys.h: the kinds). */
#define EXT_PRELUDE                                                                      \
    "local cur = redis.call('GET', KEYS[1])\n"                                           \
    "if cur ~= ARGV[1] then\n"                                                           \
    "  return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is not the current "     \
    "epoch "                                                                             \
    "' .. tostring(cur))\n"                                                              \
    "end\n"                                                                              \
    "local function ext_op(op, key, a, b)\n"                                             \
    "  if op == 'SET' then redis.call('SET', key, a)\n"                                  \
    "  elseif op == 'DEL' then redis.call('DEL', key)\n"                                 \
    "  elseif op == 'HSET' then redis.call('HSET', key, a, b)\n"                         \
    "  elseif op == 'HDEL' then redis.call('HDEL', key, a)\n"                            \
    "  elseif op == 'INCRBY' then redis.call('INCRBY', key, a)\n"                        \
    "  end\n"                                                                            \
    "end\n"

/* The applications' external write (keys.h): every record in turn, each
 * skipped when its offset is <= ext:applied, in one call: all or nothing,
 * one round trip and one Redis fsync per batch. */
bk_script bk_lua_ext_write = BK_SCRIPT_INIT(
    "-- external write; KEYS: epoch, ext:applied, then one key per op\n"
    "-- ARGV: token, then per record: offset, nops, then per op: kind, arg1, "
    "arg2\n" EXT_PRELUDE "local applied = tonumber(redis.call('GET', KEYS[2]) or '-1')\n"
    "local last = nil\n"
    "local done = 0\n"
    "local i, k = 2, 3\n"
    "while i <= #ARGV do\n"
    "  local off = tonumber(ARGV[i])\n"
    "  local n = tonumber(ARGV[i + 1])\n"
    "  local run = off > applied\n"
    "  if run then\n"
    "    applied = off\n"
    "    last = ARGV[i]\n"
    "    done = done + 1\n"
    "  end\n"
    "  i = i + 2\n"
    "  for j = 1, n do\n"
    "    if run then ext_op(ARGV[i], KEYS[k], ARGV[i + 1], ARGV[i + 2]) end\n"
    "    i = i + 3\n"
    "    k = k + 1\n"
    "  end\n"
    "end\n"
    "if last then redis.call('SET', KEYS[2], last) end\n"
    "return done\n");

/* An application's republished external view (keys.h): the ext: keys
 * found by SCAN are deleted (ext:applied kept), then the ops run; all in
 * one script, so a reader sees the old view or the new one. */
bk_script bk_lua_ext_replace = BK_SCRIPT_INIT(
    EXT_PRELUDE "local c, gone = '0', 0\n"
                "repeat\n"
                "  local r = redis.call('SCAN', c, 'MATCH', ARGV[3], 'COUNT', 1000)\n"
                "  c = r[1]\n"
                "  for _, k in ipairs(r[2]) do\n"
                "    if k ~= KEYS[2] then redis.call('DEL', k); gone = gone + 1 end\n"
                "  end\n"
                "until c == '0'\n"
                "local i, k = 4, 4\n"
                "while i <= #ARGV do\n"
                "  ext_op(ARGV[i], KEYS[k], ARGV[i + 1], ARGV[i + 2])\n"
                "  i = i + 3\n"
                "  k = k + 1\n"
                "end\n"
                "redis.call('SET', KEYS[2], ARGV[2])\n"
                "redis.call('DEL', KEYS[3])\n"
                "return gone\n");

/* br2k-backupd's read of the external state at the cut (backupd/objects.c):
 * KEYS epoch, backup phase, ext:applied, then the external keys; returns
 * the epoch, the phase, whether ext:applied exists and its value, then each
 * key's type and content. Read-only. */
bk_script bk_lua_external_read = BK_SCRIPT_INIT(
    "local out = {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '',\n"
    "  redis.call('EXISTS', KEYS[3]), redis.call('GET', KEYS[3]) or ''}\n"
    "for i = 4, #KEYS do\n"
    "  local k = KEYS[i]\n"
    "  local t = redis.call('TYPE', k)['ok']\n"
    "  local v = {}\n"
    "  if t == 'string' then v = {redis.call('GET', k)}\n"
    "  elseif t == 'hash' and redis.call('HLEN', k) > 1000 then t = 'hash+'\n"
    "  elseif t == 'hash' then v = redis.call('HGETALL', k)\n"
    "  elseif t == 'set' then v = redis.call('SMEMBERS', k)\n"
    "  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)\n"
    "  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')\n"
    "  end\n"
    "  out[#out + 1] = t\n"
    "  out[#out + 1] = v\n"
    "end\n"
    "return out\n");
