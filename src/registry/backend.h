/*
 * Registry backends: where an operation goes after the node's own table
 * (registry.h) has taken it, as a table of functions with one file per
 * backend (as Redis' ae has one per poller):
 *   local     registry/local.c: a single node; every answer is known at once.
 *   cluster   src/cluster: the registry that nodes share through Redis.
 * The server picks one at start-up (orr_server_start) and from then on
 * calls only through the table: no code asks which backend it runs on.
 *
 * A backend reaches connections only through the delivery interface the
 * server gives it (orr_delivery, below): hand a message to a connection id,
 * to a group's members on this node, complete a result, close a connection
 * whose name was taken elsewhere. It never sees a worker or a connection.
 */
#ifndef ORR_REGISTRY_BACKEND_H
#define ORR_REGISTRY_BACKEND_H

#include "registry/registry.h"

#include <orrery/gear.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an operation asks of the backend once the node's table has it. */
typedef enum {
    ORR_RQ_REGISTER = 1, /* a name taken here (as take_name answered): claim it everywhere */
    ORR_RQ_UNREGISTER,
    ORR_RQ_SEND, /* to a name nobody holds on this node */
    ORR_RQ_JOIN,
    ORR_RQ_LEAVE,
    ORR_RQ_PUBLISH, /* this node's members have it already (local_count) */
    ORR_RQ_GONE,    /* a connection that held something ended (park: its names park) */
    ORR_RQ_ANSWER,  /* nothing to do beyond the node: only the answer */
    /* Backends that park (parks_shared): */
    ORR_RQ_PARK,   /* a drain: park conn's names now, before its 1001 (answered with
                      ORR_OP_DRAIN_PARKED once what was on its way to conn has reached its
                      worker) */
    ORR_RQ_ORPHAN, /* a message to a name that reached conn only once it was closing or gone */
} orr_rq_kind;

/* The answer to ORR_RQ_PARK: not a gear's operation (gear.h's ops are below 64). */
#define ORR_OP_DRAIN_PARKED ((orr_registry_op)64)
/* The answer to an ORR_RQ_SEND a backend kept (it is ORR_OP_UNIQUE_SEND to
 * the gear): its connection sends directly again only once every such send
 * of its own was answered, so that its messages to a name cannot overtake
 * each other when that name comes to its node. */
#define ORR_OP_ROUTED_SEND ((orr_registry_op)65)

/*
 * One operation, as its caller describes it. Every pointer is borrowed for
 * the call: a backend that keeps the request copies what it needs.
 * status and count are the outcome on this node (for SEND: ORR_ENOTFOUND;
 * for PUBLISH: local_count), which is the answer when nothing else knows
 * more.
 */
typedef struct orr_reg_req {
    orr_rq_kind kind;
    orr_registry_op op; /* the result's op */
    int status;
    uint64_t count;
    uint64_t conn;     /* the connection it is for (0: none) */
    uint64_t reply_to; /* who gets the result (0: nobody waits) */
    uint64_t tag;
    uint32_t pool_idx; /* the pool's index in the node's table (REGISTER: where the name is) */
    const char *pool;  /* and its name */
    size_t pool_len;
    const char *name; /* the name or group */
    size_t name_len;
    const void *msg; /* SEND, PUBLISH */
    size_t msg_len;
    uint64_t local_count; /* PUBLISH: members reached on this node */
    orr_park_limits park; /* GONE, PARK, ORPHAN: the pool's parking (park_ms 0: none) */
} orr_reg_req;

/* submit's answer: the backend completes the request later. */
#define ORR_RQ_KEPT 1
/* submit's answer to a SEND: the name is parked and the message kept (the
 * result is ORR_OK with count 0, registry.h "parking"). */
#define ORR_RQ_PARKED 2
/* pool_idx of a request whose pool has no index on this node (nothing of
 * it is here). */
#define ORR_RQ_NO_POOL UINT32_MAX

/* ---- what a backend may do to connections ---- */

typedef struct orr_delivery orr_delivery;
typedef struct orr_delivery_ops {
    /* A message for one connection, queued until flush: 0, ORR_EAGAIN when
     * its worker's mailbox is full (nothing queued: try again later), or
     * ORR_ENOTFOUND for an id no worker has. */
    int (*to_conn)(orr_delivery *d, uint64_t conn, const void *msg, size_t len);
    /* A publication to a group's members on this node, after what is
     * queued: how many it reached. */
    size_t (*to_group)(orr_delivery *d, const char *pool, size_t pool_len, const char *group,
                       size_t len, const void *msg, size_t msg_len);
    /* The result of an operation, for the connection (or the push request)
     * that started it; queued until flush. r->name is copied. */
    void (*complete)(orr_delivery *d, uint64_t conn, const orr_registry_result *r);
    /* Close a connection whose name a newer registration took (1008),
     * after what is queued for it. */
    void (*evict)(orr_delivery *d, uint64_t conn);
    /* Hand over what is queued: one lock and at most one wake-up per worker. */
    void (*flush)(orr_delivery *d);
    /* The name of the pool at idx, for an entry of the node's table seen
     * under its lock (its connection keeps the pool): its length, 0 if none. */
    size_t (*pool_name)(orr_delivery *d, uint32_t idx, char *out, size_t cap);
    /* Parking counters of a pool by name (metrics): add's delivered,
     * expired and dropped are added; names >= 0 sets the parked-names gauge. */
    void (*park_count)(orr_delivery *d, const char *pool, size_t pool_len,
                       const orr_park_stats *add, int64_t names);
} orr_delivery_ops;

/* Made by the server for one thread (the cluster's): not thread-safe. */
struct orr_delivery {
    const orr_delivery_ops *ops;
};

/* ---- the backend table ---- */

typedef struct orr_backend orr_backend;
typedef struct orr_backend_ops {
    const char *name;
    /* Parked names live in the backend (the cluster: in Redis), not in the
     * node's table: the node frees a connection's names and hands GONE the
     * pool's limits, a drain submits PARK and waits for its answer before
     * the 1001, and a message that reaches a closing connection goes back
     * as ORPHAN. false: the node's table parks (registry.h). */
    bool parks_shared;
    /* A connection takes a name in the node's table: 0 or its error.
     * local: registered (ORR_REGISTRY_RESTORING: a parked name with kept
     * messages, registry.h); cluster: claimed until Redis confirms, so that a
     * claim that may be refused never receives a message sent to it. */
    int (*take_name)(orr_backend *b, uint32_t pool, const char *name, size_t len, uint64_t conn);
    /* The operation rq after the node's table: 0 when rq's own status and
     * count are the answer (the caller hands it on; nothing was kept),
     * ORR_RQ_PARKED for a SEND to a parked name (answered ORR_OK, count 0),
     * or ORR_RQ_KEPT when the backend took a copy and completes it later
     * through the delivery interface, results for each connection in the
     * order it submitted them. Any thread. */
    int (*submit)(orr_backend *b, const orr_reg_req *rq);
    /* Whether holders in the node's table may be delivered to without
     * asking (the cluster: while this node's lease holds). Any thread. */
    bool (*holder_valid)(orr_backend *b, int64_t now_ms);
    /* Whether it can take requests now; why not, if not. Any thread. */
    bool (*ready)(orr_backend *b, char *why, size_t len);
    /* Prometheus lines for /metrics. */
    void (*metrics)(orr_backend *b, void (*emit)(void *arg, const char *line), void *arg);
    /* SIGTERM: this node drains (its names may be taken elsewhere at once). */
    void (*draining)(orr_backend *b);
    /* After the workers stopped: what is still queued goes out, then it is
     * freed. */
    void (*stop)(orr_backend *b);
} orr_backend_ops;

struct orr_backend {
    const orr_backend_ops *ops;
    orr_registry *reg; /* the node's table (not owned) */
};

/* The single-node backend over reg (registry/local.c). */
orr_backend *orr_local_backend_new(orr_registry *reg);

#endif
