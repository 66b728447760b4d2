/*
 * Parking (registry.h "parking"): names whose connection ended keep their
 * messages for their next holder. Parked names live in the node's table
 * (registry.c) with a reg_park each; this file has their states, their
 * queues and caps, the heap by deadline and the per-pool counters, all
 * under the table's one mutex.
 */
#include "registry/registry.h"

#include "common/err.h"
#include "registry/internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- counters and the deadline heap ------------------------------------ */

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
void orr__registry_park_free(orr_registry *r, reg_name *n, bool dropped) {
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

size_t orr__registry_park_names(orr_registry *r, reg_conn *c, const orr_park_limits *lim,
                                int64_t now_ms) {
    size_t k = 0;
    for (orr_link *l; (l = orr_list_front(&c->names)); k++)
        park_one(r, c, ORR_CONTAINER_OF(l, reg_name, by_conn), lim, now_ms);
    return k;
}

/* A parked name taken by conn: held at once when it kept nothing, else
 * restoring until conn's worker has taken its messages. */
int orr__registry_unpark(orr_registry *r, reg_name *n, uint64_t conn) {
    reg_conn *held = orr__registry_conn_find(r, conn);
    if (held && held->held >= ORR_REGISTRY_MAX_PER_CONN) return ORR_ENOMEM;
    heap_remove(r, n);
    stats_at(r, n->key.pool)->names--;
    reg_conn *old = n->owner;
    orr_list_remove(&n->by_conn);
    orr__registry_conn_drop_if_empty(r, old);
    n->owner = orr__registry_conn_get(r, conn);
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
    reg_conn *c = orr__registry_conn_find(r, conn);
    size_t k = c ? orr__registry_park_names(r, c, lim, now_ms) : 0;
    pthread_mutex_unlock(&r->lock);
    return k;
}

bool orr_registry_park_send(orr_registry *r, uint32_t pool, const char *name, size_t len,
                            const void *msg, size_t msg_len) {
    if (!orr__registry_valid_name(name, len)) return false;
    pthread_mutex_lock(&r->lock);
    reg_name *n = orr__registry_name_find(r, pool, name, len);
    bool kept = n && n->park;
    if (kept) keep(r, n, msg, msg_len, false);
    pthread_mutex_unlock(&r->lock);
    return kept;
}

bool orr_registry_park_orphan(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                              int64_t now_ms, const void *msg, size_t msg_len) {
    pthread_mutex_lock(&r->lock);
    reg_conn *c = orr__registry_conn_find(r, conn);
    if (c && lim && lim->park_ms) orr__registry_park_names(r, c, lim, now_ms);
    orr_link *l = c ? orr_list_front(&c->parked) : NULL;
    if (l) keep(r, ORR_CONTAINER_OF(l, reg_name, by_conn), msg, msg_len, true);
    pthread_mutex_unlock(&r->lock);
    return l != NULL;
}

int orr_registry_orphan_to(orr_registry *r, uint64_t conn, const orr_park_limits *lim,
                           int64_t now_ms, uint32_t pool, const char *name, size_t len,
                           const void *msg, size_t msg_len, uint64_t *holder) {
    if (!orr__registry_valid_name(name, len)) return ORR_ORPHAN_LOST;
    pthread_mutex_lock(&r->lock);
    reg_conn *c = orr__registry_conn_find(r, conn);
    if (c && lim && lim->park_ms) orr__registry_park_names(r, c, lim, now_ms);
    reg_name *n = orr__registry_name_find(r, pool, name, len);
    int rc = ORR_ORPHAN_LOST;
    if (n && n->park) {
        keep(r, n, msg, msg_len, true);
        rc = ORR_ORPHAN_KEPT;
    } else if (n && !n->pending && n->owner->id != conn) {
        *holder = n->owner->id;
        rc = ORR_ORPHAN_HOLDER;
    } else {
        stats_at(r, pool)->dropped++;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

size_t orr_registry_restore_take(orr_registry *r, uint32_t pool, const char *name, size_t len,
                                 uint64_t conn, orr_park_msg **out) {
    *out = NULL;
    if (!orr__registry_valid_name(name, len)) return 0;
    pthread_mutex_lock(&r->lock);
    reg_name *n = orr__registry_name_find(r, pool, name, len);
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
            orr__registry_park_free(r, n, false); /* now held: lookups find it */
        }
    }
    pthread_mutex_unlock(&r->lock);
    return k;
}

/* One parked name goes with its messages (the caller counts them). */
static void unpark_free(orr_registry *r, reg_name *n) {
    reg_conn *old = n->owner;
    orr__registry_park_free(r, n, false);
    orr__registry_htab_remove(&r->names, &n->key.node);
    orr_list_remove(&n->by_conn);
    free(n);
    orr__registry_conn_drop_if_empty(r, old);
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

void orr_registry_park_account(orr_registry *r, uint32_t pool, const orr_park_stats *add,
                               int64_t names) {
    pthread_mutex_lock(&r->lock);
    orr_park_stats *st = stats_at(r, pool);
    st->delivered += add->delivered;
    st->expired += add->expired;
    st->dropped += add->dropped;
    if (names >= 0) st->names = (uint64_t)names;
    pthread_mutex_unlock(&r->lock);
}
