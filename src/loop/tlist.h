/*
 * Timeout lists: every item of one list waits for the same timeout, so a
 * list kept in arrival order is in deadline order, and a tick looks only at
 * heads: its cost does not grow with the number of items. An item is an
 * orr_timed inside the object (ORR_CONTAINER_OF finds the object); moving
 * it to a list's tail restarts its clock, requeueing keeps it. One thread
 * owns a set of lists; nothing here allocates.
 */
#ifndef ORR_LOOP_TLIST_H
#define ORR_LOOP_TLIST_H

#include "common/err.h"
#include "common/list.h"

#include <stddef.h>
#include <stdint.h>

#define ORR_TLISTS_MAX 8

typedef struct orr_timed {
    orr_link link;
    int64_t since_ms; /* monotonic: when its clock last restarted */
} orr_timed;

/* List 0 is "in no list": items there are never looked at. */
typedef struct orr_tlists {
    orr_link lists[ORR_TLISTS_MAX];
} orr_tlists;

static inline void orr_tlists_init(orr_tlists *t) {
    for (int i = 0; i < ORR_TLISTS_MAX; i++)
        orr_list_init(&t->lists[i]);
}

/* To the tail of list `to` (0: none), its clock kept: for a list whose
 * deadline counts from the same moment as the one it leaves. */
static inline void orr_tlist_requeue(orr_tlists *t, orr_timed *x, int to) {
    orr_list_remove(&x->link);
    if (to) orr_list_push_back(&t->lists[to], &x->link);
}

/* To the tail of list `to` (0: none), its clock restarted at now. */
static inline void orr_tlist_move(orr_tlists *t, orr_timed *x, int to, int64_t now_ms) {
    x->since_ms = now_ms;
    orr_tlist_requeue(t, x, to);
}

/* The oldest item of a list, or NULL. */
static inline orr_timed *orr_tlist_front(const orr_tlists *t, int id) {
    orr_link *l = orr_list_front(&t->lists[id]);
    return l ? ORR_CONTAINER_OF(l, orr_timed, link) : NULL;
}

/* The oldest item of a list if its timeout has passed at now, else NULL:
 * the caller moves or removes it before asking again. */
static inline orr_timed *orr_tlist_expired(const orr_tlists *t, int id, uint32_t timeout_ms,
                                           int64_t now_ms) {
    orr_timed *x = orr_tlist_front(t, id);
    return x && now_ms - x->since_ms >= (int64_t)timeout_ms ? x : NULL;
}

/* How many items a list holds (a walk: for rare counts, not ticks). */
static inline size_t orr_tlist_count(const orr_tlists *t, int id) {
    size_t n = 0;
    for (const orr_link *p = t->lists[id].next; p != &t->lists[id]; p = p->next)
        n++;
    return n;
}

#endif
