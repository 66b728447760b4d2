/*
 * src/luagear/runtime.c: a gear file is checked before it serves anyone (on
 * the loading thread, within the limits) and refused with a reason a
 * deployer can act on; a runtime's workers load each new generation at
 * their next use and keep the last good one.
 */
#include "common/clock.h"
#include "luagear/internal.h"

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <string.h>

static const orr_luagear_limits lim = {16 << 20, 100};

static orr_luagear_code *load(const char *text, char *why, size_t cap) {
    why[0] = '\0';
    return orr_luagear_code_load(text, strlen(text), "t.lua", &lim, why, cap);
}

Test(luagear, a_gear_table_becomes_a_gear_with_its_routes) {
    char why[512];
    orr_luagear_code *code =
        load("local function f() end\n"
             "return {name = 'demo', version = 3, upgrade = f,\n"
             "  executor_pool_for_web_request = function() return 'gear:demo' end,\n"
             "  routes = {{pattern = '/ws', init = f, on_client_message = f},\n"
             "            {pattern = '/rooms/:id', connect = f, terminate = f}}}",
             why, sizeof why);
    cr_assert_not_null(code, "%s", why);
    const orr_gear *g = orr_luagear_code_gear(code);
    cr_expect_str_eq(g->name, "demo");
    cr_expect_eq(g->api_version, ORR_GEAR_API_VERSION);
    cr_assert_eq(g->n_ws_routes, 2);
    cr_expect_str_eq(g->ws_routes[0].pattern, "/ws");
    cr_expect_str_eq(g->ws_routes[1].pattern, "/rooms/:id");
    /* Every route's callbacks are the module's, all present. */
    cr_expect_eq(g->ws_routes[0].callbacks, &code->routes[0].cb);
    cr_expect_not_null(g->ws_routes[1].callbacks->on_client_message);
    cr_expect_not_null(g->executor_pool_for_web_request);
    orr_luagear_code_free(code);
}

Test(luagear, a_bad_file_is_refused_with_why) {
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"return {name = ", "t.lua:1:"},
        {"return 42", "returns a number, not a gear table"},
        {"return {routes = {}}", "has no name"},
        {"return {name = 'x', routes = {}, extra = 1}", "unknown key 'extra'"},
        {"return {name = 'x'}", "has no routes"},
        {"return {name = 'x', version = {}, routes = {}}", "version is a table"},
        {"return {name = 'x', routes = {1}}", "route 1 is not a table"},
        {"return {name = 'x', routes = {{init = function() end}}}", "route 1 has no pattern"},
        {"return {name = 'x', routes = {{pattern = '/ws', on_mesage = load('')}}}",
         "route 1: unknown key 'on_mesage'"},
        {"return {name = 'x', routes = {{pattern = '/ws', init = 'no'}}}",
         "route 1: init is not a function"},
        {"return {name = 'x', upgrade = 1, routes = {}}", "upgrade is not a function"},
        {"return {name = 'x', routes = {x = {}}}", "routes is not a list"},
        {"error('boom')", "boom"},
        {"while true do end", "time limit"},
        {"local s = string.rep('x', 1 << 30)", "memory"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[512];
        int64_t t0 = orr_mono_ms();
        orr_luagear_code *code = load(bad[i].text, why, sizeof why);
        cr_expect_null(code, "%s: accepted", bad[i].text);
        orr_luagear_code_free(code);
        cr_expect(strstr(why, bad[i].why) != NULL, "%s: why is '%s', not '%s'", bad[i].text, why,
                  bad[i].why);
        cr_expect_lt(orr_mono_ms() - t0, 2000, "%s", bad[i].text);
    }
}

/* The module table's `version` as worker 0's state sees it. */
static const char *version_in(lg_state *st, char *out, size_t cap) {
    lua_State *L = orr_lua_state(st->l);
    orr__luagear_push_ref(st, st->module);
    lua_getfield(L, -1, "version");
    snprintf(out, cap, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "nil");
    lua_pop(L, 2);
    return out;
}

Test(luagear, workers_load_each_generation_at_their_next_use) {
    char why[512], v[32];
    orr_luagear_code *v1 =
        load("return {name = 'g', version = 'one', routes = {{pattern = '/ws'}}}", why, sizeof why);
    orr_luagear_code *v2 =
        load("return {name = 'g', version = 'two', routes = {{pattern = '/ws'}}}", why, sizeof why);
    cr_assert(v1 && v2, "%s", why);
    orr_luagear *rt = orr_luagear_new("g", 2, &lim);
    orr_luagear_code_attach(v1, rt);
    orr_luagear_code_attach(v2, rt);
    orr_luagear_activate(rt, v1);
    lg_state *st = orr__luagear_state(rt, 0);
    cr_assert_not_null(st);
    cr_expect_null(orr__luagear_state(rt, 2), "no worker 2");
    orr__luagear_refresh(st);
    cr_expect_eq(st->gen, 1);
    cr_expect_str_eq(version_in(st, v, sizeof v), "one");
    orr_luagear_activate(rt, v2);
    orr_luagear_code_free(v2); /* the runtime keeps its own copy of the text */
    cr_expect_str_eq(version_in(st, v, sizeof v), "one", "not before its next use");
    orr__luagear_refresh(st);
    cr_expect_eq(st->gen, 2);
    cr_expect_str_eq(version_in(st, v, sizeof v), "two");
    orr_luagear_free(rt);
    orr_luagear_code_free(v1);
}
