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

/* For metrics and tests: names held, groups with members, memberships. */
typedef struct orr_registry_counts {
    size_t names, groups, memberships;
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

void orr_idvec_push(orr_idvec *v, uint64_t id);
void orr_idvec_free(orr_idvec *v);

#endif
