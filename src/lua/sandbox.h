/*
 * src/lua: sandboxed Lua 5.4 states for Lua gears (issue 12). A state has
 * its own memory cap (its allocator refuses past it, and what it refused
 * comes back once the failing code's values are collected) and runs each
 * call under a time limit (a count hook that raises an error past the
 * deadline). Gear code sees only what cannot reach outside the process:
 *
 *   base (no dofile, loadfile or print; load takes text only), string (no dump),
 *   table, math, utf8, coroutine, and os.time and os.clock.
 *
 * No io, debug, package or require, no binary chunks, no C modules. A call
 * past its time limit or memory cap cannot be caught by the code it runs
 * (pcall, xpcall and coroutine.resume pass that error on). Only the thread
 * that owns a state uses it. Known gap: the time limit counts VM
 * instructions, so one long call into C (a pathological string pattern)
 * is not interrupted until it returns.
 */
#ifndef ORR_LUA_SANDBOX_H
#define ORR_LUA_SANDBOX_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

typedef struct orr_lua orr_lua;

/* A new sandboxed state whose memory stays under mem_cap bytes: NULL when
 * even the empty state does not fit. */
orr_lua *orr_lua_new(size_t mem_cap);
void orr_lua_free(orr_lua *l);
/* A new cap: allocations past it fail from now on (what is held stays). */
void orr_lua_set_cap(orr_lua *l, size_t mem_cap);
lua_State *orr_lua_state(orr_lua *l);
/* Bytes the state holds now. */
size_t orr_lua_mem_used(const orr_lua *l);

/* Why a call failed. */
typedef enum {
    ORR_LUA_OK,
    ORR_LUA_ERROR,
    ORR_LUA_TIMEOUT,
    ORR_LUA_NOMEM,
    ORR_LUA_YIELD /* orr_lua_resume: the coroutine yielded */
} orr_lua_status;

/* Calls the function below its nargs arguments on the stack (as lua_pcall)
 * with a deadline timeout_ms from now. On failure the stack holds one
 * string instead: the error with a `stack traceback:` (for an error object
 * that is not a string, its type). The memory the call took past the cap
 * is collected before this returns. */
orr_lua_status orr_lua_call(orr_lua *l, int nargs, int nresults, uint32_t timeout_ms);

/* Resumes coroutine co of l (as lua_resume) with nargs arguments on its
 * stack, with a deadline timeout_ms from now. OK (finished: *nres results
 * on co's stack) or YIELD (*nres values yielded); on failure co is dead
 * and l's own stack holds one string: the error with co's traceback. */
orr_lua_status orr_lua_resume(orr_lua *l, lua_State *co, int nargs, int *nres, uint32_t timeout_ms);

/* Pushes s on l's own stack even past the cap (a message about a failure
 * when the memory that failed is not collected yet): never raises. */
void orr_lua_push_uncapped(orr_lua *l, const char *s);

/* Compiles a chunk of text (never bytecode) as a function on the stack:
 * ORR_LUA_OK, or ORR_LUA_ERROR with the message on the stack. */
orr_lua_status orr_lua_load(orr_lua *l, const char *text, size_t len, const char *name);

#endif
