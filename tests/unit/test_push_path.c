/*
 * The push API's path parser (src/http/push_path.c): the two shapes,
 * percent-decoding of every segment, and every other shape refused (404).
 */
#include "http/push_path.h"

#include "common/err.h"
#include "http/pool_name.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static int parse(const char *path, orr_push_path *pp) {
    return orr_push_path_parse(path, strlen(path), pp);
}

Test(push_path, unique_and_groups) {
    orr_push_path pp;
    cr_assert_eq(parse("/_orrery/pools/gear:chat/unique/alice/messages", &pp), 0);
    cr_expect(pp.unique);
    cr_expect_eq(pp.pool_len, 9);
    cr_expect_eq(memcmp(pp.pool, "gear:chat", 9), 0);
    cr_expect_eq(pp.name_len, 5);
    cr_expect_eq(memcmp(pp.name, "alice", 5), 0);
    cr_assert_eq(parse("/_orrery/pools/tenant:t-1/groups/room.1/messages", &pp), 0);
    cr_expect_not(pp.unique);
    cr_expect_eq(pp.pool_len, 10);
    cr_expect_eq(memcmp(pp.pool, "tenant:t-1", 10), 0);
    cr_expect_eq(pp.name_len, 6);
    cr_expect_eq(memcmp(pp.name, "room.1", 6), 0);
}

Test(push_path, segments_are_decoded) {
    orr_push_path pp;
    cr_assert_eq(parse("/_orrery/pools/gear%3Achat/unique/a%2Fb%20c/messages", &pp), 0);
    cr_expect_eq(pp.pool_len, 9);
    cr_expect_eq(memcmp(pp.pool, "gear:chat", 9), 0);
    cr_expect_eq(pp.name_len, 5);
    cr_expect_eq(memcmp(pp.name, "a/b c", 5), 0);
    /* A name may hold any byte, NUL included, once decoded. */
    cr_assert_eq(parse("/_orrery/pools/gear:chat/unique/a%00b/messages", &pp), 0);
    cr_expect_eq(pp.name_len, 3);
    cr_expect_eq(memcmp(pp.name, "a\0b", 3), 0);
    /* The literal segments are decoded too. */
    cr_expect_eq(parse("/_orrery/%70ools/gear:chat/groups/g/messages", &pp), 0);
    /* '+' is not a space in a path. */
    cr_assert_eq(parse("/_orrery/pools/gear:chat/unique/a+b/messages", &pp), 0);
    cr_expect_eq(memcmp(pp.name, "a+b", 3), 0);
}

Test(push_path, other_shapes_are_not_found) {
    static const char *const bad[] = {
        "",
        "/",
        "/_orrery",
        "/_orrery/",
        "/_orrery/pools",
        "/_orrery/pools/gear:chat/unique/alice",
        "/_orrery/pools/gear:chat/unique/alice/",
        "/_orrery/pools/gear:chat/unique/alice/messages/",
        "/_orrery/pools/gear:chat/unique/alice/messages/x",
        "/_orrery/pools/gear:chat/unique//messages",
        "/_orrery/pools//unique/alice/messages",
        "/_orrery/pools/gear:chat/names/alice/messages",
        "/_orrery/pools/gear:chat/Unique/alice/messages",
        "/_orrery/pool/gear:chat/unique/alice/messages",
        "/_orrery/pools/gear:chat/unique/alice/message",
        "/_orrery/pools/chat/unique/alice/messages",
        "/_orrery/pools/gear:no%20such/unique/alice/messages",
        "/_orrery/pools/gear:chat/unique/a%zz/messages",
        "/_orrery/pools/gear:chat/unique/a%4/messages",
        "/_orrery//pools/gear:chat/unique/alice/messages",
        "/other/pools/gear:chat/unique/alice/messages",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        orr_push_path pp;
        cr_expect_eq(parse(bad[i], &pp), ORR_ENOTFOUND, "%s", bad[i]);
    }
}

Test(push_path, name_length_bound) {
    char path[2048];
    char name[ORR_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    orr_push_path pp;
    name[ORR_NAME_MAX] = '\0';
    snprintf(path, sizeof path, "/_orrery/pools/gear:chat/unique/%s/messages", name);
    cr_expect_eq(parse(path, &pp), 0);
    cr_expect_eq(pp.name_len, ORR_NAME_MAX);
    name[ORR_NAME_MAX] = 'n';
    name[ORR_NAME_MAX + 1] = '\0';
    snprintf(path, sizeof path, "/_orrery/pools/gear:chat/unique/%s/messages", name);
    cr_expect_eq(parse(path, &pp), ORR_ENOTFOUND);
    /* A path longer than the decode buffer is refused, not cut. */
    char longp[1200];
    memset(longp, 'x', sizeof longp);
    memcpy(longp, "/_orrery/", 9);
    cr_expect_eq(orr_push_path_parse(longp, sizeof longp, &pp), ORR_ENOTFOUND);
}

Test(push_path, prefix) {
    cr_expect(orr_push_path_is("/_orrery/", 9));
    cr_expect(orr_push_path_is("/_orrery/x", 10));
    cr_expect_not(orr_push_path_is("/_orrery", 8));
    cr_expect_not(orr_push_path_is("/_orreryx", 9));
}

Test(pool_name, one_rule) {
    cr_expect_eq(orr_pool_name_check("gear:chat", 9), 0);
    cr_expect_eq(orr_pool_name_check("tenant:a", 8), 0);
    cr_expect_eq(orr_pool_name_check("tenant:", 7), -1);
    cr_expect_eq(orr_pool_name_check("gear:", 5), -1);
    /* Every valid name fits in ORR_POOL_NAME_MAX with its NUL. */
    char t[7 + 64 + 1] = "tenant:";
    memset(t + 7, 'a', 64);
    cr_expect_eq(orr_pool_name_check(t, 71), 0);
    cr_expect_lt(71, ORR_POOL_NAME_MAX);
}
