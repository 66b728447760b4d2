/*
 * The Lua scripts the cluster runs in Redis: each one is atomic there, so a
 * name is claimed, a member added or a node reaped in one step whatever
 * other nodes do at the same time. Loaded with SCRIPT LOAD on every new
 * connection and then called with EVALSHA. Key layout: cluster.h.
 */
#ifndef ORR_CLUSTER_SCRIPTS_H
#define ORR_CLUSTER_SCRIPTS_H

enum { SC_REGISTER, SC_UNREGISTER, SC_SEND, SC_JOIN, SC_LEAVE, SC_PUBLISH, SC_GONE, SC_REAP, SC_N };

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

/* One member fewer on node n in a group's per-node counts (orr:gn:). */
#define ORR_LUA_DECR                                                                               \
    "local function decr(h, n)\n"                                                                  \
    "  if redis.call('HINCRBY', h, n, -1) <= 0 then redis.call('HDEL', h, n) end\n"                \
    "end\n"

/* What a connection holds ("u<key>" names, "g<key>" memberships) goes when
 * it does: shared by GONE and REAP. A name is deleted only if it is still
 * this connection's (compare and delete). */
#define ORR_LUA_FORGET_CONN                                                                        \
    ORR_LUA_DECR                                                                                   \
    "local function forget(inst, conn)\n"                                                          \
    "  local idx = 'orr:c:' .. inst .. '\\0' .. conn\n"                                            \
    "  local me = inst .. '\\t' .. conn\n"                                                         \
    "  for _, e in ipairs(redis.call('SMEMBERS', idx)) do\n"                                       \
    "    local k = string.sub(e, 2)\n"                                                             \
    "    if string.sub(e, 1, 1) == 'u' then\n"                                                     \
    "      local v = redis.call('GET', k)\n"                                                       \
    "      if v and string.sub(v, 1, #me + 1) == me .. '\\t' then redis.call('DEL', k) end\n"      \
    "    elseif redis.call('SREM', k, me) == 1 then\n"                                             \
    "      decr('orr:gn:' .. string.sub(k, 7), inst)\n"                                            \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  redis.call('DEL', idx)\n"                                                                   \
    "  redis.call('SREM', 'orr:n:' .. inst, conn)\n"                                               \
    "end\n"

static const char *const orr_cluster_scripts[SC_N] = {
    /* REGISTER KEYS: name key, conn index, node index; ARGV: inst, conn, since_ms, writeback.
     * 1: ours now; 0: a live holder keeps it. A holder whose node is gone
     * loses it, and so does one whose node is draining (its clients are
     * being sent elsewhere). When written back after an outage (writeback =
     * 1), the newer registration wins and the older holder is told to
     * close, through its node's inbox (after what was queued there for it). */
    [SC_REGISTER] =
        "local v = redis.call('GET', KEYS[1])\n"
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
        "return 1\n",
    /* UNREGISTER KEYS: name key, conn index; ARGV: inst, conn */
    [SC_UNREGISTER] = "local v = redis.call('GET', KEYS[1])\n"
                      "local me = ARGV[1] .. '\\t' .. ARGV[2] .. '\\t'\n"
                      "if v and string.sub(v, 1, #me) == me then redis.call('DEL', KEYS[1]) end\n"
                      "redis.call('SREM', KEYS[2], 'u' .. KEYS[1])\n"
                      "return 1\n",
    /* SEND (a batch, in order) KEYS: name keys; ARGV: inbox cap, then one
     * message per key. For each: 1, queued in the holder's node's inbox;
     * 0, no holder, or its node is dead (liveness expired, or its presence
     * subscription gone: its process ended); -1, that inbox holds the cap
     * already (its node is far behind). The messages for one node go as
     * one entry, in order. */
    [SC_SEND] =
        ORR_LUA_LIVE "local cap = tonumber(ARGV[1])\n"
                     "local room, per, order, out = {}, {}, {}, {}\n"
                     "local vs = redis.call('MGET', unpack(KEYS))\n"
                     "for i = 1, #KEYS do\n"
                     "  local r = 0\n"
                     "  local n, c\n"
                     "  if vs[i] then n, c = string.match(vs[i], '^(.-)\\t(.-)\\t') end\n"
                     "  if n then\n"
                     "    local left = room[n]\n"
                     "    if left == nil then left = live(n) and cap - waiting(n) or false end\n"
                     "    if left == false then r = 0\n"
                     "    elseif left <= 0 then r = -1\n"
                     "    else\n"
                     "      local f = per[n]\n"
                     "      if not f then f = {'n', 0}; per[n] = f; order[#order + 1] = n end\n"
                     "      f[#f + 1] = c\n"
                     "      f[#f + 1] = ARGV[i + 1]\n"
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
    /* GONE ARGV: inst, conn */
    [SC_GONE] = ORR_LUA_FORGET_CONN "forget(ARGV[1], ARGV[2])\nreturn 1\n",
    /* REAP ARGV: this instance, and 1 to clear this instance too (after a
     * reconnect, before writing its entries back). The instances reaped. */
    [SC_REAP] = ORR_LUA_FORGET_CONN
    "local reaped = 0\n"
    "for _, n in ipairs(redis.call('SMEMBERS', 'orr:nodes')) do\n"
    "  local mine = n == ARGV[1]\n"
    "  if (mine and ARGV[2] == '1') or (not mine and redis.call('EXISTS', 'orr:alive:' .. n) == 0) "
    "then\n"
    "    for _, c in ipairs(redis.call('SMEMBERS', 'orr:n:' .. n)) do forget(n, c) end\n"
    "    redis.call('DEL', 'orr:n:' .. n)\n"
    "    if not mine then\n"
    "      redis.call('SREM', 'orr:nodes', n)\n"
    "      reaped = reaped + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return reaped\n",
};

#endif
