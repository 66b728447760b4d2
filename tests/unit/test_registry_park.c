/*
 * Parking in the registry table (registry.h "parking"): a name whose
 * connection ends keeps the messages sent to it, in order, up to its caps,
 * until its deadline; whoever registers it first gets them before the name
 * is found by lookups again; messages that were on their way to the old
 * holder go in front. Every test frees its registry, so the ASan leak check
 * covers kept messages and parked names.
 */
#include "registry/registry.h"

#include <orrery/gear.h>

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) (lit), (sizeof(lit) - 1)

static const orr_park_limits LIM = {.park_ms = 1000, .max_messages = 256, .max_bytes = 262144};

static orr_registry *parked_alice(uint64_t conn, int64_t now) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), conn), 0);
    orr_registry_conn_gone_park(r, conn, &LIM, now);
    return r;
}

static void send_str(orr_registry *r, const char *s) {
    cr_assert(orr_registry_park_send(r, 1, S("alice"), s, strlen(s)), "%s not kept", s);
}

/* Takes everything conn restores and checks it against want[]. */
static void expect_restored(orr_registry *r, uint64_t conn, const char *const *want, size_t n) {
    size_t got = 0;
    orr_park_msg *ms;
    while (orr_registry_restore_take(r, 1, S("alice"), conn, &ms) > 0) {
        for (orr_park_msg *m = ms; m; m = m->next, got++) {
            cr_assert_lt(got, n, "more than %zu messages", n);
            cr_assert_eq(m->len, strlen(want[got]));
            cr_assert(memcmp(m->bytes, want[got], m->len) == 0, "message %zu: %.*s, want %s", got,
                      (int)m->len, m->bytes, want[got]);
        }
        orr_registry_msgs_free(ms);
    }
    cr_assert_eq(got, n, "%zu messages, want %zu", got, n);
}

static orr_park_stats stats(orr_registry *r) {
    orr_park_stats st;
    orr_registry_park_stats(r, 1, &st);
    return st;
}

Test(registry_park, kept_in_order_then_held) {
    orr_registry *r = parked_alice(10, 0);
    uint64_t who;
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), ORR_ENOTFOUND);
    cr_assert_eq(stats(r).names, 1);
    send_str(r, "1");
    send_str(r, "2");
    send_str(r, "3");
    /* Taken at once by anyone (never ETAKEN), restoring until emptied. */
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), ORR_REGISTRY_RESTORING);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 12), ORR_ETAKEN);
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), ORR_ENOTFOUND);
    send_str(r, "4"); /* while restoring: still kept, after the others */
    expect_restored(r, 11, (const char *[]){"1", "2", "3", "4"}, 4);
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), 0);
    cr_assert_eq(who, 11);
    cr_assert(!orr_registry_park_send(r, 1, S("alice"), "5", 1));
    orr_park_stats st = stats(r);
    cr_assert_eq(st.names, 0);
    cr_assert_eq(st.delivered, 4);
    orr_registry_free(r);
}

Test(registry_park, nothing_kept_is_held_at_once) {
    orr_registry *r = parked_alice(10, 0);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), 0);
    uint64_t who;
    cr_assert_eq(orr_registry_lookup(r, 1, S("alice"), &who), 0);
    cr_assert_eq(who, 11);
    orr_registry_counts c;
    orr_registry_get_counts(r, &c);
    cr_assert_eq(c.names, 1);
    cr_assert_eq(c.parked, 0);
    orr_registry_free(r);
}

Test(registry_park, off_means_gone) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    orr_park_limits off = LIM;
    off.park_ms = 0;
    orr_registry_conn_gone_park(r, 10, &off, 0);
    cr_assert(!orr_registry_park_send(r, 1, S("alice"), "x", 1));
    orr_registry_counts c;
    orr_registry_get_counts(r, &c);
    cr_assert_eq(c.names + c.parked, 0);
    orr_registry_free(r);
}

Test(registry_park, message_cap_drops_oldest) {
    orr_registry *r = orr_registry_new();
    orr_park_limits lim = LIM;
    lim.max_messages = 3;
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    orr_registry_conn_gone_park(r, 10, &lim, 0);
    for (const char *s = "12345"; *s; s++)
        send_str(r, (char[]){*s, 0});
    cr_assert_eq(stats(r).dropped, 2);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), ORR_REGISTRY_RESTORING);
    expect_restored(r, 11, (const char *[]){"3", "4", "5"}, 3);
    orr_registry_free(r);
}

Test(registry_park, byte_cap_drops_oldest) {
    orr_registry *r = orr_registry_new();
    orr_park_limits lim = LIM;
    lim.max_bytes = 10;
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    orr_registry_conn_gone_park(r, 10, &lim, 0);
    send_str(r, "aaaa");
    send_str(r, "bbbb");
    send_str(r, "cccc");         /* 12 bytes: aaaa goes */
    send_str(r, "dddddddddddd"); /* alone over the cap: not kept, still parked */
    cr_assert_eq(stats(r).dropped, 2);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), ORR_REGISTRY_RESTORING);
    expect_restored(r, 11, (const char *[]){"bbbb", "cccc"}, 2);
    orr_registry_free(r);
}

Test(registry_park, expiry_counts_and_frees) {
    orr_registry *r = parked_alice(10, 100);
    send_str(r, "1");
    send_str(r, "2");
    cr_assert_eq(orr_registry_park_expire(r, 1099), 0);
    cr_assert_eq(orr_registry_park_expire(r, 1100), 1);
    orr_park_stats st = stats(r);
    cr_assert_eq(st.expired, 2);
    cr_assert_eq(st.names, 0);
    cr_assert(!orr_registry_park_send(r, 1, S("alice"), "3", 1));
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), 0); /* a fresh name */
    orr_registry_free(r);
}

/* Expiry follows deadlines, not the order names parked in: park_ms may
 * change (SIGHUP) between two parkings. */
Test(registry_park, expiry_by_deadline) {
    orr_registry *r = orr_registry_new();
    orr_park_limits long_lim = LIM, short_lim = LIM;
    long_lim.park_ms = 5000;
    short_lim.park_ms = 100;
    cr_assert_eq(orr_registry_register(r, 1, S("slow"), 10), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("fast"), 11), 0);
    orr_registry_conn_gone_park(r, 10, &long_lim, 0);
    orr_registry_conn_gone_park(r, 11, &short_lim, 10);
    cr_assert_eq(orr_registry_park_expire(r, 200), 1);
    cr_assert(orr_registry_park_send(r, 1, S("slow"), "x", 1));
    cr_assert(!orr_registry_park_send(r, 1, S("fast"), "x", 1));
    cr_assert_eq(orr_registry_park_expire(r, 5000), 1);
    orr_registry_free(r);
}

/* A drain parks names while the connection is still open; messages that
 * were on their way to it (orphans) were sent before any sent to the
 * parked name, so they go first, in their own order. */
Test(registry_park, orphans_go_first) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_park_names(r, 10, &LIM, 0), 1);
    send_str(r, "late1");
    cr_assert(orr_registry_park_orphan(r, 10, &LIM, 0, S("early1")));
    send_str(r, "late2");
    cr_assert(orr_registry_park_orphan(r, 10, NULL, 0, S("early2")));
    orr_registry_conn_gone_park(r, 10, &LIM, 0); /* the 1001 done: nothing more to park */
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), ORR_REGISTRY_RESTORING);
    expect_restored(r, 11, (const char *[]){"early1", "early2", "late1", "late2"}, 4);
    orr_registry_free(r);
}

/* A connection still holding its name when an orphan finds it closing
 * (the client closed first): the orphan parks its names. */
Test(registry_park, orphan_parks_a_closing_holder) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert(orr_registry_park_orphan(r, 10, &LIM, 0, S("m1")));
    send_str(r, "m2");
    cr_assert(!orr_registry_park_orphan(r, 99, NULL, 0, S("nobody")));
    orr_registry_conn_gone_park(r, 10, &LIM, 0);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), ORR_REGISTRY_RESTORING);
    expect_restored(r, 11, (const char *[]){"m1", "m2"}, 2);
    orr_registry_free(r);
}

/* The new holder ends before it took the kept messages: parked again,
 * nothing lost. */
Test(registry_park, restoring_holder_ends) {
    orr_registry *r = parked_alice(10, 0);
    send_str(r, "1");
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 11), ORR_REGISTRY_RESTORING);
    orr_registry_conn_gone_park(r, 11, &LIM, 50);
    cr_assert_eq(stats(r).names, 1);
    send_str(r, "2");
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 12), ORR_REGISTRY_RESTORING);
    expect_restored(r, 12, (const char *[]){"1", "2"}, 2);
    orr_registry_free(r);
}

Test(registry_park, budget_counts_and_refuses) {
    atomic_size_t used, max;
    atomic_init(&used, 0);
    atomic_init(&max, 8 * 1024);
    orr_registry *r = orr_registry_new();
    orr_registry_park_budget(r, &used, &max);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    orr_registry_conn_gone_park(r, 10, &LIM, 0);
    char big[1000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 10; i++)
        cr_assert(orr_registry_park_send(r, 1, S("alice"), big, sizeof big));
    /* Seven eighths of 8 KiB hold 7 of them; the rest were refused. */
    cr_assert_eq(stats(r).dropped, 3);
    cr_assert_gt(atomic_load(&used), 7000);
    cr_assert_eq(orr_registry_park_expire(r, 1000), 1);
    cr_assert_eq(atomic_load(&used), 0);
    orr_registry_free(r);
}

/* 10,000 parked names expire in one pass, and the table gives back what
 * they held. */
Test(registry_park, ten_thousand) {
    orr_registry *r = orr_registry_new();
    char name[32];
    for (uint64_t i = 0; i < 10000; i++) {
        int n = snprintf(name, sizeof name, "user%llu", (unsigned long long)i);
        cr_assert_eq(orr_registry_register(r, 1, name, (size_t)n, 100 + i), 0);
        orr_registry_conn_gone_park(r, 100 + i, &LIM, (int64_t)i);
        cr_assert(orr_registry_park_send(r, 1, name, (size_t)n, "hello", 5));
    }
    orr_registry_counts c;
    orr_registry_get_counts(r, &c);
    cr_assert_eq(c.parked, 10000);
    cr_assert_eq(c.names, 0);
    cr_assert_eq(orr_registry_park_expire(r, 1000 + 4999), 5000);
    cr_assert_eq(orr_registry_park_expire(r, 1000 + 10000), 5000);
    orr_registry_get_counts(r, &c);
    cr_assert_eq(c.parked + c.names, 0);
    cr_assert_eq(stats(r).expired, 10000);
    orr_registry_free(r);
}

/* A pool that goes (its index may go to another) takes its parked names
 * and counters with it; other pools' stay. */
Test(registry_park, forget_pool) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("bob"), 11), 0);
    cr_assert_eq(orr_registry_register(r, 2, S("alice"), 12), 0);
    for (uint64_t c = 10; c <= 12; c++)
        orr_registry_conn_gone_park(r, c, &LIM, (int64_t)c);
    cr_assert(orr_registry_park_send(r, 1, S("alice"), "x", 1));
    orr_registry_park_forget_pool(r, 1);
    cr_assert(!orr_registry_park_send(r, 1, S("alice"), "x", 1));
    cr_assert(!orr_registry_park_send(r, 1, S("bob"), "x", 1));
    cr_assert(orr_registry_park_send(r, 2, S("alice"), "x", 1));
    cr_assert_eq(stats(r).names, 0);
    cr_assert_eq(stats(r).dropped, 0);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 13), 0); /* fresh, nothing kept */
    orr_park_stats st2;
    orr_registry_park_stats(r, 2, &st2);
    cr_assert_eq(st2.names, 1);
    orr_registry_free(r);
}

/* A message that reaches the old holder only after its name was taken again
 * (restored, and its kept messages handed over) goes to the new holder. */
Test(registry_park, named_orphan_after_restore_goes_to_the_holder) {
    orr_registry *r = parked_alice(10, 0);
    send_str(r, "kept");
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 20), ORR_REGISTRY_RESTORING);
    /* Still restoring: it goes in front of what is left to hand over. */
    uint64_t holder = 0;
    cr_assert_eq(orr_registry_orphan_to(r, 10, NULL, 0, 1, S("alice"), S("late1"), &holder),
                 ORR_ORPHAN_KEPT);
    expect_restored(r, 20, (const char *const[]){"late1", "kept"}, 2);
    /* Held now: handed to its holder, not lost. */
    cr_assert_eq(orr_registry_orphan_to(r, 10, NULL, 0, 1, S("alice"), S("late2"), &holder),
                 ORR_ORPHAN_HOLDER);
    cr_assert_eq(holder, 20);
    cr_assert_eq(stats(r).dropped, 0);
    /* Nobody has it: lost, counted. */
    orr_registry_conn_gone(r, 20);
    cr_assert_eq(orr_registry_orphan_to(r, 10, NULL, 0, 1, S("alice"), S("late3"), &holder),
                 ORR_ORPHAN_LOST);
    cr_assert_eq(stats(r).dropped, 1);
    orr_registry_free(r);
}

/* A connection with two names: each orphan goes back to the name it was sent to. */
Test(registry_park, named_orphans_of_two_names) {
    orr_registry *r = orr_registry_new();
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 10), 0);
    cr_assert_eq(orr_registry_register(r, 1, S("al"), 10), 0);
    uint64_t holder;
    /* Closing: its names park first. */
    cr_assert_eq(orr_registry_orphan_to(r, 10, &LIM, 0, 1, S("al"), S("to-al"), &holder),
                 ORR_ORPHAN_KEPT);
    cr_assert_eq(orr_registry_orphan_to(r, 10, &LIM, 0, 1, S("alice"), S("to-alice"), &holder),
                 ORR_ORPHAN_KEPT);
    orr_registry_conn_gone_park(r, 10, &LIM, 0);
    cr_assert_eq(orr_registry_register(r, 1, S("alice"), 20), ORR_REGISTRY_RESTORING);
    expect_restored(r, 20, (const char *const[]){"to-alice"}, 1);
    orr_park_msg *ms;
    cr_assert_eq(orr_registry_register(r, 1, S("al"), 30), ORR_REGISTRY_RESTORING);
    cr_assert_eq(orr_registry_restore_take(r, 1, S("al"), 30, &ms), 1);
    cr_assert(ms->len == 5 && memcmp(ms->bytes, "to-al", 5) == 0);
    orr_registry_msgs_free(ms);
    orr_registry_free(r);
}
