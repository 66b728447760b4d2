/*
 * The config loader: defaults, a full file, every key with each kind of bad
 * value (checked for the exact "FILE:LINE:COL: key:" prefix), syntax and
 * duplicate errors, the nested "pools" and its ownership, "cluster" and its
 * Redis addresses, the position scanner, listen parsing and --help.
 */
#include "config/config.h"
#include "config/jsonpos.h"

#include <orrery/gear.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ORR_SOURCE_DIR
#define ORR_SOURCE_DIR "."
#endif

/* ---- helpers ------------------------------------------------------------- */

/* Writes text to a new temporary .json file; its name goes to path. */
static void write_tmp(const char *text, char path[64]) {
    strcpy(path, "/tmp/orr-config-XXXXXX.json");
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0, "mkstemps: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads text as a config file over c; path receives the file's name. */
static int load_text(const char *text, orr_config *c, char path[64], char *err, size_t errlen) {
    write_tmp(text, path);
    err[0] = '\0';
    int rc = orr_config_load(path, c, err, errlen);
    unlink(path);
    return rc;
}

static void expect_prefix(const char *err, const char *path, int line, int col, const char *key) {
    char want[512];
    snprintf(want, sizeof want, "%s:%d:%d: %s: ", path, line, col, key);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "want prefix \"%s\", got \"%s\"", want, err);
}

static int same_pools(const orr_config *a, const orr_config *b) {
    if (a->n_pools != b->n_pools) return 0;
    for (size_t i = 0; i < a->n_pools; i++)
        if (strcmp(a->pools[i].name, b->pools[i].name) != 0 ||
            a->pools[i].ws_max_connections != b->pools[i].ws_max_connections)
            return 0;
    return 1;
}

static int same_cluster(const orr_cluster_config *a, const orr_cluster_config *b) {
    return a->enabled == b->enabled && strcmp(a->redis_url, b->redis_url) == 0 &&
           strcmp(a->redis.host, b->redis.host) == 0 && a->redis.port == b->redis.port &&
           strcmp(a->redis.path, b->redis.path) == 0 && a->redis.db == b->redis.db &&
           strcmp(a->node_id, b->node_id) == 0 && a->heartbeat_ms == b->heartbeat_ms &&
           a->node_ttl_ms == b->node_ttl_ms;
}

/* Field by field: struct padding is not part of a config. Pools by content. */
static int same_config(const orr_config *a, const orr_config *b) {
    return strcmp(a->listen_host, b->listen_host) == 0 && a->listen_port == b->listen_port &&
           a->workers == b->workers && strcmp(a->base_domain, b->base_domain) == 0 &&
           a->idle_timeout_ms == b->idle_timeout_ms &&
           a->max_message_bytes == b->max_message_bytes && a->drain_ms == b->drain_ms &&
           a->close_timeout_ms == b->close_timeout_ms &&
           a->handshake_timeout_ms == b->handshake_timeout_ms && a->log_level == b->log_level &&
           a->ws_max_connections == b->ws_max_connections &&
           a->max_outbound_bytes == b->max_outbound_bytes && a->max_pools == b->max_pools &&
           strcmp(a->api_token, b->api_token) == 0 && same_pools(a, b) &&
           same_cluster(&a->cluster, &b->cluster);
}

/* ---- defaults and good files -------------------------------------------- */

Test(config, defaults) {
    orr_config c;
    orr_config_defaults(&c);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_str_eq(c.listen_host, "127.0.0.1");
    cr_expect_eq(c.listen_port, 8080);
    cr_expect_eq(c.workers, cores < 1 ? 1 : cores > 256 ? 256 : cores);
    cr_expect_str_eq(c.base_domain, "localhost");
    cr_expect_eq(c.idle_timeout_ms, 60000);
    cr_expect_eq(c.max_message_bytes, 5000000);
    cr_expect_eq(c.drain_ms, 5000);
    cr_expect_eq(c.close_timeout_ms, 5000);
    cr_expect_eq(c.handshake_timeout_ms, 10000);
    cr_expect_eq(c.log_level, ORR_LOG_INFO);
    cr_expect_eq(c.ws_max_connections, 100);
    cr_expect_eq(c.max_outbound_bytes, 1048576);
    cr_expect_eq(c.max_pools, 4096);
    cr_expect_str_eq(c.api_token, "");
    cr_expect_null(c.pools);
    cr_expect_eq(c.n_pools, 0);
    cr_expect_not(c.cluster.enabled);
    cr_expect_str_eq(c.cluster.redis_url, "");
    cr_expect_str_eq(c.cluster.node_id, "");
    cr_expect_eq(c.cluster.heartbeat_ms, 3000);
    cr_expect_eq(c.cluster.node_ttl_ms, 10000);
    orr_config_free(&c); /* safe on defaults */
    cr_expect_null(c.pools);
}

Test(config, full_file) {
    const char *text = "{\n"
                       "  \"listen\": \"[::1]:9000\",\n"
                       "  \"workers\": 3,\n"
                       "  \"base_domain\": \"Gears.Example.COM\",\n"
                       "  \"idle_timeout_ms\": 86400000,\n"
                       "  \"max_message_bytes\": 2147483648,\n"
                       "  \"drain_ms\": 0,\n"
                       "  \"close_timeout_ms\": 600000,\n"
                       "  \"handshake_timeout_ms\": 1,\n"
                       "  \"log_level\": \"debug\",\n"
                       "  \"ws_max_connections\": 10000000,\n"
                       "  \"max_outbound_bytes\": 1024,\n"
                       "  \"max_pools\": 1000000,\n"
                       "  \"api_token\": \"!~tok3n\",\n"
                       "  \"pools\": {\"tenant:a\": {\"ws_max_connections\": 0}}\n"
                       "}\n";
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.listen_host, "::1");
    cr_expect_eq(c.listen_port, 9000);
    cr_expect_eq(c.workers, 3);
    cr_expect_str_eq(c.base_domain, "gears.example.com");
    cr_expect_eq(c.idle_timeout_ms, 86400000u);
    cr_expect_eq(c.max_message_bytes, 2147483648ull);
    cr_expect_eq(c.drain_ms, 0);
    cr_expect_eq(c.close_timeout_ms, 600000);
    cr_expect_eq(c.handshake_timeout_ms, 1);
    cr_expect_eq(c.log_level, ORR_LOG_DEBUG);
    cr_expect_eq(c.ws_max_connections, 10000000);
    cr_expect_eq(c.max_outbound_bytes, 1024);
    cr_expect_eq(c.max_pools, 1000000);
    cr_expect_str_eq(c.api_token, "!~tok3n");
    cr_assert_eq(c.n_pools, 1);
    cr_expect_str_eq(c.pools[0].name, "tenant:a");
    cr_expect_eq(c.pools[0].ws_max_connections, 0);
    orr_config_free(&c);
}

Test(config, log_levels) {
    static const struct {
        const char *name;
        int level;
    } cases[] = {{"debug", ORR_LOG_DEBUG},
                 {"info", ORR_LOG_INFO},
                 {"warn", ORR_LOG_WARN},
                 {"error", ORR_LOG_ERROR}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64], path[64], err[512];
        orr_config c;
        orr_config_defaults(&c);
        c.log_level = -1;
        snprintf(text, sizeof text, "{\"log_level\": \"%s\"}", cases[i].name);
        cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
        cr_expect_eq(c.log_level, cases[i].level, "%s", cases[i].name);
    }
}

/* Keys absent from the file keep the values the caller had. */
Test(config, loads_over_existing_values) {
    orr_config c, want;
    char path[64], err[512];
    orr_config_defaults(&c);
    c.workers = 7;
    c.idle_timeout_ms = 123;
    want = c;
    want.drain_ms = 42;
    cr_assert_eq(load_text("{\"drain_ms\": 42}", &c, path, err, sizeof err), 0, "%s", err);
    cr_expect(same_config(&c, &want));
    cr_assert_eq(load_text("  {}  \n", &c, path, err, sizeof err), 0, "%s", err);
    cr_expect(same_config(&c, &want));
}

/* ---- bad values: each key, each kind, exact prefix ----------------------- */

static const struct bad_case {
    const char *key;
    const char *value; /* as written in the file */
    const char *why;   /* a part of the message after "key: " */
} bad_cases[] = {
    {"listen", "8080", "expected a \"HOST:PORT\" string, got 8080"},
    {"listen", "null", "expected a \"HOST:PORT\" string, got null"},
    {"listen", "\"\"", "expected HOST:PORT"},
    {"listen", "\"localhost\"", "missing :PORT (expected HOST:PORT), got \"localhost\""},
    {"listen", "\":8080\"", "missing host"},
    {"listen", "\"localhost:65536\"",
     "the port must be a number from 0 to 65535 (0: any free port), got"},
    {"listen", "\"localhost:http\"",
     "the port must be a number from 0 to 65535 (0: any free port), got"},
    {"listen", "\"localhost:-1\"",
     "the port must be a number from 0 to 65535 (0: any free port), got"},
    {"listen", "\"localhost:\"",
     "the port must be a number from 0 to 65535 (0: any free port), got"},
    {"listen", "\"::1:8080\"", "an IPv6 address needs brackets, e.g. [::1]:8080"},
    {"listen", "\"[::1\"", "missing ']'"},
    {"listen", "\"[::1]8080\"", "expected :PORT after ']'"},
    {"listen", "\"[zz::1]:80\"", "not a valid IPv6 address"},
    {"listen", "\"bad_host:80\"", "host names allow only letters, digits"},
    {"listen", "\"999.1.1.1:80\"", "not a valid IPv4 address"},
    {"listen", "\"-x.com:80\"", "cannot start or end with '-'"},
    {"workers", "0", "must be from 1 to 256 (threads), got 0"},
    {"workers", "257", "must be from 1 to 256 (threads), got 257"},
    {"workers", "-1", "must be from 1 to 256 (threads), got -1"},
    {"workers", "\"4\"", "expected a positive integer (threads), got \"4\""},
    {"workers", "2.0", "expected a positive integer (threads), got 2.0"},
    {"workers", "true", "expected a positive integer (threads), got true"},
    {"base_domain", "\"\"", "empty host name, got \"\""},
    {"base_domain", "5", "expected a host name string, got 5"},
    {"base_domain", "\"a..b\"", "empty label"},
    {"base_domain", "\"a.\"", "empty label"},
    {"base_domain", "\"-x.com\"", "cannot start or end with '-'"},
    {"base_domain", "\"has space\"", "host names allow only letters, digits, '-' and '.'"},
    {"base_domain", "\"x_y.com\"", "host names allow only"},
    {"idle_timeout_ms", "\"abc\"", "expected a positive integer (milliseconds), got \"abc\""},
    {"idle_timeout_ms", "0", "must be from 1 to 86400000 (milliseconds), got 0"},
    {"idle_timeout_ms", "86400001", "must be from 1 to 86400000 (milliseconds), got 86400001"},
    {"idle_timeout_ms", "1.5", "expected a positive integer (milliseconds), got 1.5"},
    {"idle_timeout_ms", "-5", "must be from 1 to 86400000 (milliseconds), got -5"},
    {"idle_timeout_ms", "[1]", "expected a positive integer (milliseconds), got [1]"},
    {"idle_timeout_ms", "{\"a\": 1}", "expected a positive integer (milliseconds), got {\"a\":1}"},
    {"max_message_bytes", "0", "must be from 1 to 2147483648 (bytes), got 0"},
    {"max_message_bytes", "2147483649", "must be from 1 to 2147483648 (bytes), got 2147483649"},
    {"max_message_bytes", "\"5\"", "expected a positive integer (bytes), got \"5\""},
    {"max_message_bytes", "1e6", "expected a positive integer (bytes), got 1000000.0"},
    {"drain_ms", "-1", "must be from 0 to 3600000 (milliseconds), got -1"},
    {"drain_ms", "3600001", "must be from 0 to 3600000 (milliseconds), got 3600001"},
    {"drain_ms", "\"0\"", "expected a non-negative integer (milliseconds), got \"0\""},
    {"close_timeout_ms", "0", "must be from 1 to 600000 (milliseconds), got 0"},
    {"close_timeout_ms", "600001", "must be from 1 to 600000 (milliseconds), got 600001"},
    {"close_timeout_ms", "null", "expected a positive integer (milliseconds), got null"},
    {"handshake_timeout_ms", "0", "must be from 1 to 600000 (milliseconds), got 0"},
    {"handshake_timeout_ms", "600001", "must be from 1 to 600000"},
    {"handshake_timeout_ms", "false", "expected a positive integer (milliseconds), got false"},
    {"log_level", "\"verbose\"",
     "expected one of \"debug\", \"info\", \"warn\", \"error\", got \"verbose\""},
    {"log_level", "\"INFO\"", "got \"INFO\""},
    {"log_level", "1", "expected one of \"debug\", \"info\", \"warn\", \"error\", got 1"},
    {"log_level", "null", "got null"},
    {"ws_max_connections", "-1", "must be from 0 to 10000000 (connections), got -1"},
    {"ws_max_connections", "10000001", "must be from 0 to 10000000 (connections), got 10000001"},
    {"ws_max_connections", "\"5\"", "expected a non-negative integer (connections), got \"5\""},
    {"max_outbound_bytes", "1023", "must be from 1024 to 2147483648 (bytes), got 1023"},
    {"max_outbound_bytes", "2147483649", "must be from 1024 to 2147483648 (bytes), got 2147483649"},
    {"max_outbound_bytes", "1.5", "expected a positive integer (bytes), got 1.5"},
    {"max_pools", "0", "must be from 1 to 1000000 (pools), got 0"},
    {"max_pools", "1000001", "must be from 1 to 1000000 (pools), got 1000001"},
    {"api_token", "\"\"", "empty; leave the key out to keep the push API off"},
    {"api_token", "\"ab cd\"", "byte 3 is 0x20, not a visible ASCII character 0x21..0x7e"},
    {"api_token", "\"ab\\tcd\"", "byte 3 is 0x09, not a visible ASCII character"},
    {"api_token", "\"ab\\u00e9\"", "byte 3 is 0xc3, not a visible ASCII character"},
    {"api_token", "\"ab\\u007f\"", "byte 3 is 0x7f"},
    {"api_token", "12345", "expected a string of 1 to 512 visible ASCII characters, got a number"},
    {"api_token", "null", "got null"},
    {"pools", "[]", "expected an object {\"<pool>\": {...}}, got []"},
    {"pools", "5", "expected an object {\"<pool>\": {...}}, got 5"},
};

Test(config, bad_values) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        char text[256], path[64], err[1024];
        orr_config c, before;
        orr_config_defaults(&c);
        before = c;
        /* Line 2 is preceded by a good key; the value starts after `  "key": `. */
        const char *other = strcmp(b->key, "workers") == 0 ? "drain_ms" : "workers";
        snprintf(text, sizeof text, "{\"%s\": 1,\n  \"%s\": %s\n}\n", other, b->key, b->value);
        cr_expect_eq(load_text(text, &c, path, err, sizeof err), -1, "%s = %s loaded", b->key,
                     b->value);
        expect_prefix(err, path, 2, (int)strlen(b->key) + 7, b->key);
        cr_expect(strstr(err, b->why) != NULL, "%s = %s: want \"%s\" in \"%s\"", b->key, b->value,
                  b->why, err);
        cr_expect(same_config(&c, &before), "%s = %s changed the config", b->key, b->value);
    }
}

/* The example of the brief, exactly. */
Test(config, message_in_full) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\n  \"workers\": 2,\n  \"idle_timeout_ms\": \"abc\"\n}", &c, path, err,
                           sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:3:22: idle_timeout_ms: expected a positive integer (milliseconds), got \"abc\"",
             path);
    cr_expect_str_eq(err, want);
}

/* Positions on one line, after tabs and CRLF line ends, and far down. */
Test(config, value_positions) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"drain_ms\":1,\"workers\":0}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 25, "workers");
    cr_expect_eq(load_text("{\r\n\t\"workers\" :\r\n\t\t 0 }", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 3, 4, "workers");
    cr_expect_eq(
        load_text("\n\n\n\n{\n\n\"log_level\":\n\n\n    \"loud\"}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 10, 5, "log_level");
}

/* The first bad key in file order is the one reported. */
Test(config, first_error_in_file_order) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"workers\": 0, \"drain_ms\": -1, \"idle_timeout_ms\": 0}", &c, path,
                           err, sizeof err),
                 -1);
    expect_prefix(err, path, 1, 13, "workers");
    cr_expect_eq(load_text("{\"log_level\": \"x\", \"workers\": 0}", &c, path, err, sizeof err),
                 -1);
    expect_prefix(err, path, 1, 15, "log_level");
}

Test(config, unknown_key) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\n  \"listen\": \"127.0.0.1:1\",\n    \"listen_port\": 5\n}", &c, path,
                           err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:3:5: listen_port: unknown key (known: listen, workers, base_domain, "
             "idle_timeout_ms, max_message_bytes, drain_ms, close_timeout_ms, "
             "handshake_timeout_ms, log_level, ws_max_connections, max_outbound_bytes, "
             "max_pools, api_token, pools, cluster)",
             path);
    cr_expect_str_eq(err, want);
    /* A key written with escapes is found where it is written. */
    cr_expect_eq(load_text("{\"workers\": 1, \"\\u0041b\\n\": 1}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 16, "Ab?");
}

Test(config, syntax_errors) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\n  \"workers\": 2,\n  \"drain_ms\": \n}", &c, path, err, sizeof err),
                 -1);
    snprintf(want, sizeof want, "%s:4:1: (json): unexpected token near '}'", path);
    cr_expect_str_eq(err, want);

    cr_expect_eq(load_text("{\"workers\": 2,}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 15, "(json)");
    cr_expect_eq(load_text("{\"workers\": 2} x", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 16, "(json)");
    cr_expect(strstr(err, "end of file expected") != NULL, "%s", err);
    cr_expect_eq(load_text("", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 1, "(json)");
    /* A newline inside a string: the position is the last character read,
     * not column 0 of the next line. */
    cr_expect_eq(load_text("{\"base_domain\": \"a\nb\"}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 18, "(json)");
}

/* Our columns count characters as jansson's do, also after UTF-8. */
Test(config, syntax_columns_match_jansson) {
    static const char *texts[] = {
        "{\"\xc3\xa9\xc3\xa9\": 1 x}",
        "{\"a\": \"\xe2\x82\xac\xf0\x9f\x98\x80\", ]",
        "{\n\"a\": [1, 2,\n  \"\xc3\xa9\" 3]}",
        "[1, 2, }",
        "{\"a\": tru}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t je;
        const char *t = texts[i];
        json_t *j = json_loadb(t, strlen(t), JSON_DECODE_ANY, &je);
        cr_assert_null(j, "%s", t);
        orr__jsonpos p = orr__jsonpos_at(t, strlen(t), (size_t)je.position - 1);
        cr_expect_eq((int)p.line, je.line, "%s", t);
        cr_expect_eq((int)p.col, je.column, "%s", t);

        orr_config c;
        char path[64], err[512];
        orr_config_defaults(&c);
        cr_expect_eq(load_text(t, &c, path, err, sizeof err), -1);
        expect_prefix(err, path, je.line, je.column, "(json)");
    }
}

Test(config, duplicate_keys) {
    orr_config c;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\n  \"workers\": 2,\n  \"drain_ms\": 1,\n  \"workers\": 3\n}", &c,
                           path, err, sizeof err),
                 -1);
    snprintf(want, sizeof want, "%s:4:3: workers: duplicate key (first at 2:3)", path);
    cr_expect_str_eq(err, want);
    /* Nested, and spelled differently: jansson compares decoded keys. */
    cr_expect_eq(load_text("{\"x\": {\"a\": 1,\n \"\\u0061\": 2}}", &c, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2:2: x.a: duplicate key (first at 1:8)", path);
    cr_expect_str_eq(err, want);
}

Test(config, too_big_number) {
    orr_config c;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"drain_ms\": 1,\n \"workers\": 99999999999999999999}", &c, path, err,
                           sizeof err),
                 -1);
    expect_prefix(err, path, 2, 13, "workers");
    cr_expect(strstr(err, "too big integer") != NULL, "%s", err);
    cr_expect_eq(load_text("{\"drain_ms\": 1e999}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 14, "drain_ms");
}

Test(config, top_level_not_object) {
    static const struct {
        const char *text, *what;
        int line, col;
    } cases[] = {{"[1]", "an array", 1, 1},
                 {"  \n  \"x\"", "a string", 2, 3},
                 {"42", "a number", 1, 1},
                 {"null", "null", 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        orr_config c;
        char path[64], err[512];
        orr_config_defaults(&c);
        cr_expect_eq(load_text(cases[i].text, &c, path, err, sizeof err), -1);
        expect_prefix(err, path, cases[i].line, cases[i].col, "(json)");
        cr_expect(strstr(err, "the top level must be an object") != NULL, "%s", err);
        cr_expect(strstr(err, cases[i].what) != NULL, "%s", err);
    }
}

Test(config, unreadable) {
    orr_config c;
    char err[512];
    orr_config_defaults(&c);
    cr_expect_eq(orr_config_load("/nonexistent/orrery.json", &c, err, sizeof err), -1);
    cr_expect_str_eq(err, "/nonexistent/orrery.json: cannot read: No such file or directory");
    cr_expect_eq(orr_config_load("/tmp", &c, err, sizeof err), -1);
    cr_expect_str_eq(err, "/tmp: cannot read: Is a directory");
}

/* Long values are cut in messages, and a small buffer is never overrun. */
Test(config, long_values_and_small_buffers) {
    char text[1200], path[64], err[512];
    orr_config c;
    orr_config_defaults(&c);
    memset(text, 0, sizeof text);
    strcpy(text, "{\"listen\": \"");
    memset(text + strlen(text), 'a', 1000);
    strcat(text, ":80\"}");
    cr_expect_eq(load_text(text, &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 12, "listen");
    cr_expect(strstr(err, "...") != NULL, "%s", err);
    cr_expect_lt(strlen(err), 400);

    char tiny[24];
    memset(tiny, 'z', sizeof tiny);
    cr_expect_eq(load_text("{\"workers\": 0}", &c, path, tiny, 16), -1);
    cr_expect_eq(strlen(tiny), 15);
    cr_expect_eq(tiny[16], 'z');
}

/* ---- the position scanner ------------------------------------------------ */

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

/* ---- listen -------------------------------------------------------------- */

Test(config, parse_listen_good) {
    static const struct {
        const char *in, *host;
        unsigned port;
    } cases[] = {{"127.0.0.1:8080", "127.0.0.1", 8080}, {"0.0.0.0:65535", "0.0.0.0", 65535},
                 {"localhost:1", "localhost", 1},       {"Example.COM:80", "Example.COM", 80},
                 {"[::1]:8080", "::1", 8080},           {"[::]:443", "::", 443},
                 {"[2001:db8::1]:9", "2001:db8::1", 9}, {"[::ffff:1.2.3.4]:7", "::ffff:1.2.3.4", 7},
                 {"a-b.c1:00080", "a-b.c1", 80},        {"localhost:0", "localhost", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[256], err[128] = "";
        uint16_t port = 0;
        cr_expect_eq(
            orr_config_parse_listen(cases[i].in, host, sizeof host, &port, err, sizeof err), 0,
            "%s: %s", cases[i].in, err);
        cr_expect_str_eq(host, cases[i].host);
        cr_expect_eq(port, cases[i].port, "%s", cases[i].in);
    }
}

Test(config, parse_listen_bad) {
    static const char *bad[] = {
        "",       "localhost", ":80",   "localhost:x", "a:65536", "a:99999999999", "a:+1",
        "a: 1",   "::1:80",    "[::1]", "[::1]:",      "[::1:80", "[1.2.3.4]:80",  "1.2.3:80",
        "a..b:1", "a b:1",     "[]:80", "x_y:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[256] = "unchanged", err[128] = "";
        uint16_t port = 7;
        cr_expect_eq(orr_config_parse_listen(bad[i], host, sizeof host, &port, err, sizeof err), -1,
                     "%s", bad[i]);
        cr_expect_neq(err[0], '\0', "%s: no reason", bad[i]);
        cr_expect_str_eq(host, "unchanged");
        cr_expect_eq(port, 7);
    }
    char host[4], err[128];
    uint16_t port;
    cr_expect_eq(orr_config_parse_listen("abcd:80", host, sizeof host, &port, err, sizeof err), -1);
    cr_expect(strstr(err, "too long") != NULL, "%s", err);
    cr_expect_eq(orr_config_parse_listen("abc:80", host, sizeof host, &port, NULL, 0), 0);
    cr_expect_str_eq(host, "abc");
}

/* ---- --help and the example file ----------------------------------------- */

static char *help_text(void) {
    /* The stream's buffer pointer lives on the heap: GCC otherwise takes the
     * returned text for a pointer into this frame (-Wdangling-pointer). */
    char **buf = calloc(1, sizeof *buf);
    size_t *len = calloc(1, sizeof *len);
    FILE *f = open_memstream(buf, len);
    orr_config_print_keys(f);
    fclose(f);
    char *text = *buf;
    free(buf);
    free(len);
    return text;
}

/* Each top-level key's --help line's first word, in order (the entries of
 * an object key are indented further and left out). */
static size_t help_keys(char *help, char names[32][64]) {
    size_t n = 0;
    for (char *line = strtok(help, "\n"); line && n < 32; line = strtok(NULL, "\n"))
        if (strncmp(line, "   ", 3) != 0 && sscanf(line, " %63s", names[n]) == 1) n++;
    return n;
}

Test(config, help_lists_every_key_with_its_default) {
    char *help = help_text();
    cr_expect(strstr(help, "\"127.0.0.1:8080\"") != NULL, "%s", help);
    cr_expect(strstr(help, "online cores") != NULL);
    cr_expect(strstr(help, "60000") != NULL);
    cr_expect(strstr(help, "5000000") != NULL);
    cr_expect(strstr(help, "\"localhost\"") != NULL);
    cr_expect(strstr(help, "debug|info|warn|error") != NULL);
    cr_expect(strstr(help, "\"info\"") != NULL);
    cr_expect(strstr(help, "integer 1..86400000") != NULL);
    cr_expect(strstr(help, "integer 1024..2147483648") != NULL);
    cr_expect(strstr(help, "{\"<pool>\": {...}}") != NULL, "%s", help);
    cr_expect(strstr(help, "\n    ws_max_connections ") != NULL, "%s", help);
    cr_expect(strstr(help, "top-level (100)") != NULL, "%s", help);
    cr_expect(strstr(help, "\n  cluster ") != NULL, "%s", help);
    cr_expect(strstr(help, "{\"redis\": URL, ...}") != NULL, "%s", help);
    cr_expect(strstr(help, "none (single node)") != NULL, "%s", help);

    char names[32][64];
    size_t n = help_keys(help, names);
    cr_expect_eq(n, 15);
    /* Every listed key is one the loader knows ([] is no key's value). */
    for (size_t i = 0; i < n; i++) {
        char text[128], path[64], err[512];
        orr_config c;
        orr_config_defaults(&c);
        snprintf(text, sizeof text, "{\"%s\": []}", names[i]);
        cr_expect_eq(load_text(text, &c, path, err, sizeof err), -1);
        cr_expect(strstr(err, "unknown key") == NULL, "%s", err);
        cr_expect(strstr(err, names[i]) != NULL, "%s", err);
    }
    free(help);
}

Test(config, example_file_has_every_key_at_its_default) {
    const char *file = ORR_SOURCE_DIR "/config/orrery.example.json";
    orr_config c, d;
    char err[512];
    orr_config_defaults(&d);
    orr_config_defaults(&c);
    cr_assert_eq(orr_config_load(file, &c, err, sizeof err), 0, "%s", err);
    c.workers = d.workers; /* the one default that depends on the machine */
    cr_expect(same_config(&c, &d), "a value in %s is not its default", file);

    json_t *root = json_load_file(file, 0, NULL);
    cr_assert_not_null(root);
    char *help = help_text();
    char names[32][64];
    size_t n = help_keys(help, names);
    /* Every key but api_token and cluster: a secret has no place in an
     * example, and neither "" (api_token's default) nor "no cluster" is a
     * value a file may give. */
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], "api_token") != 0 && strcmp(names[i], "cluster") != 0)
            cr_expect_not_null(json_object_get(root, names[i]), "%s lacks %s", file, names[i]);
    cr_expect_null(json_object_get(root, "api_token"));
    cr_expect_null(json_object_get(root, "cluster"), "the example must not enable a cluster");
    cr_expect_eq(json_object_size(root), n - 2);
    free(help);
    json_decref(root);
}

/* The columns line up, also with the long integer range and the nested row. */
Test(config, help_columns_line_up) {
    char *help = help_text();
    static const char *defs[] = {"\"127.0.0.1:8080\" ",
                                 "1048576 ",
                                 "4096 ",
                                 "\"\" ",
                                 "{} ",
                                 "top-level (100) ",
                                 "none (single node) ",
                                 "required ",
                                 "<hostname>:<port> "};
    long type_col = -1, def_col = -1;
    for (char *line = strtok(help, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = line;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
        while (*p == ' ')
            p++;
        if (type_col < 0) type_col = p - line;
        cr_expect_eq(p - line, type_col, "type column of \"%s\"", line);
        for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
            char *d = strstr(line, defs[i]);
            if (!d || d - line <= type_col) continue;
            if (def_col < 0) def_col = d - line;
            cr_expect_eq(d - line, def_col, "default column of \"%s\"", line);
        }
        cr_expect_lt(strlen(line), 200);
    }
    cr_expect_gt(def_col, type_col);
    free(help);
}

/* ---- pools, api_token and the new limits ----------------------------------- */

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
             "%s:3:5: pools.tenant:t.max_connections: unknown key (known: ws_max_connections)",
             path);
    cr_expect_str_eq(err, want);
    /* Duplicate pools (decoded names) are jansson's to refuse. */
    cr_expect_eq(load_text("{\"pools\": {\"gear:a\": {},\n \"gear:\\u0061\": {}}}", &c, path, err,
                           sizeof err),
                 -1);
    snprintf(want, sizeof want, "%s:2:2: pools.gear:a: duplicate key (first at 1:12)", path);
    cr_expect_str_eq(err, want);
}

/* The token is never echoed in a message, and its limits are exact. */
Test(config, api_token) {
    orr_config c;
    char text[1200], path[64], err[1024];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"api_token\": \"s3cret-Tok3n x\"}", &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 15, "api_token");
    cr_expect(strstr(err, "byte 13 is 0x20") != NULL, "%s", err);
    cr_expect_null(strstr(err, "s3cret"), "%s", err);
    cr_expect_str_eq(c.api_token, "");

    char tok[514];
    memset(tok, 'k', sizeof tok);
    tok[512] = '\0';
    snprintf(text, sizeof text, "{\"api_token\": \"%s\"}", tok);
    cr_assert_eq(load_text(text, &c, path, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.api_token, tok);
    tok[512] = 'K';
    tok[513] = '\0';
    snprintf(text, sizeof text, "{\"api_token\": \"%s\"}", tok);
    cr_expect_eq(load_text(text, &c, path, err, sizeof err), -1);
    expect_prefix(err, path, 1, 15, "api_token");
    cr_expect(strstr(err, "513 bytes long, at most 512") != NULL, "%s", err);
    cr_expect_null(strstr(err, "kkkk"), "%s", err);
    cr_expect_eq(strlen(c.api_token), 512, "a failed load keeps the old token");

    cr_assert_eq(load_text("{\"api_token\": \"!\\\"#~\"}", &c, path, err, sizeof err), 0, "%s",
                 err);
    cr_expect_str_eq(c.api_token, "!\"#~");

    /* --help shows the empty default, nothing else. */
    char *help = help_text();
    cr_expect(strstr(help, "(set)") == NULL);
    free(help);
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

/* ---- cluster and Redis addresses ----------------------------------------- */

Test(config, cluster_tcp_with_db) {
    const char *text = "{\n"
                       "  \"cluster\": {\n"
                       "    \"redis\": \"redis://redis.internal:6380/3\",\n"
                       "    \"node_id\": \"eu-1.n_2:8080\",\n"
                       "    \"heartbeat_ms\": 50,\n"
                       "    \"node_ttl_ms\": 3600000\n"
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
             "node_ttl_ms)",
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
