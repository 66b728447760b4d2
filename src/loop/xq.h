/*
 * A queue between threads: any thread pushes, one thread (the owner of the
 * queue's eventfd in its epoll set) takes. Intrusive: an item is a struct
 * with an orr_xq_link in it, found back with ORR_CONTAINER_OF; the queue
 * never allocates. Items keep the order they were pushed in.
 *
 * A producer gathers what it has for one queue in an orr_xq_chain (no lock)
 * and hands the chain over with one orr_xq_push: one lock, and one eventfd
 * write only when the queue was empty (the consumer is then asleep or about
 * to look).
 *
 * Typed receivers: every item names its type, whose run function handles it
 * on the consumer's thread (orr_xq_run), so a consumer never switches on a
 * kind and an item's fields are always its own struct's.
 *
 * Ownership: pushing hands the items to the consumer; orr_xq_take hands them
 * all back to the caller (the consumer), who runs (orr_xq_run) or drops
 * (orr_xq_drop) them; either frees them.
 */
#ifndef ORR_LOOP_XQ_H
#define ORR_LOOP_XQ_H

#include <pthread.h>
#include <stdbool.h>

typedef struct orr_xq_link orr_xq_link;

/* What a queue item is and who receives it. */
typedef struct orr_xq_type {
    /* Handles the item at l (ctx: the consumer's own state) and frees it;
     * returns the next item to run: l->next, or one further on when it
     * handled the items after l too (a run of its own type it batches). */
    orr_xq_link *(*run)(orr_xq_link *l, void *ctx);
    /* Frees the item at l without handling it (the consumer is going away). */
    void (*drop)(orr_xq_link *l);
} orr_xq_type;

struct orr_xq_link {
    orr_xq_link *next;
    const orr_xq_type *type;
};

/* Each item of a list (from orr_xq_take or a chain), in order. */
static inline void orr_xq_run(orr_xq_link *l, void *ctx) {
    while (l)
        l = l->type->run(l, ctx);
}

static inline void orr_xq_drop(orr_xq_link *l) {
    while (l) {
        orr_xq_link *next = l->next;
        l->type->drop(l);
        l = next;
    }
}

/* Items gathered by one thread, in order, before they are pushed. */
typedef struct orr_xq_chain {
    orr_xq_link *head, *tail;
} orr_xq_chain;

static inline void orr_xq_chain_add(orr_xq_chain *c, orr_xq_link *l) {
    l->next = NULL;
    if (c->tail)
        c->tail->next = l;
    else
        c->head = l;
    c->tail = l;
}

static inline bool orr_xq_chain_empty(const orr_xq_chain *c) {
    return c->head == NULL;
}

typedef struct orr_xq {
    pthread_mutex_t lock;
    orr_xq_chain items; /* guarded by lock */
    int fd;             /* eventfd: readable while items are waiting */
} orr_xq;

/* 0, or ORR_EFAIL when no eventfd could be made (errno says why). */
int orr_xq_init(orr_xq *q);
/* Closes the eventfd. Items still queued are the caller's: take them first. */
void orr_xq_destroy(orr_xq *q);
/* The fd to watch for EPOLLIN. */
static inline int orr_xq_fd(const orr_xq *q) {
    return q->fd;
}
/* Appends the chain's items (any thread) and empties the chain. */
void orr_xq_push(orr_xq *q, orr_xq_chain *c);
/* One item: orr_xq_push of a chain of one. */
void orr_xq_push_one(orr_xq *q, orr_xq_link *l);
/* Wakes the consumer without an item (it will find whatever is queued, or
 * nothing): for a flag the consumer checks when it wakes. */
void orr_xq_wake(orr_xq *q);
/* Everything queued, in order (NULL if nothing), and the wake-up consumed:
 * only on the consumer's thread. */
orr_xq_link *orr_xq_take(orr_xq *q);

#endif
