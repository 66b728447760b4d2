#include "loop/slots.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

void orr_slots_init(orr_slots *s, unsigned owner) {
    memset(s, 0, sizeof *s);
    s->owner = owner & 0xff;
}

void orr_slots_free(orr_slots *s) {
    free(s->items);
    free(s->gen);
    free(s->free_list);
    memset(s, 0, sizeof *s);
}

static uint32_t take(orr_slots *s) {
    if (s->n_free) return s->free_list[--s->n_free];
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 1024;
        if (cap > ORR_SLOTS_MAX) cap = ORR_SLOTS_MAX;
        s->items = orr_xrealloc(s->items, cap * sizeof *s->items);
        s->gen = orr_xrealloc(s->gen, cap * sizeof *s->gen);
        s->free_list = orr_xrealloc(s->free_list, cap * sizeof *s->free_list);
        s->cap = cap;
    }
    s->gen[s->n] = 0;
    return s->n++;
}

uint64_t orr_slots_add(orr_slots *s, void *item) {
    if (s->n == ORR_SLOTS_MAX && s->n_free == 0) return 0;
    uint32_t slot = take(s);
    uint32_t gen = ++s->gen[slot];
    if (gen == 0) gen = ++s->gen[slot]; /* 0 is never an id's generation */
    s->items[slot] = item;
    s->live++;
    return ((uint64_t)s->owner << 56) | ((uint64_t)slot << 32) | gen;
}

void orr_slots_remove(orr_slots *s, uint64_t id) {
    if (!orr_slots_get(s, id)) return;
    uint32_t slot = (uint32_t)(id >> 32) & (ORR_SLOTS_MAX - 1);
    s->items[slot] = NULL;
    s->free_list[s->n_free++] = slot;
    s->live--;
}
