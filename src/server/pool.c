/*
 * Executor pools: gear:<name> or tenant:<id>. Each counts its websocket
 * connections on this node against ws_max_connections (a slot is taken at
 * the handshake and given back when the session ends) and is the namespace
 * of its registry names and groups.
 *
 * A tenant id may come from a client, so tenant pools come and go: one
 * that the config does not list is freed when its last reference goes,
 * and max_pools bounds the pools alive at once, not the names ever seen.
 * Whoever keeps a pool pointer holds a reference (see struct orr_pool):
 * a connection from its upgrade until its struct is freed, since c->route
 * names it (a (route, pool) binding, gears.c). With no connection left, the pool has
 * no registry entries either: they belong to connections and go when the
 * session ends. A gear's own pool and the listed ones stay for the server's
 * life; a gear's pool counts no references at all, so the common handshake
 * takes no lock here.
 *
 * References are atomic, but a count reaches 0 (and leaves it) only under
 * the pools lock, where lookups by name happen: a pool being freed can
 * never be found again. A freed pool's idx goes to the next one, whose
 * counters (its struct's and each worker's pstats[idx]) start at zero.
 */
#include "common/log.h"
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

static uint32_t limit_for(const orr_pools *ps, const char *name) {
    return orr_config_pool_limit(&ps->cfg, name);
}

static bool listed_in(const orr_pools *ps, const char *name) {
    return orr_config_pool_find(&ps->cfg, name) != NULL;
}

/* Under the lock (gear and listed settle whether it may park). */
static void set_park(const orr_pools *ps, orr_pool *p) {
    uint32_t ms, n, bytes;
    orr_config_park_policy(&ps->cfg, p->name, &ms, &n, &bytes);
    if (!(p->gear || p->listed)) ms = 0;
    atomic_store_explicit(&p->park_max_messages, n, memory_order_relaxed);
    atomic_store_explicit(&p->park_max_bytes, bytes, memory_order_relaxed);
    atomic_store_explicit(&p->park_ms, ms, memory_order_relaxed);
}

bool pool_park_limits(const orr_pool *p, orr_park_limits *lim) {
    lim->park_ms = atomic_load_explicit(&p->park_ms, memory_order_relaxed);
    lim->max_messages = atomic_load_explicit(&p->park_max_messages, memory_order_relaxed);
    lim->max_bytes = atomic_load_explicit(&p->park_max_bytes, memory_order_relaxed);
    return lim->park_ms != 0;
}

/* Under the lock: a new pool with `refs` references, or NULL past max_pools. */
static orr_pool *create_locked(orr_server *s, const char *name, size_t len, unsigned refs) {
    orr_pools *ps = &s->pools;
    if (ps->table.live == ps->table.max) {
        orr_log(ORR_LOG_ERROR, NULL, "executor pool %.*s: not created: max_pools (%u) reached",
                (int)len, name, ps->table.max);
        return NULL;
    }
    orr_pool *p = orr_xcalloc(1, sizeof *p);
    memcpy(p->name, name, len);
    p->name[len] = '\0';
    p->name_len = (uint8_t)len;
    p->srv = s;
    p->listed = listed_in(ps, p->name);
    atomic_init(&p->refs, refs);
    atomic_init(&p->max, limit_for(ps, p->name));
    bool on;
    uint32_t min;
    orr_config_deflate_policy(&ps->cfg, p->name, &on, &min);
    atomic_init(&p->deflate, on);
    atomic_init(&p->deflate_min, min);
    set_park(ps, p);
    p->idx = (uint32_t)pool_table_add(&ps->table, p->name, len);
    ps->all[p->idx] = p;
    return p;
}

/* Under the lock, for a pool nobody references. */
static void free_locked(orr_server *s, orr_pool *p) {
    orr_pools *ps = &s->pools;
    pool_table_remove(&ps->table, p->idx);
    ps->all[p->idx] = NULL;
    /* Parked names are keyed by idx: none may outlive it into the next pool. */
    orr_registry_park_forget_pool(s->registry, p->idx);
    /* No connection of this pool is left, so no worker writes these; the
     * next pool with this idx starts from zero. */
    for (int i = 0; i < s->n_workers; i++) {
        pool_stats *st = s->workers[i].cw.pstats;
        if (!st) continue;
        atomic_store_explicit(&st[p->idx].frames_in, 0, memory_order_relaxed);
        atomic_store_explicit(&st[p->idx].frames_out, 0, memory_order_relaxed);
    }
    free(p);
}

orr_pool *pools_acquire(orr_server *s, const char *name, size_t len, bool create) {
    orr_pools *ps = &s->pools;
    if (len == 0 || len >= POOL_NAME_MAX) return NULL;
    pthread_mutex_lock(&ps->lock);
    int64_t idx = pool_table_find(&ps->table, name, len);
    orr_pool *p = idx >= 0 ? ps->all[idx] : NULL;
    if (p)
        pool_ref(p);
    else if (create)
        p = create_locked(s, name, len, 1);
    pthread_mutex_unlock(&ps->lock);
    return p;
}

orr_pool *pools_add_gear(orr_server *s, const char *name) {
    orr_pools *ps = &s->pools;
    pthread_mutex_lock(&ps->lock);
    /* The config may list it, so it may exist already (with no reference:
     * nothing runs yet). */
    int64_t idx = pool_table_find(&ps->table, name, strlen(name));
    orr_pool *p = idx >= 0 ? ps->all[idx] : create_locked(s, name, strlen(name), 0);
    if (p) {
        p->gear = true;
        set_park(ps, p);
    }
    pthread_mutex_unlock(&ps->lock);
    return p;
}

void pool_ref(orr_pool *p) {
    if (!p->gear) atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void pool_unref(orr_pool *p) {
    if (!p || p->gear) return;
    unsigned n = atomic_load_explicit(&p->refs, memory_order_relaxed);
    while (n > 1)
        if (atomic_compare_exchange_weak_explicit(&p->refs, &n, n - 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    /* Perhaps the last one: decided under the lock, where nobody can find
     * the pool and take a reference meanwhile. */
    orr_pools *ps = &p->srv->pools;
    pthread_mutex_lock(&ps->lock);
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1 && !p->listed)
        free_locked(p->srv, p);
    pthread_mutex_unlock(&ps->lock);
}

size_t pools_name_of(orr_server *s, uint32_t idx, char *out, size_t cap) {
    orr_pools *ps = &s->pools;
    size_t n = 0;
    pthread_mutex_lock(&ps->lock);
    const orr_pool *p = idx < ps->table.hw ? ps->all[idx] : NULL;
    if (p && (n = strnlen(p->name, sizeof p->name)) < cap)
        memcpy(out, p->name, n + 1);
    else
        n = 0;
    pthread_mutex_unlock(&ps->lock);
    return n;
}

void pools_foreach(orr_server *s, void (*fn)(void *arg, const orr_pool *p), void *arg) {
    orr_pools *ps = &s->pools;
    pthread_mutex_lock(&ps->lock);
    for (uint32_t i = 0; i < ps->table.hw; i++)
        if (ps->all[i]) fn(arg, ps->all[i]);
    pthread_mutex_unlock(&ps->lock);
}

bool pool_take(orr_pool *p) {
    unsigned max = atomic_load_explicit(&p->max, memory_order_relaxed);
    unsigned cur = atomic_load_explicit(&p->conns, memory_order_relaxed);
    do {
        if (cur >= max) {
            atomic_fetch_add_explicit(&p->rejected, 1, memory_order_relaxed);
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&p->conns, &cur, cur + 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void pool_release(orr_pool *p) {
    atomic_fetch_sub_explicit(&p->conns, 1, memory_order_relaxed);
}

/* Under the lock: the listed pools that do not exist yet. */
static void create_listed_locked(orr_server *s) {
    orr_pools *ps = &s->pools;
    for (size_t i = 0; i < ps->cfg.n_pools; i++) {
        const char *name = ps->cfg.pools[i].name;
        if (pool_table_find(&ps->table, name, strlen(name)) < 0)
            create_locked(s, name, strlen(name), 0);
    }
}

int pools_init(orr_server *s) {
    orr_pools *ps = &s->pools;
    pthread_mutex_init(&ps->lock, NULL);
    ps->all = orr_xcalloc(s->cfg.max_pools, sizeof *ps->all);
    pool_table_init(&ps->table, s->cfg.max_pools);
    if (orr_config_copy(&ps->cfg, &s->cfg) < 0) return -1;
    /* Listed pools exist from the start, so /metrics shows them. */
    pthread_mutex_lock(&ps->lock);
    create_listed_locked(s);
    pthread_mutex_unlock(&ps->lock);
    return 0;
}

void pools_reconfigure(orr_server *s, const orr_config *cfg) {
    orr_pools *ps = &s->pools;
    pthread_mutex_lock(&ps->lock);
    orr_config next;
    if (orr_config_copy(&next, cfg) == 0) {
        orr_config_free(&ps->cfg);
        ps->cfg = next;
    }
    for (uint32_t i = 0; i < ps->table.hw; i++) {
        orr_pool *p = ps->all[i];
        if (!p) continue;
        unsigned before = atomic_load_explicit(&p->max, memory_order_relaxed);
        unsigned after = limit_for(ps, p->name);
        if (before != after) {
            atomic_store_explicit(&p->max, after, memory_order_relaxed);
            orr_log(ORR_LOG_INFO, NULL,
                    "executor pool %s: ws_max_connections %u -> %u (%u connected)", p->name, before,
                    after, atomic_load_explicit(&p->conns, memory_order_relaxed));
        }
        bool on;
        uint32_t min;
        orr_config_deflate_policy(&ps->cfg, p->name, &on, &min);
        atomic_store_explicit(&p->deflate, on, memory_order_relaxed);
        atomic_store_explicit(&p->deflate_min, min, memory_order_relaxed);
        /* No longer listed: it goes now if unused, else with its last reference. */
        p->listed = listed_in(ps, p->name);
        set_park(ps, p);
        if (!p->gear && !p->listed && atomic_load_explicit(&p->refs, memory_order_acquire) == 0)
            free_locked(s, p);
    }
    create_listed_locked(s);
    pthread_mutex_unlock(&ps->lock);
}

void pools_free(orr_server *s) {
    orr_pools *ps = &s->pools;
    if (!ps->all) return;
    for (uint32_t i = 0; i < ps->table.hw; i++) {
        if (!ps->all[i]) continue;
        free(ps->all[i]);
    }
    free(ps->all);
    pool_table_free(&ps->table);
    orr_config_free(&ps->cfg);
    pthread_mutex_destroy(&ps->lock);
    ps->all = NULL;
}
