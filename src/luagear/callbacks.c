/*
 * A Lua gear's callbacks as the server calls them (orr_ws_callbacks and the
 * gear's pool and 503 functions): each runs the gear's Lua function in its
 * worker's state.
 *
 * A connection's callbacks run in a coroutine (finished ones are reused).
 * A registry call yields it (api.c); the C callback then returns, and the
 * result (on_registry_result) resumes it. Until it finishes, the
 * connection's later messages wait here in order, each a copy counted in
 * the node's memory budget and bounded per connection; no other
 * connection waits. Everything that may allocate in a state runs inside a
 * protected call, so a state at its memory cap fails the callback, never
 * the process.
 *
 * Failure (a Lua error, the time limit, the memory cap, a yield that is
 * not ours) is logged with the traceback and returned as ORR_EFAIL: the
 * server then gives the connection the crash semantics of C gears, with
 * the state from before the callback (a callback's state changes only when
 * it returns one).
 */
#include "common/log.h"
#include "conn/conn.h"
#include "gearapi/gearapi.h"
#include "luagear/internal.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LG_QUEUE_MAX 1024 /* events waiting per connection */
#define LG_IDLE_MAX 64    /* finished coroutines kept per state */

enum lg_cb { CB_INIT, CB_CLIENT, CB_SERVER, CB_RESULT, CB_TERMINATE };

static const char *const cb_names[] = {"init", "on_client_message", "on_server_message",
                                       "on_registry_result", "terminate"};

/* One call into a state, with what its kind needs. */
typedef struct lg_call {
    lg_state *st;
    lg_conn *lc;
    orr_conn *c;
    enum lg_cb kind;
    int opcode;
    const uint8_t *data;
    size_t len;
    bool direct; /* data is the server's current message (conn_worker.cb_msg) */
    const orr_registry_result *result;
    const orr_reason *reason;
    const char *ctx; /* a handshake's context id (no connection yet) */
    int rc;
} lg_call;

static const lg_route *route_of(const orr_conn *c) {
    return (const lg_route *)(const void *)c->route->callbacks;
}

static const lg_route *hs_route(const orr_handshake *hs) {
    return (const lg_route *)(const void *)((const conn_route *)hs->match.data)->callbacks;
}

static lua_State *lstate(const lg_state *st) {
    return orr_lua_state(st->l);
}

/* ---- coroutines ---- */

static void thread_drop(lg_state *st, lg_thread t) {
    if (t.L) luaL_unref(lstate(st), LUA_REGISTRYINDEX, t.ref);
}

static void thread_put(lg_state *st, lg_thread t) {
    if (st->n_idle == LG_IDLE_MAX) {
        thread_drop(st, t);
        return;
    }
    if (st->n_idle == st->cap_idle)
        st->idle = orr_xrealloc(st->idle, (st->cap_idle = st->cap_idle ? st->cap_idle * 2 : 8) *
                                              sizeof *st->idle);
    st->idle[st->n_idle++] = t;
}

/* ---- failures ---- */

/* Logs the failure whose message (error and traceback) is on top of L,
 * on one line: the error (cut at 400 bytes) and its traceback. */
static void log_failure(lg_state *st, const lg_call *k, const char *what) {
    const char *m = lua_tostring(lstate(st), -1);
    if (!m) m = "error";
    const char *tb = strstr(m, "\nstack traceback:");
    int head = tb ? (int)(tb - m) : (int)strlen(m);
    if (head > 400) head = 400;
    orr_log(ORR_LOG_ERROR, k->c ? orr_conn_context_id(k->c) : k->ctx,
            "lua gear %s: %s failed: %.*s%.1400s", st->rt->name, what, head, m, tb ? tb : "");
}

/* Runs fn(ctx) as a protected call in st: what it left in ctx->rc, or
 * ORR_EFAIL (logged) when it raised an error itself (the memory cap while
 * setting a call up). */
static int protected(lg_state *st, lua_CFunction fn, lg_call *k, const char *what) {
    lua_State *L = lstate(st);
    int top = lua_gettop(L);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, k);
    k->rc = 0;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        log_failure(st, k, what);
        lua_gc(L, LUA_GCCOLLECT);
        k->rc = ORR_EFAIL;
    }
    lua_settop(L, top);
    return k->rc;
}

/* ---- running a connection's callback ---- */

static void push_conn(lua_State *L, const lg_conn *lc) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self);
}

/* Moves lc to its state's generation: its route's callbacks of the new
 * code (kept when the route is gone), then the gear's upgrade(state,
 * old_version), whose non-nil result is the new state. 0 or ORR_EFAIL. */
static int upgrade_conn(lua_State *L, lg_state *st, lg_conn *lc, const lg_call *k) {
    if (lc->gen == st->gen) return 0;
    uint32_t old = lc->gen;
    lc->gen = st->gen;
    int top = lua_gettop(L);
    push_conn(L, lc);
    int u = lua_gettop(L);
    orr__luagear_push_ref(st, st->routes);
    if (lua_getfield(L, -1, lc->route->pattern) == LUA_TTABLE) lua_setiuservalue(L, u, 2);
    orr__luagear_push_ref(st, st->module);
    if (lua_getfield(L, -1, "upgrade") != LUA_TFUNCTION) {
        lua_settop(L, top);
        return 0;
    }
    lua_getiuservalue(L, u, 1);
    orr__luagear_push_ref(st, st->versions);
    lua_rawgeti(L, -1, old);
    lua_remove(L, -2);
    st->running_conn = lc;
    orr_lua_status s = orr_lua_call(st->l, 2, 1, orr__luagear_timeout(st));
    st->running_conn = NULL;
    if (s != ORR_LUA_OK) {
        log_failure(st, k, "upgrade");
        lua_settop(L, top);
        return ORR_EFAIL;
    }
    if (!lua_isnil(L, -1)) lua_setiuservalue(L, u, 1);
    lua_settop(L, top);
    return 0;
}

/* Resumes lc's coroutine t with nargs values on its stack. Finished (the
 * driver below took the callback's result): t is ready again. Yielded by
 * a registry call: lc waits with it. */
static int resume(lua_State *L, lg_call *k, lg_thread t, int nargs) {
    lg_state *st = k->st;
    lg_conn *lc = k->lc;
    st->running = t;
    st->running_conn = lc;
    st->yield_ok = false;
    int nres = 0;
    orr_lua_status s = orr_lua_resume(st->l, t.L, nargs, &nres, orr__luagear_timeout(st));
    st->running = (lg_thread){0};
    st->running_conn = NULL;
    st->ev_str = NULL;
    st->hs_epoch++;
    if (s == ORR_LUA_OK) {
        lua_settop(t.L, 0);
        thread_put(st, t);
        return 0;
    }
    if (s == ORR_LUA_YIELD && st->yield_ok) {
        lc->waiting = t;
        return 0;
    }
    if (s == ORR_LUA_YIELD) {
        lua_settop(t.L, 0);
        orr_lua_push_uncapped(st->l, "coroutine.yield() outside a coroutine of the gear's own");
    }
    log_failure(st, k, cb_names[k->kind]);
    thread_drop(st, t);
    return ORR_EFAIL;
}

/* A server message as a Lua string on co: the one made for the previous
 * member when a group's message reaches several (the same bytes), else a
 * new one, kept for the next. */
#define LG_CACHE_MAX 65536

static void push_server_message(lua_State *co, lg_call *k) {
    lg_state *st = k->st;
    if (k->len > LG_CACHE_MAX) {
        lua_pushlstring(co, (const char *)k->data, k->len);
        return;
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, st->msg_slot);
    size_t n;
    const char *s = lua_tolstring(co, -1, &n);
    if (s && st->msg_key == k->data && n == k->len && memcmp(s, k->data, n) == 0) return;
    lua_pop(co, 1);
    lua_pushlstring(co, (const char *)k->data, k->len);
    lua_pushvalue(co, -1);
    lua_rawseti(co, LUA_REGISTRYINDEX, st->msg_slot);
    st->msg_key = k->data;
}

/* The arguments after (conn, state) of k's callback, on co: how many. */
static int push_args(lua_State *co, lg_call *k) {
    switch (k->kind) {
    case CB_CLIENT:
    case CB_SERVER:
        if (k->kind == CB_SERVER && k->direct)
            push_server_message(co, k);
        else
            lua_pushlstring(co, (const char *)k->data, k->len);
        if (k->direct) {
            k->st->ev_str = lua_tostring(co, -1);
            k->st->ev_len = k->len;
        }
        if (k->kind == CB_SERVER) return 1;
        lua_rawgeti(co, LUA_REGISTRYINDEX, k->st->words[k->opcode == ORR_BINARY]);
        return 2;
    default:
        return 0;
    }
}

/* The callback's result, in its coroutine (also after a registry call
 * suspended it): not nil, it is the connection's new state. Stack: the
 * connection, its route's table, the result. */
static int driver_done(lua_State *co, int status, lua_KContext ctx) {
    (void)status;
    (void)ctx;
    if (!lua_isnil(co, 3)) {
        lua_settop(co, 3);
        lua_setiuservalue(co, 1, 1);
    }
    return 0;
}

/* A connection's callback, as its coroutine's main function (so that
 * what may fail while it is set up, the memory cap, fails the callback):
 * the route's function for the event, called with (conn, state, args...).
 * A missing one succeeds. k is valid only until the first yield. */
static int driver(lua_State *co) {
    lg_call *k = lua_touserdata(co, 1);
    lg_state *st = k->st;
    lua_settop(co, 0);
    push_conn(co, k->lc);
    lua_getiuservalue(co, 1, 2);
    lua_rawgeti(co, LUA_REGISTRYINDEX, st->names[k->kind]);
    if (lua_rawget(co, 2) != LUA_TFUNCTION) return 0;
    lua_pushvalue(co, 1);
    lua_getiuservalue(co, 1, 1);
    int n = 2 + push_args(co, k);
    lua_callk(co, n, 1, 0, driver_done);
    return driver_done(co, LUA_OK, 0);
}

static int upgrade_protected(lua_State *L) {
    lg_call *k = lua_touserdata(L, 1);
    k->rc = upgrade_conn(L, k->st, k->lc, k);
    return 0;
}

static int new_thread_protected(lua_State *L) {
    lg_thread *t = lua_touserdata(L, 1);
    t->L = lua_newthread(L);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* A finished coroutine, or a new one: L NULL when there is no room. */
static lg_thread thread_get(lg_state *st) {
    if (st->n_idle) return st->idle[--st->n_idle];
    lg_thread t = {0};
    lua_State *L = lstate(st);
    lua_pushcfunction(L, new_thread_protected);
    lua_pushlightuserdata(L, &t);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        t.L = NULL;
    }
    return t;
}

/* Starts k's callback for its connection: its coroutine, after moving it
 * to the gear's code in service. Needs no protected call of its own. */
static int start(lg_call *k) {
    lg_state *st = k->st;
    if (k->lc->gen != st->gen && protected(st, upgrade_protected, k, "upgrade") < 0)
        return ORR_EFAIL;
    lg_thread t = thread_get(st);
    if (!t.L) {
        orr_lua_push_uncapped(st->l, "not enough memory (the gear's memory limit)");
        log_failure(st, k, cb_names[k->kind]);
        lua_pop(lstate(st), 1);
        return ORR_EFAIL;
    }
    lua_pushcfunction(t.L, driver);
    lua_pushlightuserdata(t.L, k);
    return resume(lstate(st), k, t, 1);
}

/* ---- events that wait ---- */

static void queue_free(lg_conn *lc, conn_node *node) {
    for (lg_event *e = lc->q_head, *next; e; e = next) {
        next = e->next;
        budget_sub(node, e->len);
        free(e);
    }
    lc->q_head = lc->q_tail = NULL;
    lc->q_n = 0;
    lc->q_bytes = 0;
}

/* Keeps k's message until lc's suspended callback finishes: 0, or a close
 * 1013 when this connection has too much waiting or the node is at its
 * memory budget. */
static int queue_add(lg_call *k) {
    lg_conn *lc = k->lc;
    conn_node *node = k->c->w->node;
    if (lc->q_n >= LG_QUEUE_MAX || !budget_room(node, k->len)) {
        static const char why[] = "server busy: try again later";
        orr_conn_log(k->c, ORR_LOG_WARN,
                     "lua gear %s: %u messages (%zu bytes) wait for a registry answer: closing "
                     "1013",
                     k->st->rt->name, lc->q_n, lc->q_bytes);
        return orr_conn_close(k->c, 1013, why, sizeof why - 1);
    }
    lg_event *e = orr_xmalloc(sizeof *e + k->len);
    e->next = NULL;
    e->kind = k->kind == CB_CLIENT ? LG_EV_CLIENT : LG_EV_SERVER;
    e->opcode = k->opcode;
    e->len = k->len;
    memcpy(e->data, k->data, k->len);
    budget_add(node, k->len);
    if (lc->q_tail)
        lc->q_tail->next = e;
    else
        lc->q_head = e;
    lc->q_tail = e;
    lc->q_n++;
    lc->q_bytes += k->len;
    return 0;
}

static bool closing(const orr_conn *c) {
    return c->w->cb_closed || (c->flags & CF_CLOSE_SENT) || c->phase != PHASE_WS;
}

/* Runs the events that waited, in order, until one suspends again. */
static int drain(lg_call *k) {
    lg_conn *lc = k->lc;
    while (lc->q_head && !lc->waiting.L && !closing(k->c)) {
        lg_event *e = lc->q_head;
        lc->q_head = e->next;
        if (!lc->q_head) lc->q_tail = NULL;
        lc->q_n--;
        lc->q_bytes -= e->len;
        lg_call ev = {.st = k->st,
                      .lc = lc,
                      .c = k->c,
                      .kind = e->kind == LG_EV_CLIENT ? CB_CLIENT : CB_SERVER,
                      .opcode = e->opcode,
                      .data = e->data,
                      .len = e->len};
        int rc = start(&ev);
        budget_sub(k->c->w->node, e->len);
        free(e);
        if (rc < 0) return rc;
    }
    return 0;
}

/* ---- the callbacks ---- */

static lg_state *state_of(const orr_conn *c) {
    lg_state *st = orr__luagear_state(route_of(c)->code->rt, c->w->index);
    if (st) orr__luagear_refresh(st);
    return st;
}

/*
 * A connection's state slot (c->state) holds its record, with the low bit
 * LG_BUSY set while a callback of it is suspended or messages wait: the
 * server's state slot is in the connection's struct, which a delivery
 * touches anyway, so the fan-out fast path below needs nothing else of
 * the connection.
 */
#define LG_BUSY ((uintptr_t)1)

static lg_conn *conn_of(void *state) {
    return (lg_conn *)((uintptr_t)state & ~LG_BUSY);
}

/* After anything that may change whether lc is busy. */
static void mark(orr_conn *c, lg_conn *lc) {
    uintptr_t busy = lc->waiting.L || lc->q_head ? LG_BUSY : 0;
    c->state = (void *)((uintptr_t)lc | busy);
}

static int message(orr_conn *c, void **state, enum lg_cb kind, int opcode, const uint8_t *d,
                   size_t n) {
    lg_conn *lc = conn_of(*state);
    if (!lc) return 0;
    lg_call k = {
        .st = lc->st, .lc = lc, .c = c, .kind = kind, .opcode = opcode, .data = d, .len = n};
    int rc;
    if (lc->waiting.L || lc->q_head) {
        rc = queue_add(&k);
    } else {
        orr__luagear_refresh(lc->st);
        k.direct = d == c->w->cb_msg && n == c->w->cb_msg_len;
        rc = start(&k);
    }
    mark(c, lc);
    return rc;
}

static int lg_client_message(orr_conn *c, void **state, int opcode, const uint8_t *d, size_t n) {
    return message(c, state, CB_CLIENT, opcode, d, n);
}

/* Whether c's server messages may be forwarded without entering Lua: its
 * route's on_server_message is orrery.forward, in the code in service
 * (then the connection runs that code: it started on it, or its worker
 * has not loaded a newer one), and nothing of it waits. Reads only what
 * every member of a group shares, and c's own struct. */
static bool forward_now(const orr_conn *c) {
    const lg_route *r = route_of(c);
    if (!r->forward || !c->state || ((uintptr_t)c->state & LG_BUSY)) return false;
    const orr_luagear *rt = r->code->rt;
    unsigned g = atomic_load_explicit(&rt->gen, memory_order_relaxed);
    const lg_state *st = rt->states[c->w->index];
    return atomic_load_explicit(&r->code->gen, memory_order_relaxed) == g && st && st->gen == g;
}

static int lg_server_message(orr_conn *c, void **state, const uint8_t *d, size_t n) {
    if (forward_now(c)) {
        /* orrery.forward: a message the server checked as UTF-8 goes out
         * as text, in the frame encoded once for every member. */
        int rc = c->w->cb_payload ? orr_conn_send_text(c, d, n) : orr_conn_send_binary(c, d, n);
        return rc == ORR_ECLOSED ? 0 : rc;
    }
    return message(c, state, CB_SERVER, 0, d, n);
}

/* The new connection's record, then init. */
static int init_protected(lua_State *L) {
    lg_call *k = lua_touserdata(L, 1);
    lg_state *st = k->st;
    lg_conn *lc = lua_newuserdatauv(L, sizeof *lc, 2);
    memset(lc, 0, sizeof *lc);
    lc->magic = LG_CONN_MAGIC;
    lc->st = st;
    lc->route = route_of(k->c);
    lc->gen = st->gen;
    luaL_setmetatable(L, LG_CONN_META);
    orr__luagear_push_ref(st, st->routes);
    if (lua_getfield(L, -1, lc->route->pattern) != LUA_TTABLE)
        luaL_error(L, "route %s is not in the gear's code any more", lc->route->pattern);
    lua_setiuservalue(L, -3, 2);
    lua_pop(L, 1);
    lc->self = luaL_ref(L, LUA_REGISTRYINDEX);
    lc->c = k->c;
    k->lc = lc;
    return 0;
}

static int lg_init(orr_conn *c, void **state) {
    lg_state *st = state_of(c);
    if (!st || !st->gen) return ORR_EFAIL;
    lg_call k = {.st = st, .c = c, .kind = CB_INIT};
    int rc = protected(st, init_protected, &k, "init");
    if (rc == 0) rc = start(&k);
    if (k.lc) mark(c, k.lc);
    if (rc < 0 && k.lc) { /* the server restores the state before init: NULL */
        k.lc->orphan_next = st->orphans;
        st->orphans = k.lc;
    }
    return rc;
}

/* The result a suspended callback waits for, as its registry call returns
 * it: true | nil, why (publish: the count; a send to a parked name: true,
 * "parked"). */
static int push_result(lua_State *L, const orr_registry_result *r) {
    if (r->status == ORR_OK) {
        if (r->op == ORR_OP_GROUP_PUBLISH) {
            lua_pushinteger(L, (lua_Integer)r->count);
            return 1;
        }
        lua_pushboolean(L, 1);
        if (r->op != ORR_OP_UNIQUE_SEND || r->count != ORR_SEND_PARKED) return 1;
        lua_pushliteral(L, "parked");
        return 2;
    }
    lua_pushnil(L);
    lua_pushstring(L, r->status == ORR_ETAKEN      ? "taken"
                      : r->status == ORR_ENOTFOUND ? "not_found"
                      : r->status == ORR_EAGAIN    ? "unavailable"
                                                   : orr_strerror(r->status));
    return 2;
}

static int result_protected(lua_State *L) {
    lg_call *k = lua_touserdata(L, 1);
    lg_thread t = k->lc->waiting;
    k->lc->waiting = (lg_thread){0};
    int n = push_result(L, k->result);
    lua_xmove(L, t.L, n);
    k->rc = resume(L, k, t, n);
    return 0;
}

static int lg_result(orr_conn *c, void **state, const orr_registry_result *r) {
    lg_conn *lc = conn_of(*state);
    if (!lc || !lc->waiting.L || lc->op != r->op) return 0; /* nobody waits for it */
    lg_call k = {.st = lc->st, .lc = lc, .c = c, .kind = CB_RESULT, .result = r};
    int rc = protected(lc->st, result_protected, &k, "a registry call's callback");
    if (rc == 0) rc = drain(&k);
    mark(c, lc);
    return rc;
}

static lg_conn *unorphan(lg_state *st, const orr_conn *c) {
    for (lg_conn **p = &st->orphans; *p; p = &(*p)->orphan_next)
        if ((*p)->c == c) {
            lg_conn *lc = *p;
            *p = lc->orphan_next;
            return lc;
        }
    return NULL;
}

static int terminate_protected(lua_State *L) {
    lg_call *k = lua_touserdata(L, 1);
    lg_state *st = k->st;
    lg_conn *lc = k->lc;
    int top = lua_gettop(L);
    if (upgrade_conn(L, st, lc, k) == 0) {
        push_conn(L, lc);
        int u = lua_gettop(L);
        lua_getiuservalue(L, u, 2);
        if (lua_getfield(L, -1, "terminate") == LUA_TFUNCTION) {
            lua_pushvalue(L, u);
            lua_getiuservalue(L, u, 1);
            lua_createtable(L, 0, 3);
            lua_pushstring(L, orr_reason_name(k->reason->kind));
            lua_setfield(L, -2, "kind");
            lua_pushinteger(L, k->reason->code);
            lua_setfield(L, -2, "code");
            lua_pushlstring(L, k->reason->text ? k->reason->text : "", k->reason->text_len);
            lua_setfield(L, -2, "text");
            st->running_conn = lc;
            if (orr_lua_call(st->l, 3, 0, orr__luagear_timeout(st)) != ORR_LUA_OK)
                log_failure(st, k, "terminate");
            st->running_conn = NULL;
        }
    }
    lua_settop(L, top);
    return 0;
}

static void lg_terminate(orr_conn *c, void *state, const orr_reason *reason) {
    lg_conn *lc = conn_of(state);
    if (!lc) {
        lg_state *st = orr__luagear_state(route_of(c)->code->rt, c->w->index);
        lc = st ? unorphan(st, c) : NULL;
        if (!lc) return;
    }
    lg_state *st = lc->st;
    orr__luagear_refresh(st);
    thread_drop(st, lc->waiting);
    lc->waiting = (lg_thread){0};
    queue_free(lc, c->w->node);
    lg_call k = {.st = st, .lc = lc, .c = c, .kind = CB_TERMINATE, .reason = reason};
    protected(st, terminate_protected, &k, "terminate");
    lc->c = NULL;
    luaL_unref(lstate(st), LUA_REGISTRYINDEX, lc->self);
}

/* ---- a handshake's callbacks ---- */

typedef struct hs_call {
    lg_call k;
    orr_handshake *hs;
    const char *fn; /* the route's or the gear's function */
    bool of_route;
    char *pool;
    size_t cap;
} hs_call;

/* Calls fn(hs) of the route (connect) or the gear (pool, 503); pool:
 * its string result, copied. */
static int hs_protected(lua_State *L) {
    hs_call *h = lua_touserdata(L, 1);
    lg_state *st = h->k.st;
    orr__luagear_push_ref(st, h->of_route ? st->routes : st->module);
    if (h->of_route) lua_getfield(L, -1, hs_route(h->hs)->pattern);
    if (!lua_istable(L, -1) || lua_getfield(L, -1, h->fn) != LUA_TFUNCTION) {
        if (h->pool) snprintf(h->pool, h->cap, "gear:%s", st->rt->name);
        return 0;
    }
    orr__luagear_push_hs(L, st, h->hs, !h->pool);
    orr_lua_status s = orr_lua_call(st->l, 1, 1, orr__luagear_timeout(st));
    st->hs_epoch++;
    if (s == ORR_LUA_OK && h->pool && lua_type(L, -1) != LUA_TSTRING) {
        lua_pushfstring(L, "it returned a %s, not a pool name", luaL_typename(L, -1));
        s = ORR_LUA_ERROR;
    }
    if (s != ORR_LUA_OK) {
        log_failure(st, &h->k, h->fn);
        h->k.rc = ORR_EFAIL;
    } else if (h->pool) {
        snprintf(h->pool, h->cap, "%s", lua_tostring(L, -1));
    }
    return 0;
}

static int hs_run(orr_handshake *hs, const char *fn, bool of_route, char *pool, size_t cap) {
    lg_state *st = orr__luagear_state(hs_route(hs)->code->rt, hs->c->w->index);
    if (!st) return ORR_EFAIL;
    orr__luagear_refresh(st);
    if (!st->gen) return ORR_EFAIL;
    hs_call h = {.k = {.st = st, .ctx = orr_hs_context_id(hs)},
                 .hs = hs,
                 .fn = fn,
                 .of_route = of_route,
                 .pool = pool,
                 .cap = cap};
    return protected(st, hs_protected, &h.k, fn);
}

static int lg_connect(orr_handshake *hs) {
    return hs_run(hs, "connect", true, NULL, 0);
}

int orr__luagear_pool(const orr_handshake *hs, char *pool, size_t cap) {
    return hs_run((orr_handshake *)hs, "executor_pool_for_web_request", false, pool, cap);
}

int orr__luagear_too_many(orr_handshake *hs) {
    return hs_run(hs, "ws_too_many_connections", false, NULL, 0);
}

const orr_ws_callbacks orr__luagear_callbacks = {
    .connect = lg_connect,
    .init = lg_init,
    .on_client_message = lg_client_message,
    .on_server_message = lg_server_message,
    .terminate = lg_terminate,
    .on_registry_result = lg_result,
};
