/*
 * The position scanner of the config loader (src/config/jsonpos.c): nested
 * lookups, the walk's order, key decoding, truncated and random input in
 * buffers of exactly their size, the nesting limit, and offsets to lines and
 * columns.
 */
#include "config/jsonpos.h"

#include <orrery/gear.h>

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const char nested_text[] =
    "{\n"
    "  \"pools\": {\n"
    "    \"gear:testgear\": {\"ws_max_connections\": 5},\n"
    "    \"tenant:t\\u00e9\": { \"ws_max_connections\" : [1, {\"x\": 2}] }\n"
    "  },\n"
    "  \"cluster\": {\"list\": [{\"node_id\": \"n1\"}], \"heartbeat_ms\": 3000},\n"
    "  \"gear\\u003atestgear\": \"\xf0\x9f\x98\x80\", \"emoji\\ud83d\\ude00\": 1\n"
    "}\n";

static void expect_at(const char *const *path, size_t depth, int kl, int kc, int vl, int vc) {
    orr__jsonpos k, v;
    int rc = orr__jsonpos_find(nested_text, strlen(nested_text), path, depth, &k, &v);
    cr_assert_eq(rc, 0, "%s not found", path[depth - 1]);
    cr_expect_eq(k.line, (unsigned)kl, "%s key line", path[depth - 1]);
    cr_expect_eq(k.col, (unsigned)kc, "%s key col", path[depth - 1]);
    cr_expect_eq(v.line, (unsigned)vl, "%s value line", path[depth - 1]);
    cr_expect_eq(v.col, (unsigned)vc, "%s value col", path[depth - 1]);
    cr_expect_eq(nested_text[k.offset], '"');
}

Test(jsonpos, nested_lookup) {
    const char *const p1[] = {"pools", "gear:testgear", "ws_max_connections"};
    expect_at(p1, 3, 3, 23, 3, 45);
    const char *const p2[] = {"pools", "tenant:t\xc3\xa9", "ws_max_connections"};
    expect_at(p2, 3, 4, 25, 4, 48);
    const char *const p3[] = {"pools"};
    expect_at(p3, 1, 2, 3, 2, 12);
    const char *const p4[] = {"cluster", "heartbeat_ms"};
    expect_at(p4, 2, 6, 44, 6, 60);
    const char *const p5[] = {"gear:testgear"};
    expect_at(p5, 1, 7, 3, 7, 25);
    /* The value above is one character wide whatever its bytes. */
    const char *const p6[] = {"emoji\xf0\x9f\x98\x80"};
    expect_at(p6, 1, 7, 30, 7, 51);

    /* Members inside arrays, wrong depths and missing keys are not found. */
    const char *const n1[] = {"cluster", "list", "node_id"};
    const char *const n2[] = {"pools", "tenant:t\xc3\xa9", "ws_max_connections", "x"};
    const char *const n3[] = {"gear:testgear", "ws_max_connections"};
    const char *const n4[] = {"pool"};
    cr_expect_eq(orr__jsonpos_find(nested_text, strlen(nested_text), n1, 3, NULL, NULL),
                 ORR_ENOTFOUND);
    cr_expect_eq(orr__jsonpos_find(nested_text, strlen(nested_text), n2, 4, NULL, NULL),
                 ORR_ENOTFOUND);
    cr_expect_eq(orr__jsonpos_find(nested_text, strlen(nested_text), n3, 2, NULL, NULL),
                 ORR_ENOTFOUND);
    cr_expect_eq(orr__jsonpos_find(nested_text, strlen(nested_text), n4, 1, NULL, NULL),
                 ORR_ENOTFOUND);
}

static int count_members(const orr__jsonpos_member *m, void *arg) {
    (*(int *)arg)++;
    return 0;
}

Test(jsonpos, walk_reports_members_in_order) {
    int n = 0;
    cr_expect_eq(orr__jsonpos_walk(nested_text, strlen(nested_text), count_members, &n), 0);
    /* pools, gear:testgear, ws_max_connections, tenant:t\u00e9, ws_max_connections,
     * cluster, list, heartbeat_ms, gear\u003atestgear, emoji: 10 (node_id and x are in arrays). */
    cr_expect_eq(n, 10);
}

Test(jsonpos, key_decoding) {
    orr__jsonpos_str raw = {.p = "a\\\"b\\\\c\\/d\\u00e9\\ud83d\\ude00\\t", .len = 30};
    char buf[64];
    size_t n = orr__jsonpos_key_decode(raw, buf, sizeof buf);
    cr_expect_str_eq(buf, "a\"b\\c/d\xc3\xa9\xf0\x9f\x98\x80\t");
    cr_expect_eq(n, strlen(buf));
    cr_expect(orr__jsonpos_key_eq(raw, buf, n));
    cr_expect(!orr__jsonpos_key_eq(raw, buf, n - 1));
    /* Cut to fit, never in the middle of a character. */
    cr_expect_eq(orr__jsonpos_key_decode(raw, buf, 10), 9);
    cr_expect_str_eq(buf, "a\"b\\c/d\xc3\xa9");
    /* A lone surrogate or a bad escape matches nothing. */
    orr__jsonpos_str lone = {.p = "\\ud83dx", .len = 7};
    cr_expect(!orr__jsonpos_key_eq(lone, "x", 1));
    orr__jsonpos_str bad = {.p = "\\q", .len = 2};
    cr_expect(!orr__jsonpos_key_eq(bad, "q", 1));
}

/* Every prefix of a text, and some garbage, in buffers of exactly their size
 * (so ASan sees any read past the end): the walk always returns. */
Test(jsonpos, truncated_and_garbage_input) {
    size_t len = strlen(nested_text);
    for (size_t i = 0; i <= len; i++) {
        char *buf = malloc(i ? i : 1);
        memcpy(buf, nested_text, i);
        int n = 0;
        int rc = orr__jsonpos_walk(buf, i, count_members, &n);
        cr_expect(rc == ORR_EINVAL || (rc == 0 && i >= len - 1), "prefix %zu: %d", i, rc);
        free(buf);
    }
    static const char *junk[] = {
        "{\"a\\", "{\"a\"",     "{\"a\":",           "{1:2}",  "{\"a\" 1}", "[}", "{]", "}",
        "\"",     "{\"a\":1,}", "{\"a\":1 \"b\":2}", "[[[[[[", "\\u"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        size_t l = strlen(junk[i]);
        char *buf = malloc(l);
        memcpy(buf, junk[i], l);
        int n = 0;
        cr_expect_eq(orr__jsonpos_walk(buf, l, count_members, &n), ORR_EINVAL, "%s", junk[i]);
        free(buf);
    }
    srand(1);
    for (int round = 0; round < 2000; round++) {
        char buf[64];
        size_t l = (size_t)(rand() % 64);
        for (size_t i = 0; i < l; i++)
            buf[i] = "{}[]\":,\\ a1"[rand() % 11];
        char *exact = malloc(l ? l : 1);
        memcpy(exact, buf, l);
        int n = 0;
        int rc = orr__jsonpos_walk(exact, l, count_members, &n);
        cr_expect(rc == 0 || rc == ORR_EINVAL);
        free(exact);
    }
}

Test(jsonpos, nesting_limit) {
    size_t deep = ORR__JSONPOS_MAX_NESTING + 1;
    char *buf = malloc(2 * deep);
    memset(buf, '[', deep);
    memset(buf + deep, ']', deep);
    int n = 0;
    cr_expect_eq(orr__jsonpos_walk(buf, 2 * deep, count_members, &n), ORR_EINVAL);
    cr_expect_eq(orr__jsonpos_walk(buf + 1, 2 * deep - 2, count_members, &n), 0);
    free(buf);
}

Test(jsonpos, positions_of_offsets) {
    const char *t = "ab\n\xc3\xa9x\n";
    orr__jsonpos p = orr__jsonpos_at(t, strlen(t), 3);
    cr_expect_eq(p.line, 2);
    cr_expect_eq(p.col, 1);
    p = orr__jsonpos_at(t, strlen(t), 5);
    cr_expect_eq(p.col, 2);
    p = orr__jsonpos_at(t, strlen(t), 100);
    cr_expect_eq(p.line, 3);
    cr_expect_eq(p.col, 1);
}
