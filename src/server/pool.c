/*
 * Executor pools: gear:<name> or tenant:<id>. Each counts its websocket
 * connections on this node against ws_max_connections (a slot is taken at
 * the handshake and given back when the session ends) and is the namespace
 * of its registry names and groups.
 *
 * Pools are created on first use and kept for the server's life, so a
 * connection can point at its pool without counting references; their
 * number is bounded by max_pools, since a tenant id may come from a client.
 * Lookups by name go through one mutex; the gear pools are found without
 * it (each gear entry points at its own), so the common handshake takes no
 * lock here.
 */
#include "common/hash.h"
#include "common/log.h"
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

static uint32_t name_hash(const char *p, size_t n) {
    return (uint32_t)orr_fnv1a(ORR_FNV_OFFSET, p, n);
}

/* Under the lock. */
static orr_pool *find_locked(orr_pools *ps, const char *name, size_t len, uint32_t *slot) {
    uint32_t i = name_hash(name, len) & ps->mask;
    for (;; i = (i + 1) & ps->mask) {
        uint32_t v = ps->slots[i];
        if (!v) {
            *slot = i;
            return NULL;
        }
        orr_pool *p = ps->all[v - 1];
        if (strlen(p->name) == len && memcmp(p->name, name, len) == 0) return p;
    }
}

static uint32_t limit_for(const orr_pools *ps, const char *name) {
    return orr_config_pool_limit(&ps->cfg, name);
}

orr_pool *pools_get(orr_server *s, const char *name, size_t len, bool create) {
    orr_pools *ps = &s->pools;
    if (len == 0 || len >= POOL_NAME_MAX) return NULL;
    pthread_mutex_lock(&ps->lock);
    uint32_t slot = 0;
    orr_pool *p = find_locked(ps, name, len, &slot);
    uint32_t n = atomic_load_explicit(&ps->n, memory_order_relaxed);
    if (!p && create && n < ps->max) {
        p = orr_xcalloc(1, sizeof *p);
        p->idx = n;
        /* One (route, pool) target per route of every gear, made now so
         * that binding a connection needs no lock. */
        p->bindings = orr_xcalloc(s->n_targets ? s->n_targets : 1, sizeof *p->bindings);
        for (size_t i = 0; i < s->n_targets; i++) {
            p->bindings[i] = s->targets[i];
            p->bindings[i].pool = p;
        }
        memcpy(p->name, name, len);
        p->name[len] = '\0';
        atomic_init(&p->max, limit_for(ps, p->name));
        ps->all[n] = p;
        ps->slots[slot] = n + 1;
        atomic_store_explicit(&ps->n, n + 1, memory_order_release);
    } else if (!p && create) {
        orr_log(ORR_LOG_ERROR, NULL, "executor pool %.*s: not created: max_pools (%u) reached",
                (int)len, name, ps->max);
    }
    pthread_mutex_unlock(&ps->lock);
    return p;
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

const orr_route_target *pools_bind(orr_server *s, orr_pool *p, const orr_route_target *route) {
    return &p->bindings[route - s->targets];
}

int pools_init(orr_server *s) {
    orr_pools *ps = &s->pools;
    pthread_mutex_init(&ps->lock, NULL);
    ps->max = s->cfg.max_pools;
    ps->all = orr_xcalloc(ps->max, sizeof *ps->all);
    uint32_t cap = 16;
    while (cap < ps->max * 2u) cap *= 2;
    ps->slots = orr_xcalloc(cap, sizeof *ps->slots);
    ps->mask = cap - 1;
    atomic_init(&ps->n, 0);
    if (orr_config_copy(&ps->cfg, &s->cfg) < 0) return -1;
    /* Configured pools exist from the start, so /metrics shows them. */
    for (size_t i = 0; i < s->cfg.n_pools; i++)
        pools_get(s, s->cfg.pools[i].name, strlen(s->cfg.pools[i].name), true);
    return 0;
}

void pools_reconfigure(orr_server *s, const orr_config *cfg) {
    orr_pools *ps = &s->pools;
    for (size_t i = 0; i < cfg->n_pools; i++) pools_get(s, cfg->pools[i].name, strlen(cfg->pools[i].name), true);
    pthread_mutex_lock(&ps->lock);
    orr_config next;
    if (orr_config_copy(&next, cfg) == 0) {
        orr_config_free(&ps->cfg);
        ps->cfg = next;
    }
    uint32_t n = atomic_load_explicit(&ps->n, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) {
        orr_pool *p = ps->all[i];
        unsigned before = atomic_load_explicit(&p->max, memory_order_relaxed);
        unsigned after = limit_for(ps, p->name);
        if (before != after) {
            atomic_store_explicit(&p->max, after, memory_order_relaxed);
            orr_log(ORR_LOG_INFO, NULL, "executor pool %s: ws_max_connections %u -> %u (%u connected)",
                    p->name, before, after, atomic_load_explicit(&p->conns, memory_order_relaxed));
        }
    }
    pthread_mutex_unlock(&ps->lock);
}

void pools_free(orr_server *s) {
    orr_pools *ps = &s->pools;
    if (!ps->all) return;
    uint32_t n = atomic_load_explicit(&ps->n, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) {
        free(ps->all[i]->bindings);
        free(ps->all[i]);
    }
    free(ps->all);
    free(ps->slots);
    orr_config_free(&ps->cfg);
    pthread_mutex_destroy(&ps->lock);
    ps->all = NULL;
}
