/* rlog_redis_lua.c - the Lua scripts of the Redis Streams log (appending,
 * adopting foreign entries, offsets, deletion), loaded through
 * redis/script.h. The design is in common/log/README.md. */
#include "log/rlog_redis_int.h"

/* ours(f): the fields of an entry are as BR2K appends or adopts them: k,
 * v, then h:<name> (headers) or x:<name> (an adopted entry's own) pairs. adopt(stream,
 * counter, ids): make every entry after 1-<counter - 1> ours. The dense run that is
 * already of our form (an XADD of exactly what the append script would add) is kept as
 * is, its request id noted; every other entry is deleted and added again, in stream
 * order, at the next offsets as an empty record {k "", v "", h:br2k-foreign <its id>,
 * x:<field> <value>...}; the stream's last id is set back to our last entry (XSETID: a
 * foreign XADD leaves it beyond, even once deleted) and the counter follows. Returns the
 * new counter, or an error reply. Runs read-only when there is nothing to adopt. */
#define LUA_ADOPT                                                                        \
    "local function num(n) return string.format('%d', n) end\n"                          \
    "local function ours(f)\n"                                                           \
    "  if #f < 4 or #f % 2 ~= 0 or f[1] ~= 'k' or f[3] ~= 'v' then return false end\n"   \
    "  for j = 5, #f, 2 do\n"                                                            \
    "    local p = string.sub(f[j], 1, 2)\n"                                             \
    "    if p ~= 'h:' and p ~= 'x:' then return false end\n"                             \
    "  end\n"                                                                            \
    "  return true\n"                                                                    \
    "end\n"                                                                              \
    "local function adopt(s, cn, ids)\n"                                                 \
    "  local cv = redis.call('GET', cn)\n"                                               \
    "  local c = tonumber(cv or '0')\n"                                                  \
    "  local t = redis.call('TYPE', s)['ok']\n"                                          \
    "  if t == 'none' then return c end\n"                                               \
    "  if t ~= 'stream' then\n"                                                          \
    "    return redis.error_reply('BR2K-NOTSTREAM the key ' .. s .. ' is a ' .. t ..\n"  \
    "      ', not the log stream: something else than BR2K wrote it')\n"                 \
    "  end\n"                                                                            \
    "  if not cv then\n"                                                                 \
    "    local h = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)\n"                      \
    "    local q = #h > 0 and string.match(h[1][1], '^1%-(%d+)$')\n"                     \
    "    if q and tonumber(q) > 0 and ours(h[1][2]) then\n"                              \
    "      return redis.error_reply('BR2K-NOCOUNTER the counter ' .. cn .. ' is ' ..\n"  \
    "        'missing but ' .. s .. ' holds records from offset ' .. q .. ': set ' ..\n" \
    "        'it to the last offset + 1')\n"                                             \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  local after = '-'\n"                                                              \
    "  if c > 0 then after = '(1-' .. num(c - 1) end\n"                                  \
    "  local e = redis.call('XRANGE', s, after, '+', 'COUNT', " ADOPT_MAX_S " + 1)\n"    \
    "  if #e > " ADOPT_MAX_S " then\n"                                                   \
    "    return redis.error_reply('BR2K-FOREIGN more than " ADOPT_MAX_S                  \
    " entries after offset ' ..\n"                                                       \
    "      num(c - 1) .. ' of ' .. s .. ' were not appended by BR2K; too many to ' ..\n" \
    "      'adopt: delete the entries after 1-' .. num(c - 1) .. ' (XDEL)')\n"           \
    "  end\n"                                                                            \
    "  local o, i = c, 1\n"                                                              \
    "  while i <= #e and e[i][1] == '1-' .. num(o) and ours(e[i][2]) do\n"               \
    "    local f, rid = e[i][2], nil\n"                                                  \
    "    for j = 5, #f, 2 do\n"                                                          \
    "      if f[j] == 'h:br2k-request-id' then rid = f[j + 1] end\n"                     \
    "    end\n"                                                                          \
    "    if rid then redis.call('HSETNX', ids, rid, num(o)) end\n"                       \
    "    o, i = o + 1, i + 1\n"                                                          \
    "  end\n"                                                                            \
    "  for j = i, #e do redis.call('XDEL', s, e[j][1]) end\n"                            \
    "  local last = '0-0'\n"                                                             \
    "  if o > 0 then last = '1-' .. num(o - 1) end\n"                                    \
    "  local info, lg = redis.call('XINFO', 'STREAM', s), nil\n"                         \
    "  for j = 1, #info, 2 do\n"                                                         \
    "    if info[j] == 'last-generated-id' then lg = info[j + 1] end\n"                  \
    "  end\n"                                                                            \
    "  if lg ~= last then\n"                                                             \
    "    local r = redis.pcall('XSETID', s, last, 'MAXDELETEDID', last)\n"               \
    "    if type(r) == 'table' and r.err then redis.call('XSETID', s, last) end\n"       \
    "  end\n"                                                                            \
    "  for j = i, #e do\n"                                                               \
    "    local f = e[j][2]\n"                                                            \
    "    local a = {'XADD', s, '1-' .. num(o), 'k', '', 'v', '', 'h:br2k-foreign', "     \
    "e[j][1]}\n"                                                                         \
    "    for q = 1, math.min(#f, 2 * " FOREIGN_FIELDS_S "), 2 do\n"                      \
    "      a[#a + 1] = 'x:' .. f[q]\n"                                                   \
    "      a[#a + 1] = f[q + 1] or ''\n"                                                 \
    "    end\n"                                                                          \
    "    redis.call(unpack(a))\n"                                                        \
    "    o = o + 1\n"                                                                    \
    "  end\n"                                                                            \
    "  if o ~= c then redis.call('SET', cn, num(o)) end\n"                               \
    "  return o\n"                                                                       \
    "end\n"

/* KEYS: stream, counter, ids. ARGV: has-id ("1"/"0"), request id, then the
 * field/value pairs of the entry ("k", key, "v", value, headers...).
 * Returns the offset: the one the request id already has when the value is
 * the same (ids holds "<offset>:<sha1 of the value>"; a retried append is
 * the same record), or the next one, with entry 1-<offset> added and the
 * counter advanced (the same request id with another value is a record of
 * its own: the application answers it, duplicate_id, and the id keeps its
 * first offset); an XADD that fails (a foreign entry beyond ours) adopts
 * first and adds after it; any other failure is an error reply and changes
 * nothing. */
static const char APPEND_LUA[] = LUA_ADOPT
    "local function known(v)\n"
    "  if not v then return nil end\n"
    "  local o, h = string.match(v, '^(%d+):?(%x*)$')\n"
    "  if o and (h == '' or h == redis.sha1hex(ARGV[6])) then return tonumber(o) end\n"
    "  return false\n"
    "end\n"
    "local seen = nil\n"
    "if ARGV[1] == '1' then\n"
    "  seen = redis.call('HGET', KEYS[3], ARGV[2])\n"
    "  local o = known(seen)\n"
    "  if o then return o end\n"
    "end\n"
    "local off = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local a = {'XADD', KEYS[1], '1-' .. num(off)}\n"
    "for i = 3, #ARGV do a[#a + 1] = ARGV[i] end\n"
    "local r = redis.pcall(unpack(a))\n"
    "if type(r) == 'table' and r.err then\n"
    "  local o = adopt(KEYS[1], KEYS[2], KEYS[3])\n"
    "  if type(o) == 'table' then return o end\n"
    "  if ARGV[1] == '1' then\n"
    "    seen = redis.call('HGET', KEYS[3], ARGV[2])\n"
    "    local p = known(seen)\n"
    "    if p then return p end\n"
    "  end\n"
    "  off = o\n"
    "  a[3] = '1-' .. num(off)\n"
    "  r = redis.pcall(unpack(a))\n"
    "  if type(r) == 'table' and r.err then\n"
    "    return redis.error_reply('BR2K-APPEND cannot add entry ' .. a[3] .. ' to ' ..\n"
    "      KEYS[1] .. ': ' .. r.err)\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[2], num(off + 1))\n"
    "if ARGV[1] == '1' and not seen then\n"
    "  redis.call('HSET', KEYS[3], ARGV[2], num(off) .. ':' .. redis.sha1hex(ARGV[6]))\n"
    "end\n"
    "return off\n";

/* KEYS: stream, counter, ids. Adopts (above); returns the new counter. */
static const char ADOPT_LUA[] = LUA_ADOPT "return adopt(KEYS[1], KEYS[2], KEYS[3])\n";

/* KEYS: stream, counter. Returns {first, end}, atomically: end is the
 * counter plus the foreign entries waiting to be adopted (the offset the
 * next append gets), first the seq of the first entry when it is ours
 * (below the counter), else the counter. */
static const char OFFSETS_LUA[] =
    "local c = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t == 'none' then return {c, c} end\n"
    "if t ~= 'stream' then\n"
    "  return redis.error_reply('BR2K-NOTSTREAM the key ' .. KEYS[1] .. ' is a ' ..\n"
    "    t .. ', not the log stream: something else than BR2K wrote it')\n"
    "end\n"
    "local n = redis.call('XLEN', KEYS[1])\n"
    "local r = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)\n"
    "local first, ours = c, 0\n"
    "if #r > 0 then\n"
    "  local seq = string.match(r[1][1], '^1%-(%d+)$')\n"
    "  if seq and tonumber(seq) < c then first = tonumber(seq); ours = c - first end\n"
    "end\n"
    "local pend = n - ours\n"
    "if pend < 0 then pend = 0 end\n"
    "return {first, c + pend}\n";

/* KEYS: stream, ids. ARGV: offset n, count. Deletes up to `count` entries
 * below offset n (XRANGE's exclusive end), the oldest first, with the
 * request ids they hold (HDEL); returns how many. One chunk at a time keeps
 * each call short. */
static const char DELETE_LUA[] =
    "local r = redis.call('XRANGE', KEYS[1], '-', '(1-' .. ARGV[1], 'COUNT', ARGV[2])\n"
    "if #r == 0 then return 0 end\n"
    "for _, e in ipairs(r) do\n"
    "  local f = e[2]\n"
    "  for j = 1, #f, 2 do\n"
    "    if f[j] == 'h:br2k-request-id' then redis.call('HDEL', KEYS[2], f[j + 1]) end\n"
    "  end\n"
    "end\n"
    "local last = r[#r][1]\n"
    "local seq = tonumber(string.sub(last, string.find(last, '-') + 1))\n"
    "redis.call('XTRIM', KEYS[1], 'MINID', '1-' .. string.format('%d', seq + 1))\n"
    "return #r\n";

bk_script rr_append_script = BK_SCRIPT_INIT(APPEND_LUA);
bk_script rr_adopt_script = BK_SCRIPT_INIT(ADOPT_LUA);
bk_script rr_offsets_script = BK_SCRIPT_INIT(OFFSETS_LUA);
bk_script rr_delete_script = BK_SCRIPT_INIT(DELETE_LUA);
