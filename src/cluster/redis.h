/*
 * One Redis connection driven by an epoll loop its caller owns: hiredis in
 * async mode, its read/write hooks mapped onto epoll_ctl, reconnection with
 * backoff, and a lifetime that never frees anything inside a hiredis
 * callback. hiredis 0.14 has no timers, so time comes from the caller:
 * orr_redis_tick starts connection attempts and gives up slow ones.
 *
 * Threads: none of its own. Every function must be called on the thread that
 * runs the loop, and every callback runs there, from orr_redis_tick, from the
 * handler's on_event or from orr_redis_free (never from orr_redis_command).
 * hiredis writes with write(2), so the process must ignore SIGPIPE (the
 * server does) or a Redis that goes away mid-write kills it.
 *
 * Pipelining: commands are appended to hiredis' output buffer, and the fd is
 * written when epoll says it is writable, so every command queued during one
 * loop pass goes out in one write(2) and Redis answers them in order.
 *
 * RESP2 and the pub/sub rules of hiredis 0.14 apply:
 *   - (P)SUBSCRIBE: its callback is called for every reply hiredis routes to
 *     the channel or pattern: the subscribe confirmation of each channel,
 *     each message (["message", channel, payload] or ["pmessage", pattern,
 *     channel, payload]), and the unsubscribe confirmation. Subscribing to a
 *     channel again replaces its callback. Subscriptions made with the same
 *     (cb, priv) share one small record that lives until the connection
 *     ends, so use one pair for many channels rather than a pair each.
 *   - (P)UNSUBSCRIBE has no reply of its own: its confirmations go to the
 *     subscription they end, so it takes no callback (cb must be NULL). It
 *     must name each channel (or pattern) once, each subscribed on this link
 *     (ORR_ENOTFOUND otherwise), and may not remove the last one (ORR_ESTATE):
 *     hiredis 0.14 aborts the process when an unsubscribe reply arrives
 *     after the count reached 0, which a repeated or argument-less
 *     UNSUBSCRIBE would cause. So a connection that subscribed stays a
 *     subscriber, only (P)SUBSCRIBE and (P)UNSUBSCRIBE are accepted on it
 *     (others are ORR_ESTATE), until it is lost or freed: keep one
 *     connection for commands and another for subscriptions.
 *   - Commands that would make the server send what hiredis 0.14 cannot pair
 *     with a request (MONITOR, SSUBSCRIBE, SUNSUBSCRIBE, HELLO, CLIENT REPLY)
 *     or that change the database under the reconnection logic (SELECT,
 *     RESET) are refused with ORR_ENOTSUP: the database is addr->db.
 *
 * Callbacks and lifetimes:
 *   - Every command's callback is called exactly once: with its reply, or
 *     with NULL when the connection is lost (or freed) before the reply came
 *     (the command may or may not have run). A subscription's callback is
 *     called per reply as above, then once with NULL when the connection is
 *     lost or freed (even if it was unsubscribed meanwhile): the
 *     subscriptions are over, subscribe again after the next "up".
 *   - A reply belongs to hiredis and is valid only during the callback.
 *   - When a connection that was up is lost: first the NULL callbacks (in
 *     command order), then the state callback with up = 0.
 *   - Inside any of these callbacks, orr_redis_command and orr_redis_free
 *     may be called on this connection or any other.
 *
 * Errors follow src/common/err.h. Allocation failures abort (orr_xmalloc).
 */
#ifndef ORR_CLUSTER_REDIS_H
#define ORR_CLUSTER_REDIS_H

#include "config/config.h"
#include "loop/loop.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct orr_redis orr_redis;

/* up = 1: connected, the handshake answered (SELECT addr->db, or PING for
 * database 0), and commands are accepted from now on; queue the connection's
 * setup (SUBSCRIBE, ...) here. up = 0: a connection that was up was lost;
 * why says why ("Server closed the connection", ...). Called only on these
 * transitions: failed attempts while down are retried silently (and logged). */
typedef void (*orr_redis_state_cb)(orr_redis *r, int up, const char *why, void *priv);

/* reply NULL: the connection was lost or freed before the reply came. */
typedef void (*orr_redis_reply_cb)(orr_redis *r, redisReply *reply, void *priv);

/* Time allowed for one attempt, from connect(2) to the handshake's answer. */
#define ORR_REDIS_CONNECT_TIMEOUT_MS 2000
/* Delay before attempt n+1 after n failures: 100 ms doubling up to 5 s, each
 * drawn between half and all of it (jitter), so that nodes restarted together
 * do not retry together. It starts again at 100 ms once a connection is up. */
#define ORR_REDIS_BACKOFF_MIN_MS 100
#define ORR_REDIS_BACKOFF_MAX_MS 5000

/* A connection to addr (copied) whose fd will be registered in epfd with
 * data.ptr pointing to its orr_loop_handler. Nothing happens until the first
 * orr_redis_tick, which starts the first attempt. name (copied, up to 63
 * bytes) names the connection in logs. NULL if addr has neither a host nor a
 * path. A TCP host name is resolved by hiredis with getaddrinfo, which
 * blocks: prefer an address (or a name in /etc/hosts). */
orr_redis *orr_redis_new(int epfd, const orr_redis_addr *addr, const char *name,
                         orr_redis_state_cb cb, void *priv);

/* Closes the connection. Every callback still owed is called with NULL
 * before it returns (a subscription callback that is running, because it
 * called orr_redis_free, gets its NULL as soon as it returns); the state
 * callback is not called, and nothing at all is called after that. Inside
 * one of r's own callbacks the memory is released when control goes back to
 * the loop, otherwise at once. The loop must not deliver an event it
 * fetched before this call to r's handler afterwards: free r between epoll
 * batches or from one of r's callbacks. NULL is ignored. */
void orr_redis_free(orr_redis *r);

/* Call every 50-100 ms with a monotonic clock in milliseconds. Starts an
 * attempt when one is due, and abandons one that has not been answered
 * within ORR_REDIS_CONNECT_TIMEOUT_MS. Ignored inside r's own callbacks. */
void orr_redis_tick(orr_redis *r, int64_t now_ms);

/* Up, and not being lost: orr_redis_command will accept a command. */
bool orr_redis_is_up(const orr_redis *r);

/* Why it is not up: the last failure ("Connection refused", "no answer
 * within 2000 ms", ...), "connecting" before the first attempt ended, or ""
 * when up. Valid until the next call into r. */
const char *orr_redis_why(const orr_redis *r);

/* Counters since orr_redis_new, for metrics and tests. */
typedef struct orr_redis_stats {
    uint64_t attempts; /* connection attempts started */
    uint64_t ups;      /* times the state callback said up */
    uint64_t losses;   /* times it said down */
} orr_redis_stats;
void orr_redis_get_stats(const orr_redis *r, orr_redis_stats *out);

/* Commands sent whose reply has not come yet (subscriptions not counted):
 * for callers that bound what they queue. */
size_t orr_redis_pending(const orr_redis *r);

/* Queues a command: argv[0..argc) with lengths argvlen (NULL: each is a C
 * string), binary-safe, copied before it returns. cb may be NULL for a
 * command whose reply does not matter (not for (P)SUBSCRIBE); cb must be
 * NULL for (P)UNSUBSCRIBE. Returns 0, or ORR_EAGAIN (not up: nothing was
 * queued and cb will not be called), ORR_ECLOSED (r is being freed),
 * ORR_EINVAL (argc < 1, a cb against the rules above, UNSUBSCRIBE without
 * names), ORR_ESTATE (a plain command on a subscriber, UNSUBSCRIBE on a
 * connection that is not one or of its last subscription), ORR_ENOTFOUND
 * (UNSUBSCRIBE of a name not subscribed, or named twice), ORR_ENOTSUP
 * (refused command, see above), ORR_ENOMEM (hiredis could not format it).
 * On any error nothing was queued. */
int orr_redis_command(orr_redis *r, orr_redis_reply_cb cb, void *priv, int argc, const char **argv,
                      const size_t *argvlen);

#endif
