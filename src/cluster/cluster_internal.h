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
#include "server/internal.h"

#define TICK_MS 50
#define KEY_MAX (16 + POOL_NAME_MAX + ORR_NAME_MAX + 96)

/* A group channel this node listens to while it has members there. */
typedef struct chan {
    struct chan *next;
    uint64_t hash;
    bool subscribed;   /* confirmed by Redis */
    bool subscribing;  /* SUBSCRIBE sent */
    orr_cl_req *waiting, *waiting_tail; /* joins waiting for the subscription */
    orr_pool *pool;    /* a reference, until the channel is removed */
    uint16_t group_len;
    size_t len;
    char bytes[]; /* the channel name, then the group */
} chan;

/* Results leave in the order their requests arrived. */
typedef struct cl_answer {
    struct cl_answer *next;
    bool done;
    uint64_t reply_to;
    reg_pending res;
} cl_answer;

struct orr_cluster {
    orr_server *srv;
    inbox_msg **post_head, **post_tail; /* [n_workers]: results to hand over */
    cl_answer *ans_head, *ans_tail;
    pthread_t thread;
    int epfd, event_fd, timer_fd;
    orr_loop_handler ev_h, timer_h;
    orr_redis *cmd, *sub;
    char inst[128];
    size_t inst_len;
    char sha[SC_N][41];
    /* the mailbox */
    pthread_mutex_t lock;
    orr_cl_req *head, *tail;
    atomic_bool stop, draining;
    bool drain_marked;
    /* state, on the cluster thread */
    bool cmd_up, sub_up, inbox_subscribed, was_ready;
    atomic_bool ready;
    char why[160]; /* guarded by lock */
    int64_t now_ms, next_beat, next_reap;
    bool reconcile;
    size_t outstanding; /* replies awaited */
    chan **chans;
    size_t chan_mask, n_chans;
    orr_idvec scratch;
    /* The lease: this node's liveness key is known to hold until
     * lease_until (monotonic ms; 0: lapsed or not yet known). Workers read
     * it: past it they do not act as holders of this node's names. */
    atomic_int_fast64_t lease_until;
    bool lease_held;     /* a heartbeat was answered since (re)connecting */
    bool lapsed;         /* a lapse was seen and not yet repaired */
    bool restoring;      /* its write-back is under way */
    /* metrics */
    atomic_uint_fast64_t sent, received, send_failures, reaped, conflicts, lapses, restores;
};


/* ---- cluster.c ---- */
uint64_t cl_hash_bytes(const char *p, size_t n);
/* Why Redis is not ready, for /healthz (takes the lock). */
void cl_set_why(orr_cluster *cl, const char *why);
/* "<prefix><pool>\0<name>", "orr:c:<inst>\0<conn>", "orr:n:<inst>": their lengths. */
size_t cl_pool_key(char *out, const char *prefix, const orr_pool *p, const char *name, size_t len);
size_t cl_conn_index_key(const orr_cluster *cl, char *out, uint64_t conn);
size_t cl_node_index_key(const orr_cluster *cl, char *out);
orr_worker *cl_worker_of(orr_cluster *cl, uint64_t conn);
void cl_req_free(orr_cl_req *rq);
/* EVALSHA a script; the reply answers rq (NULL: nobody waits). */
int cl_eval(orr_cluster *cl, int script, orr_cl_req *rq, int nkeys, const char **kv, const size_t *kl, int nargs);
chan *cl_chan_find(orr_cluster *cl, const char *name, size_t len, uint64_t h);
chan *cl_chan_add(orr_cluster *cl, const char *name, size_t len, uint64_t h, orr_pool *pool, const char *group,
                  size_t glen);
void cl_chan_remove(orr_cluster *cl, chan *c);
void cl_subscribe(orr_cluster *cl, chan *c);
/* Subscription replies and messages (the callback of every SUBSCRIBE). */
void cl_on_message(orr_redis *r, redisReply *reply, void *priv);
void cl_handle_req(orr_cluster *cl, orr_cl_req *rq);
/* Answer a request as Redis being away allows, and free it. */
void cl_handle_down(orr_cluster *cl, orr_cl_req *rq);

/* Hand the results gathered in this loop pass to their workers. */
void cl_flush_posts(orr_cluster *cl);

/* ---- cluster_life.c ---- */
/* Both connections up and the inbox subscribed: ready (writes back). */
void cl_check_ready(orr_cluster *cl);

#endif
