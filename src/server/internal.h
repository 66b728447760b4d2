/*
 * Private to src/server: the worker, executor pools, routes and the server
 * itself, as its files share them. Nothing outside src/server includes this
 * (src/conn and src/gearapi see the worker's conn_worker and the node's
 * conn_node and gear_host, which the structures here embed).
 *
 * Threading: a worker is one thread with its own epoll set, listener,
 * connections and timers. A connection is created, used and freed only by
 * its worker. Other threads reach a worker only through its inbox
 * (worker_post), which wakes it through an eventfd.
 */
#ifndef ORR_SERVER_INTERNAL_H
#define ORR_SERVER_INTERNAL_H

#include "common/clock.h"
#include "common/err.h"
#include "common/list.h"
#include "config/config.h"
#include "conn/conn.h"
#include "gearapi/gearapi.h"
#include "http/request.h"
#include "http/router.h"
#include "loop/loop.h"
#include "loop/slots.h"
#include "loop/tlist.h"
#include "loop/xq.h"
#include "luagear/luagear.h"
#include "registry/backend.h"
#include "registry/registry.h"
#include "server/pool_table.h"
#include "server/server.h"
#include "tls/tls.h"
#include "ws/frame.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct orr_worker orr_worker;

typedef struct orr_pool orr_pool;

/* Past MAILBOX_MAX_BYTES a worker's inbox refuses new deliveries. */
#define MAILBOX_MAX_BYTES ((size_t)256 << 20)

/* A result from the inbox, gathered while a list runs (worker.c). */
typedef struct later_ref {
    orr_xq_link *l;
    uint64_t conn;
    size_t seq;
} later_ref;

struct orr_worker {
    conn_worker cw; /* what its connections share: cork, lists, callback context (conn/conn.h) */
    orr_server *srv;
    pthread_t thread;
    orr_loop loop; /* its epoll set, tick, inbox (typed items, worker.c) and now_ms */
    int listen_fd;
    bool draining, stopping;
    /* Its connections by id (loop/slots.h): slots.live of them. */
    orr_slots slots;
    int64_t shed_ms; /* when this worker last shed output for the budget */
    bool shedding;
    /* Drain: close 1001 spread over drain_ms. */
    int64_t drain_start_ms;
    size_t drain_total, drain_sent;
    /* Deliveries this worker's own connections addressed to each other:
     * handled after the current epoll batch, without a lock or a wake-up. */
    orr_xq_chain local;
    bool accept_paused;
    later_ref *later; /* results from the inbox, run after the list that brought them */
    size_t n_later, cap_later;
    orr_idvec scratch_ids; /* members of a publication, reused */
    /* Bytes waiting in its inbox and local list (payloads and ids): past
     * MAILBOX_MAX_BYTES new deliveries are refused, so a flood of
     * publications cannot take memory without bound. */
    atomic_size_t queued_bytes;
    atomic_uint_fast64_t mailbox_dropped;
};

/* The worker a connection lives on. */
static inline orr_worker *worker_of(conn_worker *cw) {
    return ORR_CONTAINER_OF(cw, orr_worker, cw);
}

/* A gear name that was ever served (gears.c): its own pool, kept for the
 * server's life, so that its names and groups outlive any version. */
typedef struct gear_name {
    char name[ORR_POOL_NAME_MAX];
    orr_pool *pool;       /* gear:<name> */
    atomic_uint versions; /* loaded now: in service, or still used by connections */
    orr_luagear *lua;     /* a Lua gear's runtime (its states), made by its first load */
} gear_name;

typedef struct gear_version gear_version;

/* What a route leads to (the router's data pointer, with pool NULL), and
 * what a connection's `route` points to: the same with its pool, interned
 * per (version route, pool) so that struct orr_conn needs no pool field. */
typedef struct orr_route_target {
    conn_route r; /* first: a connection's route points here */
    gear_version *version;
    orr_pool *_Atomic pool;
} orr_route_target;

/* One version of a gear (gears.c): linked into the program, or loaded from
 * a file of gears_dir. References: the table while it is in service, each
 * handshake routed to it, each connection on it until its struct is freed.
 * The last one unloads it (on_unload, then the object goes). */
struct gear_version {
    orr_server *srv;
    const orr_gear *gear;  /* its checked copy: &copy.gear, or its lib's */
    gear_copy copy;        /* a linked gear's */
    gear_lib *lib;         /* a loaded gear's object, or NULL */
    orr_luagear_code *lua; /* a Lua gear's checked code (gear points into it), or NULL */
    char file[256];        /* its file in gears_dir; "" for a linked gear */
    int64_t loaded_ms;     /* wall clock */
    uint64_t dev, ino, size;
    int64_t mtime_ns; /* the file's identity when loaded: a change is a new version */
    gear_name *name;
    atomic_uint refs;
    orr_route_target *targets; /* [n_ws_routes]: the router's data */
    /* Bindings (route, pool) made on demand: per route, chunks of 256 by
     * pool idx (bind_lock makes them; reads are lock-free). */
    orr_route_target *_Atomic *_Atomic *binds;
    size_t n_chunks;
    pthread_mutex_t bind_lock;
};

/* What handshakes route with: replaced whole by a reload (table_lock). */
typedef struct gear_table {
    orr_router *router;
    gear_version **v; /* in service, one reference each */
    size_t n;
} gear_table;

/* Loads counted per gear name (or file name, when no gear could be read). */
typedef struct gear_loads {
    char label[256];
    uint64_t ok, error;
} gear_loads;

/* The server's whole route behind a connection's (c->route). */
static inline const orr_route_target *route_of(const conn_route *r) {
    return (const orr_route_target *)r;
}

/* An executor pool: gear:<name> or tenant:<id> (pool.c). A gear's own pool
 * and the pools the config lists stay for the server's life; any other is
 * freed with its last reference, so at most max_pools are alive at once.
 * References: a handshake that picked it, a connection from its upgrade
 * until the connection struct is freed (its route names it), a
 * push request, a publication from another node (delivery.c) while it runs. */
enum { POOL_NAME_MAX = ORR_POOL_NAME_MAX };
struct orr_pool {
    uint32_t idx; /* below max_pools; another pool's once this one is freed */
    bool gear;    /* a gear's own: never freed, references not counted (set at creation) */
    bool listed;  /* the config's "pools" lists it: kept without references (pools lock) */
    char name[POOL_NAME_MAX];
    uint8_t name_len; /* strlen(name) */
    orr_server *srv;
    atomic_uint refs;  /* 0 -> 1 and 1 -> 0 only under the pools lock */
    atomic_uint conns; /* websocket connections holding a slot */
    atomic_uint max;   /* ws_max_connections */
    atomic_uint_fast64_t rejected, slow_closes;
    atomic_bool deflate;     /* negotiate permessage-deflate (SIGHUP may change it) */
    atomic_uint deflate_min; /* deflate_min_bytes */
    /* Parking (SIGHUP may change it): 0 for a pool that may go (a tenant
     * pool not listed: the registry keys parked names by idx) and on a
     * cluster (single node only for now). */
    atomic_uint park_ms, park_max_messages, park_max_bytes;
};

/* p's parking now: true (and *lim) when its names park. */
bool pool_park_limits(const orr_pool *p, orr_park_limits *lim);

typedef struct orr_pools {
    pthread_mutex_t lock; /* table, all, each pool's `listed` and last reference */
    orr_pool **all;       /* [max] by idx; NULL below table.hw: an idx free for reuse */
    pool_table table;     /* name -> idx */
    orr_config cfg;       /* its "pools" and "ws_max_connections" (reload replaces it) */
} orr_pools;

struct orr_server {
    orr_config cfg;
    char config_path[1024]; /* "" without --config */
    bool listen_overridden;
    /* The gears (gears.c). */
    pthread_mutex_t gears_lock;  /* reloads, names, loads, gear_config (one reload at a time) */
    pthread_rwlock_t table_lock; /* table: handshakes read it, a reload swaps it */
    gear_table *table;
    gear_name **names;
    size_t n_names, cap_names;
    gear_loads *loads;
    size_t n_loads, cap_loads;
    char *gear_config;             /* gear_config's JSON text, for on_load (SIGHUP replaces it) */
    orr_luagear_limits lua_limits; /* lua_memory_limit_mb, lua_callback_timeout_ms */
    orr_worker *workers;
    int n_workers;
    uint16_t port; /* actual listening port */
    atomic_int draining;
    orr_registry *registry; /* the node's table */
    orr_backend *backend;   /* where operations go beyond it: local or cluster (start-up) */
    orr_delivery *delivery; /* what a backend's own thread delivers with (delivery.c) */
    orr_pools pools;
    /* What the workers' connections share: limits SIGHUP may change, the
     * memory budget, the host functions (conn/conn.h). */
    conn_node node;
    gear_host gear_view; /* what the gear API reaches of the node (mailbox.c fills it) */
    atomic_int_fast64_t shed_wake_ms; /* when a worker last asked the others to shed */
    pthread_rwlock_t origin_lock;     /* origin_cfg: the allowlists (origin.c), SIGHUP swaps it */
    orr_config origin_cfg;
    pthread_mutex_t token_lock;
    char api_token[513]; /* "" = push API off */
    orr_tls *tls;        /* the listener's certificate (tls), or NULL: plain TCP */
    /* Handshakes (requests to websocket routes) by response status. */
    atomic_uint_fast64_t hs_status[8];
    /* Failed accepts (out of descriptors or memory): every one counted, at
     * most one log line per second for the whole server (the second of the
     * last, monotonic; -1 before the first). */
    atomic_uint_fast64_t accept_errors;
    atomic_int_fast64_t accept_error_logged_s;
};

/* hs_status slots */
enum { HS_101, HS_400, HS_404, HS_426, HS_500, HS_503, HS_OTHER_4XX, HS_OTHER, HS_N };

/* ---- origin.c: the Origin allowlist ---- */
void origin_init(orr_server *s);
/* SIGHUP: the lists of next from now on. */
void origin_set(orr_server *s, const orr_config *next);
void origin_free(orr_server *s);
/* Whether a handshake's Origin may open a websocket in `pool`; a refusal
 * is logged (the caller answers 403). */
bool origin_check(orr_server *s, const orr_http_request *req, const char *pool, const char *ctx);

/* ---- gears.c: the gears served, their versions, reloads ---- */
/* At start: the linked gears (any failure is an error) and every *.so of
 * gears_dir (a failure is logged and skipped): 0, or -1 with err set. The
 * pools must exist (pools_init). */
int gears_load(orr_server *s, const orr_gear *const *linked, size_t n, char *err, size_t errlen);
/* Scans gears_dir again (SIGHUP, POST /_orrery/gears/reload): new files are
 * loaded, changed ones become a new version (connections on the old one
 * keep it until they end), removed ones stop taking handshakes; a failure
 * changes nothing. Returns the summary as JSON (malloc'd):
 * {"loaded":[...],"upgraded":[...],"removed":[...],"failed":[{"file","why"}]}. */
char *gears_reload(orr_server *s);
/* SIGHUP: gear_config for the versions loaded from now on, and the Lua
 * limits (each Lua state takes them at its next callback). */
void gears_set_config(orr_server *s, const orr_config *next);
/* Routes a handshake: 0 with *match (its data an orr_route_target) and a
 * reference on its version for the caller (gears_version_unref), or the
 * router's ORR_ENOTFOUND / error. */
int gears_route(orr_server *s, const char *host, size_t host_len, const char *path, size_t path_len,
                char *scratch, size_t scratch_len, orr_route_match *match);
void gears_version_unref(gear_version *v);
/* The interned target for (route, pool): what a connection's route points to. */
const orr_route_target *gears_bind(const orr_route_target *route, orr_pool *p);
/* Metrics lines (orrery_gear_versions, orrery_gear_loads_total), appended
 * through fn; and the list for GET /: fn(arg, gear, pattern, version) for
 * each route in service, version as "FILE, loaded TIME" (or "linked"). */
void gears_metrics(orr_server *s, void (*fn)(void *arg, const char *text), void *arg);
void gears_foreach_route(orr_server *s,
                         void (*fn)(void *arg, const orr_gear *g, const char *pattern,
                                    const char *version),
                         void *arg);
/* Whether a gear of that name is in service. */
bool gears_serving(orr_server *s, const char *name);
/* At the end (workers gone): every version unloads. */
void gears_unload(orr_server *s);

/* ---- worker.c ---- */
/* What connections ask of the server (conn/conn.h). */
extern const conn_host worker_conn_host;
orr_conn *worker_conn_new(orr_worker *w, int fd, const struct sockaddr *sa);

/* ---- budget.c: defending the bound on the bytes clients make this node hold ---- */
/* Near the budget, close this worker's connections holding the most
 * unsent output (1008) until it is back under three quarters. `force`
 * skips the rate limit (10 ms). */
void budget_shed(orr_worker *w, bool force);

/* ---- pool.c: executor pools, their lifetimes, limits and route bindings ---- */
int pools_init(orr_server *s);
void pools_free(orr_server *s);
/* A gear's own pool (gear:<gear>), made at start: kept for the server's
 * life, its references not counted. NULL past max_pools. */
orr_pool *pools_add_gear(orr_server *s, const char *name);
/* The pool of that name with a reference for the caller (pool_unref),
 * created if `create` and fewer than max_pools are alive; NULL if absent
 * (or no room: logged). The name must be valid (orr_pool_name_check). */
orr_pool *pools_acquire(orr_server *s, const char *name, size_t len, bool create);
/* One more reference, for a caller who holds one already (or whose pool a
 * live connection holds: a registry entry's). */
void pool_ref(orr_pool *p);
/* Gives one back: an unlisted tenant pool goes with its last. p may be NULL. */
void pool_unref(orr_pool *p);
/* The name of the pool at idx, copied under the pools' lock: its length (0: none). */
size_t pools_name_of(orr_server *s, uint32_t idx, char *out, size_t cap);
/* fn for each pool alive, under the pools lock (fn must not take it). */
void pools_foreach(orr_server *s, void (*fn)(void *arg, const orr_pool *p), void *arg);
/* Take a connection slot: true, or false at the limit (counted as rejected). */
bool pool_take(orr_pool *p);
void pool_release(orr_pool *p);
/* SIGHUP: the new "pools" and "ws_max_connections" apply to every pool; a
 * pool no longer listed goes once unused, a newly listed one is made. */
void pools_reconfigure(orr_server *s, const orr_config *cfg);

/* ---- mailbox.c: the registry's gear API, results and delivery ---- */
/* Deliver m to these connections (any workers): one hand-off per worker.
 * `from` is the calling worker (its own connections get theirs without a
 * lock), or NULL. Takes no reference from the caller. Returns how many were
 * queued: a worker whose mailbox holds MAILBOX_MAX_BYTES already refuses
 * more (counted in mailbox_dropped). */
size_t mailbox_post(orr_server *s, orr_worker *from, const uint64_t *ids, size_t n, orr_payload *m);
/* Publish to a group / send to a name of a pool, from any connection (gear
 * or push API): the number of members reached / whether the name is held. */
size_t mailbox_publish(orr_worker *w, orr_pool *pool, const char *group, size_t len,
                       const void *msg, size_t msg_len);
bool mailbox_send(orr_worker *w, orr_pool *pool, const char *name, size_t len, const void *msg,
                  size_t msg_len);
/* Whether this node delivers to `name` of `pool` by itself: a local holder,
 * confirmed, and while the backend lets this node deliver (holder_valid); *to is it. */
bool mailbox_local_holder(orr_worker *w, orr_pool *pool, const char *name, size_t len,
                          uint64_t *to);
/* The connection's session ended: release its slot, forget its names. */
void mailbox_conn_ended(orr_worker *w, orr_conn *c);
/* Parking (registry/registry.h), on c's worker: before the drain's 1001,
 * c's names are parked (a pool that parks), so that what is sent to them
 * from now on is kept, not lost with the close. true: the backend parks them
 * (parks_shared) and answers ORR_OP_DRAIN_PARKED, whose arrival sends the
 * 1001 (mailbox_late_result); false: send it now. */
bool mailbox_park_for_drain(orr_worker *w, orr_conn *c);
/* Messages for connection id that it cannot take (c: closing; NULL: gone):
 * those sent to a name are kept for its parked name, in front. */
void mailbox_orphans(orr_worker *w, uint64_t id, orr_conn *c, const orr_payload *const *ps,
                     size_t n);
/* The restore item: id took `name`, parked with kept messages; hands them
 * over until none is left, when the name becomes held. */
void mailbox_restore(orr_worker *w, uint64_t id, uint32_t pool, const char *name, size_t len);
/* The gear API's view of the node, once the backend is chosen. */
void mailbox_gear_host(orr_server *s, gear_host *h);

/* ---- worker.c: the inbox ---- */
bool worker_post_deliver(orr_worker *to, orr_worker *from, orr_payload *m, const uint64_t *ids,
                         size_t n);
/* From a backend's thread (delivery.c): registry results, in batches
 * (chained with orr_xq_chain_add, handed over with one lock and at
 * most one wake-up), and an order to close a connection whose name a newer
 * registration took (1008). */
orr_xq_link *worker_result_msg(uint64_t conn, const orr_registry_result *r);
/* A delivery of p (one more reference) to ids on `to`, to be chained like a
 * result; NULL, counting nothing, when `to`'s mailbox is full (the caller
 * retries later or counts the drop). */
orr_xq_link *worker_deliver_msg(orr_worker *to, orr_payload *p, const uint64_t *ids, size_t n);
void worker_post_chain(orr_worker *w, orr_xq_chain *c);
void worker_post_kill(orr_worker *to, uint64_t conn);
/* Queues mailbox_restore on w itself (its local list: after the running
 * callback and its results). */
void worker_post_restore(orr_worker *w, uint64_t conn, uint32_t pool, const char *name, size_t len);
/* Ask a worker to shed output for the budget now (budget.c). */
void worker_post_shed(orr_worker *to);
/* A result the backend completed later: to the gear, or to a push
 * request waiting for it. */
void mailbox_late_result(orr_worker *w, orr_conn *c, const orr_registry_result *r);

/* ---- delivery.c: the delivery interface (registry/backend.h) ---- */
/* For one thread other than the workers (a backend's): messages and
 * results are chained per worker and handed over by flush. */
orr_delivery *delivery_new(orr_server *s);
void delivery_free(orr_delivery *d);

/* ---- request.c: what a request means ---- */
/* Answers one complete request (its body whole, if any): true when the
 * connection switched to the websocket phase (conn_host.request). */
bool request_handle(orr_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                    size_t body_len);

/* ---- metrics.c: GET /metrics ---- */
char *metrics_render(orr_server *s, size_t *len);
void metrics_count_handshake(orr_server *s, int status);

/* ---- push.c: the push API (POST /_orrery/pools/...) ---- */
/* A request whose path starts with /_orrery/: answers it (body may be NULL). */
void push_handle(orr_worker *w, orr_conn *c, const orr_http_request *req, const uint8_t *body,
                 size_t body_len, bool keep_alive);
/* Before reading a body: whether this request may send one of its
 * Content-Length; if not, *status is the answer (400, 401, 404, 405, 411,
 * 413), given without reading it. */
bool push_body_wanted(orr_worker *w, const orr_http_request *req, int *status);
/* The backend's answer to a push request that waited for it. */
void push_answer(orr_worker *w, orr_conn *c, const orr_registry_result *r);
/* ---- index_page.c: GET / ---- */
char *index_page_render(orr_server *s, size_t *len);

#endif
