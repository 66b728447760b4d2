/*
 * The index of the executor pools: a name -> idx table where idx is a small
 * number below max (it indexes arrays sized max: the pools, per-worker
 * counters), given back when a pool goes and reused by the next one.
 *
 * No I/O, no locks (the caller holds one), no allocation after init:
 * linear probing over at least twice max slots, and removal by backward
 * shift, so no tombstones pile up however many names come and go.
 */
#ifndef ORR_SERVER_POOL_TABLE_H
#define ORR_SERVER_POOL_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pool_table {
    uint32_t *slots; /* idx + 1; 0 = empty */
    uint32_t mask;
    const char **names; /* [max] by idx: the caller's name (kept by pointer), NULL = free */
    uint32_t *lens;     /* [max] by idx */
    uint32_t *hashes;   /* [max] by idx: where the name's probe starts */
    uint32_t *free_idx; /* [max] idx below hw given back, reused first */
    uint32_t n_free;
    uint32_t hw; /* every idx in use is below it (it never goes down) */
    uint32_t live, max;
} pool_table;

void pool_table_init(pool_table *t, uint32_t max);
void pool_table_free(pool_table *t);
/* The idx of that name, or -1. */
int64_t pool_table_find(const pool_table *t, const char *name, size_t len);
/* Adds a name that is absent: its idx, or -1 when max names are in. The
 * bytes at name must stay put until the idx is removed. */
int64_t pool_table_add(pool_table *t, const char *name, size_t len);
/* Removes the name of idx (which is in use); idx is free for reuse. */
void pool_table_remove(pool_table *t, uint32_t idx);

#endif
