/*
 * src/loop/tlist.h: timeout lists in deadline order, moves that restart the
 * clock, requeues that keep it, and heads that expire in order.
 */
#include "loop/tlist.h"

#include <criterion/criterion.h>

typedef struct obj {
    int id;
    orr_timed t;
} obj;

static int front_id(const orr_tlists *t, int list) {
    orr_timed *x = orr_tlist_front(t, list);
    return x ? ORR_CONTAINER_OF(x, obj, t)->id : -1;
}

Test(tlist, heads_expire_in_deadline_order) {
    orr_tlists t;
    orr_tlists_init(&t);
    obj o[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
    for (int i = 0; i < 3; i++)
        orr_tlist_move(&t, &o[i].t, 1, 100 + 10 * i);
    cr_expect_null(orr_tlist_expired(&t, 1, 50, 149), "none due yet");
    orr_timed *x = orr_tlist_expired(&t, 1, 50, 160);
    cr_assert_not_null(x);
    cr_expect_eq(ORR_CONTAINER_OF(x, obj, t)->id, 0);
    orr_tlist_move(&t, x, 0, 160); /* out of every list */
    x = orr_tlist_expired(&t, 1, 50, 160);
    cr_assert_not_null(x);
    cr_expect_eq(ORR_CONTAINER_OF(x, obj, t)->id, 1);
    orr_tlist_move(&t, x, 0, 160);
    cr_expect_null(orr_tlist_expired(&t, 1, 50, 160), "2 is due at 170");
    cr_expect_eq(orr_tlist_count(&t, 1), 1);
}

Test(tlist, a_move_restarts_the_clock_a_requeue_keeps_it) {
    orr_tlists t;
    orr_tlists_init(&t);
    obj a = {.id = 1}, b = {.id = 2};
    orr_tlist_move(&t, &a.t, 1, 0);
    orr_tlist_move(&t, &b.t, 1, 5);
    orr_tlist_move(&t, &a.t, 1, 10); /* bytes arrived: to the tail, clock from 10 */
    cr_expect_eq(front_id(&t, 1), 2);
    cr_expect_eq(a.t.since_ms, 10);
    orr_tlist_requeue(&t, &b.t, 2); /* pinged: another list, the same clock */
    cr_expect_eq(b.t.since_ms, 5);
    cr_expect_eq(front_id(&t, 1), 1);
    cr_expect_eq(front_id(&t, 2), 2);
    cr_expect_eq(orr_tlist_count(&t, 1), 1);
    cr_expect_eq(orr_tlist_count(&t, 2), 1);
    orr_tlist_requeue(&t, &a.t, 0);
    orr_tlist_requeue(&t, &a.t, 0); /* twice out: harmless */
    cr_expect_eq(orr_tlist_count(&t, 1), 0);
    cr_expect_eq(front_id(&t, 1), -1);
}
