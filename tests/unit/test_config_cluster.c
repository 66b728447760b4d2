/*
 * The config loader's "cluster": TCP and unix Redis addresses, defaults,
 * replacing the caller's cluster whole, the required "redis", each entry's
 * bad values at their dotted path, the TTL that must exceed the heartbeat,
 * --help under the key; and orr_redis_addr_parse on its own.
 */
#include "config/config.h"
#include "config_files.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* ---- cluster ------------------------------------------------------------- */

Test(config, cluster_tcp_with_db) {
    const char *text = "{\n"
                       "  \"cluster\": {\n"
                       "    \"redis\": \"redis://redis.internal:6380/3\",\n"
                       "    \"node_id\": \"eu-1.n_2:8080\",\n"
                       "    \"heartbeat_ms\": 50,\n"
                       "    \"node_ttl_ms\": 3600000,\n"
                       "    \"inbox_max_messages\": 250\n"
                       "  }\n"
                       "}\n";
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    cr_expect(c.cluster.enabled);
    cr_expect_str_eq(c.cluster.redis_url, "redis://redis.internal:6380/3");
    cr_expect_str_eq(c.cluster.redis.host, "redis.internal");
    cr_expect_eq(c.cluster.redis.port, 6380);
    cr_expect_eq(c.cluster.redis.db, 3);
    cr_expect_str_eq(c.cluster.redis.path, "");
    cr_expect_str_eq(c.cluster.node_id, "eu-1.n_2:8080");
    cr_expect_eq(c.cluster.heartbeat_ms, 50);
    cr_expect_eq(c.cluster.node_ttl_ms, 3600000);
    cr_expect_eq(c.cluster.inbox_max_messages, 250);
}

/* A unix socket, and every other entry at its default. */
Test(config, cluster_unix_path_and_defaults) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\"cluster\": {\"redis\": \"unix:/tmp/orr-test/redis.sock\"}}", &c,
                           path, err, sizeof err),
                 0, "%s", err);
    cr_expect(c.cluster.enabled);
    cr_expect_str_eq(c.cluster.redis_url, "unix:/tmp/orr-test/redis.sock");
    cr_expect_str_eq(c.cluster.redis.path, "/tmp/orr-test/redis.sock");
    cr_expect_str_eq(c.cluster.redis.host, "");
    cr_expect_eq(c.cluster.redis.db, 0);
    cr_expect_str_eq(c.cluster.node_id, "");
    cr_expect_eq(c.cluster.heartbeat_ms, 3000);
    cr_expect_eq(c.cluster.node_ttl_ms, 10000);
    cr_expect_eq(c.cluster.inbox_max_messages, 100000);
}

/* A file without "cluster" keeps the caller's (a single node by default);
 * a "cluster" replaces it whole, its absent entries at their defaults. */
Test(config, cluster_absent_kept_or_replaced) {
    orr_config c, d;
    char path[64], err[512];
    orr_config_defaults(&c);
    orr_config_defaults(&d);
    cr_assert_eq(load_text("{\"drain_ms\": 5000}", &c, path, err, sizeof err), 0, "%s", err);
    cr_expect(same_config(&c, &d));
    cr_expect_not(c.cluster.enabled);

    cr_assert_eq(load_text("{\"cluster\": {\"redis\": \"redis://a\", \"node_id\": \"x\", "
                           "\"heartbeat_ms\": 100, \"node_ttl_ms\": 200}}",
                           &c, path, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(load_text("{\"workers\": 1}", &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.cluster.node_id, "x");
    cr_expect_eq(c.cluster.node_ttl_ms, 200);
    cr_assert_eq(
        load_text("{\"cluster\": {\"redis\": \"redis://b:1\"}}", &c, path, err, sizeof err), 0,
        "%s", err);
    cr_expect(c.cluster.enabled);
    cr_expect_str_eq(c.cluster.redis.host, "b");
    cr_expect_eq(c.cluster.redis.port, 1);
    cr_expect_str_eq(c.cluster.node_id, "");
    cr_expect_eq(c.cluster.heartbeat_ms, 3000);
    cr_expect_eq(c.cluster.node_ttl_ms, 10000);
}

Test(config, cluster_requires_redis) {
    orr_config c, before;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    before = c;
    cr_expect_eq(load_text("{\"workers\": 1,\n  \"cluster\": {\"node_id\": \"n1\"}\n}", &c, path,
                           err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:2:3: cluster: \"redis\" is required: \"redis://HOST[:PORT][/DB]\" or "
             "\"unix:PATH\"",
             path);
    cr_expect_str_eq(err, want);
    cr_expect_eq(load_text("{\"cluster\": {}}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 2, "cluster");
    cr_expect(strstr(err, "\"redis\" is required") != NULL, "%s", err);
    cr_expect(same_config(&c, &before));

    /* Not an object: at the value. */
    cr_expect_eq(load_text("{\"cluster\": \"redis://h\"}", &c, path, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:1:13: cluster: expected an object {\"redis\": URL, ...}, got \"redis://h\"", path);
    cr_expect_str_eq(err, want);
    cr_expect_eq(load_text("{\"cluster\": true}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 13, "cluster");
    cr_expect_eq(load_text("{\"cluster\": null}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 13, "cluster");
    cr_expect(same_config(&c, &before));
}

/* Bad entries of "cluster": each at its value, named by its dotted path. */
static const struct bad_case cluster_bad_cases[] = {
    {"redis", "\"http://h:6379\"",
     "expected \"redis://HOST[:PORT][/DB]\" or \"unix:PATH\", got \"http://h:6379\""},
    {"redis", "\"redis://host:0\"",
     "port out of range: must be from 1 to 65535, got \"redis://host:0\""},
    {"redis", "\"redis://host:70000\"", "port out of range: must be from 1 to 65535"},
    {"redis", "\"redis://host/db-x\"",
     "the database must be a number from 0 to 2147483647, got \"redis://host/db-x\""},
    {"redis", "\"redis://host/2147483648\"",
     "database number out of range: must be from 0 to 2147483647"},
    {"redis", "\"unix:\"", "empty unix socket path after \"unix:\", got \"unix:\""},
    {"redis", "\"redis://u:pw@host\"", "a user or password in the URL is not supported"},
    {"redis", "\"redis://host?timeout=1\"", "query and fragment are not supported"},
    {"redis", "\"rediss://host\"", "TLS (rediss://) is not supported"},
    {"redis", "6379", "expected a string \"redis://HOST[:PORT][/DB]\" or \"unix:PATH\", got 6379"},
    {"redis", "null", "got null"},
    {"node_id", "\"\"", "empty; leave the key out to let the node pick <hostname>:<port>"},
    {"node_id", "\"n 1\"", "byte 2 (0x20) is not one of A-Z a-z 0-9 _ . : -, got \"n 1\""},
    {"node_id", "\"n/1\"", "byte 2 (0x2f) is not one of"},
    {"node_id", "\"\\u00e9\"", "byte 1 (0xc3) is not one of"},
    {"node_id", "\"n\\n\"", "byte 2 (0x0a) is not one of"},
    {"node_id", "\"0123456789012345678901234567890123456789012345678901234567890123x\"",
     "65 bytes long, at most 64"},
    {"node_id", "1", "expected a string of 1 to 64 of A-Z a-z 0-9 _ . : -, got 1"},
    {"heartbeat_ms", "49", "must be from 50 to 600000 (milliseconds), got 49"},
    {"heartbeat_ms", "600001", "must be from 50 to 600000 (milliseconds), got 600001"},
    {"heartbeat_ms", "\"3000\"", "expected a positive integer (milliseconds), got \"3000\""},
    {"node_ttl_ms", "99", "must be from 100 to 3600000 (milliseconds), got 99"},
    {"node_ttl_ms", "3600001", "must be from 100 to 3600000 (milliseconds), got 3600001"},
    {"node_ttl_ms", "1.5", "expected a positive integer (milliseconds), got 1.5"},
    {"inbox_max_messages", "99", "must be from 100 to 100000000 (messages), got 99"},
    {"inbox_max_messages", "100000001", "must be from 100 to 100000000 (messages), got 100000001"},
};

Test(config, cluster_bad_values) {
    for (size_t i = 0; i < sizeof cluster_bad_cases / sizeof cluster_bad_cases[0]; i++) {
        const struct bad_case *b = &cluster_bad_cases[i];
        char text[512], path[64], err[1024], name[64];
        orr_config c, before;
        orr_config_defaults(&c);
        before = c;
        /* Line 3 is preceded by a good entry; the value starts after `    "key": `. */
        const char *other =
            strcmp(b->key, "redis") == 0 ? "\"node_id\": \"n1\"" : "\"redis\": \"unix:/r.sock\"";
        snprintf(text, sizeof text, "{\"workers\": 1,\n  \"cluster\": {%s,\n    \"%s\": %s}\n}\n",
                 other, b->key, b->value);
        snprintf(name, sizeof name, "cluster.%s", b->key);
        cr_expect_eq(load_text(text, &c, path, err, sizeof err), -1, "%s = %s loaded", b->key,
                     b->value);
        expect_prefix(err, path, 3, (int)strlen(b->key) + 9, name);
        cr_expect(strstr(err, b->why) != NULL, "%s = %s: want \"%s\" in \"%s\"", b->key, b->value,
                  b->why, err);
        cr_expect(same_config(&c, &before), "%s = %s changed the config", b->key, b->value);
    }
}

/* The longest unix path is sun_path's size less its NUL. */
Test(config, cluster_unix_path_length) {
    char text[400], sock[120], path[64], err[512];
    orr_config c;
    orr_config_defaults(&c);
    memset(sock, 'p', sizeof sock);
    sock[0] = '/';
    sock[107] = '\0';
    snprintf(text, sizeof text, "{\"cluster\": {\"redis\": \"unix:%s\"}}", sock);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.cluster.redis.path, sock);
    sock[107] = 'p';
    sock[108] = '\0';
    snprintf(text, sizeof text, "{\"cluster\": {\"redis\": \"unix:%s\"}}", sock);
    cr_expect_eq(load_text(text, &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 23, "cluster.redis");
    cr_expect(strstr(err, "unix socket path longer than 107 bytes (108)") != NULL, "%s", err);
    cr_expect_eq(strlen(c.cluster.redis.path), 107, "a failed load keeps the old cluster");
}

Test(config, cluster_ttl_must_exceed_heartbeat) {
    orr_config c, before;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    before = c;
    cr_expect_eq(load_text("{\"cluster\": {\"redis\": \"redis://h\",\n"
                           "  \"heartbeat_ms\": 5000,\n  \"node_ttl_ms\": 5000}}",
                           &c, path, err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:3:18: cluster.node_ttl_ms: must be greater than heartbeat_ms (5000), got 5000: a "
             "node would expire between two heartbeats",
             path);
    cr_expect_str_eq(err, want);
    /* At node_ttl_ms wherever it stands in the file. */
    cr_expect_eq(load_text("{\"cluster\": {\"node_ttl_ms\": 100, \"redis\": \"redis://h\", "
                           "\"heartbeat_ms\": 200}}",
                           &c, path, err, sizeof err),
                 -1);
    expect_prefix(err, path, 1, 29, "cluster.node_ttl_ms");
    cr_expect(strstr(err, "greater than heartbeat_ms (200), got 100") != NULL, "%s", err);
    /* Without a node_ttl_ms, the heartbeat that passes the default is wrong. */
    cr_expect_eq(load_text("{\"cluster\": {\"redis\": \"redis://h\", \"heartbeat_ms\": 10000}}", &c,
                           path, err, sizeof err),
                 -1);
    expect_prefix(err, path, 1, 52, "cluster.heartbeat_ms");
    cr_expect(strstr(err, "less than node_ttl_ms (10000, its default), got 10000") != NULL, "%s",
              err);
    cr_expect(same_config(&c, &before));
    /* One more is enough. */
    cr_expect_eq(load_text("{\"cluster\": {\"redis\": \"redis://h\", \"heartbeat_ms\": 9999}}", &c,
                           path, err, sizeof err),
                 0, "%s", err);
    cr_expect_eq(load_text("{\"cluster\": {\"redis\": \"redis://h\", \"heartbeat_ms\": 600000, "
                           "\"node_ttl_ms\": 600001}}",
                           &c, path, err, sizeof err),
                 0, "%s", err);
}

Test(config, unknown_key_inside_cluster) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"cluster\": {\"redis\": \"redis://h\",\n  \"enabled\": true}}", &c,
                           path, err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:2:3: cluster.enabled: unknown key (known: redis, node_id, heartbeat_ms, "
             "node_ttl_ms, inbox_max_messages)",
             path);
    cr_expect_str_eq(err, want);
    cr_expect_not(c.cluster.enabled);
    /* Before "redis" too: file order decides, not the missing key. */
    cr_expect_eq(load_text("{\"cluster\": {\"url\": \"redis://h\"}}", &c, path, err, sizeof err),
                 -1);
    expect_prefix(err, path, 1, 14, "cluster.url");
    cr_expect(strstr(err, "unknown key") != NULL, "%s", err);
    /* Duplicates inside cluster are jansson's, named by their path. */
    cr_expect_eq(load_text("{\"cluster\": {\"redis\": \"redis://h\",\n \"redis\": \"unix:x\"}}", &c,
                           path, err, sizeof err),
                 -1);
    snprintf(want, sizeof want, "%s:2:2: cluster.redis: duplicate key (first at 1:14)", path);
    cr_expect_str_eq(err, want);
}

/* A bad file leaves a loaded cluster as it was. */
Test(config, failed_load_keeps_old_cluster) {
    static const char *bad[] = {
        "{\"cluster\": {\"redis\": \"redis://other\", \"node_id\": \"\"}}",
        "{\"cluster\": {\"redis\": \"redis://other\"}, \"workers\": 0}",
        "{\"cluster\": {\"node_id\": \"n9\"}}",
        "{\"cluster\": {\"redis\": \"redis://other\", \"node_ttl_ms\": 100}}",
        "{\"cluster\": []}",
    };
    orr_config c, before;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\"cluster\": {\"redis\": \"redis://[::1]:7000/1\", \"node_id\": "
                           "\"n1\"}}",
                           &c, path, err, sizeof err),
                 0, "%s", err);
    before = c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(load_text(bad[i], &c, path, err, sizeof err), -1, "%s loaded", bad[i]);
        cr_expect(same_config(&c, &before), "%s changed the config", bad[i]);
    }
    cr_expect_str_eq(c.cluster.redis.host, "::1");
    cr_expect_eq(c.cluster.redis.port, 7000);
    cr_expect_eq(c.cluster.redis.db, 1);
}

Test(config, copy_keeps_cluster) {
    orr_config c, copy;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\"cluster\": {\"redis\": \"unix:run/r.sock\", \"node_id\": \"a\", "
                           "\"heartbeat_ms\": 1000, \"node_ttl_ms\": 4000}}",
                           &c, path, err, sizeof err),
                 0, "%s", err);
    memset(&copy, 0xa5, sizeof copy);
    cr_assert_eq(orr_config_copy(&copy, &c), 0);
    cr_expect(same_config(&copy, &c));
    cr_expect(copy.cluster.enabled);
    cr_expect_str_eq(copy.cluster.redis.path, "run/r.sock");
    cr_expect_eq(copy.cluster.node_ttl_ms, 4000);
    orr_config_free(&copy);
}

Test(config, help_lists_cluster_entries) {
    char *help = help_text();
    static const char *rows[] = {"\n    redis ", "\n    node_id ", "\n    heartbeat_ms ",
                                 "\n    node_ttl_ms "};
    const char *cluster = strstr(help, "\n  cluster ");
    cr_assert_not_null(cluster, "%s", help);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *row = strstr(help, rows[i]);
        cr_expect(row && row > cluster, "%s not under cluster in\n%s", rows[i] + 1, help);
    }
    cr_expect(strstr(help, "<hostname>:<port>") != NULL, "%s", help);
    cr_expect(strstr(help, "integer 50..600000") != NULL, "%s", help);
    cr_expect(strstr(help, "integer 100..3600000") != NULL, "%s", help);
    /* The entries show their own defaults, not the top-level ones. */
    const char *hb = strstr(help, "\n    heartbeat_ms ");
    const char *ttl = strstr(help, "\n    node_ttl_ms ");
    cr_assert(hb && ttl);
    cr_expect(strstr(hb, " 3000 ") != NULL && strstr(hb, " 3000 ") < ttl, "%s", help);
    cr_expect(strstr(ttl, " 10000 ") != NULL, "%s", help);
    free(help);
}

/* ---- Redis addresses ---------------------------------------------------- */

Test(redis_addr, good) {
    static const struct {
        const char *in, *host, *path;
        unsigned port;
        int db;
    } cases[] = {
        {"redis://localhost", "localhost", "", 6379, 0},
        {"redis://127.0.0.1:6380", "127.0.0.1", "", 6380, 0},
        {"redis://Redis.Example.COM:1/2147483647", "Redis.Example.COM", "", 1, 2147483647},
        {"redis://h:65535/0", "h", "", 65535, 0},
        {"redis://h/15", "h", "", 6379, 15},
        {"redis://h:007/007", "h", "", 7, 7},
        {"redis://[::1]", "::1", "", 6379, 0},
        {"redis://[2001:db8::7]:7000/2", "2001:db8::7", "", 7000, 2},
        {"REDIS://h", "h", "", 6379, 0},
        {"unix:/run/redis/redis-server.sock", "", "/run/redis/redis-server.sock", 0, 0},
        {"unix:redis.sock", "", "redis.sock", 0, 0},
        {"unix:./a b/r.sock", "", "./a b/r.sock", 0, 0},
        {"unix:/x", "", "/x", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        orr_redis_addr a;
        char why[160] = "";
        memset(&a, 0x5a, sizeof a);
        cr_expect_eq(orr_redis_addr_parse(cases[i].in, &a, why, sizeof why), 0, "%s: %s",
                     cases[i].in, why);
        cr_expect_str_eq(a.host, cases[i].host, "%s", cases[i].in);
        cr_expect_str_eq(a.path, cases[i].path, "%s", cases[i].in);
        cr_expect_eq(a.port, cases[i].port, "%s", cases[i].in);
        cr_expect_eq(a.db, cases[i].db, "%s", cases[i].in);
    }
}

Test(redis_addr, bad) {
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"", "expected \"redis://HOST[:PORT][/DB]\" or \"unix:PATH\""},
        {"localhost:6379", "expected \"redis://HOST[:PORT][/DB]\""},
        {"http://h:6379", "expected \"redis://HOST[:PORT][/DB]\""},
        {"redis:/h", "expected \"redis://HOST[:PORT][/DB]\""},
        {"tcp://h:6379", "expected \"redis://HOST[:PORT][/DB]\""},
        {"rediss://h", "TLS (rediss://) is not supported"},
        {"redis://", "missing host"},
        {"redis://:6379", "missing host"},
        {"redis:///0", "missing host"},
        {"redis://h:", "missing port after ':'"},
        {"redis://h:/1", "missing port after ':'"},
        {"redis://h:0", "port out of range: must be from 1 to 65535"},
        {"redis://h:65536", "port out of range"},
        {"redis://h:70000", "port out of range"},
        {"redis://h:99999999999999999999999", "port out of range"},
        {"redis://h:x", "the port must be a number from 1 to 65535"},
        {"redis://h:+1", "the port must be a number"},
        {"redis://h: 1", "the port must be a number"},
        {"redis://h:-1", "the port must be a number"},
        {"redis://h/", "missing database number after '/'"},
        {"redis://h/db-x", "the database must be a number from 0 to 2147483647"},
        {"redis://h/-1", "the database must be a number"},
        {"redis://h/0/1", "the database must be a number"},
        {"redis://h/1 ", "the database must be a number"},
        {"redis://h/2147483648", "database number out of range: must be from 0 to 2147483647"},
        {"redis://h/99999999999999999999999", "database number out of range"},
        {"redis://user@h", "a user or password in the URL is not supported"},
        {"redis://:secret@h:6379/0", "a user or password"},
        {"redis://h?db=1", "query and fragment are not supported"},
        {"redis://h:6379/0?timeout=5", "query and fragment"},
        {"redis://h#x", "query and fragment"},
        {"redis://::1:6379", "an IPv6 address needs brackets"},
        {"redis://[::1", "missing ']'"},
        {"redis://[::1]x", "expected :PORT or /DB after ']'"},
        {"redis://[zz::1]:1", "not a valid IPv6 address"},
        {"redis://[]:1", "missing host"},
        {"redis://[1.2.3.4]", "not a valid IPv6 address"},
        {"redis://bad_host", "host names allow only"},
        {"redis://999.1.1.1", "not a valid IPv4 address"},
        {"redis://-h", "cannot start or end with '-'"},
        {"redis://a..b", "empty label"},
        {"redis:// h", "host names allow only"},
        {"unix:", "empty unix socket path after \"unix:\""},
        {"unix://tmp/r.sock", "no \"//\" after \"unix:\""},
        {"unix", "expected \"redis://HOST[:PORT][/DB]\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        orr_redis_addr a, before;
        char why[160] = "";
        memset(&a, 0x5a, sizeof a);
        before = a;
        cr_expect_eq(orr_redis_addr_parse(cases[i].in, &a, why, sizeof why), -1, "%s parsed",
                     cases[i].in);
        cr_expect(strstr(why, cases[i].why) != NULL, "%s: want \"%s\" in \"%s\"", cases[i].in,
                  cases[i].why, why);
        cr_expect(memcmp(&a, &before, sizeof a) == 0, "%s: out changed on failure", cases[i].in);
    }
    /* No room for a reason, or no input at all, is fine. */
    orr_redis_addr a;
    cr_expect_eq(orr_redis_addr_parse("redis://h:0", &a, NULL, 0), -1);
    cr_expect_eq(orr_redis_addr_parse(NULL, &a, NULL, 0), -1);
    char tiny[8];
    cr_expect_eq(orr_redis_addr_parse("http://x", &a, tiny, sizeof tiny), -1);
    cr_expect_eq(strlen(tiny), 7);
}

/* A unix path is 1..107 bytes; a host name at most 253. */
Test(redis_addr, lengths) {
    char in[400], why[160];
    orr_redis_addr a;
    strcpy(in, "unix:");
    memset(in + 5, 'a', 107);
    in[5 + 107] = '\0';
    cr_expect_eq(orr_redis_addr_parse(in, &a, why, sizeof why), 0, "%s", why);
    cr_expect_eq(strlen(a.path), 107);
    strcat(in, "a");
    cr_expect_eq(orr_redis_addr_parse(in, &a, why, sizeof why), -1);
    cr_expect_str_eq(why, "unix socket path longer than 107 bytes (108)");

    /* Four labels of 63 bytes joined by dots: 255 bytes; cut to 253. */
    strcpy(in, "redis://");
    for (int l = 0; l < 4; l++) {
        if (l) strcat(in, ".");
        size_t at = strlen(in);
        memset(in + at, 'h', 63);
        in[at + 63] = '\0';
    }
    cr_expect_eq(orr_redis_addr_parse(in, &a, why, sizeof why), -1);
    cr_expect(strstr(why, "longer than 253") != NULL, "%s", why);
    in[8 + 253] = '\0';
    cr_expect_eq(orr_redis_addr_parse(in, &a, why, sizeof why), 0, "%s", why);
    cr_expect_eq(strlen(a.host), 253);
    cr_expect_eq(a.port, 6379);
}
