/*
 * src/luagear: gears written in Lua (docs/LUA_GEARS.md), seen by the
 * server as gears like any other: a checked file becomes an orr_gear whose
 * callbacks are this module's, which run the gear's Lua functions.
 *
 * Two objects:
 *  - a runtime (orr_luagear), one per gear name for the server's life: one
 *    sandboxed Lua state per worker (made on that worker's first use), the
 *    code in service and its generation;
 *  - a code (orr_luagear_code), one per loaded version of the file: its
 *    text, checked, and the orr_gear that routes to it.
 * Upgrade in place: orr_luagear_activate makes a code the runtime's
 * current one; each worker loads it into its state at the gear's next
 * callback there, and each open connection switches to it at its own next
 * callback (through the gear's `upgrade`), with its state kept. Workers
 * touch only their own state; the current code is read under a lock only
 * when its generation changed.
 */
#ifndef ORR_LUAGEAR_LUAGEAR_H
#define ORR_LUAGEAR_LUAGEAR_H

#include <orrery/gear.h>
#include <stddef.h>
#include <stdint.h>

typedef struct orr_luagear orr_luagear;
typedef struct orr_luagear_code orr_luagear_code;

/* The limits every state of a runtime runs under. */
typedef struct orr_luagear_limits {
    size_t mem_cap;      /* bytes per gear per worker: lua_memory_limit_mb */
    uint32_t timeout_ms; /* per callback: lua_callback_timeout_ms */
} orr_luagear_limits;

/* Checks a gear file's text on the calling thread, in a state of its own
 * that is closed before this returns: it compiles, runs within the
 * limits, and returns a gear table (name, routes with their patterns and
 * callbacks, the optional gear functions, no unknown key). The code, or
 * NULL with why. `file` names the chunk in tracebacks. */
orr_luagear_code *orr_luagear_code_load(const char *text, size_t len, const char *file,
                                        const orr_luagear_limits *lim, char *why, size_t cap);
/* The code's gear (its name and patterns: the caller still checks both),
 * valid until orr_luagear_code_free. */
const orr_gear *orr_luagear_code_gear(const orr_luagear_code *code);
/* Ties code to the runtime of its gear name (before it serves anyone). */
void orr_luagear_code_attach(orr_luagear_code *code, orr_luagear *rt);
/* Frees a code no connection and no router uses any more. */
void orr_luagear_code_free(orr_luagear_code *code);

/* The runtime of one gear name, for `workers` workers (indexes 0..n-1). */
orr_luagear *orr_luagear_new(const char *name, int workers, const orr_luagear_limits *lim);
/* Frees it and its states: only once no worker runs (the server's end). */
void orr_luagear_free(orr_luagear *rt);
/* New limits (SIGHUP): each state takes them at its next callback. */
void orr_luagear_set_limits(orr_luagear *rt, const orr_luagear_limits *lim);
/* Puts code (attached to rt) in service: a new generation. */
void orr_luagear_activate(orr_luagear *rt, orr_luagear_code *code);

#endif
