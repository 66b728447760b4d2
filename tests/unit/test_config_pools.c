/*
 * The config loader's "pools": entries sorted with their limits, the default
 * that is the top-level limit, replacing or keeping the caller's array, bad
 * files that leave it as it was (and leak nothing, under ASan), pool names,
 * errors inside a pool at their dotted path, and deep copies.
 */
#include "config/config.h"
#include "config_files.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* ---- pools --------------------------------------------------------------- */

static const char pools_text[] = "{\n"
                                 "  \"ws_max_connections\": 7,\n"
                                 "  \"pools\": {\n"
                                 "    \"tenant:zeta.Co-1\": {\"ws_max_connections\": 10000000},\n"
                                 "    \"gear:testgear\": {\"ws_max_connections\": 0},\n"
                                 "    \"gear:echo\": {}\n"
                                 "  }\n"
                                 "}\n";

Test(config, pools_load_sorted_with_values) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text(pools_text, &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.ws_max_connections, 7);
    cr_assert_eq(c.n_pools, 3);
    cr_expect_str_eq(c.pools[0].name, "gear:echo");
    cr_expect_eq(c.pools[0].ws_max_connections, 7, "{} takes the top-level limit");
    cr_expect_str_eq(c.pools[1].name, "gear:testgear");
    cr_expect_eq(c.pools[1].ws_max_connections, 0);
    cr_expect_str_eq(c.pools[2].name, "tenant:zeta.Co-1");
    cr_expect_eq(c.pools[2].ws_max_connections, 10000000);

    cr_expect_eq(orr_config_pool_limit(&c, "gear:echo"), 7);
    cr_expect_eq(orr_config_pool_limit(&c, "gear:testgear"), 0);
    cr_expect_eq(orr_config_pool_limit(&c, "tenant:zeta.Co-1"), 10000000);
    cr_expect_eq(orr_config_pool_limit(&c, "tenant:zeta.co-1"), 7, "names are case-sensitive");
    cr_expect_eq(orr_config_pool_limit(&c, "gear:nothere"), 7);
    cr_expect_eq(orr_config_pool_limit(&c, ""), 7);
    cr_expect_eq(orr_config_pool_limit(&c, NULL), 7);
    /* Listed or not (a listed pool is kept when unused). */
    cr_expect_eq(orr_config_pool_find(&c, "tenant:zeta.Co-1"), &c.pools[2]);
    cr_expect_eq(orr_config_pool_find(&c, "gear:testgear"), &c.pools[1], "listed with limit 0");
    cr_expect_null(orr_config_pool_find(&c, "tenant:zeta.co-1"));
    cr_expect_null(orr_config_pool_find(&c, "gear:nothere"));
    cr_expect_null(orr_config_pool_find(&c, NULL));
    orr_config_free(&c);
    cr_expect_null(c.pools);
    cr_expect_eq(c.n_pools, 0);
    cr_expect_eq(orr_config_pool_limit(&c, "gear:testgear"), 7);
}

/* A pool's default is the top-level limit wherever that stands in the file,
 * or the caller's when the file has none. */
Test(config, pool_default_is_the_top_level_limit) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\"pools\": {\"gear:a\": {}}, \"ws_max_connections\": 9}", &c, path,
                           err, sizeof err),
                 0, "%s", err);
    cr_expect_eq(orr_config_pool_limit(&c, "gear:a"), 9);
    c.ws_max_connections = 55;
    cr_assert_eq(load_text("{\"pools\": {\"gear:b\": {}}}", &c, path, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(orr_config_pool_limit(&c, "gear:b"), 55);
    cr_expect_eq(c.n_pools, 1);
    orr_config_free(&c);

    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\"pools\": {\"gear:a\": {}}}", &c, path, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(c.pools[0].ws_max_connections, 100);
    orr_config_free(&c);
}

/* "pools" in a file replaces the caller's array; a file without it keeps it. */
Test(config, pools_replace_or_keep) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text(pools_text, &c, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(load_text("{\"drain_ms\": 3}", &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.n_pools, 3);
    cr_expect_eq(orr_config_pool_limit(&c, "gear:testgear"), 0);
    cr_assert_eq(load_text("{\"pools\": {\"tenant:b\": {\"ws_max_connections\": 4}}}", &c, path,
                           err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(c.n_pools, 1);
    cr_expect_str_eq(c.pools[0].name, "tenant:b");
    cr_expect_eq(orr_config_pool_limit(&c, "gear:testgear"), 7);
    cr_assert_eq(load_text("{\"pools\": {}}", &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_null(c.pools);
    cr_expect_eq(c.n_pools, 0);
    orr_config_free(&c);
}

/* A bad file, wherever its error is (in a pool, or after a good "pools"),
 * leaves the config and its pools as they were, and leaks nothing (ASan). */
Test(config, failed_load_keeps_old_pools) {
    static const char *bad[] = {
        "{\"pools\": {\"tenant:new\": {\"ws_max_connections\": -1}}}",
        "{\"pools\": {\"tenant:new\": {}, \"tenant:x y\": {}}}",
        "{\"pools\": {\"tenant:new\": {}}, \"workers\": 0}",
        "{\"workers\": 2, \"pools\": {}, \"api_token\": \"\"}",
        "{\"pools\": {\"tenant:new\": {\"ws_max_connections\": 1, \"y\": 1}}}",
    };
    orr_config c, before;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text(pools_text, &c, path, err, sizeof err), 0, "%s", err);
    orr_config_copy(&before, &c);
    const orr_pool_config *array = c.pools;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(load_text(bad[i], &c, path, err, sizeof err), -1, "%s loaded", bad[i]);
        cr_expect_eq(c.pools, array, "%s", bad[i]);
        cr_expect(same_config(&c, &before), "%s changed the config", bad[i]);
    }
    cr_expect_eq(orr_config_pool_limit(&c, "gear:testgear"), 0);
    orr_config_free(&c);
    orr_config_free(&before);
}

Test(config, pool_name_check) {
    /* The longest gear name (32) and tenant id (64) are good, a 64-byte gear
     * name and a 65-byte id are not. */
    static const char *good[] = {
        "gear:testgear",
        "gear:a",
        "gear:a_1",
        "gear:echo",
        "gear:abcdefghijklmnopqrstuvwxyz012345",
        "tenant:1",
        "tenant:A-b_c.d",
        "tenant:...",
        "tenant:-",
        "tenant:0123456789012345678901234567890123456789012345678901234567890123",
    };
    static const char *bad[] = {
        "",
        "gear:",
        "gear",
        "tenant:",
        "tenant",
        "Gear:a",
        "gear:A",
        "gear:1a",
        "gear:_a",
        "gear:a-b",
        "gear:a.b",
        "gear:a b",
        "gear:testgear ",
        " gear:a",
        "pool:a",
        "tenant:x y",
        "tenant:a/b",
        "tenant:a:b",
        "tenant:\xc3\xa9",
        "gear:gear:a",
        "tenant:a\n",
        "gear:abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01",
        "tenant:01234567890123456789012345678901234567890123456789012345678901234",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_expect_eq(orr_pool_name_check(good[i], strlen(good[i])), 0, "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(orr_pool_name_check(bad[i], strlen(bad[i])), -1, "%s", bad[i]);
    /* The length is what counts, not a NUL. */
    cr_expect_eq(orr_pool_name_check("gear:ab", 6), 0);
    cr_expect_eq(orr_pool_name_check("gear:a\0b", 8), -1);
    cr_expect_eq(orr_pool_name_check("tenant:a\0", 9), -1);
    cr_expect_eq(orr_pool_name_check(NULL, 0), -1);
}

Test(config, bad_pool_name_at_its_key) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_expect_eq(
        load_text("{\n  \"pools\": {\n    \"gear:echo\": {},\n    \"tenant:x y\": {}\n  }\n}", &c,
                  path, err, sizeof err),
        -1);
    snprintf(want, sizeof want,
             "%s:4:5: pools.tenant:x y: not a pool name: expected gear:<gear> (a gear name: "
             "[a-z][a-z0-9_]*) or tenant:<id> (1 to 64 of A-Z a-z 0-9 _ . -)",
             path);
    cr_expect_str_eq(err, want);
    cr_expect_null(c.pools);
    /* A control character in the name cannot break the line. */
    cr_expect_eq(load_text("{\"pools\": {\"gear:a\\nb\": {}}}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 12, "pools.gear:a?b");
    cr_expect_null(strchr(err, '\n'));
}

Test(config, bad_value_inside_a_pool) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_expect_eq(
        load_text(
            "{\n  \"pools\": {\n    \"gear:testgear\": {\"ws_max_connections\": 10000001}\n  }\n}",
            &c, path, err, sizeof err),
        -1);
    snprintf(want, sizeof want,
             "%s:3:45: pools.gear:testgear.ws_max_connections: must be from 0 to 10000000 "
             "(connections), got 10000001",
             path);
    cr_expect_str_eq(err, want);
    cr_expect_eq(load_text("{\"pools\": {\"gear:testgear\": {\"ws_max_connections\": \"1\"}}}", &c,
                           path, err, sizeof err),
                 -1);
    expect_prefix(err, path, 1, 52, "pools.gear:testgear.ws_max_connections");
    cr_expect(strstr(err, "expected a non-negative integer (connections), got \"1\"") != NULL, "%s",
              err);
    /* Too big for jansson: named by its dotted path too. */
    cr_expect_eq(load_text("{\"pools\": {\"gear:testgear\": {\"ws_max_connections\": "
                           "99999999999999999999}}}",
                           &c, path, err, sizeof err),
                 -1);
    expect_prefix(err, path, 1, 52, "pools.gear:testgear.ws_max_connections");
    /* A pool that is not an object: at its value. */
    cr_expect_eq(load_text("{\"pools\": {\"tenant:t\": 12}}", &c, path, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:1:24: pools.tenant:t: expected an object {\"ws_max_connections\": N}, got 12",
             path);
    cr_expect_str_eq(err, want);
    cr_expect_null(c.pools);
}

Test(config, unknown_key_inside_a_pool) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"pools\": {\n  \"tenant:t\": {\"ws_max_connections\": 1,\n"
                           "    \"max_connections\": 5}}}",
                           &c, path, err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:3:5: pools.tenant:t.max_connections: unknown key (known: ws_max_connections, "
             "allowed_origins, require_origin, deflate, deflate_min_bytes, park_ms, "
             "park_max_messages, park_max_bytes)",
             path);
    cr_expect_str_eq(err, want);
    /* Duplicate pools (decoded names) are jansson's to refuse. */
    cr_expect_eq(load_text("{\"pools\": {\"gear:a\": {},\n \"gear:\\u0061\": {}}}", &c, path, err,
                           sizeof err),
                 -1);
    snprintf(want, sizeof want, "%s:2:2: pools.gear:a: duplicate key (first at 1:12)", path);
    cr_expect_str_eq(err, want);
}

Test(config, copy_and_free) {
    orr_config c, copy;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text(pools_text, &c, path, err, sizeof err), 0, "%s", err);
    strcpy(c.api_token, "tok");
    memset(&copy, 0xa5, sizeof copy); /* an uninitialized destination is fine */
    cr_assert_eq(orr_config_copy(&copy, &c), 0);
    cr_expect(same_config(&copy, &c));
    cr_expect_neq(copy.pools, c.pools, "a deep copy");
    orr_config_free(&c);
    cr_expect_eq(orr_config_pool_limit(&copy, "tenant:zeta.Co-1"), 10000000);
    cr_expect_str_eq(copy.api_token, "tok");
    cr_expect_eq(orr_config_copy(&copy, &copy), 0, "copy onto itself");
    cr_expect_eq(copy.n_pools, 3);
    orr_config_free(&copy);
    orr_config_free(&copy); /* twice is harmless */

    orr_config d, e;
    orr_config_defaults(&d);
    cr_assert_eq(orr_config_copy(&e, &d), 0);
    cr_expect_null(e.pools);
    cr_expect(same_config(&d, &e));
    orr_config_free(&e);
}

/* ---- allowed_origins, require_origin ------------------------------------ */

Test(config, origin_lists_are_kept_normalised_at_the_top_and_per_pool) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\"allowed_origins\": [\"HTTPS://App.Example.com:443\", "
                           "\"*.Trusted.org\"], \"require_origin\": true,\n"
                           " \"pools\": {\"gear:chat\": {\"allowed_origins\": [], "
                           "\"require_origin\": false}, \"tenant:t\": {}}}",
                           &c, path, err, sizeof err),
                 0, "%s", err);
    cr_expect_str_eq(c.allowed_origins, "https://app.example.com\n*.trusted.org");
    cr_expect(c.require_origin);
    const char *list;
    bool require;
    orr_config_origin_policy(&c, "gear:chat", &list, &require);
    cr_expect_str_eq(list, "", "an empty list of its own");
    cr_expect(!require);
    orr_config_origin_policy(&c, "tenant:t", &list, &require);
    cr_expect_eq(list, c.allowed_origins, "the top-level list");
    cr_expect(require);
    orr_config_origin_policy(&c, "tenant:other", &list, &require);
    cr_expect_eq(list, c.allowed_origins);
    orr_config copy;
    orr_config_copy(&copy, &c);
    cr_expect_str_eq(copy.allowed_origins, c.allowed_origins);
    cr_expect_neq(copy.allowed_origins, c.allowed_origins, "a deep copy");
    orr_config_free(&copy);
    orr_config_free(&c);
}

Test(config, a_bad_origin_names_its_file_line_key_and_entry) {
    static const struct {
        const char *text, *key, *why;
    } bad[] = {
        {"{\"allowed_origins\": \"https://a.com\"}", "allowed_origins", "expected a list"},
        {"{\"allowed_origins\": [1]}", "allowed_origins", "entry 1: expected a string"},
        {"{\"allowed_origins\": [\"https://a.com\", \"https://a.com/\"]}", "allowed_origins",
         "entry 2: \"https://a.com/\" is not an origin"},
        {"{\"allowed_origins\": [\"*.\"]}", "allowed_origins", "entry 1: \"*.\" is not a pattern"},
        {"{\"require_origin\": 1}", "require_origin", "expected true or false"},
        {"{\"pools\": {\"gear:chat\": {\"allowed_origins\": [\"ftp//x\"]}}}",
         "pools.gear:chat.allowed_origins", "entry 1: \"ftp//x\" is not an origin"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        orr_config c;
        char path[64], err[512], want[128];
        orr_config_defaults(&c);
        cr_expect_eq(load_text(bad[i].text, &c, path, err, sizeof err), -1, "%s", bad[i].text);
        snprintf(want, sizeof want, ": %s: ", bad[i].key);
        cr_expect(strncmp(err, path, strlen(path)) == 0 && strstr(err, want) &&
                      strstr(err, bad[i].why),
                  "%s: %s", bad[i].text, err);
        cr_expect_null(c.allowed_origins, "a bad file changes nothing");
        orr_config_free(&c);
    }
}

/* Parking: top-level defaults (off, 256 messages, 256 KiB), a pool's
 * missing key is the top-level one, errors name the pool's key. */
Test(config, park_keys_per_pool) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_expect_eq(c.park_ms, 0);
    cr_expect_eq(c.park_max_messages, 256);
    cr_expect_eq(c.park_max_bytes, 262144);
    cr_assert_eq(load_text("{\"park_max_messages\": 9, \"pools\": {\"gear:a\": {\"park_ms\": 500},"
                           " \"gear:b\": {\"park_max_bytes\": 7}}}",
                           &c, path, err, sizeof err),
                 0, "%s", err);
    uint32_t ms, n, bytes;
    orr_config_park_policy(&c, "gear:a", &ms, &n, &bytes);
    cr_expect(ms == 500 && n == 9 && bytes == 262144, "%u %u %u", ms, n, bytes);
    orr_config_park_policy(&c, "gear:b", &ms, &n, &bytes);
    cr_expect(ms == 0 && n == 9 && bytes == 7, "%u %u %u", ms, n, bytes);
    orr_config_park_policy(&c, "tenant:x", &ms, &n, &bytes);
    cr_expect(ms == 0 && n == 9 && bytes == 262144, "%u %u %u", ms, n, bytes);
    orr_config_free(&c);

    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"pools\": {\"gear:a\": {\n  \"park_max_messages\": 0}}}", &c, path,
                           err, sizeof err),
                 -1);
    expect_prefix(err, path, 2, 24, "pools.gear:a.park_max_messages");
    cr_expect_eq(load_text("{\"park_ms\": 86400001}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 13, "park_ms");
    orr_config_free(&c);
}
