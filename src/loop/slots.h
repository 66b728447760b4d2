/*
 * Ids for the objects one thread owns (a worker's connections), that other
 * threads may hold safely: `owner:8 | slot:24 | generation:32`. A slot is
 * reused with a new generation, so a stale id finds nothing; the owner byte
 * says which thread to ask. Only the owning thread calls these.
 */
#ifndef ORR_LOOP_SLOTS_H
#define ORR_LOOP_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define ORR_SLOTS_MAX (1u << 24)

typedef struct orr_slots {
    unsigned owner; /* 0..255: the ids' top byte */
    void **items;   /* [cap]: NULL for a free slot */
    uint32_t *gen;  /* [cap]: the generation of each slot's current id */
    uint32_t *free_list;
    uint32_t n, cap, n_free; /* slots used so far, allocated, free among them */
    size_t live;
} orr_slots;

static inline unsigned orr_id_owner(uint64_t id) {
    return (unsigned)(id >> 56);
}

void orr_slots_init(orr_slots *s, unsigned owner);
/* Frees the tables (not the items). */
void orr_slots_free(orr_slots *s);
/* A new id for item, or 0 when all ORR_SLOTS_MAX slots hold one. */
uint64_t orr_slots_add(orr_slots *s, void *item);
/* The item with that id, or NULL (a freed slot, a reused one, another owner). */
static inline void *orr_slots_get(const orr_slots *s, uint64_t id) {
    uint32_t slot = (uint32_t)(id >> 32) & (ORR_SLOTS_MAX - 1);
    if (orr_id_owner(id) != s->owner || slot >= s->n || s->gen[slot] != (uint32_t)id) return NULL;
    return s->items[slot];
}
/* The slot of id is free again (its next id will differ). */
void orr_slots_remove(orr_slots *s, uint64_t id);

#endif
