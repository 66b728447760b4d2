/*
 * src/lua/sandbox.c: what gear code may reach, the time limit and the
 * memory cap. Every escape gets an error, never a crash, and the state
 * goes on running code after each failure.
 */
#include "common/clock.h"
#include "lua/sandbox.h"

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <string.h>

#define CAP ((size_t)16 << 20)

static orr_lua *l;

static void setup(void) {
    l = orr_lua_new(CAP);
    cr_assert_not_null(l);
}

static void teardown(void) {
    orr_lua_free(l);
}

TestSuite(lua, .init = setup, .fini = teardown, .timeout = 30);

/* Runs text as a chunk: its status, with the error (or the first result,
 * as a string) copied to out. */
static orr_lua_status run(const char *text, char *out, size_t cap, uint32_t timeout_ms) {
    lua_State *L = orr_lua_state(l);
    int top = lua_gettop(L);
    orr_lua_status st = orr_lua_load(l, text, strlen(text), "=test");
    if (st == ORR_LUA_OK) st = orr_lua_call(l, 0, 1, timeout_ms);
    const char *s = lua_tostring(L, -1);
    snprintf(out, cap, "%s", s ? s : (lua_isnil(L, -1) ? "nil" : luaL_typename(L, -1)));
    lua_settop(L, top);
    return st;
}

static void expect_runs_after(void) {
    char out[256];
    cr_expect_eq(run("return tostring(1 + 1)", out, sizeof out, 100), ORR_LUA_OK, "%s", out);
    cr_expect_str_eq(out, "2", "the state still runs code");
}

Test(lua, what_gear_code_may_not_reach_is_not_there) {
    static const char *const absent[] = {
        "return io",        "return debug",       "return package",
        "return require",   "return dofile",      "return loadfile",
        "return print",     "return string.dump", "return os.execute",
        "return os.getenv", "return os.exit",     "return os.remove",
        "return os.rename", "return os.tmpname",  "return ffi",
        "return jit",       "return __orr_load",  "return collectgarbage and rawget(_G, 'loadlib')",
    };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        char out[256];
        cr_expect_eq(run(absent[i], out, sizeof out, 100), ORR_LUA_OK, "%s: %s", absent[i], out);
        cr_expect_str_eq(out, "nil", "%s", absent[i]);
    }
    char out[256];
    cr_expect_eq(
        run("return type(os.time()) .. type(os.clock()) .. type(os.date)", out, sizeof out, 100),
        ORR_LUA_OK);
    cr_expect_str_eq(out, "numbernumbernil");
}

Test(lua, escapes_get_an_error_not_a_crash) {
    static const char *const escapes[] = {
        "require('io')",
        "os.execute('true')",
        "io.open('/etc/passwd')",
        "package.loadlib('libc.so.6', 'system')",
        "debug.sethook()",
        "load(string.dump(function() end))",
        /* a binary chunk made by hand: the signature then garbage */
        "assert(load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10garbage'))",
        "dofile('/etc/passwd')",
    };
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        char out[512];
        cr_expect_eq(run(escapes[i], out, sizeof out, 100), ORR_LUA_ERROR, "%s ran: %s", escapes[i],
                     out);
        cr_expect(strstr(out, "stack traceback:") != NULL, "%s: %s", escapes[i], out);
    }
    char out[512];
    cr_expect_eq(run("return load('return 40 + 2')()", out, sizeof out, 100), ORR_LUA_OK, "%s",
                 out);
    cr_expect_str_eq(out, "42", "text chunks still load");
    cr_expect_eq(run("return load('x = 1', 'chunk', 'b')", out, sizeof out, 100), ORR_LUA_OK);
    cr_expect_str_eq(out, "function", "asking for binary mode gets text mode: the text loads");
    expect_runs_after();
}

static int collect(lua_State *L, const void *p, size_t n, void *ud) {
    (void)L;
    luaL_addlstring(ud, p, n);
    return 0;
}

/* A real binary chunk (dumped by a state outside the sandbox) never loads
 * inside it: not through load, not through orr_lua_load. */
Test(lua, a_binary_chunk_never_loads) {
    lua_State *other = luaL_newstate();
    cr_assert_eq(luaL_loadstring(other, "return 42"), LUA_OK);
    luaL_Buffer b;
    luaL_buffinit(other, &b);
    lua_pushvalue(other, -2);
    lua_dump(other, collect, &b, 0);
    lua_pop(other, 1);
    luaL_pushresult(&b);
    size_t n;
    const char *bin = lua_tolstring(other, -1, &n);
    lua_State *L = orr_lua_state(l);
    lua_pushlstring(L, bin, n);
    lua_setglobal(L, "bin");
    cr_expect_eq(orr_lua_load(l, bin, n, "=bin"), ORR_LUA_ERROR);
    cr_expect(strstr(lua_tostring(L, -1), "binary chunk") != NULL, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_close(other);
    char out[512];
    cr_expect_eq(run("local f, e = load(bin) return tostring(f) .. ' ' .. tostring(e)", out,
                     sizeof out, 100),
                 ORR_LUA_OK, "%s", out);
    cr_expect(strncmp(out, "nil ", 4) == 0 && strstr(out, "binary chunk"), "%s", out);
    cr_expect_eq(run("local f = load(bin, 'x', 'b') return tostring(f)", out, sizeof out, 100),
                 ORR_LUA_OK);
    cr_expect_str_eq(out, "nil", "mode 'b' is not honoured");
    expect_runs_after();
}

Test(lua, an_error_deep_inside_or_not_a_string_has_its_traceback) {
    char out[1024];
    cr_expect_eq(run("local function f(n) if n == 0 then error('deep') end f(n - 1) end f(5)", out,
                     sizeof out, 100),
                 ORR_LUA_ERROR);
    cr_expect(strstr(out, "deep") && strstr(out, "stack traceback:"), "%s", out);
    cr_expect_eq(run("error({code = 7})", out, sizeof out, 100), ORR_LUA_ERROR);
    cr_expect(strstr(out, "(error object is a table value)") && strstr(out, "stack traceback:"),
              "%s", out);
    expect_runs_after();
}

Test(lua, an_endless_loop_stops_within_twice_its_limit) {
    static const char *const loops[] = {"while true do end",
                                        "local t = {} while true do t[1] = (t[1] or 0) + 1 end",
                                        "local co = coroutine.wrap(function() while true do end "
                                        "end) co()"};
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        char out[512];
        int64_t t0 = orr_mono_ms();
        cr_expect_eq(run(loops[i], out, sizeof out, 100), ORR_LUA_TIMEOUT, "%s: %s", loops[i], out);
        int64_t took = orr_mono_ms() - t0;
        cr_expect(took >= 100 && took < 200, "%s: stopped after %lld ms", loops[i],
                  (long long)took);
        cr_expect(strstr(out, "time limit") != NULL, "%s", out);
    }
    expect_runs_after();
}

Test(lua, memory_past_the_cap_fails_the_call_and_comes_back) {
    size_t before = orr_lua_mem_used(l);
    static const char *const hogs[] = {
        "local s = 'x' while true do s = s .. s end",
        "local t = {} for i = 1, 1e9 do t[i] = {i} end",
        "return string.rep('x', 1 << 40)",
        "return string.rep('ab', 1e8, ',')",
    };
    for (size_t i = 0; i < sizeof hogs / sizeof hogs[0]; i++) {
        char out[512];
        orr_lua_status st = run(hogs[i], out, sizeof out, 5000);
        cr_expect(st == ORR_LUA_NOMEM || (st == ORR_LUA_ERROR && strstr(out, "too large")),
                  "%s: status %d: %s", hogs[i], st, out);
        cr_expect_leq(orr_lua_mem_used(l), CAP);
        cr_expect_lt(orr_lua_mem_used(l), before + (256 << 10), "%s: %zu bytes kept", hogs[i],
                     orr_lua_mem_used(l) - before);
    }
    expect_runs_after();
}

Test(lua, pcall_and_coroutine_resume_cannot_catch_the_limits) {
    static const char *const timeouts[] = {
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
        "local co = coroutine.create(function() while true do end end) "
        "while true do coroutine.resume(co) co = coroutine.create(function() while true do end "
        "end) end",
    };
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        char out[512];
        int64_t t0 = orr_mono_ms();
        cr_expect_eq(run(timeouts[i], out, sizeof out, 100), ORR_LUA_TIMEOUT, "%s: %s", timeouts[i],
                     out);
        cr_expect_lt(orr_mono_ms() - t0, 200, "%s", timeouts[i]);
    }
    char out[512];
    cr_expect_eq(run("while true do pcall(function() local t = {} for i = 1, 1e9 do t[i] = {i} end "
                     "end) end",
                     out, sizeof out, 5000),
                 ORR_LUA_NOMEM, "%s", out);
    /* An ordinary error is still caught. */
    cr_expect_eq(run("return tostring(pcall(error, 'x'))", out, sizeof out, 100), ORR_LUA_OK);
    cr_expect_str_eq(out, "false");
    expect_runs_after();
}

Test(lua, collectgarbage_cannot_stop_the_collector) {
    char out[512];
    cr_expect_eq(run("collectgarbage('stop')", out, sizeof out, 100), ORR_LUA_ERROR);
    cr_expect(strstr(out, "invalid option 'stop'") != NULL, "%s", out);
    cr_expect_eq(run("collectgarbage('generational')", out, sizeof out, 100), ORR_LUA_ERROR);
    cr_expect_eq(run("return tostring(collectgarbage('count') > 0)", out, sizeof out, 100),
                 ORR_LUA_OK, "%s", out);
    cr_expect_str_eq(out, "true");
    cr_expect_eq(run("collectgarbage() return 'ok'", out, sizeof out, 100), ORR_LUA_OK, "%s", out);
}

/* A coroutine of l running text: resumed once. */
static orr_lua_status resume_text(lua_State *co, const char *text, int *nres, uint32_t timeout) {
    cr_assert_eq(luaL_loadstring(co, text), LUA_OK);
    return orr_lua_resume(l, co, 0, nres, timeout);
}

Test(lua, resume_yields_finishes_and_fails_with_a_traceback) {
    lua_State *L = orr_lua_state(l);
    lua_State *co = lua_newthread(L);
    int nres;
    cr_expect_eq(resume_text(co, "local x = coroutine.yield(1) return x * 2", &nres, 100),
                 ORR_LUA_YIELD);
    cr_expect_eq(nres, 1);
    lua_settop(co, 0);
    lua_pushinteger(co, 21);
    cr_expect_eq(orr_lua_resume(l, co, 1, &nres, 100), ORR_LUA_OK);
    cr_expect_eq(lua_tointeger(co, -1), 42);
    lua_settop(co, 0);
    /* A finished coroutine runs a new function. */
    cr_expect_eq(resume_text(co, "return 'again'", &nres, 100), ORR_LUA_OK);
    cr_expect_str_eq(lua_tostring(co, -1), "again");
    lua_settop(co, 0);
    int top = lua_gettop(L);
    cr_expect_eq(resume_text(co, "local function f() error('inner') end f()", &nres, 100),
                 ORR_LUA_ERROR);
    cr_expect_eq(lua_gettop(L), top + 1, "the message is on the state's own stack");
    const char *m = lua_tostring(L, -1);
    cr_expect(m && strstr(m, "inner") && strstr(m, "stack traceback:"), "%s", m);
    lua_settop(L, top);
    lua_State *co2 = lua_newthread(L);
    int64_t t0 = orr_mono_ms();
    cr_expect_eq(resume_text(co2, "while true do end", &nres, 100), ORR_LUA_TIMEOUT);
    cr_expect_lt(orr_mono_ms() - t0, 200);
    lua_settop(L, top - 1);
    expect_runs_after();
}
