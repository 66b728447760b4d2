/*
 * Lua gears' code and runtimes (luagear.h): checking a file, the states of
 * each worker, and the generations that upgrade them in place.
 */
#include "common/err.h"
#include "common/log.h"
#include "luagear/internal.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 1024

static const char *const gear_keys[] = {
    "name",    "version", "routes", "executor_pool_for_web_request", "ws_too_many_connections",
    "upgrade", NULL};
static const char *const route_keys[] = {
    "pattern", "connect", "init", "on_client_message", "on_server_message", "terminate", NULL};

/* ---- checking a file ---- */

static bool in(const char *const *list, const char *s) {
    for (; *list; list++)
        if (strcmp(*list, s) == 0) return true;
    return false;
}

/* Every key of the table at idx is a string of `keys`; each function key
 * holds a function (or is absent). 0, or -1 with why. */
static int check_keys(lua_State *L, int idx, const char *const *keys, const char *where, char *why,
                      size_t cap) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || !in(keys, k)) {
            lua_pop(L, 2);
            return orr_errf(why, cap, -1, "%s: unknown key %s%s%s", where, k ? "'" : "(a ",
                            k ? k : luaL_typename(L, -2), k ? "'" : ")");
        }
        bool fn = strcmp(k, "name") && strcmp(k, "version") && strcmp(k, "routes") &&
                  strcmp(k, "pattern");
        if (fn && !lua_isfunction(L, -1)) {
            lua_pop(L, 2);
            return orr_errf(why, cap, -1, "%s: %s is not a function", where, k);
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* The routes table on top: each a table with a string pattern and only
 * callbacks; their patterns copied into code. */
static int check_routes(lua_State *L, orr_luagear_code *code, char *why, size_t cap) {
    int t = lua_gettop(L);
    size_t n = lua_rawlen(L, t), keys = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        keys++;
        lua_pop(L, 1);
    }
    if (keys != n) return orr_errf(why, cap, -1, "routes is not a list (1, 2, ... only)");
    if (n > MAX_ROUTES) return orr_errf(why, cap, -1, "%zu routes (at most %d)", n, MAX_ROUTES);
    code->routes = orr_xcalloc(n ? n : 1, sizeof *code->routes);
    code->ws_routes = orr_xcalloc(n ? n : 1, sizeof *code->ws_routes);
    for (size_t i = 0; i < n; i++) {
        char where[48];
        snprintf(where, sizeof where, "route %zu", i + 1);
        if (lua_rawgeti(L, t, (lua_Integer)i + 1) != LUA_TTABLE)
            return orr_errf(why, cap, -1, "%s is not a table", where);
        if (check_keys(L, lua_gettop(L), route_keys, where, why, cap) < 0) return -1;
        if (lua_getfield(L, -1, "pattern") != LUA_TSTRING)
            return orr_errf(why, cap, -1, "%s has no pattern (a string)", where);
        lg_route *r = &code->routes[code->n_routes++];
        r->cb = orr__luagear_callbacks;
        r->code = code;
        r->pattern = orr_xstrdup(lua_tostring(L, -1));
        lua_getfield(L, -2, "on_server_message");
        r->forward = lua_tocfunction(L, -1) == orr__luagear_forward;
        lua_pop(L, 1);
        code->ws_routes[i] = (orr_ws_route){r->pattern, &r->cb};
        lua_pop(L, 2);
    }
    return 0;
}

/* The gear table on top of L, into code. */
static int check_gear(lua_State *L, orr_luagear_code *code, char *why, size_t cap) {
    if (!lua_istable(L, -1))
        return orr_errf(why, cap, -1, "the file returns a %s, not a gear table",
                        luaL_typename(L, -1));
    int g = lua_gettop(L);
    if (check_keys(L, g, gear_keys, "the gear table", why, cap) < 0) return -1;
    if (lua_getfield(L, g, "name") != LUA_TSTRING)
        return orr_errf(why, cap, -1, "the gear table has no name (a string)");
    code->name = orr_xstrdup(lua_tostring(L, -1));
    int v = lua_getfield(L, g, "version");
    if (v != LUA_TNIL && v != LUA_TSTRING && v != LUA_TNUMBER)
        return orr_errf(why, cap, -1, "version is a %s, not a string or a number",
                        lua_typename(L, v));
    if (lua_getfield(L, g, "routes") != LUA_TTABLE)
        return orr_errf(why, cap, -1, "the gear table has no routes (a list of tables)");
    return check_routes(L, code, why, cap);
}

static int open_api_protected(lua_State *L) {
    orr__luagear_open_api(L, lua_touserdata(L, 1));
    return 0;
}

/* A new state of cap bytes with the orrery API: NULL if it does not fit. */
static orr_lua *api_state(size_t cap, lg_state *st) {
    orr_lua *l = orr_lua_new(cap);
    if (!l) return NULL;
    lua_State *L = orr_lua_state(l);
    lua_pushcfunction(L, open_api_protected);
    lua_pushlightuserdata(L, st);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        orr_lua_free(l);
        return NULL;
    }
    return l;
}

orr_luagear_code *orr_luagear_code_load(const char *text, size_t len, const char *file,
                                        const orr_luagear_limits *lim, char *why, size_t cap) {
    orr_lua *l = api_state(lim->mem_cap, NULL);
    if (!l) {
        orr_errf(why, cap, -1, "no room for a Lua state in lua_memory_limit_mb");
        return NULL;
    }
    lua_State *L = orr_lua_state(l);
    orr_luagear_code *code = orr_xcalloc(1, sizeof *code);
    snprintf(code->chunk, sizeof code->chunk, "@%s", file);
    orr_lua_status s = orr_lua_load(l, text, len, code->chunk);
    if (s == ORR_LUA_OK) s = orr_lua_call(l, 0, 1, lim->timeout_ms);
    int rc = s == ORR_LUA_OK ? check_gear(L, code, why, cap)
                             : orr_errf(why, cap, -1, "%s", lua_tostring(L, -1));
    orr_lua_free(l);
    if (rc < 0) {
        orr_luagear_code_free(code);
        return NULL;
    }
    code->text = orr_xmalloc(len + 1);
    memcpy(code->text, text, len);
    code->text[len] = '\0';
    code->len = len;
    code->gear = (orr_gear){.api_version = ORR_GEAR_API_VERSION,
                            .name = code->name,
                            .ws_routes = code->ws_routes,
                            .n_ws_routes = code->n_routes,
                            .executor_pool_for_web_request = orr__luagear_pool,
                            .ws_too_many_connections = orr__luagear_too_many};
    return code;
}

const orr_gear *orr_luagear_code_gear(const orr_luagear_code *code) {
    return &code->gear;
}

void orr_luagear_code_attach(orr_luagear_code *code, orr_luagear *rt) {
    code->rt = rt;
}

void orr_luagear_code_free(orr_luagear_code *code) {
    if (!code) return;
    for (size_t i = 0; i < code->n_routes; i++)
        free(code->routes[i].pattern);
    free(code->routes);
    free(code->ws_routes);
    free(code->name);
    free(code->text);
    free(code);
}

/* ---- runtimes and generations ---- */

orr_luagear *orr_luagear_new(const char *name, int workers, const orr_luagear_limits *lim) {
    orr_luagear *rt = orr_xcalloc(1, sizeof *rt);
    snprintf(rt->name, sizeof rt->name, "%s", name);
    rt->n_workers = workers;
    rt->states = orr_xcalloc((size_t)workers, sizeof *rt->states);
    pthread_mutex_init(&rt->lock, NULL);
    atomic_init(&rt->gen, 0);
    atomic_init(&rt->mem_cap, lim->mem_cap);
    atomic_init(&rt->timeout_ms, lim->timeout_ms);
    return rt;
}

void orr_luagear_set_limits(orr_luagear *rt, const orr_luagear_limits *lim) {
    atomic_store(&rt->mem_cap, lim->mem_cap);
    atomic_store(&rt->timeout_ms, lim->timeout_ms);
}

static void source_unref(lg_source *s) {
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) free(s);
}

void orr_luagear_activate(orr_luagear *rt, orr_luagear_code *code) {
    lg_source *s = orr_xmalloc(sizeof *s + code->len + 1);
    atomic_init(&s->refs, 1);
    memcpy(s->chunk, code->chunk, sizeof s->chunk);
    memcpy(s->text, code->text, code->len + 1);
    s->len = code->len;
    pthread_mutex_lock(&rt->lock);
    lg_source *old = rt->cur;
    s->gen = atomic_load(&rt->gen) + 1;
    atomic_store_explicit(&code->gen, s->gen, memory_order_relaxed);
    rt->cur = s;
    atomic_store_explicit(&rt->gen, s->gen, memory_order_release);
    pthread_mutex_unlock(&rt->lock);
    source_unref(old);
}

void orr_luagear_free(orr_luagear *rt) {
    if (!rt) return;
    for (int i = 0; i < rt->n_workers; i++) {
        lg_state *st = rt->states[i];
        if (!st) continue;
        orr_lua_free(st->l);
        free(st->idle);
        free(st);
    }
    free(rt->states);
    source_unref(rt->cur);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
}

uint32_t orr__luagear_timeout(const lg_state *st) {
    return atomic_load_explicit(&st->rt->timeout_ms, memory_order_relaxed);
}

void orr__luagear_push_ref(lg_state *st, int ref) {
    lua_rawgeti(orr_lua_state(st->l), LUA_REGISTRYINDEX, ref);
}

static int new_refs_protected(lua_State *L) {
    lg_state *st = lua_touserdata(L, 1);
    lua_newtable(L);
    st->versions = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 0);
    st->msg_slot = luaL_ref(L, LUA_REGISTRYINDEX);
    static const char *const names[] = {"init", "on_client_message", "on_server_message",
                                        "on_registry_result", "terminate"};
    for (int i = 0; i < 5; i++) {
        lua_pushstring(L, names[i]);
        st->names[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_pushliteral(L, "text");
    st->words[0] = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushliteral(L, "binary");
    st->words[1] = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

lg_state *orr__luagear_state(orr_luagear *rt, int worker) {
    if (worker < 0 || worker >= rt->n_workers) return NULL;
    lg_state *st = rt->states[worker];
    if (st) return st;
    st = orr_xcalloc(1, sizeof *st);
    st->rt = rt;
    st->worker = worker;
    st->module = st->routes = LUA_NOREF;
    st->cap = atomic_load(&rt->mem_cap);
    st->l = api_state(st->cap, st);
    lua_State *L = st->l ? orr_lua_state(st->l) : NULL;
    if (L) {
        lua_pushcfunction(L, new_refs_protected);
        lua_pushlightuserdata(L, st);
    }
    if (!L || lua_pcall(L, 1, 0, 0) != LUA_OK) {
        orr_log(ORR_LOG_ERROR, NULL, "lua gear %s: worker %d: no room for its Lua state", rt->name,
                worker);
        orr_lua_free(st->l);
        free(st);
        return NULL;
    }
    rt->states[worker] = st;
    return st;
}

/* Runs the source's chunk in st and keeps its gear table, its routes by
 * pattern and its version (protected: it allocates). */
static int load_protected(lua_State *L) {
    lg_state *st = lua_touserdata(L, 1);
    const lg_source *src = lua_touserdata(L, 2);
    if (orr_lua_load(st->l, src->text, src->len, src->chunk) != ORR_LUA_OK ||
        orr_lua_call(st->l, 0, 1, orr__luagear_timeout(st)) != ORR_LUA_OK)
        return lua_error(L);
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "routes") != LUA_TTABLE)
        return luaL_error(L, "the file no longer returns a gear table with routes");
    int routes = lua_gettop(L);
    lua_newtable(L);
    for (lua_Integer i = 1; lua_rawgeti(L, routes, i) == LUA_TTABLE; i++) {
        lua_getfield(L, -1, "pattern");
        lua_insert(L, -2);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, st->routes);
    st->routes = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1); /* routes */
    orr__luagear_push_ref(st, st->versions);
    lua_getfield(L, -2, "version");
    lua_rawseti(L, -2, src->gen);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, st->module);
    st->module = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void orr__luagear_refresh(lg_state *st) {
    orr_luagear *rt = st->rt;
    size_t cap = atomic_load_explicit(&rt->mem_cap, memory_order_relaxed);
    if (cap != st->cap) orr_lua_set_cap(st->l, st->cap = cap); /* SIGHUP changed it */
    unsigned g = atomic_load_explicit(&rt->gen, memory_order_acquire);
    if (g == st->gen || g == st->failed_gen) return;
    pthread_mutex_lock(&rt->lock);
    lg_source *src = rt->cur;
    atomic_fetch_add(&src->refs, 1);
    pthread_mutex_unlock(&rt->lock);
    lua_State *L = orr_lua_state(st->l);
    int top = lua_gettop(L);
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, st);
    lua_pushlightuserdata(L, src);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK) {
        st->gen = src->gen;
    } else {
        orr_log(ORR_LOG_ERROR, NULL,
                "lua gear %s: worker %d: generation %u did not load (%s): it keeps generation %u",
                rt->name, st->worker, src->gen, lua_tostring(L, -1), st->gen);
        st->failed_gen = src->gen;
    }
    lua_settop(L, top);
    source_unref(src);
}
