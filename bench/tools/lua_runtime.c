/*
 * Which Lua for Lua gears (issue 12): the same probes against Lua 5.4 and
 * LuaJIT (OpenResty's luajit2), built twice from this one file:
 *
 *   cc -O2 $(pkg-config --cflags lua5.4) lua_runtime.c \
 *       $(pkg-config --libs lua5.4) -o lr54
 *   cc -O2 $(pkg-config --cflags luajit) -DLUAJIT lua_runtime.c \
 *       $(pkg-config --libs luajit) -o lrjit
 *
 * 1. A callback per message: C calls a Lua function that calls back into C
 *    with the message (what an echo gear does): ns per call.
 * 2. A time limit: a count hook that raises an error past a deadline, against
 *    `while true do end`: aborted, and how long after the deadline (LuaJIT:
 *    also with the JIT off).
 * 3. A memory cap through the allocator (lua_newstate with our own allocator),
 *    against a string that doubles without end: refused with an error, the
 *    state still usable.
 * 4. Memory: a fresh state with the base libraries, and one table per
 *    connection (the connection's state).
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#ifdef LUAJIT
#include <luajit.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- an allocator with a cap ---- */
typedef struct cap_alloc {
    size_t used, cap;
} cap_alloc;

static void *capped(void *ud, void *ptr, size_t osize, size_t nsize) {
    cap_alloc *a = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        a->used -= old;
        return NULL;
    }
    if (nsize > old && a->used - old + nsize > a->cap) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) a->used = a->used - old + nsize;
    return p;
}

static size_t sent_bytes;
static int l_send(lua_State *L) {
    size_t n;
    luaL_checklstring(L, 1, &n);
    sent_bytes += n;
    return 0;
}

static double deadline;
static void hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    if (now_s() > deadline) luaL_error(L, "callback over its time limit");
}

static lua_State *new_state(cap_alloc *a) {
    lua_State *L = a ? lua_newstate(capped, a) : luaL_newstate();
    if (!L) return NULL;
    luaL_openlibs(L);
    lua_pushcfunction(L, l_send);
    lua_setglobal(L, "send");
    return L;
}

static void probe_calls(const char *what, int jit_off) {
    lua_State *L = new_state(NULL);
#ifdef LUAJIT
    if (jit_off) luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
#else
    (void)jit_off;
#endif
    (void)luaL_dostring(L, "function on_message(state, msg) state.n = state.n + 1; send(msg) end");
    lua_newtable(L);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "n");
    int state = luaL_ref(L, LUA_REGISTRYINDEX);
    const char msg[16] = "0123456789abcdef";
    int n = 5000000;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        lua_getglobal(L, "on_message");
        lua_rawgeti(L, LUA_REGISTRYINDEX, state);
        lua_pushlstring(L, msg, sizeof msg);
        if (lua_pcall(L, 2, 0, 0) != 0) {
            printf("error: %s\n", lua_tostring(L, -1));
            return;
        }
    }
    double t = now_s() - t0;
    printf("1. callback per message %s: %.0f ns per call (%d calls)\n", what, t * 1e9 / n, n);
    lua_close(L);
}

static void probe_time(const char *what, int jit_off) {
    lua_State *L = new_state(NULL);
#ifdef LUAJIT
    if (jit_off) luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
#else
    (void)jit_off;
#endif
    luaL_loadstring(L, "while true do end");
    lua_sethook(L, hook, LUA_MASKCOUNT, 1000);
    double limit = 0.1;
    deadline = now_s() + limit;
    double t0 = now_s();
    /* A watchdog for a loop the hook never stops: give up after 2 s. */
    int rc = -1;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(2);
        rc = lua_pcall(L, 0, 0, 0);
        _exit(rc == 0 ? 0 : 3);
    }
    int st;
    waitpid(pid, &st, 0);
    double t = now_s() - t0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        printf("2. time limit %s: aborted %.1f ms after a %.0f ms limit\n", what, (t - limit) * 1e3,
               limit * 1e3);
    else
        printf("2. time limit %s: NOT aborted (killed by the 2 s watchdog)\n", what);
    lua_close(L);
}

static void probe_memory_cap(void) {
    cap_alloc a = {0, (size_t)64 << 20};
    lua_State *L = new_state(&a);
    if (!L) {
        printf("3. memory cap: lua_newstate with our allocator refused (NULL)\n");
        return;
    }
    int rc = luaL_dostring(L, "local s = 'x' while true do s = s .. s end");
    printf("3. memory cap 64 MiB: %s (\"%s\"), %zu KiB in use after",
           rc ? "refused" : "NOT refused", rc ? lua_tostring(L, -1) : "", a.used >> 10);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    rc = luaL_dostring(L, "local t = {} for i = 1, 1000 do t[i] = i end");
    printf(", %zu KiB after a collection; the state %s\n", a.used >> 10,
           rc ? "is broken" : "still runs code");
    lua_close(L);
}

static void probe_sizes(void) {
    cap_alloc a = {0, (size_t)1 << 40};
    lua_State *L = new_state(&a);
    if (!L) L = new_state(NULL);
    lua_gc(L, LUA_GCCOLLECT, 0);
    size_t base = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    (void)luaL_dostring(L, "conns = {} for i = 1, 100000 do conns[i] = {n = 0} end");
    lua_gc(L, LUA_GCCOLLECT, 0);
    size_t after = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    printf("4. a state with the base libraries: %zu KiB; one table {n = 0} per connection: %zu "
           "bytes each (100,000)\n",
           base >> 10, (after - base) / 100000);
    lua_close(L);
}

int main(void) {
#ifdef LUAJIT
    printf("%s\n", LUAJIT_VERSION);
#else
    printf("%s\n", LUA_RELEASE);
#endif
    probe_calls("(JIT on, or no JIT)", 0);
#ifdef LUAJIT
    probe_calls("(JIT off)", 1);
#endif
    probe_time("(JIT on, or no JIT)", 0);
#ifdef LUAJIT
    probe_time("(JIT off)", 1);
#endif
    probe_memory_cap();
    probe_sizes();
    return 0;
}
