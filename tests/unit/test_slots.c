/*
 * src/loop/slots.c: ids that find their object, never a stale or foreign
 * one, slot reuse with a new generation, and the bound on slots.
 */
#include "loop/slots.h"

#include <criterion/criterion.h>
#include <stdint.h>

Test(slots, an_id_finds_its_item) {
    orr_slots s;
    orr_slots_init(&s, 7);
    int a, b;
    uint64_t ia = orr_slots_add(&s, &a), ib = orr_slots_add(&s, &b);
    cr_assert_neq(ia, 0);
    cr_assert_neq(ib, 0);
    cr_expect_neq(ia, ib);
    cr_expect_eq(orr_id_owner(ia), 7);
    cr_expect_eq(orr_slots_get(&s, ia), &a);
    cr_expect_eq(orr_slots_get(&s, ib), &b);
    cr_expect_eq(s.live, 2);
    orr_slots_free(&s);
}

Test(slots, a_stale_id_finds_nothing_after_reuse) {
    orr_slots s;
    orr_slots_init(&s, 1);
    int a, b;
    uint64_t ia = orr_slots_add(&s, &a);
    orr_slots_remove(&s, ia);
    cr_expect_null(orr_slots_get(&s, ia));
    cr_expect_eq(s.live, 0);
    uint64_t ib = orr_slots_add(&s, &b);
    cr_expect_eq((ib >> 32) & 0xffffff, (ia >> 32) & 0xffffff, "the slot is reused");
    cr_expect_neq(ib, ia, "with a new generation");
    cr_expect_null(orr_slots_get(&s, ia));
    cr_expect_eq(orr_slots_get(&s, ib), &b);
    orr_slots_remove(&s, ia); /* stale: nothing happens */
    cr_expect_eq(orr_slots_get(&s, ib), &b);
    cr_expect_eq(s.live, 1);
    orr_slots_free(&s);
}

Test(slots, ids_of_another_owner_or_out_of_range) {
    orr_slots s;
    orr_slots_init(&s, 2);
    int a;
    uint64_t ia = orr_slots_add(&s, &a);
    uint64_t other = (ia & ~(0xffull << 56)) | (3ull << 56);
    cr_expect_null(orr_slots_get(&s, other));
    cr_expect_null(orr_slots_get(&s, ia + (1ull << 32)), "a slot never used");
    cr_expect_null(orr_slots_get(&s, 0));
    orr_slots_free(&s);
}

Test(slots, many_and_the_generation_wraps_past_zero) {
    orr_slots s;
    orr_slots_init(&s, 0);
    static int items[5000];
    uint64_t ids[5000];
    for (int i = 0; i < 5000; i++)
        ids[i] = orr_slots_add(&s, &items[i]);
    for (int i = 0; i < 5000; i++)
        cr_assert_eq(orr_slots_get(&s, ids[i]), &items[i]);
    for (int i = 0; i < 5000; i += 2)
        orr_slots_remove(&s, ids[i]);
    cr_expect_eq(s.live, 2500);
    /* A slot whose generation is about to wrap: its next id is not 0 and not
     * the one before. */
    uint32_t slot = (uint32_t)(ids[1] >> 32) & 0xffffff;
    orr_slots_remove(&s, ids[1]);
    s.gen[slot] = UINT32_MAX;
    s.free_list[s.n_free - 1] = slot;
    uint64_t id = orr_slots_add(&s, &items[1]);
    cr_expect_eq((uint32_t)id, 1, "generation 0 is skipped");
    cr_expect_eq(orr_slots_get(&s, id), &items[1]);
    orr_slots_free(&s);
}

Test(slots, full) {
    orr_slots s;
    orr_slots_init(&s, 0);
    int a;
    /* As if every slot had been handed out already. */
    s.n = ORR_SLOTS_MAX;
    cr_expect_eq(orr_slots_add(&s, &a), 0);
    s.n = 0;
    orr_slots_free(&s);
}
