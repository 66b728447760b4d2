/*
 * The Lua scripts the cluster runs in Redis: each one is atomic there, so a
 * name is claimed, a member added or a node reaped in one step whatever
 * other nodes do at the same time. Loaded with SCRIPT LOAD on every new
 * connection and then called with EVALSHA. Key layout: cluster.h.
 */
#ifndef ORR_CLUSTER_SCRIPTS_H
#define ORR_CLUSTER_SCRIPTS_H

enum { SC_REGISTER, SC_UNREGISTER, SC_SEND, SC_JOIN, SC_LEAVE, SC_PUBLISH, SC_GONE, SC_REAP, SC_N };

/* What a connection holds ("u<key>" names, "g<key>" memberships) goes when
 * it does: shared by GONE and REAP. A name is deleted only if it is still
 * this connection's (compare and delete). */
#define ORR_LUA_FORGET_CONN                                                                        \
    "local function forget(inst, conn)\n"                                                          \
    "  local idx = 'orr:c:' .. inst .. '\\0' .. conn\n"                                            \
    "  local me = inst .. '\\t' .. conn\n"                                                         \
    "  for _, e in ipairs(redis.call('SMEMBERS', idx)) do\n"                                       \
    "    local k = string.sub(e, 2)\n"                                                             \
    "    if string.sub(e, 1, 1) == 'u' then\n"                                                     \
    "      local v = redis.call('GET', k)\n"                                                       \
    "      if v and string.sub(v, 1, #me + 1) == me .. '\\t' then redis.call('DEL', k) end\n"     \
    "    else\n"                                                                                   \
    "      redis.call('SREM', k, me)\n"                                                            \
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
     * close. */
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
        "      redis.call('PUBLISH', 'orr:inbox:' .. n, 'K' .. c)\n"
        "      redis.call('SREM', 'orr:c:' .. n .. '\\0' .. c, 'u' .. KEYS[1])\n"
        "    else\n"
        "      return 0\n"
        "    end\n"
        "  end\n"
        "end\n"
        "redis.call('SET', KEYS[1], ARGV[1] .. '\\t' .. ARGV[2] .. '\\t' .. ARGV[3])\n"
        "redis.call('SADD', KEYS[2], 'u' .. KEYS[1])\n"
        "redis.call('SADD', KEYS[3], ARGV[2])\n"
        "return 1\n",
    /* UNREGISTER KEYS: name key, conn index; ARGV: inst, conn */
    [SC_UNREGISTER] =
        "local v = redis.call('GET', KEYS[1])\n"
        "local me = ARGV[1] .. '\\t' .. ARGV[2] .. '\\t'\n"
        "if v and string.sub(v, 1, #me) == me then redis.call('DEL', KEYS[1]) end\n"
        "redis.call('SREM', KEYS[2], 'u' .. KEYS[1])\n"
        "return 1\n",
    /* SEND KEYS: name key; ARGV: message. The number of subscribers that got
     * it: 1 when the holder's node is alive and listening, else 0. */
    [SC_SEND] =
        "local v = redis.call('GET', KEYS[1])\n"
        "if not v then return 0 end\n"
        "local n, c = string.match(v, '^(.-)\\t(.-)\\t')\n"
        "if not n or redis.call('EXISTS', 'orr:alive:' .. n) == 0 then return 0 end\n"
        "return redis.call('PUBLISH', 'orr:inbox:' .. n, 'M' .. c .. '\\n' .. ARGV[1])\n",
    /* JOIN KEYS: group key, conn index, node index; ARGV: inst, conn */
    [SC_JOIN] =
        "redis.call('SADD', KEYS[1], ARGV[1] .. '\\t' .. ARGV[2])\n"
        "redis.call('SADD', KEYS[2], 'g' .. KEYS[1])\n"
        "redis.call('SADD', KEYS[3], ARGV[2])\n"
        "return 1\n",
    /* LEAVE KEYS: group key, conn index; ARGV: inst, conn */
    [SC_LEAVE] =
        "redis.call('SREM', KEYS[1], ARGV[1] .. '\\t' .. ARGV[2])\n"
        "redis.call('SREM', KEYS[2], 'g' .. KEYS[1])\n"
        "return 1\n",
    /* PUBLISH KEYS: group key; ARGV: channel, inst, message. The members
     * cluster-wide. */
    [SC_PUBLISH] =
        "local n = redis.call('SCARD', KEYS[1])\n"
        "if n > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\\n' .. ARGV[3]) end\n"
        "return n\n",
    /* GONE ARGV: inst, conn */
    [SC_GONE] = ORR_LUA_FORGET_CONN "forget(ARGV[1], ARGV[2])\nreturn 1\n",
    /* REAP ARGV: this instance, and 1 to clear this instance too (after a
     * reconnect, before writing its entries back). The instances reaped. */
    [SC_REAP] =
        ORR_LUA_FORGET_CONN
        "local reaped = 0\n"
        "for _, n in ipairs(redis.call('SMEMBERS', 'orr:nodes')) do\n"
        "  local mine = n == ARGV[1]\n"
        "  if (mine and ARGV[2] == '1') or (not mine and redis.call('EXISTS', 'orr:alive:' .. n) == 0) then\n"
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
