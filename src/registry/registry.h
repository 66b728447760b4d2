/*
 * The registry: Unique names and Groups of connections, in a namespace per
 * executor pool, for one node. A connection is a 64-bit id (see
 * orr_conn_id); a pool is the small integer index the server gives each
 * executor pool. Names and groups are byte strings of 1..ORR_NAME_MAX bytes.
 *
 * This is a data structure, not a messenger: it never touches a socket or
 * a worker. The server (src/server/mailbox.c) looks members up here and
 * hands messages to workers itself. A cluster backend (Redis) keeps this
 * table as the node's own part of the registry and adds round trips around
 * it; the gear API does not change.
 *
 * Thread safety: every function may be called from any thread; one mutex
 * inside guards everything, and none of them blocks on anything else.
 * Costs: register, unregister, lookup, join and leave are O(1) on average
 * (plus the length of the name); conn_gone is O(what the connection held);
 * members is O(members).
 *
 * Errors follow src/common/err.h: 0 on success, a negative ORR_E* code.
 */
#ifndef ORR_REGISTRY_H
#define ORR_REGISTRY_H

#include <orrery/gear.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct orr_registry orr_registry;

/* Names plus memberships one connection may hold: past it, register and
 * join answer ORR_ENOMEM, so one connection cannot grow the table without
 * bound. */
#define ORR_REGISTRY_MAX_PER_CONN 10000

/* A growable array of connection ids the caller owns (free ids). */
typedef struct orr_idvec {
    uint64_t *ids;
    size_t n, cap;
} orr_idvec;

orr_registry *orr_registry_new(void);
/* Frees everything, whatever is still registered. */
void orr_registry_free(orr_registry *r);

/* Take `name` in `pool` for `conn`: 0 (also when conn holds it already) or
 * ORR_ETAKEN when another connection holds it. ORR_EINVAL for a bad length,
 * ORR_ENOMEM when conn holds ORR_REGISTRY_MAX_PER_CONN entries already. */
int orr_registry_register(orr_registry *r, uint32_t pool, const char *name, size_t len,
                          uint64_t conn);
/* Take it as a claim that another party (the cluster) has yet to confirm:
 * the same answers as orr_registry_register, but until orr_registry_confirm
 * the name is taken for others (ETAKEN) without being found by
 * orr_registry_lookup, so nothing is delivered to a claim that may be
 * refused. orr_registry_holder_since, foreach and unregister see it. */
int orr_registry_claim(orr_registry *r, uint32_t pool, const char *name, size_t len, uint64_t conn);
/* The claim of conn succeeded: 0, or ORR_ENOTFOUND when conn does not hold it. */
int orr_registry_confirm(orr_registry *r, uint32_t pool, const char *name, size_t len,
                         uint64_t conn);
/* Give it up: 0, or ORR_ENOTFOUND when conn does not hold it. */
int orr_registry_unregister(orr_registry *r, uint32_t pool, const char *name, size_t len,
                            uint64_t conn);
/* Who holds it, confirmed: 0 and *conn, or ORR_ENOTFOUND (also for a claim
 * not confirmed yet). */
int orr_registry_lookup(orr_registry *r, uint32_t pool, const char *name, size_t len,
                        uint64_t *conn);

/* Join a group: 0 (also when already a member), or ORR_ENOMEM as above. */
int orr_registry_join(orr_registry *r, uint32_t pool, const char *group, size_t len, uint64_t conn);
/* Leave it: 0, or ORR_ENOTFOUND when conn is not a member. A group with no
 * members left is freed. */
int orr_registry_leave(orr_registry *r, uint32_t pool, const char *group, size_t len,
                       uint64_t conn);
/* Appends the group's members to out (in no particular order) and returns
 * how many were appended (0 for a group nobody is in). */
size_t orr_registry_members(orr_registry *r, uint32_t pool, const char *group, size_t len,
                            orr_idvec *out);

/* The connection ended: it gives up every name and leaves every group, in
 * every pool. Harmless for a connection that held nothing. */
void orr_registry_conn_gone(orr_registry *r, uint64_t conn);

/* For metrics and tests: names held (parked ones aside), groups with
 * members, memberships, parked names. */
typedef struct orr_registry_counts {
    size_t names, groups, memberships, parked;
} orr_registry_counts;
void orr_registry_get_counts(orr_registry *r, orr_registry_counts *out);

/* One entry as orr_registry_foreach shows it: a name (is_group false, with
 * when it was taken and whether it is a claim not confirmed yet) or a
 * membership (is_group true). */
typedef struct orr_registry_entry {
    bool is_group;
    bool pending; /* a claim (orr_registry_claim) not confirmed yet */
    uint32_t pool;
    const char *bytes;
    size_t len;
    uint64_t conn;
    int64_t since_ms; /* names: wall-clock ms; memberships: 0 */
} orr_registry_entry;
/* Calls fn for every name and every membership, under the lock: fn must
 * not call back into the registry. For a cluster writing this node's part
 * back. */
typedef void (*orr_registry_visit_fn)(void *arg, const orr_registry_entry *e);
void orr_registry_foreach(orr_registry *r, orr_registry_visit_fn fn, void *arg);
/* Who holds a name and since when (wall-clock ms): 0, or ORR_ENOTFOUND. */
int orr_registry_holder_since(orr_registry *r, uint32_t pool, const char *name, size_t len,
                              uint64_t *conn, int64_t *since_ms);

/* ---- parking (issue 14) --------------------------------------------------
 *
 * A name whose holder ends, in a pool that parks, is *parked* instead of
 * freed: for park_ms it keeps the messages sent to it (up to the caps, the
 * oldest dropped past them), lookups do not find it (nothing is delivered
 * to a connection that is gone), and the first connection that registers
 * it takes it at once and gets the kept messages first. States of a name:
 *   held        a connection has it; lookups find it.
 *   parked      its connection ended; it keeps messages until its deadline.
 *   restoring   registered again while it had messages: the new holder
 *               has it (others get ETAKEN) but lookups do not find it yet,
 *               so sends keep going to its queue until its worker has
 *               taken the queue empty (orr_registry_restore_take); then it
 *               is held, and a live message can never overtake a kept one.
 * Messages that were on their way to the old holder when it ended (its
 * worker finds the connection closing or gone) are placed by
 * orr_registry_park_orphan *before* those sent to the parked name: they
 * were sent first.
 *
 * Time is the caller's monotonic clock in ms (a worker's loop clock).
 * Expiry is a min-heap by deadline, so SIGHUP changing park_ms cannot
 * break its order and a tick with nothing due costs one comparison. */

/* A pool's parking settings, read by the caller when a name parks; a
 * parked name keeps the caps it parked with. park_ms 0: not parked. */
typedef struct orr_park_limits {
    uint32_t park_ms;
    uint32_t max_messages;
    uint64_t max_bytes; /* of kept payload bytes */
} orr_park_limits;

/* orr_registry_register's answer when it took a parked name that had kept
 * messages: the name is restoring; the caller makes its worker call
 * orr_registry_restore_take until it answers 0. */
#define ORR_REGISTRY_RESTORING 1

/* One kept message handed back by orr_registry_restore_take (a list the
 * caller frees with orr_registry_msgs_free). */
typedef struct orr_park_msg {
    struct orr_park_msg *next;
    uint32_t len;
    char bytes[];
} orr_park_msg;

/* Per-pool counters (metrics). names: parked now; kept: messages kept now
 * (parked and restoring names). */
typedef struct orr_park_stats {
    uint64_t names, kept, delivered, expired, dropped;
} orr_park_stats;

/* Kept messages count in *used (allocated bytes), and none is kept while
 * *used passes seven eighths of *max (counted dropped): the node's memory
 * budget. Both outlive the registry; call once, before any parking. */
void orr_registry_park_budget(orr_registry *r, atomic_size_t *used, const atomic_size_t *max);

/* The connection ended: as orr_registry_conn_gone, but with lim and
 * lim->park_ms > 0 its names are parked (deadline now_ms + park_ms), not
 * freed. A connection's entries are all in its one pool, so one lim. */
void orr_registry_conn_gone_park(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                                 int64_t now_ms);
/* Gives up every name conn holds, keeping its memberships (a drain whose
 * backend parks the names elsewhere): how many. */
size_t orr_registry_unregister_names(orr_registry *r, uint64_t conn);
/* Adds to a pool's counters what another party (a cluster) counted; names
 * >= 0 sets the parked-names gauge. */
void orr_registry_park_account(orr_registry *r, uint32_t pool, const orr_park_stats *add,
                               int64_t names);
/* Park conn's names now, while it is still open (a drain, before its
 * 1001): how many were parked. Its memberships stay until it ends. */
size_t orr_registry_park_names(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                               int64_t now_ms);
/* A send to a name nobody holds: true if the name is parked (or restoring)
 * and the message was kept (or dropped by a cap: it still answers parked). */
bool orr_registry_park_send(orr_registry *r, uint32_t pool, const char *name, size_t len,
                            const void *msg, size_t msg_len);
/* A message a worker could not hand to conn (closing or gone): true if it
 * was kept for conn's parked name (the first, if it had several). With lim
 * (park_ms > 0), names conn still holds are parked first. */
bool orr_registry_park_orphan(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                              int64_t now_ms, const void *msg, size_t msg_len);
/* A message to `name` (its pool parks) that conn could not take (closing
 * or gone): with lim (park_ms > 0) the names conn still holds are parked
 * first. Then: the name is parked or restoring: kept ahead of what it keeps
 * (ORR_ORPHAN_KEPT); another connection holds it (restored, or taken after
 * it expired): ORR_ORPHAN_HOLDER, *holder is it (the caller hands it the
 * message, late); else ORR_ORPHAN_LOST (counted dropped). */
enum { ORR_ORPHAN_LOST, ORR_ORPHAN_KEPT, ORR_ORPHAN_HOLDER };
int orr_registry_orphan_to(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                           int64_t now_ms, uint32_t pool, const char *name, size_t len,
                           const void *msg, size_t msg_len, uint64_t *holder);
/* For conn restoring name: takes its kept messages (*out, oldest first,
 * counted delivered) and answers how many; 0 once there are none, when the
 * name becomes held (lookups find it), or when conn is not restoring it. */
size_t orr_registry_restore_take(orr_registry *r, uint32_t pool, const char *name, size_t len,
                                 uint64_t conn, orr_park_msg **out);
void orr_registry_msgs_free(orr_park_msg *m);
/* Frees the parked names whose deadline is at or before now_ms (their
 * messages counted expired): how many. */
size_t orr_registry_park_expire(orr_registry *r, int64_t now_ms);
/* The pool at index `pool` is gone (its index may go to another): its
 * parked names go with their messages, and its counters start again from
 * zero. O(parked names). */
void orr_registry_park_forget_pool(orr_registry *r, uint32_t pool);
/* The counters of one pool (zeros for a pool that never parked). */
void orr_registry_park_stats(orr_registry *r, uint32_t pool, orr_park_stats *out);

void orr_idvec_push(orr_idvec *v, uint64_t id);
void orr_idvec_free(orr_idvec *v);

#endif
