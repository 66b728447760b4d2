/*
 * Pool names to indexes (see pool_table.h). Linear probing keeps a name
 * between its home slot and the first empty slot after it; removal keeps
 * that true by moving later entries of the run back into the hole (backward
 * shift) instead of leaving a tombstone.
 */
#include "server/pool_table.h"

#include "common/err.h"
#include "common/hash.h"

#include <stdlib.h>
#include <string.h>

static uint32_t name_hash(const char *p, size_t n) {
    return (uint32_t)orr_fnv1a(ORR_FNV_OFFSET, p, n);
}

void pool_table_init(pool_table *t, uint32_t max) {
    memset(t, 0, sizeof *t);
    uint32_t cap = 16;
    while (cap < max * 2u)
        cap *= 2;
    t->slots = orr_xcalloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    t->names = orr_xcalloc(max, sizeof *t->names);
    t->lens = orr_xcalloc(max, sizeof *t->lens);
    t->hashes = orr_xcalloc(max, sizeof *t->hashes);
    t->free_idx = orr_xcalloc(max, sizeof *t->free_idx);
    t->max = max;
}

void pool_table_free(pool_table *t) {
    free(t->slots);
    free(t->names);
    free(t->lens);
    free(t->hashes);
    free(t->free_idx);
    memset(t, 0, sizeof *t);
}

/* The slot holding name, or the empty slot that ends its run. */
static uint32_t probe(const pool_table *t, uint32_t h, const char *name, size_t len) {
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t v = t->slots[i];
        if (!v) return i;
        if (t->hashes[v - 1] == h && t->lens[v - 1] == len &&
            memcmp(t->names[v - 1], name, len) == 0)
            return i;
    }
}

int64_t pool_table_find(const pool_table *t, const char *name, size_t len) {
    uint32_t v = t->slots[probe(t, name_hash(name, len), name, len)];
    return v ? (int64_t)v - 1 : -1;
}

int64_t pool_table_add(pool_table *t, const char *name, size_t len) {
    if (t->live == t->max) return -1;
    uint32_t h = name_hash(name, len);
    uint32_t slot = probe(t, h, name, len);
    uint32_t idx = t->n_free ? t->free_idx[--t->n_free] : t->hw++;
    t->names[idx] = name;
    t->lens[idx] = (uint32_t)len;
    t->hashes[idx] = h;
    t->slots[slot] = idx + 1;
    t->live++;
    return idx;
}

void pool_table_remove(pool_table *t, uint32_t idx) {
    uint32_t hole = t->hashes[idx] & t->mask;
    while (t->slots[hole] != idx + 1)
        hole = (hole + 1) & t->mask;
    /* Every later entry of the run whose home is not between the hole and
     * itself would be cut off from its home by an empty slot: it moves into
     * the hole, which moves to where it was. */
    for (uint32_t j = (hole + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
        uint32_t home = t->hashes[t->slots[j] - 1] & t->mask;
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = 0;
    t->names[idx] = NULL;
    t->free_idx[t->n_free++] = idx;
    t->live--;
}
