/*
 * The cluster registry backend (registry/backend.h): this node's share of a
 * registry that many nodes keep in Redis. One thread (the cluster thread)
 * owns three Redis connections (commands; reading this node's inbox;
 * presence) and an epoll loop of its own; workers submit requests to its
 * mailbox and get results back through the delivery interface, so no
 * worker ever waits for Redis, and the cluster never sees a worker.
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

#include "config/config.h"
#include "registry/backend.h"

#include <stdint.h>

/* Starts the cluster thread with cfg's "cluster" settings (copied): NULL
 * if it cannot. port names the node when node_id is not set. reg is the
 * node's table; dv is how results and messages reach connections (used on
 * the cluster thread only, flushed one last time by stop; neither owned). */
orr_backend *orr_cluster_backend_start(const orr_config *cfg, uint16_t port, orr_registry *reg,
                                       orr_delivery *dv);

#endif
