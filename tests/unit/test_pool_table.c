/*
 * The pool table (name -> idx): add, find, remove with backward shift, idx
 * reuse, the bound; and long random runs against a plain model, in a table
 * small enough that runs wrap around the end and collide all the time,
 * checking after every step that every name is found and that no run has a
 * hole between a name's home slot and the name.
 */
#include "server/pool_table.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) (lit), (sizeof(lit) - 1)

/* Every slot between an entry's home and the entry is taken; every idx in
 * use is in exactly one slot; free indexes are unnamed. */
static void check_invariants(const pool_table *t) {
    uint32_t seen = 0;
    for (uint32_t i = 0; i <= t->mask; i++) {
        uint32_t v = t->slots[i];
        if (!v) continue;
        seen++;
        cr_assert_lt(v - 1, t->hw, "slot %u: idx %u above the high-water mark", i, v - 1);
        cr_assert_not_null(t->names[v - 1], "slot %u: idx %u has no name", i, v - 1);
        for (uint32_t j = t->hashes[v - 1] & t->mask; j != i; j = (j + 1) & t->mask)
            cr_assert_neq(t->slots[j], 0, "idx %u at slot %u, empty slot %u before it in its run",
                          v - 1, i, j);
    }
    cr_assert_eq(seen, t->live);
    for (uint32_t k = 0; k < t->n_free; k++)
        cr_assert_null(t->names[t->free_idx[k]]);
    cr_assert_eq(t->live + t->n_free, t->hw);
}

Test(pool_table, add_find_remove_reuse) {
    pool_table t;
    pool_table_init(&t, 4);
    cr_assert_eq(pool_table_find(&t, S("tenant:a")), -1);
    cr_assert_eq(pool_table_add(&t, S("tenant:a")), 0);
    cr_assert_eq(pool_table_add(&t, S("tenant:b")), 1);
    cr_assert_eq(pool_table_add(&t, S("gear:echo")), 2);
    cr_assert_eq(pool_table_find(&t, S("tenant:b")), 1);
    cr_assert_eq(pool_table_find(&t, S("tenant:")), -1, "a prefix is another name");
    cr_assert_eq(pool_table_find(&t, S("tenant:bb")), -1);
    pool_table_remove(&t, 1);
    cr_assert_eq(pool_table_find(&t, S("tenant:b")), -1);
    cr_assert_eq(pool_table_find(&t, S("tenant:a")), 0);
    cr_assert_eq(pool_table_find(&t, S("gear:echo")), 2);
    cr_assert_eq(pool_table_add(&t, S("tenant:c")), 1, "the idx given back is reused");
    cr_assert_eq(t.hw, 3);
    check_invariants(&t);
    pool_table_free(&t);
}

Test(pool_table, bounded_by_max_live_not_by_names_ever_seen) {
    pool_table t;
    pool_table_init(&t, 3);
    char names[3][32];
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "tenant:%d", i);
        cr_assert_eq(pool_table_add(&t, names[i], strlen(names[i])), i);
    }
    cr_assert_eq(pool_table_add(&t, S("tenant:x")), -1, "full");
    /* 10,000 names one after another through one free idx. */
    static char churn[10000][24];
    for (int i = 0; i < 10000; i++) {
        pool_table_remove(&t, 1);
        snprintf(churn[i], sizeof churn[i], "tenant:c%d", i);
        cr_assert_eq(pool_table_add(&t, churn[i], strlen(churn[i])), 1);
        cr_assert_eq(pool_table_add(&t, S("tenant:x")), -1);
        memcpy(names[1], churn[i], sizeof churn[i]);
    }
    cr_assert_eq(t.hw, 3);
    cr_assert_eq(pool_table_find(&t, S("tenant:0")), 0);
    cr_assert_eq(pool_table_find(&t, churn[9999], strlen(churn[9999])), 1);
    cr_assert_eq(pool_table_find(&t, churn[9998], strlen(churn[9998])), -1);
    check_invariants(&t);
    pool_table_free(&t);
}

/* A model: which of N candidate names is in, and at which idx. */
enum { N_NAMES = 200 };

static void random_run(uint32_t max, unsigned seed, int steps) {
    pool_table t;
    pool_table_init(&t, max);
    static char names[N_NAMES][24];
    int64_t at[N_NAMES];
    for (int i = 0; i < N_NAMES; i++) {
        snprintf(names[i], sizeof names[i], "tenant:n%d", i);
        at[i] = -1;
    }
    uint32_t live = 0;
    srand(seed);
    for (int s = 0; s < steps; s++) {
        int i = rand() % N_NAMES;
        if (at[i] < 0) {
            int64_t idx = pool_table_add(&t, names[i], strlen(names[i]));
            if (live == max) {
                cr_assert_eq(idx, -1, "step %d: added past max", s);
            } else {
                cr_assert_geq(idx, 0, "step %d: not added with %u of %u in", s, live, max);
                cr_assert_lt(idx, max);
                for (int k = 0; k < N_NAMES; k++)
                    cr_assert(at[k] != idx, "idx %lld given twice", (long long)idx);
                at[i] = idx;
                live++;
            }
        } else {
            pool_table_remove(&t, (uint32_t)at[i]);
            at[i] = -1;
            live--;
        }
        cr_assert_eq(t.live, live);
        for (int k = 0; k < N_NAMES; k++)
            cr_assert_eq(pool_table_find(&t, names[k], strlen(names[k])), at[k], "step %d: %s", s,
                         names[k]);
        check_invariants(&t);
    }
    pool_table_free(&t);
}

Test(pool_table, random_against_a_model_small_table) {
    /* 8 of 200 names in 16 slots: runs wrap and collide constantly. */
    for (unsigned seed = 1; seed <= 20; seed++)
        random_run(8, seed, 2000);
}

Test(pool_table, random_against_a_model_half_full) {
    for (unsigned seed = 1; seed <= 5; seed++)
        random_run(64, seed, 5000);
}
