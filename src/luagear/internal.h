/*
 * What src/luagear's files share: the runtime, its per-worker states, a
 * connection's record (a userdata in its worker's state) and the events
 * that wait while a connection's callback is suspended.
 */
#ifndef ORR_LUAGEAR_INTERNAL_H
#define ORR_LUAGEAR_INTERNAL_H

#include "lua/sandbox.h"
#include "luagear/luagear.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define LG_CONN_META "orrery.conn"
#define LG_HS_META "orrery.handshake"

typedef struct lg_route {
    orr_ws_callbacks cb; /* first: a connection's route->callbacks points here */
    orr_luagear_code *code;
    char *pattern;
    bool forward; /* its on_server_message is orrery.forward */
} lg_route;

struct orr_luagear_code {
    orr_gear gear; /* ws_routes[i].callbacks = &routes[i].cb */
    orr_ws_route *ws_routes;
    lg_route *routes;
    size_t n_routes;
    char *name;
    char *text;
    size_t len;
    char chunk[300]; /* "@FILE": the chunk name in tracebacks */
    orr_luagear *rt;
    atomic_uint gen; /* its generation, once activated (workers read it) */
};

/* A code in service, as workers take it (refcounted: a code may be freed
 * while a worker still compiles its text). */
typedef struct lg_source {
    atomic_uint refs;
    uint32_t gen;
    char chunk[300];
    size_t len;
    char text[];
} lg_source;

typedef struct lg_thread {
    lua_State *L;
    int ref; /* anchors it in the registry */
} lg_thread;

typedef struct lg_conn lg_conn;

/* One worker's state of one gear: only that worker touches it. */
typedef struct lg_state {
    orr_luagear *rt;
    int worker;
    orr_lua *l;
    size_t cap;          /* its memory cap, as last taken from the runtime */
    uint32_t gen;        /* the generation loaded (0: none yet) */
    uint32_t failed_gen; /* a newer one that did not load here (not tried again) */
    int module;          /* registry refs: the gear table, */
    int routes;          /* pattern -> route table, */
    int versions;        /* generation -> the gear's `version` */
    int names[5];        /* the callbacks' names (callbacks.c's order), as Lua strings */
    int words[2];        /* "text", "binary" */
    int msg_slot;        /* the last server message as a Lua string */
    const void *msg_key; /* ... and the bytes it was made from */
    /* The event running: its coroutine (NULL in connect, terminate...),
     * its connection, the message string it was given (the gear API sends
     * that one back without a copy or a check) and whether a yield is one
     * of ours. */
    lg_thread running;
    lg_conn *running_conn;
    const char *ev_str;
    size_t ev_len;
    bool yield_ok;
    uint64_t hs_epoch; /* handshake objects of older epochs are dead */
    lg_thread *idle;   /* finished coroutines, ready again */
    size_t n_idle, cap_idle;
    lg_conn *orphans; /* records of failed inits, until their terminate */
} lg_state;

struct orr_luagear {
    char name[256];
    int n_workers;
    lg_state **states; /* [n_workers] */
    pthread_mutex_t lock;
    lg_source *cur; /* under lock */
    atomic_uint gen;
    atomic_size_t mem_cap;
    atomic_uint timeout_ms;
};

/* An event that waits while its connection's callback is suspended. */
typedef struct lg_event {
    struct lg_event *next;
    int kind; /* LG_EV_* */
    int opcode;
    size_t len;
    uint8_t data[];
} lg_event;

enum { LG_EV_CLIENT, LG_EV_SERVER };

/* A connection's record: a userdata (user values: 1 its state, 2 its
 * route's table of callbacks) anchored by `self`. */
#define LG_CONN_MAGIC 0x6c67636fu

struct lg_conn {
    uint32_t magic; /* LG_CONN_MAGIC: api.c's check */
    orr_conn *c;    /* NULL once terminated */
    lg_state *st;
    const lg_route *route;
    uint32_t gen; /* the generation its callbacks come from */
    int self;
    lg_thread waiting;  /* the suspended coroutine (L NULL: none) */
    orr_registry_op op; /* what it waits for */
    lg_event *q_head, *q_tail;
    uint32_t q_n;
    size_t q_bytes;
    lg_conn *orphan_next;
};

/* runtime.c */
lg_state *orr__luagear_state(orr_luagear *rt, int worker);
/* Loads the runtime's current generation into st if it has a newer one
 * (a failure is logged and keeps the one loaded). */
void orr__luagear_refresh(lg_state *st);
uint32_t orr__luagear_timeout(const lg_state *st);
/* Pushes registry ref `ref` of st. */
void orr__luagear_push_ref(lg_state *st, int ref);

/* api.c */
/* The orrery table and the metatables, in a new state (st may be NULL: a
 * state that only checks a file). */
void orr__luagear_open_api(lua_State *L, lg_state *st);
/* orrery.forward (callbacks.c recognises it). */
int orr__luagear_forward(lua_State *L);
/* Pushes a handshake object for hs (writable: connect's, which may answer). */
void orr__luagear_push_hs(lua_State *L, lg_state *st, const orr_handshake *hs, bool writable);

/* callbacks.c */
extern const orr_ws_callbacks orr__luagear_callbacks;
int orr__luagear_pool(const orr_handshake *hs, char *pool, size_t cap);
int orr__luagear_too_many(orr_handshake *hs);

#endif
