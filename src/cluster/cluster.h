/*
 * The cluster: this node's share of a registry that many nodes keep in
 * Redis. One thread (the cluster thread) owns three Redis connections
 * (commands; reading this node's inbox; presence) and an epoll loop of its own; workers hand
 * it requests through its mailbox and get results back through their
 * inboxes, so no worker ever waits for Redis.
 *
 * What lives where (keys are binary; <inst> is node_id#boot, a node's
 * incarnation, so a restarted node never mistakes its old entries for its
 * own):
 *   orr:nodes                   set of instances
 *   orr:alive:<inst>            liveness, TTL node_ttl_ms, refreshed every heartbeat_ms
 *   orr:u:<pool>\0<name>        "<inst>\t<conn>\t<since_ms>": who holds a Unique name
 *   orr:g:<pool>\0<group>       set of "<inst>\t<conn>": the group's members
 *   orr:gn:<pool>\0<group>      hash <inst> -> how many of the group's members are on that node
 *   orr:c:<inst>\0<conn>        set of "u<name key>" / "g<group key>": what a connection holds
 *   orr:n:<inst>                set of conn ids with entries (for the reaper)
 *   orr:inbox:<inst>            stream, the node's inbox: each entry is "n" -> the inbox's count
 *                               of messages written so far, then pairs "<conn>" -> a message for
 *                               it (a batch of sends, in order), "G<pool>\0<group>" -> a
 *                               publication for the node's members, or "K<conn>" -> close it (a
 *                               newer registration won); kept 10 x node_ttl_ms (at least 60 s)
 *                               after the node's last heartbeat
 *   orr:ib:<inst>               hash: "w" messages written to the inbox, "r" those the node took
 *                               (senders refuse past inbox_max_messages waiting)
 *   channel orr:up:<inst>       the node's presence: subscribed while its process lives
 *
 * The guarantees (at most once, ordered between one sender and one receiver,
 * what is lost when) are written in docs/CLUSTER.md.
 */
#ifndef ORR_CLUSTER_H
#define ORR_CLUSTER_H

#include "loop/xq.h"

#include <orrery/gear.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct orr_cluster orr_cluster;
typedef struct orr_server orr_server;
typedef struct orr_pool orr_pool;
typedef struct orr_payload orr_payload;

/* What a worker asks of the cluster. */
typedef enum {
    CL_REGISTER = 1, /* a name taken locally: claim it cluster-wide */
    CL_UNREGISTER,
    CL_SEND, /* a name not held on this node */
    CL_JOIN,
    CL_LEAVE,
    CL_PUBLISH, /* local members already have it */
    CL_GONE,    /* a connection that held something ended */
    CL_ANSWER,  /* answered on the node already: only keeps results in order */
} orr_cl_kind;

typedef struct orr_cl_req {
    orr_xq_link link; /* in the cluster's mailbox */
    orr_cl_kind kind;
    uint64_t conn;     /* the connection it is for (0: nobody waits) */
    uint64_t reply_to; /* the connection that gets the result (0: none) */
    uint64_t tag;
    orr_pool *pool;        /* a reference owned by the request (NULL for GONE) */
    orr_payload *payload;  /* SEND, PUBLISH: a reference owned by the request */
    size_t local_count;    /* PUBLISH: members reached on this node */
    int64_t since_ms;      /* REGISTER: when it was taken locally */
    struct cl_answer *ans; /* its place in the order of answers (cluster thread) */
    orr_registry_op op;    /* ANSWER: the result, known already */
    int status;
    uint64_t count;
    uint16_t name_len;
    char name[ORR_NAME_MAX];
} orr_cl_req;

/* Starts the cluster thread; node_id is the configured one or a default. */
orr_cluster *orr_cluster_start(orr_server *s);
/* After the workers stopped: sends what is still queued (connections that
 * ended), removes this node's liveness, and stops (bounded by ~2 s). */
void orr_cluster_stop(orr_cluster *cl);
/* SIGTERM: this node is draining; names its connections hold may be taken
 * by new registrations elsewhere at once (the clients are reconnecting). */
void orr_cluster_draining(orr_cluster *cl);
/* From any thread: takes ownership of req. With a cluster, every registry
 * result goes through here, so that results reach each connection in the
 * order it started the operations, whichever needed Redis. */
void orr_cluster_post(orr_cluster *cl, orr_cl_req *req);
/* Whether Redis is reachable (both connections up and set up); why if not. */
bool orr_cluster_ready(orr_cluster *cl, char *why, size_t whylen);
/* Whether this node may act as the holder of its names at `now_ms`
 * (monotonic): its liveness in Redis is known to hold. When not (a pause or
 * a cut longer than node_ttl_ms, until the names are written back), a send
 * to a name held here goes through Redis like any other. */
bool orr_cluster_lease_valid(orr_cluster *cl, int64_t now_ms);
/* Prometheus lines for /metrics. */
void orr_cluster_metrics(orr_cluster *cl, void (*emit)(void *arg, const char *line), void *arg);

#endif
