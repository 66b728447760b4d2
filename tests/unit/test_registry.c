/*
 * The in-process registry: Unique names (taken, re-registered, per pool,
 * given up only by their owner), Groups (joins that count once, leaves,
 * members listed exactly once after many swap-removes), conn_gone, name
 * lengths and bytes, O(1) join/leave on a big group, table growth and
 * shrinking, and four threads at once. Every test frees its registry, so
 * the ASan leak check covers what the registry keeps.
 */
#include "registry/registry.h"

#include <orrery/gear.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S(lit) (lit), (sizeof(lit) - 1)

static orr_registry_counts counts(orr_registry *r) {
    orr_registry_counts c;
    orr_registry_get_counts(r, &c);
    return c;
}

static void assert_counts(orr_registry *r, size_t names, size_t groups, size_t memberships) {
    orr_registry_counts c = counts(r);
    cr_assert_eq(c.names, names, "names %zu, want %zu", c.names, names);
    cr_assert_eq(c.groups, groups, "groups %zu, want %zu", c.groups, groups);
    cr_assert_eq(c.memberships, memberships, "memberships %zu, want %zu", c.memberships,
                 memberships);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts ids[0..n) and checks it is exactly {first, first+1, ...} skipping
 * the ids for which `gone` says true. */
static void assert_id_set(uint64_t *ids, size_t n, uint64_t first, size_t span,
                          bool (*gone)(uint64_t)) {
    qsort(ids, n, sizeof *ids, cmp_u64);
    size_t k = 0;
    for (uint64_t id = first; id < first + span; id++) {
        if (gone && gone(id)) continue;
        cr_assert_lt(k, n, "id %llu missing", (unsigned long long)id);
        cr_assert_eq(ids[k], id, "at %zu: %llu, want %llu", k, (unsigned long long)ids[k],
                     (unsigned long long)id);
        k++;
    }
    cr_assert_eq(k, n, "%zu ids, want %zu", n, k);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- names ------------------------------------------------------------ */

Test(registry_names, register_taken_and_same_conn_again) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0, "the owner again is fine");
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), ORR_ETAKEN);
    uint64_t who = 0;
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), 0);
    cr_assert_eq(who, 10);
    cr_assert_eq(orr_registry_lookup(r, 1, S("bob"), &who), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_lookup(r, 1, S("alic"), &who), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_lookup(r, 1, S("alicex"), &who), ORR_ENOTFOUND);
    assert_counts(r, 1, 0, 0);
    orr_registry_free(r);
}

/* A claim (cluster: not confirmed yet) takes the name for others but is not
 * found by lookup until confirmed; a refused one goes with unregister. */
Test(registry_names, claims_are_not_found_until_confirmed) {
    orr_registry *r = orr_registry_new();
    uint64_t who = 0;
    int64_t since = 0;
    cr_assert_eq(orr_registry_claim(r, 0, S("alice"), 1), 0);
    cr_assert_eq(orr_registry_lookup(r, 0, S("alice"), &who), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_register(r, 0, S("alice"), 2), ORR_ETAKEN);
    cr_assert_eq(orr_registry_claim(r, 0, S("alice"), 2), ORR_ETAKEN);
    cr_assert_eq(orr_registry_claim(r, 0, S("alice"), 1), 0, "the claimant again");
    cr_assert_eq(orr_registry_holder_since(r, 0, S("alice"), &who, &since), 0);
    cr_assert_eq(who, 1);
    assert_counts(r, 1, 0, 0);
    cr_assert_eq(orr_registry_confirm(r, 0, S("alice"), 2), ORR_ENOTFOUND,
                 "only the claimant confirms");
    cr_assert_eq(orr_registry_confirm(r, 0, S("bob"), 1), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_confirm(r, 0, S("alice"), 1), 0);
    cr_assert_eq(orr_registry_lookup(r, 0, S("alice"), &who), 0);
    cr_assert_eq(who, 1);
    /* Refused: the claim is given up and the name is free. */
    cr_assert_eq(orr_registry_claim(r, 0, S("carol"), 3), 0);
    cr_assert_eq(orr_registry_unregister(r, 0, S("carol"), 3), 0);
    cr_assert_eq(orr_registry_lookup(r, 0, S("carol"), &who), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_register(r, 0, S("carol"), 4), 0);
    /* A pending claim goes with its connection too. */
    cr_assert_eq(orr_registry_claim(r, 0, S("dave"), 5), 0);
    orr_registry_conn_gone(r, 5);
    assert_counts(r, 2, 0, 0);
    orr_registry_free(r);
}

Test(registry_names, pools_are_separate_namespaces) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_register(r, 2, S("alice"), 20), 0);
    uint64_t who = 0;
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), 0);
    cr_assert_eq(who, 10);
    cr_assert_eq(orr_registry_lookup(r, 2, S("alice"), &who), 0);
    cr_assert_eq(who, 20);
    cr_assert_eq(orr_registry_lookup(r, 3, S("alice"), &who), ORR_ENOTFOUND);
    assert_counts(r, 2, 0, 0);

    cr_assert_eq(orr_registry_unregister(r, 1, S("alice"), 20), ORR_ENOTFOUND,
                 "conn 20 holds alice in pool 2, not in pool 1");
    cr_assert_eq(orr_registry_unregister(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_lookup(r, 2, S("alice"), &who), 0);
    cr_assert_eq(who, 20);
    orr_registry_free(r);
}

Test(registry_names, unregister_only_by_owner) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_unregister(r, 1, S("alice"), 11), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_unregister(r, 1, S("nobody"), 10), ORR_ENOTFOUND);
    uint64_t who = 0;
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), 0);
    cr_assert_eq(who, 10);

    cr_assert_eq(orr_registry_unregister(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_unregister(r, 1, S("alice"), 10), ORR_ENOTFOUND, "already given up");
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), ORR_ENOTFOUND);
    assert_counts(r, 0, 0, 0);

    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), 0, "free again for anyone");
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), 0);
    cr_assert_eq(who, 11);
    orr_registry_free(r);
}

Test(registry_names, lengths) {
    orr_registry *r = orr_registry_new();
    char big[ORR_NAME_MAX + 1];
    memset(big, 'n', sizeof big);
    uint64_t who;
    orr_idvec v = {0};

    cr_assert_eq(orr_registry_register(r, 1, big, 0, 1), ORR_EINVAL);
    cr_assert_eq(orr_registry_register(r, 1, big, ORR_NAME_MAX + 1, 1), ORR_EINVAL);
    cr_assert_eq(orr_registry_register(r, 1, NULL, 3, 1), ORR_EINVAL);
    cr_assert_eq(orr_registry_unregister(r, 1, big, 0, 1), ORR_EINVAL);
    cr_assert_eq(orr_registry_lookup(r, 1, big, ORR_NAME_MAX + 1, &who), ORR_EINVAL);
    cr_assert_eq(orr_registry_join(r, 1, big, 0, 1), ORR_EINVAL);
    cr_assert_eq(orr_registry_join(r, 1, big, ORR_NAME_MAX + 1, 1), ORR_EINVAL);
    cr_assert_eq(orr_registry_leave(r, 1, big, 0, 1), ORR_EINVAL);
    cr_assert_eq(orr_registry_members(r, 1, big, ORR_NAME_MAX + 1, &v), 0);
    assert_counts(r, 0, 0, 0);

    cr_assert_eq(orr_registry_register(r, 1, big, ORR_NAME_MAX, 1), 0);
    cr_assert_eq(orr_registry_register(r, 1, big, 1, 2), 0, "a 1-byte name is its own name");
    cr_assert_eq(orr_registry_lookup(r, 1, big, ORR_NAME_MAX, &who), 0);
    cr_assert_eq(who, 1);
    cr_assert_eq(orr_registry_join(r, 1, big, ORR_NAME_MAX, 1), 0);
    cr_assert_eq(orr_registry_members(r, 1, big, ORR_NAME_MAX, &v), 1);
    cr_assert_eq(v.ids[0], 1);
    assert_counts(r, 2, 1, 1);
    orr_idvec_free(&v);
    orr_registry_free(r);
}

Test(registry_names, names_are_bytes_with_nul_inside) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("a\0b"), 1), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("a\0c"), 2), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("a"), 3), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("\0"), 4), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("\0\0"), 5), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("a\0b"), 9), ORR_ETAKEN);
    uint64_t who;
    cr_assert_eq(orr_registry_lookup(r, 1, S("a\0b"), &who), 0);
    cr_assert_eq(who, 1);
    cr_assert_eq(orr_registry_lookup(r, 1, S("a\0c"), &who), 0);
    cr_assert_eq(who, 2);
    cr_assert_eq(orr_registry_lookup(r, 1, S("\0\0"), &who), 0);
    cr_assert_eq(who, 5);
    cr_assert_eq(orr_registry_lookup(r, 1, S("a\0"), &who), ORR_ENOTFOUND);

    cr_assert_eq(orr_registry_join(r, 1, S("g\0x"), 1), 0);
    cr_assert_eq(orr_registry_join(r, 1, S("g\0y"), 2), 0);
    assert_counts(r, 5, 2, 2);
    orr_registry_free(r);
}

Test(registry_names, many_names_grow_and_shrink_the_table) {
    orr_registry *r = orr_registry_new();
    enum { N = 100000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        int len = snprintf(name, sizeof name, "user-%d", i);
        cr_assert_eq(orr_registry_register(r, (uint32_t)(i % 7), name, (size_t)len, (uint64_t)i),
                     0);
    }
    assert_counts(r, N, 0, 0);
    for (int i = 0; i < N; i++) {
        int len = snprintf(name, sizeof name, "user-%d", i);
        uint64_t who;
        cr_assert_eq(orr_registry_lookup(r, (uint32_t)(i % 7), name, (size_t)len, &who), 0);
        cr_assert_eq(who, (uint64_t)i);
        cr_assert_eq(orr_registry_lookup(r, (uint32_t)(i % 7) + 1, name, (size_t)len, &who),
                     ORR_ENOTFOUND);
    }
    /* Remove all but every 1000th, then check the survivors are still found
     * after the table has shrunk around them. */
    for (int i = 0; i < N; i++) {
        if (i % 1000 == 0) continue;
        int len = snprintf(name, sizeof name, "user-%d", i);
        cr_assert_eq(orr_registry_unregister(r, (uint32_t)(i % 7), name, (size_t)len, (uint64_t)i),
                     0);
    }
    assert_counts(r, N / 1000, 0, 0);
    for (int i = 0; i < N; i += 1000) {
        int len = snprintf(name, sizeof name, "user-%d", i);
        uint64_t who;
        cr_assert_eq(orr_registry_lookup(r, (uint32_t)(i % 7), name, (size_t)len, &who), 0);
        cr_assert_eq(who, (uint64_t)i);
    }
    orr_registry_free(r);
}

/* ---- groups ------------------------------------------------------------ */

Test(registry_groups, join_twice_is_one_membership) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_join(r, 1, S("room"), 10), 0);
    cr_assert_eq(orr_registry_join(r, 1, S("room"), 10), 0);
    assert_counts(r, 0, 1, 1);
    orr_idvec v = {0};
    cr_assert_eq(orr_registry_members(r, 1, S("room"), &v), 1);
    cr_assert_eq(v.n, 1);
    cr_assert_eq(v.ids[0], 10);

    cr_assert_eq(orr_registry_leave(r, 1, S("room"), 10), 0);
    assert_counts(r, 0, 0, 0);
    cr_assert_eq(orr_registry_leave(r, 1, S("room"), 10), ORR_ENOTFOUND, "one leave undoes both");
    orr_idvec_free(&v);
    orr_registry_free(r);
}

Test(registry_groups, leave_when_not_a_member) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_leave(r, 1, S("room"), 10), ORR_ENOTFOUND, "no such group");
    cr_assert_eq(orr_registry_join(r, 1, S("room"), 10), 0);
    cr_assert_eq(orr_registry_leave(r, 1, S("room"), 11), ORR_ENOTFOUND, "another's group");
    cr_assert_eq(orr_registry_leave(r, 2, S("room"), 10), ORR_ENOTFOUND, "another pool");
    assert_counts(r, 0, 1, 1);
    orr_registry_free(r);
}

Test(registry_groups, pools_are_separate_namespaces) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_join(r, 1, S("room"), 10), 0);
    cr_assert_eq(orr_registry_join(r, 2, S("room"), 20), 0);
    orr_idvec v = {0};
    cr_assert_eq(orr_registry_members(r, 1, S("room"), &v), 1);
    cr_assert_eq(orr_registry_members(r, 2, S("room"), &v), 1);
    cr_assert_eq(v.n, 2);
    cr_assert_eq(v.ids[0], 10);
    cr_assert_eq(v.ids[1], 20);
    cr_assert_eq(orr_registry_members(r, 3, S("room"), &v), 0);
    cr_assert_eq(v.n, 2);
    assert_counts(r, 0, 2, 2);
    orr_idvec_free(&v);
    orr_registry_free(r);
}

Test(registry_groups, ten_thousand_members_each_once_appended) {
    orr_registry *r = orr_registry_new();
    enum { N = 10000 };
    for (uint64_t id = 1; id <= N; id++) {
        cr_assert_eq(orr_registry_join(r, 1, S("big"), id), 0);
        cr_assert_eq(orr_registry_join(r, 1, S("big"), id), 0);
    }
    assert_counts(r, 0, 1, N);

    orr_idvec v = {0};
    orr_idvec_push(&v, 424242); /* members() appends after what is there */
    cr_assert_eq(orr_registry_members(r, 1, S("big"), &v), N);
    cr_assert_eq(v.n, N + 1);
    cr_assert_eq(v.ids[0], 424242);
    assert_id_set(v.ids + 1, N, 1, N, NULL);
    orr_idvec_free(&v);
    orr_registry_free(r);
}

static bool gone_every_third(uint64_t id) {
    return id % 3 == 0;
}

/* Leaves in scattered order move members around inside the array; every
 * move must keep the index its membership remembers. */
Test(registry_groups, members_stay_exact_after_swap_removes) {
    orr_registry *r = orr_registry_new();
    enum { N = 3000 };
    for (uint64_t id = 1; id <= N; id++)
        cr_assert_eq(orr_registry_join(r, 1, S("g"), id), 0);
    for (uint64_t k = 0; k < N; k++) {
        uint64_t id = 1 + (k * 1237) % N; /* a permutation: 1237 is prime to 3000 */
        if (gone_every_third(id)) cr_assert_eq(orr_registry_leave(r, 1, S("g"), id), 0);
    }
    orr_idvec v = {0};
    cr_assert_eq(orr_registry_members(r, 1, S("g"), &v), N - N / 3);
    assert_id_set(v.ids, v.n, 1, N, gone_every_third);
    for (uint64_t id = 1; id <= N; id++) {
        int want = gone_every_third(id) ? ORR_ENOTFOUND : 0;
        cr_assert_eq(orr_registry_leave(r, 1, S("g"), id), want, "id %llu", (unsigned long long)id);
    }
    assert_counts(r, 0, 0, 0);
    orr_idvec_free(&v);
    orr_registry_free(r);
}

/* Joins a group of `members` (ids 1..members), then times CYCLES rounds of:
 * a newcomer joins (twice), an old member leaves, the newcomer leaves, the
 * old member comes back. The leave of an old member moves the last slot
 * into the middle. Failures are counted, not asserted, inside the timed
 * loop: an assert costs more than the operation it checks. */
enum { CYCLES = 100000 };

static double time_cycles(orr_registry *r, const char *g, size_t glen, uint64_t members, int *bad) {
    for (uint64_t id = 1; id <= members; id++)
        *bad += orr_registry_join(r, 1, g, glen, id) != 0;
    double t0 = now_s();
    for (uint64_t k = 0; k < CYCLES; k++) {
        uint64_t id = 1000000 + k, old = 1 + (k * 7919) % members;
        *bad += orr_registry_join(r, 1, g, glen, id) != 0;
        *bad += orr_registry_join(r, 1, g, glen, id) != 0;
        *bad += orr_registry_leave(r, 1, g, glen, old) != 0;
        *bad += orr_registry_leave(r, 1, g, glen, id) != 0;
        *bad += orr_registry_join(r, 1, g, glen, old) != 0;
    }
    return now_s() - t0;
}

/* A leave is a swap-remove found through the membership index, so the same
 * cycles cost the same on a 16-member and on a 50,000-member group; a scan
 * of the member array is about 100 times slower on the big one. The bound
 * is relative to the small group timed in the same run, with the best of
 * three attempts, so a busy machine does not fail it. */
Test(registry_groups, join_leave_cycles_are_constant_time) {
    orr_registry *r = orr_registry_new();
    enum { SMALL = 16, BIG = 50000 };
    int bad = 0;
    double small = time_cycles(r, S("small"), SMALL, &bad);
    double big = 1e9;
    for (int attempt = 0; attempt < 3 && big >= 10 * small + 0.5; attempt++) {
        char g[16];
        int glen = snprintf(g, sizeof g, "big%d", attempt);
        double t = time_cycles(r, g, (size_t)glen, BIG, &bad);
        if (t < big) big = t;
    }
    cr_assert_eq(bad, 0, "%d operations failed", bad);
    cr_assert_lt(big, 10 * small + 0.5, "%d cycles: %.2f s on %d members, %.2f s on %d", CYCLES,
                 big, BIG, small, SMALL);

    /* "small" and each big group timed: every cycle undid itself. */
    orr_registry_counts c = counts(r);
    cr_assert_eq(c.names, 0);
    cr_assert_eq(c.memberships, SMALL + (c.groups - 1) * BIG);
    orr_idvec v = {0};
    cr_assert_eq(orr_registry_members(r, 1, S("big0"), &v), BIG);
    assert_id_set(v.ids, v.n, 1, BIG, NULL);
    orr_idvec_free(&v);
    orr_registry_free(r);
}

/* A group created and freed on every cycle leaves nothing behind. */
Test(registry_groups, group_created_and_freed_each_cycle) {
    orr_registry *r = orr_registry_new();
    int bad = 0;
    for (uint64_t k = 0; k < CYCLES; k++) {
        bad += orr_registry_join(r, 1, S("flicker"), k) != 0;
        bad += orr_registry_leave(r, 1, S("flicker"), k) != 0;
    }
    cr_assert_eq(bad, 0, "%d operations failed", bad);
    assert_counts(r, 0, 0, 0);
    orr_registry_free(r);
}

/* ---- connections --------------------------------------------------------- */

Test(registry_conns, conn_gone_frees_names_memberships_and_groups) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_register(r, 2, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("bob"), 11), 0);
    cr_assert_eq(orr_registry_join(r, 1, S("solo"), 10), 0);
    cr_assert_eq(orr_registry_join(r, 2, S("solo"), 10), 0);
    cr_assert_eq(orr_registry_join(r, 1, S("shared"), 10), 0);
    cr_assert_eq(orr_registry_join(r, 1, S("shared"), 11), 0);
    assert_counts(r, 3, 3, 4);

    orr_registry_conn_gone(r, 10);
    assert_counts(r, 1, 1, 1);
    uint64_t who;
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_lookup(r, 2, S("alice"), &who), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_lookup(r, 1, S("bob"), &who), 0);
    orr_idvec v = {0};
    cr_assert_eq(orr_registry_members(r, 1, S("shared"), &v), 1);
    cr_assert_eq(v.ids[0], 11);
    cr_assert_eq(orr_registry_members(r, 1, S("solo"), &v), 0);
    cr_assert_eq(orr_registry_leave(r, 1, S("shared"), 10), ORR_ENOTFOUND);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 12), 0, "the name is free again");

    orr_registry_conn_gone(r, 10); /* twice, and for strangers: harmless */
    orr_registry_conn_gone(r, 999);
    orr_registry_conn_gone(r, 11);
    orr_registry_conn_gone(r, 12);
    assert_counts(r, 0, 0, 0);
    orr_idvec_free(&v);
    orr_registry_free(r);
}

Test(registry_conns, conn_gone_with_many_holdings) {
    orr_registry *r = orr_registry_new();
    char s[32];
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(s, sizeof s, "x%d", i);
        cr_assert_eq(orr_registry_register(r, (uint32_t)i, s, (size_t)len, 7), 0);
        cr_assert_eq(orr_registry_join(r, (uint32_t)i, s, (size_t)len, 7), 0);
        cr_assert_eq(orr_registry_join(r, 0, s, (size_t)len, 7), 0);
    }
    /* ("x0", pool 0) was joined twice: 1999 memberships of 1999 groups. */
    assert_counts(r, 1000, 1999, 1999);
    orr_registry_conn_gone(r, 7);
    assert_counts(r, 0, 0, 0);
    orr_registry_free(r);
}

Test(registry_conns, one_connection_holds_at_most_the_cap) {
    orr_registry *r = orr_registry_new();
    char s[32];
    for (int i = 0; i < ORR_REGISTRY_MAX_PER_CONN; i++) {
        int len = snprintf(s, sizeof s, "g%d", i);
        if (i % 2)
            cr_assert_eq(orr_registry_join(r, 1, s, (size_t)len, 7), 0);
        else
            cr_assert_eq(orr_registry_register(r, 1, s, (size_t)len, 7), 0);
    }
    cr_assert_eq(orr_registry_join(r, 1, S("one more"), 7), ORR_ENOMEM);
    cr_assert_eq(orr_registry_register(r, 1, S("one more"), 7), ORR_ENOMEM);
    /* What it holds already is still fine to ask for again. */
    cr_assert_eq(orr_registry_join(r, 1, S("g1"), 7), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("g0"), 7), 0);
    /* Others are not affected, and leaving makes room. */
    cr_assert_eq(orr_registry_join(r, 1, S("one more"), 8), 0);
    cr_assert_eq(orr_registry_leave(r, 1, S("g1"), 7), 0);
    cr_assert_eq(orr_registry_join(r, 1, S("one more"), 7), 0);
    orr_registry_conn_gone(r, 7);
    assert_counts(r, 0, 1, 1);
    orr_registry_free(r);
}

Test(registry_conns, free_with_everything_still_registered) {
    orr_registry *r = orr_registry_new();
    char s[32];
    for (uint64_t id = 1; id <= 500; id++) {
        int len = snprintf(s, sizeof s, "n%llu", (unsigned long long)id);
        cr_assert_eq(orr_registry_register(r, 1, s, (size_t)len, id), 0);
        cr_assert_eq(orr_registry_join(r, 1, S("all"), id), 0);
        cr_assert_eq(orr_registry_join(r, (uint32_t)(id % 5), s, (size_t)len, id), 0);
    }
    /* 500 names; "all" and one group per id; two memberships per id. */
    assert_counts(r, 500, 501, 1000);
    uint64_t holder = 0;
    cr_assert_eq(orr_registry_lookup(r, 1, S("n250"), &holder), 0);
    cr_assert_eq(holder, 250);
    orr_registry_free(
        r); /* with all of it still there: the ASan leak check says whether all went */
    orr_registry_free(NULL);
}

Test(registry_idvec, push_grows_by_doubling_and_free_resets) {
    orr_idvec v = {0};
    size_t grew = 0, last_cap = 0;
    for (uint64_t i = 0; i < 5000; i++) {
        orr_idvec_push(&v, i * 3);
        if (v.cap != last_cap) {
            if (last_cap) cr_assert_eq(v.cap, 2 * last_cap);
            last_cap = v.cap;
            grew++;
        }
    }
    cr_assert_eq(v.n, 5000);
    cr_assert_lt(grew, 14);
    for (uint64_t i = 0; i < 5000; i++)
        cr_assert_eq(v.ids[i], i * 3);
    orr_idvec_free(&v);
    cr_assert_null(v.ids);
    cr_assert_eq(v.n, 0);
    cr_assert_eq(v.cap, 0);
    orr_idvec_free(&v); /* twice is harmless */
}

/* ---- threads ------------------------------------------------------------- */

enum { THREADS = 4, PER_THREAD = 10000 };

typedef struct worker_arg {
    orr_registry *r;
    uint32_t t;
    int failures; /* asserted on the main thread: Criterion asserts belong there */
    char first_failure[128];
} worker_arg;

static void fail(worker_arg *a, const char *what, uint64_t i) {
    if (a->failures++ == 0)
        snprintf(a->first_failure, sizeof a->first_failure, "thread %u, i %llu: %s", a->t,
                 (unsigned long long)i, what);
}

static uint64_t thread_conn(uint32_t t, uint64_t i) {
    return ((uint64_t)(t + 1) << 32) | i;
}

/* Each thread: its own conns join the shared group "all" and its own group,
 * take a name; every other one leaves its own group again, every third
 * gives its name up. Every 500 it lists "all", which must already hold at
 * least its own joins. */
static void *worker_main(void *p) {
    worker_arg *a = p;
    orr_idvec v = {0};
    char own[16], name[32];
    int own_len = snprintf(own, sizeof own, "g%u", a->t);
    for (uint64_t i = 0; i < PER_THREAD; i++) {
        uint64_t c = thread_conn(a->t, i);
        int name_len = snprintf(name, sizeof name, "t%u-%llu", a->t, (unsigned long long)i);
        if (orr_registry_join(a->r, 1, S("all"), c)) fail(a, "join all", i);
        if (orr_registry_join(a->r, 1, own, (size_t)own_len, c)) fail(a, "join own", i);
        if (orr_registry_register(a->r, 1, name, (size_t)name_len, c)) fail(a, "register", i);
        if (orr_registry_register(a->r, 1, S("contested"), c) == 0 &&
            orr_registry_unregister(a->r, 1, S("contested"), c) != 0)
            fail(a, "unregister contested", i);
        if (i % 2 == 0 && orr_registry_leave(a->r, 1, own, (size_t)own_len, c))
            fail(a, "leave own", i);
        if (i % 3 == 0 && orr_registry_unregister(a->r, 1, name, (size_t)name_len, c))
            fail(a, "unregister", i);
        if (i % 500 == 0) {
            v.n = 0;
            if (orr_registry_members(a->r, 1, S("all"), &v) < i + 1) fail(a, "members all", i);
        }
    }
    orr_idvec_free(&v);
    return NULL;
}

typedef struct reader_arg {
    orr_registry *r;
    atomic_bool stop;
    int shrank;
    size_t calls;
} reader_arg;

/* Only joins happen to "all" while the workers run: it never shrinks. */
static void *reader_main(void *p) {
    reader_arg *a = p;
    orr_idvec v = {0};
    size_t last = 0;
    while (!atomic_load(&a->stop)) {
        v.n = 0;
        size_t n = orr_registry_members(a->r, 1, S("all"), &v);
        if (n < last || n != v.n) a->shrank++;
        last = n;
        orr_registry_counts c;
        orr_registry_get_counts(a->r, &c);
        a->calls++;
    }
    orr_idvec_free(&v);
    return NULL;
}

Test(registry_threads, four_threads_then_counts_agree) {
    orr_registry *r = orr_registry_new();
    pthread_t th[THREADS], rd;
    worker_arg args[THREADS];
    reader_arg ra = {.r = r};
    atomic_init(&ra.stop, false);
    cr_assert_eq(pthread_create(&rd, NULL, reader_main, &ra), 0);
    for (uint32_t t = 0; t < THREADS; t++) {
        args[t] = (worker_arg){.r = r, .t = t};
        cr_assert_eq(pthread_create(&th[t], NULL, worker_main, &args[t]), 0);
    }
    for (uint32_t t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    atomic_store(&ra.stop, true);
    pthread_join(rd, NULL);

    for (uint32_t t = 0; t < THREADS; t++)
        cr_assert_eq(args[t].failures, 0, "%d failures, first: %s", args[t].failures,
                     args[t].first_failure);
    cr_assert_eq(ra.shrank, 0, "\"all\" shrank while only joins happened");

    /* Per thread: names minus every third; "all" + own group (odd i stay). */
    size_t names_each = PER_THREAD - (PER_THREAD + 2) / 3;
    assert_counts(r, THREADS * names_each, 1 + THREADS, THREADS * (PER_THREAD + PER_THREAD / 2));

    orr_idvec v = {0};
    cr_assert_eq(orr_registry_members(r, 1, S("all"), &v), THREADS * PER_THREAD);
    qsort(v.ids, v.n, sizeof *v.ids, cmp_u64);
    for (size_t k = 0; k < v.n; k++) {
        uint64_t want = thread_conn((uint32_t)(k / PER_THREAD), k % PER_THREAD);
        cr_assert_eq(v.ids[k], want, "at %zu", k);
    }
    for (uint32_t t = 0; t < THREADS; t++)
        for (uint64_t i = 0; i < PER_THREAD; i++)
            orr_registry_conn_gone(r, thread_conn(t, i));
    assert_counts(r, 0, 0, 0);
    orr_idvec_free(&v);
    orr_registry_free(r);
}
