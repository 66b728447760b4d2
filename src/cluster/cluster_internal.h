/*
 * Private to src/cluster: the cluster thread's state, shared by cluster.c
 * (requests, replies, messages from other nodes: the registry protocol) and
 * cluster_life.c (the thread, connection state, write-back, liveness and
 * the reaper). Everything here runs on the cluster thread unless it says
 * otherwise.
 */
#ifndef ORR_CLUSTER_INTERNAL_H
#define ORR_CLUSTER_INTERNAL_H

#include "cluster/cluster.h"
#include "cluster/redis.h"
#include "cluster/scripts.h"
#include "common/clock.h"
#include "common/err.h"
#include "http/pool_name.h"
#include "loop/loop.h"
#include "loop/xq.h"

#include <pthread.h>
#include <stdatomic.h>

#define TICK_MS 50
#define KEY_MAX (16 + ORR_POOL_NAME_MAX + ORR_NAME_MAX + 96)
/* Sends queued in one loop pass go to Redis as one script call of at most this many. */
#define SEND_BATCH 256
/* Parked names one sweep removes at most (another follows a full one at once). */
#define SWEEP_BATCH 1000

typedef struct orr_cluster orr_cluster;

/* A request as the cluster keeps it (a copy of the submitted orr_reg_req,
 * with its pool name, name and message in one allocation). */
typedef struct orr_cl_req {
    orr_xq_link link; /* in the cluster's mailbox */
    orr_rq_kind kind;
    uint64_t conn;
    uint64_t reply_to;
    uint64_t tag;
    uint64_t local_count;  /* PUBLISH */
    int64_t since_ms;      /* REGISTER: when it was taken locally */
    struct cl_answer *ans; /* its place in the order of answers (cluster thread) */
    orr_registry_op op;    /* ANSWER, UNREGISTER, LEAVE: the result known already */
    int status;
    uint64_t count;
    orr_park_limits park; /* GONE, PARK, ORPHAN */
    uint64_t wait_w;      /* held until the inbox is read up to this count (cl_hold) */
    int64_t wait_until;   /* ... or this monotonic ms passes */
    uint64_t deliver_to;  /* a SEND held on this node: its holder here (0: only an answer) */
    struct orr_cl_req *held_next;
    uint16_t name_len;
    uint8_t pool_len;
    char pool[ORR_POOL_NAME_MAX];
    char name[ORR_NAME_MAX];
    uint32_t msg_len;
    char msg[]; /* SEND, PUBLISH */
} orr_cl_req;

/* Results leave in the order their requests arrived. */
typedef struct cl_answer {
    struct cl_answer *next;
    bool done;
    uint64_t reply_to;
    orr_registry_result r;
    char name[ORR_NAME_MAX];
} cl_answer;

struct orr_cluster {
    orr_backend base; /* the table of registry/backend.h; base.reg is the node's table */
    orr_delivery *dv; /* to connections: messages, results, evictions */
    /* from the config at start */
    uint32_t heartbeat_ms, node_ttl_ms, drain_ms, close_timeout_ms;
    cl_answer *ans_head, *ans_tail;
    pthread_t thread;
    orr_loop loop; /* its thread's loop: loop.inbox is the mailbox (orr_cl_req items) */
    orr_redis *cmd, *sub, *pres; /* commands; the inbox reader; presence (a subscription) */
    char inst[128];
    size_t inst_len;
    char sha[SC_N][41];
    pthread_mutex_t lock; /* guards why */
    atomic_bool stop, draining;
    bool drain_marked;
    /* state, on the cluster thread */
    bool cmd_up, sub_up, present; /* present: the presence subscription is confirmed */
    atomic_bool ready;
    char why[160]; /* guarded by lock */
    int64_t next_beat, next_reap;
    size_t outstanding;            /* replies awaited */
    orr_cl_req *batch[SEND_BATCH]; /* sends waiting for cl_flush_sends, in order */
    size_t n_batch;
    char (*batch_keys)[KEY_MAX];                /* [SEND_BATCH], scratch for their keys */
    const char *batch_argv[5 + 2 * SEND_BATCH]; /* scratch for the script call */
    size_t batch_argl[5 + 2 * SEND_BATCH];
    /* The inbox: a stream other nodes append to (scripts.h), read on the
     * second connection with XREAD BLOCK from the last id taken. */
    char box[KEY_MAX];
    size_t box_len;
    char last_id[48];
    char taken_w[24]; /* the inbox's count of messages written, as of the last entry taken */
    size_t skip; /* pairs of the entry after last_id taken already (reading stopped inside it) */
    char ib[KEY_MAX]; /* orr:ib:<inst>: messages written ("w") and taken ("r") */
    size_t ib_len;
    bool reading;    /* an XREAD is on its way */
    bool inbox_wait; /* a worker's mailbox was full (or an error): read again at the next tick */
    bool trim_due;   /* entries were taken since the last XTRIM */
    bool box_seen;   /* the inbox exists in Redis (an entry was read from it) */
    char cap[24];    /* inbox_max_messages, as text for the scripts */
    size_t cap_len;
    /* Answers (and sends to holders on this node) that wait until the inbox
     * was read far enough, in the order they came (cl_release_held). */
    orr_cl_req *held, *held_tail;
    /* Pools the last sweep reported parked names for (their gauge goes to 0
     * when they have none left). */
    char (*park_pools)[ORR_POOL_NAME_MAX];
    size_t n_park_pools;
    /* The lease: this node's liveness key is known to hold until
     * lease_until (monotonic ms; 0: lapsed or not yet known). Workers read
     * it: past it they do not act as holders of this node's names. */
    atomic_int_fast64_t lease_until;
    bool lease_held; /* a heartbeat was answered since (re)connecting */
    bool lapsed;     /* a lapse was seen and not yet repaired */
    bool restoring;  /* its write-back is under way */
    /* metrics */
    atomic_uint_fast64_t sent, received, send_failures, reaped, conflicts, lapses, restores,
        inbox_full, inbox_waits, inbox_lost, park_failures;
};

/* ---- cluster.c ---- */
/* Why Redis is not ready, for /healthz (takes the lock). */
void cl_set_why(orr_cluster *cl, const char *why);
/* "<prefix><pool>\0<name>", "orr:c:<inst>\0<conn>", "orr:n:<inst>": their lengths. */
size_t cl_pool_key(char *out, const char *prefix, const char *pool, size_t pool_len,
                   const char *name, size_t len);
size_t cl_conn_index_key(const orr_cluster *cl, char *out, uint64_t conn);
size_t cl_node_index_key(const orr_cluster *cl, char *out);
void cl_req_free(orr_cl_req *rq);
/* EVALSHA a script; the reply answers rq (NULL: nobody waits). */
int cl_eval(orr_cluster *cl, int script, orr_cl_req *rq, int nkeys, const char **kv,
            const size_t *kl, int nargs);
/* Send the next XREAD of the inbox, unless one is on its way or reading waits. */
void cl_read_inbox(orr_cluster *cl);
void cl_handle_req(orr_cluster *cl, orr_cl_req *rq);
/* The sends gathered by cl_handle_req go out (one script call): at the end
 * of a mailbox batch, and before any other request, so Redis applies
 * requests in the order they came. */
void cl_flush_sends(orr_cluster *cl);
/* Answer a request as Redis being away allows, and free it. */
void cl_handle_down(orr_cluster *cl, orr_cl_req *rq);
/* Answers held for the inbox (PARK, a REGISTER that moved kept messages, a
 * send to a holder on this node) go, in order, as far as the inbox was read
 * (or their time is up), after each inbox read and each tick; all of them
 * with `all`. */
void cl_release_held(orr_cluster *cl, bool all);
/* Parked names past their deadline go (SC_SWEEP); the gauge is refreshed. */
void cl_sweep(orr_cluster *cl);

/* Hand the results and messages gathered in this loop pass to their workers. */
static inline void cl_flush_posts(orr_cluster *cl) {
    cl->dv->ops->flush(cl->dv);
}

/* ---- cluster_life.c ---- */
/* The three connections up and presence subscribed: ready (writes back). */
void cl_check_ready(orr_cluster *cl);

#endif
