/*
 * What the files of the registry share (registry.c: the tables, names and
 * groups; park.c: parking): the entries, the table itself and the few
 * functions both use. Everything here runs under orr_registry.lock.
 */
#ifndef ORR_REGISTRY_INTERNAL_H
#define ORR_REGISTRY_INTERNAL_H

#include "common/list.h"
#include "registry/registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- an intrusive chained hash table ------------------------------------
 *
 * The node lives in the entry. `pprev` points at whatever points at the
 * node (a bucket or the previous node's `next`), so removal is O(1) without
 * walking the chain. The table owns no entries: freeing them is the
 * caller's business. */

typedef struct hnode {
    struct hnode *next, **pprev;
    uint64_t hash;
} hnode;

typedef struct htab {
    hnode **buckets;
    size_t mask; /* bucket count - 1; the count is a power of two */
    size_t n;
} htab;

/* ---- entries ------------------------------------------------------------ */

typedef struct reg_conn {
    hnode node; /* in r->conns, by id */
    uint64_t id;
    orr_link names;  /* reg_name.by_conn */
    orr_link groups; /* reg_member.by_conn */
    orr_link parked; /* reg_name.by_conn of its names parked since it ended (or drained) */
    uint32_t held;   /* names + memberships, at most ORR_REGISTRY_MAX_PER_CONN */
} reg_conn;

/* What names and groups share: their (pool, bytes) key. */
typedef struct reg_key {
    hnode node;
    uint32_t pool;
    uint16_t len;
    const char *bytes; /* the entry's own copy, allocated with it */
} reg_key;

/* A parked or restoring name's kept messages (see registry.h). */
typedef struct reg_park {
    orr_park_msg *head, *tail;
    orr_park_msg *orphan_tail; /* the last one placed by park_orphan (they go first) */
    uint32_t n, max_n;
    uint64_t bytes, max_bytes; /* payload bytes */
    int64_t deadline_ms;
    size_t heap_idx; /* in r->heap while parked */
    bool restoring;  /* registered again: owner is the new holder */
} reg_park;

typedef struct reg_name {
    reg_key key;      /* in r->names */
    orr_link by_conn; /* in owner->names, or owner->parked while parked */
    reg_conn *owner;  /* while parked: the connection that ended */
    reg_park *park;   /* NULL: held */
    int64_t since_ms; /* wall clock when it was taken */
    bool pending;     /* claimed, not confirmed yet: lookups do not see it */
    char bytes[];
} reg_name;

/* Parked: owner ended; lookups do not see it and anyone may take it. */
static inline bool is_parked(const reg_name *n) {
    return n->park && !n->park->restoring;
}

struct reg_member;

/* The id is kept next to its membership so that members() reads one array
 * straight through. */
typedef struct reg_slot {
    uint64_t conn;
    struct reg_member *m;
} reg_slot;

typedef struct reg_group {
    reg_key key; /* in r->groups */
    reg_slot *slots;
    size_t n, cap;
    char bytes[];
} reg_group;

typedef struct reg_member {
    hnode node;       /* in r->members, by (group, conn) */
    orr_link by_conn; /* in conn->groups */
    reg_group *group;
    reg_conn *conn;
    size_t index; /* of its slot in group->slots */
} reg_member;

struct orr_registry {
    pthread_mutex_t lock;
    uint64_t seed[2];
    htab names, groups, members, conns;
    /* Parking: parked names by deadline (a min-heap), counters per pool
     * index, and the node's memory budget (NULL: none). */
    reg_name **heap;
    size_t heap_n, heap_cap;
    orr_park_stats *stats;
    size_t n_stats;
    atomic_size_t *budget_used;
    const atomic_size_t *budget_max;
};

static inline bool orr__registry_valid_name(const char *s, size_t len) {
    return s && len >= 1 && len <= ORR_NAME_MAX;
}

/* registry.c */
void orr__registry_htab_remove(htab *t, hnode *e);
reg_conn *orr__registry_conn_find(const orr_registry *r, uint64_t id);
/* The record of connection id, made if it has none. */
reg_conn *orr__registry_conn_get(orr_registry *r, uint64_t id);
/* A connection holding nothing (names, memberships, parked names) has no record. */
void orr__registry_conn_drop_if_empty(orr_registry *r, reg_conn *c);
reg_name *orr__registry_name_find(const orr_registry *r, uint32_t pool, const char *s, size_t len);

/* park.c */
/* The end of n's parking (or restoring): its messages go, counted dropped
 * if asked. */
void orr__registry_park_free(orr_registry *r, reg_name *n, bool dropped);
/* Parks every name c holds (or restores): how many. */
size_t orr__registry_park_names(orr_registry *r, reg_conn *c, const orr_park_limits *lim,
                                int64_t now_ms);
/* A parked name taken by conn: 0 (held), ORR_REGISTRY_RESTORING or ORR_ENOMEM. */
int orr__registry_unpark(orr_registry *r, reg_name *n, uint64_t conn);

#endif
