/*
 * Sandboxed Lua states (sandbox.h): the capped allocator, the hook that
 * enforces the time limit, and the libraries a gear may use.
 */
#include "lua/sandbox.h"

#include "common/clock.h"
#include "common/err.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The hook runs every HOOK_EVERY VM instructions: a few microseconds apart,
 * so a call stops well within twice its limit. */
#define HOOK_EVERY 1000

struct orr_lua {
    lua_State *L;
    size_t used, cap;
    bool refused;        /* the allocator said no during the current call */
    int64_t deadline_ms; /* monotonic; 0: no call running */
    bool timed_out;
};

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    orr_lua *l = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        l->used -= old;
        return NULL;
    }
    if (nsize > old && l->used - old + nsize > l->cap) {
        l->refused = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        l->refused = true;
        return NULL;
    }
    l->used = l->used - old + nsize;
    return p;
}

static void time_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    orr_lua *l;
    lua_getallocf(L, (void **)&l);
    if (l->deadline_ms && orr_mono_ms() > l->deadline_ms) {
        l->timed_out = true;
        luaL_error(L, "callback over its time limit");
    }
}

/* load(chunk [, name [, mode [, env]]]) as Lua's own (upvalue 1), with
 * the mode forced to "t": text only, never a binary chunk. */
static int text_load(lua_State *L) {
    int top = lua_gettop(L) >= 4 ? 4 : 3; /* an env given stays given, an absent one absent */
    lua_settop(L, top);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, top, LUA_MULTRET);
    return lua_gettop(L);
}

/* pcall, xpcall and coroutine.resume as Lua's own (upvalue 1), except
 * that a call past its time limit or its memory cap stays failed: the
 * error goes on up, so gear code cannot catch it and carry on. */
static int stays_failed(lua_State *L, int status, lua_KContext ctx) {
    (void)status;
    orr_lua *l;
    lua_getallocf(L, (void **)&l);
    int base = (int)ctx;
    if ((l->timed_out || l->refused) && lua_gettop(L) > base && !lua_toboolean(L, base + 1)) {
        lua_pushvalue(L, base + 2);
        return lua_error(L);
    }
    return lua_gettop(L) - base;
}

static int catching(lua_State *L) {
    int base = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    for (int i = 1; i <= base; i++)
        lua_pushvalue(L, i);
    lua_callk(L, base, LUA_MULTRET, base, stays_failed);
    return stays_failed(L, LUA_OK, base);
}

static void wrap_catching(lua_State *L, const char *table, const char *field) {
    if (table) {
        lua_getglobal(L, table);
        lua_getfield(L, -1, field);
    } else {
        lua_getglobal(L, field);
    }
    lua_pushcclosure(L, catching, 1);
    if (table) {
        lua_setfield(L, -2, field);
        lua_pop(L, 1);
    } else {
        lua_setglobal(L, field);
    }
}

/* collectgarbage with the options that cannot stop or retune the
 * collector (the memory cap counts on it running). */
static int small_collectgarbage(lua_State *L) {
    static const char *const allowed[] = {"collect", "count", "step", "isrunning", NULL};
    luaL_checkoption(L, 1, "collect", allowed);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void set_nil(lua_State *L, const char *table, const char *field) {
    lua_getglobal(L, table);
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, -2, field);
    }
    lua_pop(L, 1);
}

/* os with time and clock only. */
static void small_os(lua_State *L) {
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    lua_newtable(L);
    for (const char *const *f = (const char *const[]){"time", "clock", NULL}; *f; f++) {
        lua_getfield(L, -2, *f);
        lua_setfield(L, -2, *f);
    }
    lua_setglobal(L, "os");
    lua_pop(L, 1);
}

static int open_libs(lua_State *L) {
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8},
                                    {LUA_COLIBNAME, luaopen_coroutine},
                                    {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    small_os(L);
    for (const char *const *g = (const char *const[]){"dofile", "loadfile", "print", NULL}; *g;
         g++) {
        lua_pushnil(L);
        lua_setglobal(L, *g);
    }
    set_nil(L, "string", "dump");
    lua_getglobal(L, "load"); /* Lua's own: only text_load can reach it */
    lua_pushcclosure(L, text_load, 1);
    lua_setglobal(L, "load");
    wrap_catching(L, NULL, "pcall");
    wrap_catching(L, NULL, "xpcall");
    wrap_catching(L, "coroutine", "resume");
    lua_getglobal(L, "collectgarbage");
    lua_pushcclosure(L, small_collectgarbage, 1);
    lua_setglobal(L, "collectgarbage");
    return 0;
}

orr_lua *orr_lua_new(size_t mem_cap) {
    orr_lua *l = orr_xcalloc(1, sizeof *l);
    l->cap = mem_cap;
    l->L = lua_newstate(capped_alloc, l);
    if (!l->L) {
        free(l);
        return NULL;
    }
    lua_pushcfunction(l->L, open_libs);
    if (lua_pcall(l->L, 0, 0, 0) != LUA_OK) {
        orr_lua_free(l);
        return NULL;
    }
    lua_sethook(l->L, time_hook, LUA_MASKCOUNT, HOOK_EVERY);
    return l;
}

void orr_lua_free(orr_lua *l) {
    if (!l) return;
    lua_close(l->L);
    free(l);
}

void orr_lua_set_cap(orr_lua *l, size_t mem_cap) {
    l->cap = mem_cap;
}

lua_State *orr_lua_state(orr_lua *l) {
    return l->L;
}

size_t orr_lua_mem_used(const orr_lua *l) {
    return l->used;
}

/* The message handler: the error and a traceback, as one string. */
static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

void orr_lua_push_uncapped(orr_lua *l, const char *s) {
    size_t cap = l->cap;
    l->cap = SIZE_MAX;
    lua_pushstring(l->L, s);
    l->cap = cap;
}

orr_lua_status orr_lua_call(orr_lua *l, int nargs, int nresults, uint32_t timeout_ms) {
    lua_State *L = l->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    l->refused = l->timed_out = false;
    l->deadline_ms = orr_mono_ms() + timeout_ms;
    int rc = lua_pcall(L, nargs, nresults, base);
    l->deadline_ms = 0;
    lua_remove(L, base);
    if (rc == LUA_OK) return ORR_LUA_OK;
    orr_lua_status st = l->timed_out                     ? ORR_LUA_TIMEOUT
                        : rc == LUA_ERRMEM || l->refused ? ORR_LUA_NOMEM
                                                         : ORR_LUA_ERROR;
    if (st == ORR_LUA_NOMEM || !lua_isstring(L, -1)) {
        lua_pop(L, 1);
        orr_lua_push_uncapped(l, st == ORR_LUA_NOMEM ? "not enough memory (the gear's memory limit)"
                                                     : "error");
    }
    lua_gc(L, LUA_GCCOLLECT);
    return st;
}

orr_lua_status orr_lua_resume(orr_lua *l, lua_State *co, int nargs, int *nres,
                              uint32_t timeout_ms) {
    l->refused = l->timed_out = false;
    l->deadline_ms = orr_mono_ms() + timeout_ms;
    int rc = lua_resume(co, l->L, nargs, nres);
    l->deadline_ms = 0;
    if (rc == LUA_OK) return ORR_LUA_OK;
    if (rc == LUA_YIELD) return ORR_LUA_YIELD;
    orr_lua_status st = l->timed_out                     ? ORR_LUA_TIMEOUT
                        : rc == LUA_ERRMEM || l->refused ? ORR_LUA_NOMEM
                                                         : ORR_LUA_ERROR;
    lua_State *L = l->L;
    /* The message is made outside any protected call, while what failed
     * may still hold the memory up to the cap: it is made past the cap
     * (a few hundred bytes), and the cap is back before anything else. */
    size_t cap = l->cap;
    l->cap = SIZE_MAX;
    const char *msg =
        st == ORR_LUA_NOMEM ? "not enough memory (the gear's memory limit)" : lua_tostring(co, -1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(co, -1));
    else
        lua_pushstring(L, msg);
    luaL_traceback(L, co, lua_tostring(L, -1), 0);
    lua_remove(L, -2);
    lua_settop(co, 0);
    l->cap = cap;
    lua_gc(L, LUA_GCCOLLECT);
    return st;
}

orr_lua_status orr_lua_load(orr_lua *l, const char *text, size_t len, const char *name) {
    return luaL_loadbufferx(l->L, text, len, name, "t") == LUA_OK ? ORR_LUA_OK : ORR_LUA_ERROR;
}
