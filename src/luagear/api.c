/*
 * The `orrery` table Lua gears call (docs/LUA_GEARS.md): the connection
 * (sends, close, its names), the registry, logs, and the handshake
 * objects. Each is the C gear API's function of the same name, made
 * Lua-shaped: strings in, `true` or `nil, why` out.
 *
 * A registry call yields the callback's coroutine (callbacks.c resumes it
 * with the result), so it may be made only by the callback itself: not in
 * a coroutine the gear runs, not in terminate, upgrade or a handshake
 * function, not across a C function that cannot yield (table.sort's
 * comparator). Each is checked before the operation starts.
 */
#include "conn/conn.h"
#include "luagear/internal.h"

#include <lauxlib.h>
#include <string.h>

typedef struct lg_hs {
    uint32_t magic; /* not LG_CONN_MAGIC */
    const orr_handshake *hs;
    uint64_t epoch;
    bool writable;
} lg_hs;

static lg_state *state_of(lua_State *L) {
    return *(lg_state **)lua_getextraspace(L);
}

static const char *err_word(int rc) {
    switch (rc) {
    case ORR_ECLOSED:
        return "closed";
    case ORR_EINVAL:
        return "invalid";
    case ORR_ESTATE:
        return "not_in_callback";
    case ORR_ETAKEN:
        return "taken";
    case ORR_ENOTFOUND:
        return "not_found";
    case ORR_EAGAIN:
        return "unavailable";
    case ORR_ENOMEM:
        return "no_memory";
    default:
        return orr_strerror(rc);
    }
}

/* true, or nil and the error's word. */
static int result(lua_State *L, int rc) {
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, err_word(rc));
    return 2;
}

/* The connection at argument 1 (an error if it is not one or has ended).
 * Every function of the orrery table has the connections' metatable as
 * its upvalue: checking it costs no lookup by name. */
static lg_conn *check_conn(lua_State *L) {
    lg_conn *lc = lua_touserdata(L, 1);
    /* Only this module makes full userdata (handshakes, connections), and
     * gear code makes no light ones: the magic tells them apart. */
    if (lua_type(L, 1) != LUA_TUSERDATA || lc->magic != LG_CONN_MAGIC)
        luaL_typeerror(L, 1, "orrery connection");
    if (!lc->c) luaL_error(L, "the connection has ended");
    return lc;
}

/* ---- the connection ---- */

/* The bytes to send for argument arg (n bytes) on lc: the message this
 * callback was given, sent back, is the server's own bytes, checked
 * already (and a group's frame, encoded once). */
static const void *bytes_to_send(lua_State *L, const lg_conn *lc, int arg, size_t *n) {
    const char *s = luaL_checklstring(L, arg, n);
    const lg_state *st = state_of(L);
    const conn_worker *w = lc->c->w;
    if (st && s == st->ev_str && *n == st->ev_len && w->cb_msg && w->cb_msg_len == *n)
        return w->cb_msg;
    return s;
}

static int send_data(lua_State *L, bool binary) {
    lg_conn *lc = check_conn(L);
    size_t n;
    const void *p = bytes_to_send(L, lc, 2, &n);
    return result(L, binary ? orr_conn_send_binary(lc->c, p, n) : orr_conn_send_text(lc->c, p, n));
}

static int l_send_text(lua_State *L) {
    return send_data(L, false);
}

static int l_send_binary(lua_State *L) {
    return send_data(L, true);
}

/* forward(conn, state, msg): msg to the client as it is, text when it is
 * UTF-8, else binary; returns nothing (the state stays). As a route's
 * on_server_message, the server does this itself without entering Lua
 * (callbacks.c): a group's frame is then encoded once for all members. */
int orr__luagear_forward(lua_State *L) {
    lg_conn *lc = check_conn(L);
    size_t n;
    const void *p = bytes_to_send(L, lc, 3, &n);
    int rc = orr_conn_send_text(lc->c, p, n);
    if (rc == ORR_EINVAL) rc = orr_conn_send_binary(lc->c, p, n);
    (void)rc; /* closing: nothing more goes out, as for any send */
    return 0;
}

static int l_close(lua_State *L) {
    lg_conn *lc = check_conn(L);
    lua_Integer code = luaL_optinteger(L, 2, 1000);
    size_t n = 0;
    const char *why = luaL_optlstring(L, 3, "", &n);
    if (code < 0 || code > 65535) return result(L, ORR_EINVAL);
    return result(L, orr_conn_close(lc->c, (uint16_t)code, why, n));
}

static int l_conn_id(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)orr_conn_id(check_conn(L)->c));
    return 1;
}

static int l_context_id(lua_State *L) {
    lua_pushstring(L, orr_conn_context_id(check_conn(L)->c));
    return 1;
}

static int l_gear_name(lua_State *L) {
    lua_pushstring(L, orr_conn_gear_name(check_conn(L)->c));
    return 1;
}

static int l_client_ip(lua_State *L) {
    lua_pushstring(L, orr_conn_client_ip(check_conn(L)->c));
    return 1;
}

static int l_pool(lua_State *L) {
    lua_pushstring(L, orr_conn_pool(check_conn(L)->c));
    return 1;
}

static int l_handshake(lua_State *L) {
    const orr_handshake *hs = orr_conn_handshake(check_conn(L)->c);
    if (!hs) {
        lua_pushnil(L);
        return 1;
    }
    orr__luagear_push_hs(L, state_of(L), hs, false);
    return 1;
}

static int l_log(lua_State *L) {
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    static const int values[] = {ORR_LOG_DEBUG, ORR_LOG_INFO, ORR_LOG_WARN, ORR_LOG_ERROR};
    lg_conn *lc = check_conn(L);
    int level = values[luaL_checkoption(L, 2, NULL, levels)];
    size_t n;
    const char *text = luaL_checklstring(L, 3, &n);
    orr_conn_log(lc->c, level, "%.*s", n > 1500 ? 1500 : (int)n, text);
    return 0;
}

/* ---- the registry ---- */

/* The connection of a registry call: an error unless the call may wait
 * (see the top of this file). */
static lg_conn *check_waitable(lua_State *L, const char *fn) {
    lg_conn *lc = check_conn(L);
    lg_state *st = state_of(L);
    if (!st || st->running.L != L || st->running_conn != lc)
        luaL_error(L,
                   "orrery.%s: only in a callback of this connection (init, on_client_message, "
                   "on_server_message), not in a coroutine of the gear's own, terminate, upgrade "
                   "or a handshake function",
                   fn);
    if (!lua_isyieldable(L))
        luaL_error(L,
                   "orrery.%s: cannot wait for its answer inside a C function (such as a "
                   "table.sort comparator)",
                   fn);
    return lc;
}

/* Waits for op's result (callbacks.c resumes with it), unless it could
 * not start (rc < 0): nil and why at once. */
static int wait_result(lua_State *L, lg_conn *lc, orr_registry_op op, int rc) {
    if (rc < 0) return result(L, rc);
    lc->op = op;
    state_of(L)->yield_ok = true;
    return lua_yield(L, 0);
}

static int l_unique_register(lua_State *L) {
    lg_conn *lc = check_waitable(L, "unique_register");
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    return wait_result(L, lc, ORR_OP_UNIQUE_REGISTER, orr_unique_register(lc->c, name, n, 0));
}

static int l_unique_unregister(lua_State *L) {
    lg_conn *lc = check_waitable(L, "unique_unregister");
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    return wait_result(L, lc, ORR_OP_UNIQUE_UNREGISTER, orr_unique_unregister(lc->c, name, n, 0));
}

static int l_unique_send(lua_State *L) {
    lg_conn *lc = check_waitable(L, "unique_send");
    size_t n, m;
    const char *name = luaL_checklstring(L, 2, &n);
    const char *msg = luaL_checklstring(L, 3, &m);
    return wait_result(L, lc, ORR_OP_UNIQUE_SEND, orr_unique_send(lc->c, name, n, msg, m, 0));
}

static int l_group_join(lua_State *L) {
    lg_conn *lc = check_waitable(L, "group_join");
    size_t n;
    const char *g = luaL_checklstring(L, 2, &n);
    return wait_result(L, lc, ORR_OP_GROUP_JOIN, orr_group_join(lc->c, g, n, 0));
}

static int l_group_leave(lua_State *L) {
    lg_conn *lc = check_waitable(L, "group_leave");
    size_t n;
    const char *g = luaL_checklstring(L, 2, &n);
    return wait_result(L, lc, ORR_OP_GROUP_LEAVE, orr_group_leave(lc->c, g, n, 0));
}

static int l_group_publish(lua_State *L) {
    lg_conn *lc = check_waitable(L, "group_publish");
    size_t n, m;
    const char *g = luaL_checklstring(L, 2, &n);
    const char *msg = luaL_checklstring(L, 3, &m);
    return wait_result(L, lc, ORR_OP_GROUP_PUBLISH, orr_group_publish(lc->c, g, n, msg, m, 0));
}

/* ---- handshakes ---- */

static const orr_handshake *check_hs(lua_State *L, bool answer) {
    lg_hs *h = luaL_checkudata(L, 1, LG_HS_META);
    const lg_state *st = state_of(L);
    if (!st || h->epoch != st->hs_epoch)
        luaL_error(L, "the handshake is gone: it is valid only during connect, init and the "
                      "gear's handshake functions");
    if (answer && !h->writable)
        luaL_error(L, "only connect and ws_too_many_connections may answer a handshake");
    return h->hs;
}

static int push_str(lua_State *L, const char *s) {
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
    return 1;
}

static int hs_method(lua_State *L) {
    return push_str(L, orr_hs_method(check_hs(L, false)));
}

static int hs_path(lua_State *L) {
    return push_str(L, orr_hs_path(check_hs(L, false)));
}

static int hs_query_string(lua_State *L) {
    return push_str(L, orr_hs_query_string(check_hs(L, false)));
}

static int hs_param(lua_State *L) {
    return push_str(L, orr_hs_param(check_hs(L, false), luaL_checkstring(L, 2)));
}

static int hs_query(lua_State *L) {
    return push_str(L, orr_hs_query(check_hs(L, false), luaL_checkstring(L, 2)));
}

static int hs_header(lua_State *L) {
    return push_str(L, orr_hs_header(check_hs(L, false), luaL_checkstring(L, 2)));
}

static int hs_header_at(lua_State *L) {
    const orr_handshake *hs = check_hs(L, false);
    lua_Integer i = luaL_checkinteger(L, 2);
    const char *name, *value;
    if (i < 1 || orr_hs_header_at(hs, (size_t)(i - 1), &name, &value) != 0) return 0;
    lua_pushstring(L, name);
    lua_pushstring(L, value);
    return 2;
}

static int hs_cookie(lua_State *L) {
    return push_str(L, orr_hs_cookie(check_hs(L, false), luaL_checkstring(L, 2)));
}

static int hs_client_ip(lua_State *L) {
    return push_str(L, orr_hs_client_ip(check_hs(L, false)));
}

static int hs_context_id(lua_State *L) {
    return push_str(L, orr_hs_context_id(check_hs(L, false)));
}

static int hs_subprotocol_at(lua_State *L) {
    const orr_handshake *hs = check_hs(L, false);
    lua_Integer i = luaL_checkinteger(L, 2);
    return push_str(L, i < 1 ? NULL : orr_hs_subprotocol_at(hs, (size_t)(i - 1)));
}

static int hs_select_subprotocol(lua_State *L) {
    orr_handshake *hs = (orr_handshake *)check_hs(L, true);
    return result(L, orr_hs_select_subprotocol(hs, luaL_optstring(L, 2, NULL)));
}

static int hs_respond(lua_State *L) {
    orr_handshake *hs = (orr_handshake *)check_hs(L, true);
    lua_Integer status = luaL_checkinteger(L, 2);
    const char *ctype = luaL_optstring(L, 3, NULL);
    size_t n = 0;
    const char *body = luaL_optlstring(L, 4, NULL, &n);
    if (status < 100 || status > 999) return result(L, ORR_EINVAL);
    return result(L, orr_hs_respond(hs, (int)status, ctype, body, n));
}

static int hs_add_header(lua_State *L) {
    orr_handshake *hs = (orr_handshake *)check_hs(L, true);
    return result(L, orr_hs_add_header(hs, luaL_checkstring(L, 2), luaL_checkstring(L, 3)));
}

void orr__luagear_push_hs(lua_State *L, lg_state *st, const orr_handshake *hs, bool writable) {
    lg_hs *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->magic = 0;
    h->hs = hs;
    h->epoch = st->hs_epoch;
    h->writable = writable;
    luaL_setmetatable(L, LG_HS_META);
}

/* ---- the tables ---- */

static const luaL_Reg orrery_fns[] = {
    {"send_text", l_send_text},
    {"send_binary", l_send_binary},
    {"forward", orr__luagear_forward},
    {"close", l_close},
    {"conn_id", l_conn_id},
    {"context_id", l_context_id},
    {"gear_name", l_gear_name},
    {"client_ip", l_client_ip},
    {"pool", l_pool},
    {"handshake", l_handshake},
    {"log", l_log},
    {"unique_register", l_unique_register},
    {"unique_unregister", l_unique_unregister},
    {"unique_send", l_unique_send},
    {"group_join", l_group_join},
    {"group_leave", l_group_leave},
    {"group_publish", l_group_publish},
    {NULL, NULL},
};

static const luaL_Reg hs_fns[] = {
    {"method", hs_method},
    {"path", hs_path},
    {"query_string", hs_query_string},
    {"param", hs_param},
    {"query", hs_query},
    {"header", hs_header},
    {"header_at", hs_header_at},
    {"cookie", hs_cookie},
    {"client_ip", hs_client_ip},
    {"context_id", hs_context_id},
    {"subprotocol_at", hs_subprotocol_at},
    {"select_subprotocol", hs_select_subprotocol},
    {"respond", hs_respond},
    {"add_header", hs_add_header},
    {NULL, NULL},
};

/* A metatable for name whose __index is the table on top (popped); gear
 * code cannot read or replace it. */
static void metatable(lua_State *L, const char *name) {
    luaL_newmetatable(L, name);
    lua_insert(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

void orr__luagear_open_api(lua_State *L, lg_state *st) {
    *(lg_state **)lua_getextraspace(L) = st;
    luaL_newmetatable(L, LG_CONN_META);
    int mt = lua_gettop(L);
    luaL_newlibtable(L, orrery_fns);
    lua_pushvalue(L, mt);
    luaL_setfuncs(L, orrery_fns, 1);
    lua_pushinteger(L, ORR_NAME_MAX);
    lua_setfield(L, -2, "NAME_MAX");
    lua_pushvalue(L, -1);
    lua_setglobal(L, "orrery");
    lua_setfield(L, mt, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, mt, "__metatable");
    lua_pop(L, 1);
    luaL_newlib(L, hs_fns);
    metatable(L, LG_HS_META);
}
