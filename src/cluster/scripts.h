/*
 * The Lua scripts the cluster runs in Redis: each one is atomic there, so a
 * name is claimed, a member added or a node reaped in one step whatever
 * other nodes do at the same time. Loaded with SCRIPT LOAD on every new
 * connection and then called with EVALSHA. Key layout: cluster.h.
 */
#ifndef ORR_CLUSTER_SCRIPTS_H
#define ORR_CLUSTER_SCRIPTS_H

enum {
    SC_REGISTER,
    SC_UNREGISTER,
    SC_SEND,
    SC_JOIN,
    SC_LEAVE,
    SC_PUBLISH,
    SC_GONE,
    SC_REAP,
    SC_PARK,
    SC_ORPHAN,
    SC_SWEEP,
    SC_N
};

/* Whether node n can take messages: its liveness holds (it is not paused
 * or cut off past node_ttl_ms) and its presence connection is subscribed
 * (a node whose process ended loses it at once, with its sockets). */
#define ORR_LUA_LIVE                                                                               \
    "local function live(n)\n"                                                                     \
    "  return redis.call('EXISTS', 'orr:alive:' .. n) == 1 and\n"                                  \
    "    redis.call('PUBSUB', 'NUMSUB', 'orr:up:' .. n)[2] > 0\n"                                  \
    "end\n"                                                                                        \
    "local function waiting(n)\n"                                                                  \
    "  local c = redis.call('HMGET', 'orr:ib:' .. n, 'w', 'r')\n"                                  \
    "  return (tonumber(c[1]) or 0) - (tonumber(c[2]) or 0)\n"                                     \
    "end\n"

/* Parking (docs/CLUSTER.md "parking"). A parked name's key holds
 * "P\t<deadline>\t<max messages>\t<max bytes>\t<inst>\t<conn>" (the
 * connection that ended, its caps; the deadline in Redis' clock) with a TTL a
 * minute past the deadline; its kept messages are two lists, the orphans
 * (sent to the old holder, who could not take them: they go first) and the
 * rest, with a hash of their count and bytes. orr:parked orders the parked
 * names by deadline for the sweep; orr:parkn counts them per pool;
 * orr:pk:<inst>\0<conn> remembers which names a connection parked (its
 * orphans find them there). */
#define ORR_LUA_PARK                                                                               \
    "local function now_ms()\n"                                                                    \
    "  local t = redis.call('TIME')\n"                                                             \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                         \
    "end\n"                                                                                        \
    "local function pool_of(k) return string.match(k, '^orr:u:([^%z]*)%z') or '' end\n"            \
    "local function pkeys(k)\n"                                                                    \
    "  local s = string.sub(k, 7)\n"                                                               \
    "  return 'orr:pm:' .. s, 'orr:po:' .. s, 'orr:ps:' .. s\n"                                    \
    "end\n"                                                                                        \
    "local function parked(v)\n"                                                                   \
    "  if not v or string.sub(v, 1, 2) ~= 'P\\t' then return nil end\n"                            \
    "  local d, mn, mb, n, c = string.match(v, '^P\\t(%d+)\\t(%d+)\\t(%d+)\\t(.-)\\t(.*)$')\n"     \
    "  return tonumber(d), tonumber(mn), tonumber(mb), n, c\n"                                     \
    "end\n"                                                                                        \
    "local function unpark(k)\n"                                                                   \
    "  local m, o, s = pkeys(k)\n"                                                                 \
    "  local n = tonumber(redis.call('HGET', s, 'n')) or 0\n"                                      \
    "  redis.call('DEL', m, o, s)\n"                                                               \
    "  if redis.call('ZREM', 'orr:parked', k) == 1 and\n"                                          \
    "     redis.call('HINCRBY', 'orr:parkn', pool_of(k), -1) <= 0 then\n"                          \
    "    redis.call('HDEL', 'orr:parkn', pool_of(k))\n"                                            \
    "  end\n"                                                                                      \
    "  return n\n"                                                                                 \
    "end\n"                                                                                        \
    "local function keep(k, mn, mb, ttl, msg, orphan)\n"                                           \
    "  if #msg > mb then return 1 end\n"                                                           \
    "  local m, o, s = pkeys(k)\n"                                                                 \
    "  local n = tonumber(redis.call('HGET', s, 'n')) or 0\n"                                      \
    "  local b = tonumber(redis.call('HGET', s, 'b')) or 0\n"                                      \
    "  local dropped = 0\n"                                                                        \
    "  while n > 0 and (n + 1 > mn or b + #msg > mb) do\n"                                         \
    "    local x = redis.call('LPOP', o)\n"                                                        \
    "    if not x then x = redis.call('LPOP', m) end\n"                                            \
    "    if not x then n = 0; b = 0; break end\n"                                                  \
    "    n = n - 1; b = b - #x; dropped = dropped + 1\n"                                           \
    "  end\n"                                                                                      \
    "  local to = orphan and o or m\n"                                                             \
    "  redis.call('RPUSH', to, msg)\n"                                                             \
    "  redis.call('HSET', s, 'n', n + 1, 'b', b + #msg)\n"                                         \
    "  if ttl > 0 then redis.call('PEXPIRE', to, ttl); redis.call('PEXPIRE', s, ttl) end\n"        \
    "  return dropped\n"                                                                           \
    "end\n"                                                                                        \
    "local function park(k, inst, conn, pms, mn, mb, now)\n"                                       \
    "  local d = now + pms\n"                                                                      \
    "  local ttl = pms + 60000\n"                                                                  \
    "  redis.call('SET', k, 'P\\t' .. d .. '\\t' .. mn .. '\\t' .. mb .. '\\t' .. inst ..\n"       \
    "    '\\t' .. conn, 'PX', ttl)\n"                                                              \
    "  local m, o, s = pkeys(k)\n"                                                                 \
    "  redis.call('PEXPIRE', m, ttl); redis.call('PEXPIRE', o, ttl); redis.call('PEXPIRE', s, "    \
    "ttl)\n"                                                                                       \
    "  if redis.call('ZADD', 'orr:parked', d, k) == 1 then\n"                                      \
    "    redis.call('HINCRBY', 'orr:parkn', pool_of(k), 1)\n"                                      \
    "  end\n"                                                                                      \
    "  local pk = 'orr:pk:' .. inst .. '\\0' .. conn\n"                                            \
    "  redis.call('SADD', pk, k)\n"                                                                \
    "  redis.call('PEXPIRE', pk, ttl)\n"                                                           \
    "end\n"

/* One member fewer on node n in a group's per-node counts (orr:gn:). */
#define ORR_LUA_DECR                                                                               \
    "local function decr(h, n)\n"                                                                  \
    "  if redis.call('HINCRBY', h, n, -1) <= 0 then redis.call('HDEL', h, n) end\n"                \
    "end\n"

/* What a connection holds ("u<key>" names, "g<key>" memberships) goes when
 * it does: shared by GONE and REAP. A name is deleted only if it is still
 * this connection's (compare and delete), or parked when pk (park_ms, caps)
 * says so. Needs ORR_LUA_PARK. */
#define ORR_LUA_FORGET_CONN                                                                        \
    ORR_LUA_DECR                                                                                   \
    "local function forget(inst, conn, pk, now)\n"                                                 \
    "  local idx = 'orr:c:' .. inst .. '\\0' .. conn\n"                                            \
    "  local me = inst .. '\\t' .. conn\n"                                                         \
    "  local parks = 0\n"                                                                          \
    "  for _, e in ipairs(redis.call('SMEMBERS', idx)) do\n"                                       \
    "    local k = string.sub(e, 2)\n"                                                             \
    "    if string.sub(e, 1, 1) == 'u' then\n"                                                     \
    "      local v = redis.call('GET', k)\n"                                                       \
    "      if v and string.sub(v, 1, #me + 1) == me .. '\\t' then\n"                               \
    "        if pk then\n"                                                                         \
    "          park(k, inst, conn, pk[1], pk[2], pk[3], now)\n"                                    \
    "          parks = parks + 1\n"                                                                \
    "        else\n"                                                                               \
    "          redis.call('DEL', k)\n"                                                             \
    "          local m, o, s = pkeys(k)\n"                                                         \
    "          redis.call('DEL', m, o, s)\n"                                                       \
    "        end\n"                                                                                \
    "      end\n"                                                                                  \
    "    elseif redis.call('SREM', k, me) == 1 then\n"                                             \
    "      decr('orr:gn:' .. string.sub(k, 7), inst)\n"                                            \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  redis.call('DEL', idx)\n"                                                                   \
    "  redis.call('SREM', 'orr:n:' .. inst, conn)\n"                                               \
    "  return parks\n"                                                                             \
    "end\n"

/* Parking's caps from ARGV[i..i+2] (park_ms, max messages, max bytes): nil
 * when park_ms is 0. */
#define ORR_LUA_PARK_ARGS                                                                          \
    "local function park_args(i)\n"                                                                \
    "  local pms = tonumber(ARGV[i]) or 0\n"                                                       \
    "  if pms <= 0 then return nil end\n"                                                          \
    "  return {pms, tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])}\n"                               \
    "end\n"

static const char *const orr_cluster_scripts[SC_N] = {
    /* REGISTER KEYS: name key, conn index, node index; ARGV: inst, conn, since_ms, writeback.
     * 1: ours now; 0: a live holder keeps it. A holder whose node is gone
     * loses it, and so does one whose node is draining (its clients are
     * being sent elsewhere). When written back after an outage (writeback =
     * 1), the newer registration wins and the older holder is told to
     * close, through its node's inbox (after what was queued there for it). */
    [SC_REGISTER] = ORR_LUA_PARK
    "local v = redis.call('GET', KEYS[1])\n"
    "local moved, expired, w = 0, 0, 0\n"
    "local d, mn, mb, pn, pc = parked(v)\n"
    "if d then\n"
    "  -- parked: its kept messages go into our inbox for the new holder, ahead of\n"
    "  -- anything sent to it from now on (or they expired: counted)\n"
    "  local m, o = pkeys(KEYS[1])\n"
    "  if d > now_ms() then\n"
    "    local msgs = redis.call('LRANGE', o, 0, -1)\n"
    "    for _, x in ipairs(redis.call('LRANGE', m, 0, -1)) do msgs[#msgs + 1] = x end\n"
    "    local i = 1\n"
    "    while i <= #msgs do\n"
    "      local j = math.min(#msgs, i + 999)\n"
    "      local f = {'n', 0}\n"
    "      for q = i, j do f[#f + 1] = ARGV[2]; f[#f + 1] = msgs[q] end\n"
    "      w = redis.call('HINCRBY', 'orr:ib:' .. ARGV[1], 'w', j - i + 1)\n"
    "      f[2] = w\n"
    "      redis.call('XADD', 'orr:inbox:' .. ARGV[1], '*', unpack(f))\n"
    "      i = j + 1\n"
    "    end\n"
    "    moved = #msgs\n"
    "    unpark(KEYS[1])\n"
    "  else\n"
    "    expired = unpark(KEYS[1])\n"
    "  end\n"
    "  redis.call('SREM', 'orr:pk:' .. pn .. '\\0' .. pc, KEYS[1])\n"
    "  v = nil\n"
    "end\n"
    "if v then\n"
    "  local n, c, t = string.match(v, '^(.-)\\t(.-)\\t(.*)$')\n"
    "  if n == ARGV[1] and c == ARGV[2] then return 1 end\n"
    "  if n and redis.call('EXISTS', 'orr:alive:' .. n) == 1 then\n"
    "    if n ~= ARGV[1] and redis.call('EXISTS', 'orr:draining:' .. n) == 1 then\n"
    "      -- its node is draining: its clients come back elsewhere with their names\n"
    "      redis.call('SREM', 'orr:c:' .. n .. '\\0' .. c, 'u' .. KEYS[1])\n"
    "    elseif ARGV[4] == '1' and tonumber(t) < tonumber(ARGV[3]) then\n"
    "      redis.call('XADD', 'orr:inbox:' .. n, '*', 'n', redis.call('HINCRBY', 'orr:ib:' .. "
    "n, 'w', 1), 'K' .. c, '')\n"
    "      redis.call('SREM', 'orr:c:' .. n .. '\\0' .. c, 'u' .. KEYS[1])\n"
    "    else\n"
    "      if ARGV[4] == '1' then\n"
    "        -- written back and older: closed through our own inbox, after what\n"
    "        -- was queued there for it\n"
    "        redis.call('XADD', 'orr:inbox:' .. ARGV[1], '*', 'n',\n"
    "          redis.call('HINCRBY', 'orr:ib:' .. ARGV[1], 'w', 1), 'K' .. ARGV[2], '')\n"
    "      end\n"
    "      return 0\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1] .. '\\t' .. ARGV[2] .. '\\t' .. ARGV[3])\n"
    "redis.call('SADD', KEYS[2], 'u' .. KEYS[1])\n"
    "redis.call('SADD', KEYS[3], ARGV[2])\n"
    "if d then return {1, moved, expired, w} end\n"
    "return 1\n",
    /* UNREGISTER KEYS: name key, conn index; ARGV: inst, conn */
    [SC_UNREGISTER] = "local v = redis.call('GET', KEYS[1])\n"
                      "local me = ARGV[1] .. '\\t' .. ARGV[2] .. '\\t'\n"
                      "if v and string.sub(v, 1, #me) == me then redis.call('DEL', KEYS[1]) end\n"
                      "redis.call('SREM', KEYS[2], 'u' .. KEYS[1])\n"
                      "return 1\n",
    /* SEND (a batch, in order) KEYS: name keys; ARGV: inbox cap, the
     * sending instance, then one message per key. For each: 1, queued in the
     * holder's node's inbox; 0, no holder, or its node is dead (liveness
     * expired, or its presence subscription gone: its process ended); -1,
     * that inbox holds the cap already (its node is far behind); 2 + k, the
     * name is parked and the message kept (k older ones dropped past its
     * caps); "<conn>:<w>" when the holder is on the sending node (w: its
     * inbox's count of messages written): that node hands it over itself
     * once it has read its inbox that far, in the order of its other
     * deliveries, and answers only then, so that a name just taken there
     * (sends went through Redis while its claim was pending, and go
     * directly once it is confirmed and they are answered) gets one
     * sender's messages in order. The messages for one node go as
     * one entry, in order. */
    [SC_SEND] = ORR_LUA_LIVE
    /* Parking's functions are made only when a parked name is met: a
     * closure each costs every call of this, the hottest script. */
    "local function park_lib()\n" ORR_LUA_PARK "  return now_ms, parked, keep\n"
    "end\n"
    "local now_ms, parked, keep\n"
    "local cap = tonumber(ARGV[1])\n"
    "local room, per, order, out = {}, {}, {}, {}\n"
    "local vs = redis.call('MGET', unpack(KEYS))\n"
    "local now, me_w\n"
    "for i = 1, #KEYS do\n"
    "  local r = 0\n"
    "  local n, c, d, mn, mb\n"
    "  if vs[i] and string.byte(vs[i], 1) == 80 then -- 'P'\n"
    "    if not parked then now_ms, parked, keep = park_lib() end\n"
    "    d, mn, mb = parked(vs[i])\n"
    "  end\n"
    "  if d then\n"
    "    now = now or now_ms()\n"
    "    if d > now then\n"
    "      r = 2 + keep(KEYS[i], mn, mb, redis.call('PTTL', KEYS[i]), ARGV[i + 2], false)\n"
    "    end\n"
    "  elseif vs[i] then n, c = string.match(vs[i], '^(.-)\\t(.-)\\t') end\n"
    "  if n == ARGV[2] then\n"
    "    me_w = me_w or redis.call('HGET', 'orr:ib:' .. n, 'w') or '0'\n"
    "    r = c .. ':' .. me_w\n"
    "  elseif n then\n"
    "    local left = room[n]\n"
    "    if left == nil then left = live(n) and cap - waiting(n) or false end\n"
    "    if left == false then r = 0\n"
    "    elseif left <= 0 then r = -1\n"
    "    else\n"
    "      local f = per[n]\n"
    "      if not f then f = {'n', 0}; per[n] = f; order[#order + 1] = n end\n"
    "      f[#f + 1] = c\n"
    "      f[#f + 1] = ARGV[i + 2]\n"
    "      left = left - 1\n"
    "      r = 1\n"
    "    end\n"
    "    room[n] = left\n"
    "  end\n"
    "  out[i] = r\n"
    "end\n"
    "for _, n in ipairs(order) do\n"
    "  local f = per[n]\n"
    "  f[2] = redis.call('HINCRBY', 'orr:ib:' .. n, 'w', (#f - 2) / 2)\n"
    "  redis.call('XADD', 'orr:inbox:' .. n, '*', unpack(f))\n"
    "end\n"
    "return out\n",
    /* JOIN KEYS: group key, conn index, node index, per-node counts; ARGV: inst, conn */
    [SC_JOIN] = "if redis.call('SADD', KEYS[1], ARGV[1] .. '\\t' .. ARGV[2]) == 1 then\n"
                "  redis.call('HINCRBY', KEYS[4], ARGV[1], 1)\n"
                "end\n"
                "redis.call('SADD', KEYS[2], 'g' .. KEYS[1])\n"
                "redis.call('SADD', KEYS[3], ARGV[2])\n"
                "return 1\n",
    /* LEAVE KEYS: group key, conn index, per-node counts; ARGV: inst, conn */
    [SC_LEAVE] = ORR_LUA_DECR "if redis.call('SREM', KEYS[1], ARGV[1] .. '\\t' .. ARGV[2]) == 1 "
                              "then decr(KEYS[3], ARGV[1]) end\n"
                              "redis.call('SREM', KEYS[2], 'g' .. KEYS[1])\n"
                              "return 1\n",
    /* PUBLISH KEYS: per-node counts; ARGV: publishing inst, "<pool>\0<group>",
     * message, inbox cap. Queued once in the inbox of every other live node
     * with members; the members it will reach there (a node whose inbox is
     * full, or whose liveness expired, is not counted). */
    [SC_PUBLISH] = ORR_LUA_LIVE
    "local total = 0\n"
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #h, 2 do\n"
    "  local n = h[i]\n"
    "  if n ~= ARGV[1] and live(n) then\n"
    "    if waiting(n) < tonumber(ARGV[4]) then\n"
    "      local w = redis.call('HINCRBY', 'orr:ib:' .. n, 'w', 1)\n"
    "      redis.call('XADD', 'orr:inbox:' .. n, '*', 'n', w, 'G' .. ARGV[2], ARGV[3])\n"
    "      total = total + tonumber(h[i + 1])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return total\n",
    /* GONE ARGV: inst, conn, park_ms, max messages, max bytes. Its names
     * park when park_ms > 0: how many did. */
    [SC_GONE] = ORR_LUA_PARK ORR_LUA_FORGET_CONN ORR_LUA_PARK_ARGS
    "return forget(ARGV[1], ARGV[2], park_args(3), now_ms())\n",
    /* REAP ARGV: this instance, and 1 to clear this instance too (after a
     * reconnect, before writing its entries back). The instances reaped. */
    [SC_REAP] = ORR_LUA_PARK ORR_LUA_FORGET_CONN
    "local reaped = 0\n"
    "for _, n in ipairs(redis.call('SMEMBERS', 'orr:nodes')) do\n"
    "  local mine = n == ARGV[1]\n"
    "  if (mine and ARGV[2] == '1') or (not mine and redis.call('EXISTS', 'orr:alive:' .. n) == 0) "
    "then\n"
    "    for _, c in ipairs(redis.call('SMEMBERS', 'orr:n:' .. n)) do forget(n, c, nil, 0) end\n"
    "    redis.call('DEL', 'orr:n:' .. n)\n"
    "    if not mine then\n"
    "      redis.call('SREM', 'orr:nodes', n)\n"
    "      reaped = reaped + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return reaped\n",
    /* PARK (a drain, before the connection's 1001) ARGV: inst, conn,
     * park_ms, max messages, max bytes. Its names park now; the answer:
     * how many, and this node's inbox count of messages written, which the
     * node reads up to before answering its worker (what was sent to the
     * connection before it parked reaches it first). */
    [SC_PARK] = ORR_LUA_PARK ORR_LUA_PARK_ARGS
    "local idx = 'orr:c:' .. ARGV[1] .. '\\0' .. ARGV[2]\n"
    "local me = ARGV[1] .. '\\t' .. ARGV[2]\n"
    "local pk = park_args(3)\n"
    "local k = 0\n"
    "if pk then\n"
    "  local now = now_ms()\n"
    "  for _, e in ipairs(redis.call('SMEMBERS', idx)) do\n"
    "    if string.sub(e, 1, 1) == 'u' then\n"
    "      local key = string.sub(e, 2)\n"
    "      local v = redis.call('GET', key)\n"
    "      if v and string.sub(v, 1, #me + 1) == me .. '\\t' then\n"
    "        park(key, ARGV[1], ARGV[2], pk[1], pk[2], pk[3], now)\n"
    "        k = k + 1\n"
    "      end\n"
    "      redis.call('SREM', idx, e)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {k, tonumber(redis.call('HGET', 'orr:ib:' .. ARGV[1], 'w')) or 0}\n",
    /* ORPHAN ARGV: inst, conn, park_ms, max messages, max bytes, message,
     * and the name's key when the sender's node knew it ('' otherwise): a
     * message to one of conn's names that reached it only once it was
     * closing or gone. Kept ahead of what the name keeps (the connection's
     * name if it still holds it and its pool parks, or the name parked);
     * handed to the name's new holder if it has one already (late); else
     * lost. Without the key: the connection's name (one of them, if it had
     * several). {1 kept | 2 handed on | 0 lost, dropped past the caps, pool}. */
    [SC_ORPHAN] = ORR_LUA_LIVE ORR_LUA_PARK
    "local inst, conn, msg = ARGV[1], ARGV[2], ARGV[6]\n"
    "local me = inst .. '\\t' .. conn\n"
    "local named = ARGV[7] ~= ''\n"
    "local k = named and ARGV[7] or nil\n"
    "if not k then\n"
    "  for _, e in ipairs(redis.call('SMEMBERS', 'orr:c:' .. inst .. '\\0' .. conn)) do\n"
    "    if string.sub(e, 1, 1) == 'u' then k = string.sub(e, 2); break end\n"
    "  end\n"
    "end\n"
    "if not k then k = redis.call('SRANDMEMBER', 'orr:pk:' .. inst .. '\\0' .. conn) end\n"
    "if not k then return {0, 0, ''} end\n"
    "local v = redis.call('GET', k)\n"
    "local d, mn, mb, pn, pc = parked(v)\n"
    "if d then\n"
    "  if (named or (pn == inst and pc == conn)) and d > now_ms() then\n"
    "    return {1, keep(k, mn, mb, redis.call('PTTL', k), msg, true), pool_of(k)}\n"
    "  end\n"
    "elseif v and string.sub(v, 1, #me + 1) == me .. '\\t' then\n"
    "  local pms = tonumber(ARGV[3]) or 0\n"
    "  if pms > 0 then\n"
    "    return {1, keep(k, tonumber(ARGV[4]), tonumber(ARGV[5]), pms + 60000, msg, true), "
    "pool_of(k)}\n"
    "  end\n"
    "elseif v then\n"
    "  local n, c = string.match(v, '^(.-)\\t(.-)\\t')\n"
    "  if n and live(n) then\n"
    "    redis.call('XADD', 'orr:inbox:' .. n, '*', 'n', redis.call('HINCRBY', 'orr:ib:' .. n, "
    "'w', 1), c, msg)\n"
    "    return {2, 0, pool_of(k)}\n"
    "  end\n"
    "end\n"
    "return {0, 0, pool_of(k)}\n",
    /* SWEEP ARGV: at most how many. Parked names past their deadline go with
     * their messages. The answer: {pool, messages expired} pairs, and
     * orr:parkn (parked names per pool, for the gauge). */
    [SC_SWEEP] = ORR_LUA_PARK "local now = now_ms()\n"
                              "local out = {}\n"
                              "for _, k in ipairs(redis.call('ZRANGEBYSCORE', 'orr:parked', "
                              "'-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do\n"
                              "  local v = redis.call('GET', k)\n"
                              "  local d, mn, mb, pn, pc = parked(v)\n"
                              "  if d or not v then\n"
                              "    local n = unpark(k)\n"
                              "    if d then\n"
                              "      redis.call('DEL', k)\n"
                              "      redis.call('SREM', 'orr:pk:' .. pn .. '\\0' .. pc, k)\n"
                              "    end\n"
                              "    out[#out + 1] = pool_of(k)\n"
                              "    out[#out + 1] = n\n"
                              "  else\n"
                              "    redis.call('ZREM', 'orr:parked', k)\n"
                              "  end\n"
                              "end\n"
                              "return {out, redis.call('HGETALL', 'orr:parkn')}\n",
};

#endif
