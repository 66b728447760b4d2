/*
 * The in-process registry: four hash tables under one mutex.
 *
 *  - names:   (pool, bytes) -> reg_name, the connection holding it.
 *  - groups:  (pool, bytes) -> reg_group, an array of its members.
 *  - members: (group, conn) -> reg_member, one membership. It remembers its
 *             index in the group's array, so a duplicate join is one lookup
 *             and a leave is a swap-remove: both O(1), whatever the group's
 *             size.
 *  - conns:   conn id -> reg_conn, intrusive lists of the names and
 *             memberships the connection holds, so conn_gone costs what the
 *             connection held and never scans a table.
 *
 * Every entry lives exactly as long as its last user: a name until it is
 * unregistered, a group until its last member leaves, a connection record
 * until it holds nothing. Tables grow by doubling and shrink by halving, so
 * memory follows what is registered now, not the busiest moment so far.
 *
 * Names and groups may come from clients (chat rooms, user names), so they
 * are hashed with SipHash-1-3 under a random key per registry: nobody can
 * choose names that all land in one chain. Connection ids come from the
 * server and are only mixed.
 */
#include "registry/registry.h"

#include "common/err.h"
#include "common/list.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

_Static_assert(ORR_NAME_MAX <= UINT16_MAX, "name lengths are kept in 16 bits");

/* ---- hashing --------------------------------------------------------- */

static inline uint64_t rotl64(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

static inline void sip_round(uint64_t v[4]) {
    v[0] += v[1], v[1] = rotl64(v[1], 13), v[1] ^= v[0], v[0] = rotl64(v[0], 32);
    v[2] += v[3], v[3] = rotl64(v[3], 16), v[3] ^= v[2];
    v[0] += v[3], v[3] = rotl64(v[3], 21), v[3] ^= v[0];
    v[2] += v[1], v[1] = rotl64(v[1], 17), v[1] ^= v[2], v[2] = rotl64(v[2], 32);
}

/* SipHash-1-3 (one compression round, three finalisation rounds). Words are
 * read in host order: the value only has to be stable within the process. */
static uint64_t siphash13(const uint64_t key[2], const uint8_t *p, size_t len) {
    uint64_t v[4] = {key[0] ^ 0x736f6d6570736575ull, key[1] ^ 0x646f72616e646f6dull,
                     key[0] ^ 0x6c7967656e657261ull, key[1] ^ 0x7465646279746573ull};
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)p[whole + i] << (8 * i);
    v[3] ^= last;
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    sip_round(v);
    sip_round(v);
    sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The finaliser of splitmix64: every input bit reaches every output bit. */
static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

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

enum { HTAB_MIN_BUCKETS = 16 };

static void htab_init(htab *t) {
    t->buckets = orr_xcalloc(HTAB_MIN_BUCKETS, sizeof *t->buckets);
    t->mask = HTAB_MIN_BUCKETS - 1;
    t->n = 0;
}

static void hnode_link(hnode **head, hnode *e) {
    e->next = *head;
    if (e->next) e->next->pprev = &e->next;
    *head = e;
    e->pprev = head;
}

static void htab_resize(htab *t, size_t nbuckets) {
    hnode **b = orr_xcalloc(nbuckets, sizeof *b);
    for (size_t i = 0; i <= t->mask; i++) {
        for (hnode *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            hnode_link(&b[e->hash & (nbuckets - 1)], e);
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = nbuckets - 1;
}

static inline hnode *htab_chain(const htab *t, uint64_t hash) {
    return t->buckets[hash & t->mask];
}

/* Grows to keep at most one entry per bucket on average. */
static void htab_insert(htab *t, hnode *e) {
    if (t->n > t->mask) htab_resize(t, 2 * (t->mask + 1));
    hnode_link(&t->buckets[e->hash & t->mask], e);
    t->n++;
}

/* Shrinks below one entry per eight buckets; halving leaves the load under
 * a quarter, far from the growth point, so a table never flaps. */
static void htab_remove(htab *t, hnode *e) {
    *e->pprev = e->next;
    if (e->next) e->next->pprev = e->pprev;
    t->n--;
    size_t nbuckets = t->mask + 1;
    if (nbuckets > HTAB_MIN_BUCKETS && t->n < nbuckets / 8) htab_resize(t, nbuckets / 2);
}

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

static bool valid_name(const char *s, size_t len) {
    return s && len >= 1 && len <= ORR_NAME_MAX;
}

static uint64_t key_hash(const orr_registry *r, uint32_t pool, const char *s, size_t len) {
    uint8_t buf[sizeof pool + ORR_NAME_MAX];
    memcpy(buf, &pool, sizeof pool);
    memcpy(buf + sizeof pool, s, len);
    return siphash13(r->seed, buf, sizeof pool + len);
}

static uint64_t conn_hash(const orr_registry *r, uint64_t id) {
    return mix64(id ^ r->seed[0]);
}

static uint64_t member_hash(const orr_registry *r, const reg_group *g, uint64_t conn) {
    return mix64(mix64(conn ^ r->seed[1]) + (uintptr_t)g);
}

static reg_key *key_find(const htab *t, uint64_t hash, uint32_t pool, const char *s, size_t len) {
    for (hnode *e = htab_chain(t, hash); e; e = e->next) {
        reg_key *k = ORR_CONTAINER_OF(e, reg_key, node);
        if (e->hash == hash && k->pool == pool && k->len == len && memcmp(k->bytes, s, len) == 0)
            return k;
    }
    return NULL;
}

static void key_set(reg_key *k, uint64_t hash, uint32_t pool, char *copy, const char *s,
                    size_t len) {
    memcpy(copy, s, len);
    k->node.hash = hash;
    k->pool = pool;
    k->len = (uint16_t)len;
    k->bytes = copy;
}

/* ---- connection records ---------------------------------------------- */

static reg_conn *conn_find(const orr_registry *r, uint64_t id) {
    for (hnode *e = htab_chain(&r->conns, conn_hash(r, id)); e; e = e->next) {
        reg_conn *c = ORR_CONTAINER_OF(e, reg_conn, node);
        if (c->id == id) return c;
    }
    return NULL;
}

static reg_conn *conn_get(orr_registry *r, uint64_t id) {
    reg_conn *c = conn_find(r, id);
    if (c) return c;
    c = orr_xmalloc(sizeof *c);
    c->id = id;
    c->held = 0;
    c->node.hash = conn_hash(r, id);
    orr_list_init(&c->names);
    orr_list_init(&c->groups);
    orr_list_init(&c->parked);
    htab_insert(&r->conns, &c->node);
    return c;
}

/* A connection holding nothing has no record. */
static void conn_drop_if_empty(orr_registry *r, reg_conn *c) {
    if (!orr_list_empty(&c->names) || !orr_list_empty(&c->groups) || !orr_list_empty(&c->parked))
        return;
    htab_remove(&r->conns, &c->node);
    free(c);
}

/* ---- names --------------------------------------------------------------- */

static reg_name *name_find(const orr_registry *r, uint32_t pool, const char *s, size_t len) {
    reg_key *k = key_find(&r->names, key_hash(r, pool, s, len), pool, s, len);
    return k ? ORR_CONTAINER_OF(k, reg_name, key) : NULL;
}

static void park_free(orr_registry *r, reg_name *n, bool dropped);

/* A parked name counts in no connection's held entries. */
static void name_remove(orr_registry *r, reg_name *n) {
    if (!is_parked(n)) n->owner->held--;
    if (n->park) park_free(r, n, true);
    htab_remove(&r->names, &n->key.node);
    orr_list_remove(&n->by_conn);
    free(n);
}

/* ---- groups and memberships ---------------------------------------------- */

static reg_group *group_find(const orr_registry *r, uint32_t pool, const char *s, size_t len) {
    reg_key *k = key_find(&r->groups, key_hash(r, pool, s, len), pool, s, len);
    return k ? ORR_CONTAINER_OF(k, reg_group, key) : NULL;
}

static reg_member *member_find(const orr_registry *r, const reg_group *g, uint64_t conn) {
    for (hnode *e = htab_chain(&r->members, member_hash(r, g, conn)); e; e = e->next) {
        reg_member *m = ORR_CONTAINER_OF(e, reg_member, node);
        if (m->group == g && m->conn->id == conn) return m;
    }
    return NULL;
}

static void group_push(reg_group *g, reg_member *m) {
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 4;
        g->slots = orr_xrealloc(g->slots, g->cap * sizeof *g->slots);
    }
    m->index = g->n;
    g->slots[g->n++] = (reg_slot){m->conn->id, m};
}

/* Swap-remove: the last slot moves into the hole and its membership learns
 * its new index. The array halves once it is a quarter full. */
static void group_pop(reg_group *g, reg_member *m) {
    size_t last = --g->n;
    if (m->index != last) {
        g->slots[m->index] = g->slots[last];
        g->slots[m->index].m->index = m->index;
    }
    if (g->cap > 4 && g->n < g->cap / 4) {
        g->cap /= 2;
        g->slots = orr_xrealloc(g->slots, g->cap * sizeof *g->slots);
    }
}

static void group_free(reg_group *g) {
    free(g->slots);
    free(g);
}

/* Ends one membership and frees its group if that was the last member. The
 * connection record is the caller's to drop. */
static void member_remove(orr_registry *r, reg_member *m) {
    reg_group *g = m->group;
    m->conn->held--;
    group_pop(g, m);
    htab_remove(&r->members, &m->node);
    orr_list_remove(&m->by_conn);
    free(m);
    if (g->n == 0) {
        htab_remove(&r->groups, &g->key.node);
        group_free(g);
    }
}

/* ---- the interface, each function its lock around a *_locked body ------ */

orr_registry *orr_registry_new(void) {
    orr_registry *r = orr_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    if (getrandom(r->seed, sizeof r->seed, GRND_NONBLOCK) != (ssize_t)sizeof r->seed) {
        /* No entropy yet (early boot): a weaker key still varies per run. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->seed[0] = mix64((uint64_t)ts.tv_sec ^ (uintptr_t)r);
        r->seed[1] = mix64((uint64_t)ts.tv_nsec ^ r->seed[0]);
    }
    htab_init(&r->names);
    htab_init(&r->groups);
    htab_init(&r->members);
    htab_init(&r->conns);
    return r;
}

/* Every entry is in exactly one table, so freeing each table's entries
 * without unlinking them frees everything once. */
static void htab_free_all(htab *t, void (*free_entry)(hnode *)) {
    for (size_t i = 0; i <= t->mask; i++) {
        for (hnode *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free_entry(e);
        }
    }
    free(t->buckets);
}

static void free_name(hnode *e) {
    reg_name *n = ORR_CONTAINER_OF(e, reg_name, key.node);
    if (n->park) {
        orr_registry_msgs_free(n->park->head);
        free(n->park);
    }
    free(n);
}
static void free_group(hnode *e) {
    group_free(ORR_CONTAINER_OF(e, reg_group, key.node));
}
static void free_member(hnode *e) {
    free(ORR_CONTAINER_OF(e, reg_member, node));
}
static void free_conn(hnode *e) {
    free(ORR_CONTAINER_OF(e, reg_conn, node));
}

void orr_registry_free(orr_registry *r) {
    if (!r) return;
    htab_free_all(&r->names, free_name);
    htab_free_all(&r->members, free_member);
    htab_free_all(&r->groups, free_group);
    htab_free_all(&r->conns, free_conn);
    free(r->heap);
    free(r->stats);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int unpark_locked(orr_registry *r, reg_name *n, uint64_t conn);

static int register_locked(orr_registry *r, uint32_t pool, const char *s, size_t len, uint64_t conn,
                           bool pending) {
    uint64_t hash = key_hash(r, pool, s, len);
    reg_key *k = key_find(&r->names, hash, pool, s, len);
    reg_name *taken = k ? ORR_CONTAINER_OF(k, reg_name, key) : NULL;
    if (taken && is_parked(taken) && !pending) return unpark_locked(r, taken, conn);
    if (taken) return taken->owner->id == conn ? 0 : ORR_ETAKEN;
    reg_conn *held = conn_find(r, conn);
    if (held && held->held >= ORR_REGISTRY_MAX_PER_CONN) return ORR_ENOMEM;
    reg_name *n = orr_xmalloc(sizeof *n + len);
    key_set(&n->key, hash, pool, n->bytes, s, len);
    n->owner = conn_get(r, conn);
    n->owner->held++;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    n->since_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    n->pending = pending;
    n->park = NULL;
    orr_list_push_back(&n->owner->names, &n->by_conn);
    htab_insert(&r->names, &n->key.node);
    return 0;
}

static int take(orr_registry *r, uint32_t pool, const char *name, size_t len, uint64_t conn,
                bool pending) {
    if (!valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = register_locked(r, pool, name, len, conn, pending);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int orr_registry_register(orr_registry *r, uint32_t pool, const char *name, size_t len,
                          uint64_t conn) {
    return take(r, pool, name, len, conn, false);
}

int orr_registry_claim(orr_registry *r, uint32_t pool, const char *name, size_t len,
                       uint64_t conn) {
    return take(r, pool, name, len, conn, true);
}

int orr_registry_confirm(orr_registry *r, uint32_t pool, const char *name, size_t len,
                         uint64_t conn) {
    if (!valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    reg_name *n = name_find(r, pool, name, len);
    bool mine = n && !is_parked(n) && n->owner->id == conn;
    if (mine) n->pending = false;
    pthread_mutex_unlock(&r->lock);
    return mine ? 0 : ORR_ENOTFOUND;
}

static int unregister_locked(orr_registry *r, uint32_t pool, const char *s, size_t len,
                             uint64_t conn) {
    reg_name *n = name_find(r, pool, s, len);
    if (!n || is_parked(n) || n->owner->id != conn) return ORR_ENOTFOUND;
    reg_conn *c = n->owner;
    name_remove(r, n);
    conn_drop_if_empty(r, c);
    return 0;
}

int orr_registry_unregister(orr_registry *r, uint32_t pool, const char *name, size_t len,
                            uint64_t conn) {
    if (!valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = unregister_locked(r, pool, name, len, conn);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int orr_registry_lookup(orr_registry *r, uint32_t pool, const char *name, size_t len,
                        uint64_t *conn) {
    if (!valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    reg_name *n = name_find(r, pool, name, len);
    if (n && (n->pending || n->park)) n = NULL;
    if (n && conn) *conn = n->owner->id;
    pthread_mutex_unlock(&r->lock);
    return n ? 0 : ORR_ENOTFOUND;
}

static int join_locked(orr_registry *r, uint32_t pool, const char *s, size_t len, uint64_t conn) {
    uint64_t hash = key_hash(r, pool, s, len);
    reg_key *k = key_find(&r->groups, hash, pool, s, len);
    reg_group *g;
    if (k) {
        g = ORR_CONTAINER_OF(k, reg_group, key);
        if (member_find(r, g, conn)) return 0;
    }
    reg_conn *held = conn_find(r, conn);
    if (held && held->held >= ORR_REGISTRY_MAX_PER_CONN) return ORR_ENOMEM;
    if (!k) {
        g = orr_xmalloc(sizeof *g + len);
        key_set(&g->key, hash, pool, g->bytes, s, len);
        g->slots = NULL;
        g->n = g->cap = 0;
        htab_insert(&r->groups, &g->key.node);
    }
    reg_member *m = orr_xmalloc(sizeof *m);
    m->group = g;
    m->conn = conn_get(r, conn);
    m->conn->held++;
    m->node.hash = member_hash(r, g, conn);
    orr_list_push_back(&m->conn->groups, &m->by_conn);
    group_push(g, m);
    htab_insert(&r->members, &m->node);
    return 0;
}

int orr_registry_join(orr_registry *r, uint32_t pool, const char *group, size_t len,
                      uint64_t conn) {
    if (!valid_name(group, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = join_locked(r, pool, group, len, conn);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static int leave_locked(orr_registry *r, uint32_t pool, const char *s, size_t len, uint64_t conn) {
    reg_group *g = group_find(r, pool, s, len);
    reg_member *m = g ? member_find(r, g, conn) : NULL;
    if (!m) return ORR_ENOTFOUND;
    reg_conn *c = m->conn;
    member_remove(r, m);
    conn_drop_if_empty(r, c);
    return 0;
}

int orr_registry_leave(orr_registry *r, uint32_t pool, const char *group, size_t len,
                       uint64_t conn) {
    if (!valid_name(group, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = leave_locked(r, pool, group, len, conn);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Makes room for `extra` more ids, doubling the capacity as often as needed. */
static void idvec_reserve(orr_idvec *v, size_t extra) {
    size_t need = v->n + extra;
    if (need <= v->cap) return;
    size_t cap = v->cap ? v->cap : 8;
    while (cap < need)
        cap *= 2;
    v->ids = orr_xrealloc(v->ids, cap * sizeof *v->ids);
    v->cap = cap;
}

size_t orr_registry_members(orr_registry *r, uint32_t pool, const char *group, size_t len,
                            orr_idvec *out) {
    if (!valid_name(group, len)) return 0;
    pthread_mutex_lock(&r->lock);
    reg_group *g = group_find(r, pool, group, len);
    size_t n = g ? g->n : 0;
    if (n) {
        idvec_reserve(out, n);
        for (size_t i = 0; i < n; i++)
            out->ids[out->n + i] = g->slots[i].conn;
        out->n += n;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

static size_t park_names_locked(orr_registry *r, reg_conn *c, const orr_park_limits *lim,
                                int64_t now_ms);

static void conn_gone_locked(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                             int64_t now_ms) {
    reg_conn *c = conn_find(r, conn);
    if (!c) return;
    if (lim && lim->park_ms) park_names_locked(r, c, lim, now_ms);
    for (orr_link *l; (l = orr_list_front(&c->names));)
        name_remove(r, ORR_CONTAINER_OF(l, reg_name, by_conn));
    for (orr_link *l; (l = orr_list_front(&c->groups));)
        member_remove(r, ORR_CONTAINER_OF(l, reg_member, by_conn));
    conn_drop_if_empty(r, c);
}

void orr_registry_conn_gone(orr_registry *r, uint64_t conn) {
    pthread_mutex_lock(&r->lock);
    conn_gone_locked(r, conn, NULL, 0);
    pthread_mutex_unlock(&r->lock);
}

void orr_registry_conn_gone_park(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                                 int64_t now_ms) {
    pthread_mutex_lock(&r->lock);
    conn_gone_locked(r, conn, lim, now_ms);
    pthread_mutex_unlock(&r->lock);
}

void orr_registry_get_counts(orr_registry *r, orr_registry_counts *out) {
    pthread_mutex_lock(&r->lock);
    out->names = r->names.n - r->heap_n;
    out->groups = r->groups.n;
    out->memberships = r->members.n;
    out->parked = r->heap_n;
    pthread_mutex_unlock(&r->lock);
}

void orr_idvec_push(orr_idvec *v, uint64_t id) {
    idvec_reserve(v, 1);
    v->ids[v->n++] = id;
}

void orr_idvec_free(orr_idvec *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

/* ---- parking (registry.h) --------------------------------------------- */

static orr_park_stats *stats_at(orr_registry *r, uint32_t pool) {
    if (pool >= r->n_stats) {
        size_t n = r->n_stats ? r->n_stats : 16;
        while (n <= pool)
            n *= 2;
        r->stats = orr_xrealloc(r->stats, n * sizeof *r->stats);
        memset(r->stats + r->n_stats, 0, (n - r->n_stats) * sizeof *r->stats);
        r->n_stats = n;
    }
    return &r->stats[pool];
}

/* The heap of parked names, smallest deadline first; each park knows its
 * index so that a name taken again leaves it in O(log n). */
static bool heap_less(const orr_registry *r, size_t a, size_t b) {
    return r->heap[a]->park->deadline_ms < r->heap[b]->park->deadline_ms;
}

static void heap_swap(orr_registry *r, size_t a, size_t b) {
    reg_name *t = r->heap[a];
    r->heap[a] = r->heap[b];
    r->heap[b] = t;
    r->heap[a]->park->heap_idx = a;
    r->heap[b]->park->heap_idx = b;
}

static void heap_up(orr_registry *r, size_t i) {
    while (i > 0 && heap_less(r, i, (i - 1) / 2)) {
        heap_swap(r, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(orr_registry *r, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->heap_n && heap_less(r, l, m)) m = l;
        if (l + 1 < r->heap_n && heap_less(r, l + 1, m)) m = l + 1;
        if (m == i) return;
        heap_swap(r, i, m);
        i = m;
    }
}

static void heap_push(orr_registry *r, reg_name *n) {
    if (r->heap_n == r->heap_cap) {
        r->heap_cap = r->heap_cap ? 2 * r->heap_cap : 64;
        r->heap = orr_xrealloc(r->heap, r->heap_cap * sizeof *r->heap);
    }
    n->park->heap_idx = r->heap_n;
    r->heap[r->heap_n++] = n;
    heap_up(r, r->heap_n - 1);
}

static void heap_remove(orr_registry *r, reg_name *n) {
    size_t i = n->park->heap_idx, last = --r->heap_n;
    if (i != last) {
        heap_swap(r, i, last);
        heap_down(r, i);
        heap_up(r, i);
    }
    /* A heap a quarter full gives memory back (10,000 names that expire). */
    if (r->heap_cap > 64 && r->heap_n < r->heap_cap / 4) {
        r->heap_cap /= 2;
        r->heap = orr_xrealloc(r->heap, r->heap_cap * sizeof *r->heap);
    }
}

/* ---- kept messages and the memory budget ---- */

static size_t msg_cost(size_t len) {
    return sizeof(orr_park_msg) + len;
}

static bool over_budget(const orr_registry *r, size_t len) {
    if (!r->budget_used) return false;
    size_t max = atomic_load_explicit(r->budget_max, memory_order_relaxed);
    size_t used = atomic_load_explicit(r->budget_used, memory_order_relaxed);
    return used + msg_cost(len) > max - max / 8;
}

static void charge(orr_registry *r, size_t len, bool add) {
    if (!r->budget_used) return;
    if (add)
        atomic_fetch_add_explicit(r->budget_used, msg_cost(len), memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(r->budget_used, msg_cost(len), memory_order_relaxed);
}

static void drop_oldest(orr_registry *r, reg_park *p, orr_park_stats *st) {
    orr_park_msg *m = p->head;
    p->head = m->next;
    if (!p->head) p->tail = NULL;
    if (p->orphan_tail == m) p->orphan_tail = NULL;
    p->n--;
    p->bytes -= m->len;
    charge(r, m->len, false);
    free(m);
    st->dropped++;
    st->kept--;
}

/* Keeps a copy of msg for n: after the other orphans (messages that were
 * on their way to its old holder: sent before any that came to the parked
 * name), or last. Past a cap the oldest go; one alone over max_bytes, or
 * one the budget has no room for, is not kept (all counted dropped). */
static void keep(orr_registry *r, reg_name *n, const void *msg, size_t len, bool orphan) {
    reg_park *p = n->park;
    orr_park_stats *st = stats_at(r, n->key.pool);
    if (len > p->max_bytes || over_budget(r, len)) {
        st->dropped++;
        return;
    }
    while (p->head && (p->n + 1 > p->max_n || p->bytes + len > p->max_bytes))
        drop_oldest(r, p, st);
    orr_park_msg *m = orr_xmalloc(sizeof *m + len);
    m->len = (uint32_t)len;
    if (len) memcpy(m->bytes, msg, len);
    charge(r, len, true);
    st->kept++;
    p->n++;
    p->bytes += len;
    orr_park_msg **at = !orphan          ? (p->tail ? &p->tail->next : &p->head)
                        : p->orphan_tail ? &p->orphan_tail->next
                                         : &p->head;
    m->next = *at;
    *at = m;
    if (!m->next) p->tail = m;
    if (orphan) p->orphan_tail = m;
}

void orr_registry_msgs_free(orr_park_msg *m) {
    while (m) {
        orr_park_msg *next = m->next;
        free(m);
        m = next;
    }
}

/* The end of n's parking: its messages go (counted dropped if asked). */
static void park_free(orr_registry *r, reg_name *n, bool dropped) {
    reg_park *p = n->park;
    orr_park_stats *st = stats_at(r, n->key.pool);
    if (dropped) st->dropped += p->n;
    st->kept -= p->n;
    for (orr_park_msg *m = p->head; m; m = m->next)
        charge(r, m->len, false);
    orr_registry_msgs_free(p->head);
    if (!p->restoring) {
        heap_remove(r, n);
        st->names--;
    }
    free(p);
    n->park = NULL;
}

/* ---- the states of a name ---- */

/* A name c holds (or restores) becomes parked, owned by c until it is
 * taken again or expires. */
static void park_one(orr_registry *r, reg_conn *c, reg_name *n, const orr_park_limits *lim,
                     int64_t now_ms) {
    if (!n->park) {
        n->park = orr_xcalloc(1, sizeof *n->park);
    }
    reg_park *p = n->park;
    p->restoring = false;
    p->orphan_tail = NULL;
    p->max_n = lim->max_messages ? lim->max_messages : 1;
    p->max_bytes = lim->max_bytes;
    p->deadline_ms = now_ms + lim->park_ms;
    orr_list_remove(&n->by_conn);
    orr_list_push_back(&c->parked, &n->by_conn);
    c->held--;
    heap_push(r, n);
    stats_at(r, n->key.pool)->names++;
}

static size_t park_names_locked(orr_registry *r, reg_conn *c, const orr_park_limits *lim,
                                int64_t now_ms) {
    size_t k = 0;
    for (orr_link *l; (l = orr_list_front(&c->names)); k++)
        park_one(r, c, ORR_CONTAINER_OF(l, reg_name, by_conn), lim, now_ms);
    return k;
}

/* A parked name taken by conn: held at once when it kept nothing, else
 * restoring until conn's worker has taken its messages. */
static int unpark_locked(orr_registry *r, reg_name *n, uint64_t conn) {
    reg_conn *held = conn_find(r, conn);
    if (held && held->held >= ORR_REGISTRY_MAX_PER_CONN) return ORR_ENOMEM;
    heap_remove(r, n);
    stats_at(r, n->key.pool)->names--;
    reg_conn *old = n->owner;
    orr_list_remove(&n->by_conn);
    conn_drop_if_empty(r, old);
    n->owner = conn_get(r, conn);
    n->owner->held++;
    orr_list_push_back(&n->owner->names, &n->by_conn);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    n->since_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (!n->park->head) {
        free(n->park);
        n->park = NULL;
        return 0;
    }
    n->park->restoring = true;
    return ORR_REGISTRY_RESTORING;
}

void orr_registry_park_budget(orr_registry *r, atomic_size_t *used, const atomic_size_t *max) {
    pthread_mutex_lock(&r->lock);
    r->budget_used = used;
    r->budget_max = max;
    pthread_mutex_unlock(&r->lock);
}

size_t orr_registry_park_names(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                               int64_t now_ms) {
    if (!lim || !lim->park_ms) return 0;
    pthread_mutex_lock(&r->lock);
    reg_conn *c = conn_find(r, conn);
    size_t k = c ? park_names_locked(r, c, lim, now_ms) : 0;
    pthread_mutex_unlock(&r->lock);
    return k;
}

bool orr_registry_park_send(orr_registry *r, uint32_t pool, const char *name, size_t len,
                            const void *msg, size_t msg_len) {
    if (!valid_name(name, len)) return false;
    pthread_mutex_lock(&r->lock);
    reg_name *n = name_find(r, pool, name, len);
    bool kept = n && n->park;
    if (kept) keep(r, n, msg, msg_len, false);
    pthread_mutex_unlock(&r->lock);
    return kept;
}

bool orr_registry_park_orphan(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                              int64_t now_ms, const void *msg, size_t msg_len) {
    pthread_mutex_lock(&r->lock);
    reg_conn *c = conn_find(r, conn);
    if (c && lim && lim->park_ms) park_names_locked(r, c, lim, now_ms);
    orr_link *l = c ? orr_list_front(&c->parked) : NULL;
    if (l) keep(r, ORR_CONTAINER_OF(l, reg_name, by_conn), msg, msg_len, true);
    pthread_mutex_unlock(&r->lock);
    return l != NULL;
}

size_t orr_registry_restore_take(orr_registry *r, uint32_t pool, const char *name, size_t len,
                                 uint64_t conn, orr_park_msg **out) {
    *out = NULL;
    if (!valid_name(name, len)) return 0;
    pthread_mutex_lock(&r->lock);
    reg_name *n = name_find(r, pool, name, len);
    size_t k = 0;
    if (n && n->park && n->park->restoring && n->owner->id == conn) {
        reg_park *p = n->park;
        k = p->n;
        if (k) {
            *out = p->head;
            for (orr_park_msg *m = p->head; m; m = m->next)
                charge(r, m->len, false);
            stats_at(r, pool)->delivered += k;
            stats_at(r, pool)->kept -= k;
            p->head = p->tail = p->orphan_tail = NULL;
            p->n = 0;
            p->bytes = 0;
        } else {
            park_free(r, n, false); /* now held: lookups find it */
        }
    }
    pthread_mutex_unlock(&r->lock);
    return k;
}

/* One parked name goes with its messages (the caller counts them). */
static void unpark_free(orr_registry *r, reg_name *n) {
    reg_conn *old = n->owner;
    park_free(r, n, false);
    htab_remove(&r->names, &n->key.node);
    orr_list_remove(&n->by_conn);
    free(n);
    conn_drop_if_empty(r, old);
}

size_t orr_registry_park_expire(orr_registry *r, int64_t now_ms) {
    size_t k = 0;
    pthread_mutex_lock(&r->lock);
    while (r->heap_n && r->heap[0]->park->deadline_ms <= now_ms) {
        reg_name *n = r->heap[0];
        stats_at(r, n->key.pool)->expired += n->park->n;
        unpark_free(r, n);
        k++;
    }
    pthread_mutex_unlock(&r->lock);
    return k;
}

void orr_registry_park_forget_pool(orr_registry *r, uint32_t pool) {
    pthread_mutex_lock(&r->lock);
    /* Picked first: each removal reorders the heap. */
    reg_name **v = r->heap_n ? orr_xmalloc(r->heap_n * sizeof *v) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < r->heap_n; i++)
        if (r->heap[i]->key.pool == pool) v[k++] = r->heap[i];
    for (size_t i = 0; i < k; i++)
        unpark_free(r, v[i]);
    free(v);
    if (pool < r->n_stats) r->stats[pool] = (orr_park_stats){0};
    pthread_mutex_unlock(&r->lock);
}

void orr_registry_park_stats(orr_registry *r, uint32_t pool, orr_park_stats *out) {
    pthread_mutex_lock(&r->lock);
    *out = pool < r->n_stats ? r->stats[pool] : (orr_park_stats){0};
    pthread_mutex_unlock(&r->lock);
}

/* ---- walking everything (a cluster writes the node's part back) ----- */

void orr_registry_foreach(orr_registry *r, orr_registry_visit_fn fn, void *arg) {
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i <= r->names.mask; i++) {
        for (hnode *e = r->names.buckets[i]; e; e = e->next) {
            reg_name *n = ORR_CONTAINER_OF(e, reg_name, key.node);
            if (is_parked(n)) continue;
            fn(arg, &(orr_registry_entry){.pending = n->pending,
                                          .pool = n->key.pool,
                                          .bytes = n->key.bytes,
                                          .len = n->key.len,
                                          .conn = n->owner->id,
                                          .since_ms = n->since_ms});
        }
    }
    for (size_t i = 0; i <= r->members.mask; i++) {
        for (hnode *e = r->members.buckets[i]; e; e = e->next) {
            reg_member *m = ORR_CONTAINER_OF(e, reg_member, node);
            fn(arg, &(orr_registry_entry){.is_group = true,
                                          .pool = m->group->key.pool,
                                          .bytes = m->group->key.bytes,
                                          .len = m->group->key.len,
                                          .conn = m->conn->id});
        }
    }
    pthread_mutex_unlock(&r->lock);
}

int orr_registry_holder_since(orr_registry *r, uint32_t pool, const char *name, size_t len,
                              uint64_t *conn, int64_t *since_ms) {
    if (!valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    reg_name *n = name_find(r, pool, name, len);
    if (n && is_parked(n)) n = NULL;
    if (n) {
        *conn = n->owner->id;
        *since_ms = n->since_ms;
    }
    pthread_mutex_unlock(&r->lock);
    return n ? 0 : ORR_ENOTFOUND;
}
