/*
 * src/loop/xq.c: order, chains, the eventfd's wake-ups, and producers on
 * several threads against one consumer (run under TSan by make test-tsan's
 * build of the unit tests when they are selected; ASan checks the rest).
 */
#include "common/err.h"
#include "loop/xq.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct item {
    orr_xq_link link;
    int producer, seq;
} item;

static item *new_item(int producer, int seq) {
    item *it = calloc(1, sizeof *it);
    it->producer = producer;
    it->seq = seq;
    return it;
}

static bool readable(const orr_xq *q) {
    struct pollfd p = {.fd = orr_xq_fd(q), .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Takes everything, checks the sequence numbers count up from `from`, frees. */
static int take_in_order(orr_xq *q, int from) {
    int n = 0;
    for (orr_xq_link *l = orr_xq_take(q), *next; l; l = next) {
        next = l->next;
        item *it = ORR_CONTAINER_OF(l, item, link);
        cr_assert_eq(it->seq, from + n, "item %d where %d was due", it->seq, from + n);
        n++;
        free(it);
    }
    return n;
}

Test(xq, items_keep_their_order_and_the_fd_says_when_some_wait) {
    orr_xq q;
    cr_assert_eq(orr_xq_init(&q), 0);
    cr_assert_not(readable(&q));
    cr_assert_null(orr_xq_take(&q));
    orr_xq_push_one(&q, &new_item(0, 0)->link);
    cr_assert(readable(&q));
    orr_xq_chain c = {NULL, NULL};
    cr_assert(orr_xq_chain_empty(&c));
    for (int i = 1; i < 5; i++)
        orr_xq_chain_add(&c, &new_item(0, i)->link);
    orr_xq_push(&q, &c);
    cr_assert(orr_xq_chain_empty(&c), "a pushed chain is emptied");
    orr_xq_push(&q, &c); /* an empty chain: nothing */
    cr_assert_eq(take_in_order(&q, 0), 5);
    cr_assert_not(readable(&q), "taking consumes the wake-up");
    cr_assert_null(orr_xq_take(&q));
    orr_xq_wake(&q);
    cr_assert(readable(&q), "a wake-up without an item");
    cr_assert_null(orr_xq_take(&q));
    cr_assert_not(readable(&q));
    orr_xq_destroy(&q);
    orr_xq_destroy(&q); /* twice: harmless */
}

enum { PRODUCERS = 4, PER_PRODUCER = 20000, CHAIN = 7 };

typedef struct producer_arg {
    orr_xq *q;
    int id;
} producer_arg;

static void *produce(void *arg) {
    producer_arg *a = arg;
    orr_xq_chain c = {NULL, NULL};
    for (int i = 0; i < PER_PRODUCER; i++) {
        orr_xq_chain_add(&c, &new_item(a->id, i)->link);
        if (i % CHAIN == 0) orr_xq_push(a->q, &c); /* chains of 1 and of CHAIN */
    }
    orr_xq_push(a->q, &c);
    return NULL;
}

Test(xq, producers_on_threads_lose_nothing_and_keep_each_ones_order) {
    orr_xq q;
    cr_assert_eq(orr_xq_init(&q), 0);
    pthread_t t[PRODUCERS];
    producer_arg args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (producer_arg){.q = &q, .id = i};
        pthread_create(&t[i], NULL, produce, &args[i]);
    }
    int next[PRODUCERS] = {0}, total = 0;
    while (total < PRODUCERS * PER_PRODUCER) {
        struct pollfd p = {.fd = orr_xq_fd(&q), .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 5000), 1, "woken while items are due (%d taken)", total);
        for (orr_xq_link *l = orr_xq_take(&q), *nx; l; l = nx) {
            nx = l->next;
            item *it = ORR_CONTAINER_OF(l, item, link);
            cr_assert_eq(it->seq, next[it->producer], "producer %d: %d after %d", it->producer,
                         it->seq, next[it->producer] - 1);
            next[it->producer]++;
            total++;
            free(it);
        }
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    cr_assert_null(orr_xq_take(&q));
    orr_xq_destroy(&q);
}

/* ---- typed receivers ---- */

typedef struct log_ctx {
    int seen[16];
    int n, batches;
} log_ctx;

typedef struct num {
    orr_xq_link link;
    int v;
} num;

static void drop_num(orr_xq_link *l) {
    free(ORR_CONTAINER_OF(l, num, link));
}

/* One at a time. */
static orr_xq_link *run_one(orr_xq_link *l, void *ctx) {
    log_ctx *g = ctx;
    orr_xq_link *next = l->next;
    g->seen[g->n++] = ORR_CONTAINER_OF(l, num, link)->v;
    drop_num(l);
    return next;
}

/* Takes the run of items of its own type that follow, as one batch. */
static const orr_xq_type batch_type;
static orr_xq_link *run_batch(orr_xq_link *l, void *ctx) {
    log_ctx *g = ctx;
    g->batches++;
    while (l && l->type == &batch_type) {
        orr_xq_link *next = l->next;
        g->seen[g->n++] = ORR_CONTAINER_OF(l, num, link)->v;
        drop_num(l);
        l = next;
    }
    return l;
}

static const orr_xq_type one_type = {run_one, drop_num};
static const orr_xq_type batch_type = {run_batch, drop_num};

static void add(orr_xq_chain *c, const orr_xq_type *t, int v) {
    num *x = calloc(1, sizeof *x);
    x->link.type = t;
    x->v = v;
    orr_xq_chain_add(c, &x->link);
}

Test(xq, each_item_to_its_own_receiver_in_order) {
    orr_xq q;
    cr_assert_eq(orr_xq_init(&q), 0);
    orr_xq_chain c = {0};
    add(&c, &one_type, 1);
    add(&c, &batch_type, 2);
    add(&c, &batch_type, 3);
    add(&c, &batch_type, 4);
    add(&c, &one_type, 5);
    add(&c, &batch_type, 6);
    orr_xq_push(&q, &c);
    log_ctx g = {0};
    orr_xq_run(orr_xq_take(&q), &g);
    cr_assert_eq(g.n, 6);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(g.seen[i], i + 1);
    cr_expect_eq(g.batches, 2, "2..4 in one batch, 6 in another");
    orr_xq_destroy(&q);
}

Test(xq, drop_frees_without_running) {
    orr_xq q;
    cr_assert_eq(orr_xq_init(&q), 0);
    orr_xq_chain c = {0};
    for (int i = 0; i < 5; i++)
        add(&c, i % 2 ? &one_type : &batch_type, i);
    orr_xq_push(&q, &c);
    orr_xq_drop(orr_xq_take(&q)); /* ASan reports a leak or a double free */
    cr_expect_null(orr_xq_take(&q));
    orr_xq_destroy(&q);
}
