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
 * Parked names (registry.h "parking") are names with a reg_park: park.c
 * keeps them; the entries both files use are in registry/internal.h.
 *
 * Names and groups may come from clients (chat rooms, user names), so they
 * are hashed with SipHash-1-3 under a random key per registry: nobody can
 * choose names that all land in one chain. Connection ids come from the
 * server and are only mixed.
 */
#include "registry/registry.h"

#include "registry/internal.h"

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
void orr__registry_htab_remove(htab *t, hnode *e) {
    *e->pprev = e->next;
    if (e->next) e->next->pprev = e->pprev;
    t->n--;
    size_t nbuckets = t->mask + 1;
    if (nbuckets > HTAB_MIN_BUCKETS && t->n < nbuckets / 8) htab_resize(t, nbuckets / 2);
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

reg_conn *orr__registry_conn_find(const orr_registry *r, uint64_t id) {
    for (hnode *e = htab_chain(&r->conns, conn_hash(r, id)); e; e = e->next) {
        reg_conn *c = ORR_CONTAINER_OF(e, reg_conn, node);
        if (c->id == id) return c;
    }
    return NULL;
}

reg_conn *orr__registry_conn_get(orr_registry *r, uint64_t id) {
    reg_conn *c = orr__registry_conn_find(r, id);
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
void orr__registry_conn_drop_if_empty(orr_registry *r, reg_conn *c) {
    if (!orr_list_empty(&c->names) || !orr_list_empty(&c->groups) || !orr_list_empty(&c->parked))
        return;
    orr__registry_htab_remove(&r->conns, &c->node);
    free(c);
}

/* ---- names --------------------------------------------------------------- */

reg_name *orr__registry_name_find(const orr_registry *r, uint32_t pool, const char *s, size_t len) {
    reg_key *k = key_find(&r->names, key_hash(r, pool, s, len), pool, s, len);
    return k ? ORR_CONTAINER_OF(k, reg_name, key) : NULL;
}

/* A parked name counts in no connection's held entries. */
static void name_remove(orr_registry *r, reg_name *n) {
    if (!is_parked(n)) n->owner->held--;
    if (n->park) orr__registry_park_free(r, n, true);
    orr__registry_htab_remove(&r->names, &n->key.node);
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
    orr__registry_htab_remove(&r->members, &m->node);
    orr_list_remove(&m->by_conn);
    free(m);
    if (g->n == 0) {
        orr__registry_htab_remove(&r->groups, &g->key.node);
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

static int register_locked(orr_registry *r, uint32_t pool, const char *s, size_t len, uint64_t conn,
                           bool pending) {
    uint64_t hash = key_hash(r, pool, s, len);
    reg_key *k = key_find(&r->names, hash, pool, s, len);
    reg_name *taken = k ? ORR_CONTAINER_OF(k, reg_name, key) : NULL;
    if (taken && is_parked(taken) && !pending) return orr__registry_unpark(r, taken, conn);
    if (taken) return taken->owner->id == conn ? 0 : ORR_ETAKEN;
    reg_conn *held = orr__registry_conn_find(r, conn);
    if (held && held->held >= ORR_REGISTRY_MAX_PER_CONN) return ORR_ENOMEM;
    reg_name *n = orr_xmalloc(sizeof *n + len);
    key_set(&n->key, hash, pool, n->bytes, s, len);
    n->owner = orr__registry_conn_get(r, conn);
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
    if (!orr__registry_valid_name(name, len)) return ORR_EINVAL;
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
    if (!orr__registry_valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    reg_name *n = orr__registry_name_find(r, pool, name, len);
    bool mine = n && !is_parked(n) && n->owner->id == conn;
    if (mine) n->pending = false;
    pthread_mutex_unlock(&r->lock);
    return mine ? 0 : ORR_ENOTFOUND;
}

static int unregister_locked(orr_registry *r, uint32_t pool, const char *s, size_t len,
                             uint64_t conn) {
    reg_name *n = orr__registry_name_find(r, pool, s, len);
    if (!n || is_parked(n) || n->owner->id != conn) return ORR_ENOTFOUND;
    reg_conn *c = n->owner;
    name_remove(r, n);
    orr__registry_conn_drop_if_empty(r, c);
    return 0;
}

int orr_registry_unregister(orr_registry *r, uint32_t pool, const char *name, size_t len,
                            uint64_t conn) {
    if (!orr__registry_valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    int rc = unregister_locked(r, pool, name, len, conn);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int orr_registry_lookup(orr_registry *r, uint32_t pool, const char *name, size_t len,
                        uint64_t *conn) {
    if (!orr__registry_valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    reg_name *n = orr__registry_name_find(r, pool, name, len);
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
    reg_conn *held = orr__registry_conn_find(r, conn);
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
    m->conn = orr__registry_conn_get(r, conn);
    m->conn->held++;
    m->node.hash = member_hash(r, g, conn);
    orr_list_push_back(&m->conn->groups, &m->by_conn);
    group_push(g, m);
    htab_insert(&r->members, &m->node);
    return 0;
}

int orr_registry_join(orr_registry *r, uint32_t pool, const char *group, size_t len,
                      uint64_t conn) {
    if (!orr__registry_valid_name(group, len)) return ORR_EINVAL;
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
    orr__registry_conn_drop_if_empty(r, c);
    return 0;
}

int orr_registry_leave(orr_registry *r, uint32_t pool, const char *group, size_t len,
                       uint64_t conn) {
    if (!orr__registry_valid_name(group, len)) return ORR_EINVAL;
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
    if (!orr__registry_valid_name(group, len)) return 0;
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

static void conn_gone_locked(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                             int64_t now_ms) {
    reg_conn *c = orr__registry_conn_find(r, conn);
    if (!c) return;
    if (lim && lim->park_ms) orr__registry_park_names(r, c, lim, now_ms);
    for (orr_link *l; (l = orr_list_front(&c->names));)
        name_remove(r, ORR_CONTAINER_OF(l, reg_name, by_conn));
    for (orr_link *l; (l = orr_list_front(&c->groups));)
        member_remove(r, ORR_CONTAINER_OF(l, reg_member, by_conn));
    orr__registry_conn_drop_if_empty(r, c);
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

size_t orr_registry_unregister_names(orr_registry *r, uint64_t conn) {
    size_t k = 0;
    pthread_mutex_lock(&r->lock);
    reg_conn *c = orr__registry_conn_find(r, conn);
    if (c) {
        for (orr_link *l; (l = orr_list_front(&c->names)); k++)
            name_remove(r, ORR_CONTAINER_OF(l, reg_name, by_conn));
        orr__registry_conn_drop_if_empty(r, c);
    }
    pthread_mutex_unlock(&r->lock);
    return k;
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
    if (!orr__registry_valid_name(name, len)) return ORR_EINVAL;
    pthread_mutex_lock(&r->lock);
    reg_name *n = orr__registry_name_find(r, pool, name, len);
    if (n && is_parked(n)) n = NULL;
    if (n) {
        *conn = n->owner->id;
        *since_ms = n->since_ms;
    }
    pthread_mutex_unlock(&r->lock);
    return n ? 0 : ORR_ENOTFOUND;
}
