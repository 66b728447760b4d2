/*
 * The config loader: defaults, a full file, every top-level key with each
 * kind of bad value (checked for the exact "FILE:LINE:COL: key:" prefix),
 * syntax and duplicate errors, listen parsing, api_token and --help. The
 * nested "pools" and "cluster" are in test_config_pools.c and
 * test_config_cluster.c, the position scanner in test_jsonpos.c.
 */
#include "config/config.h"
#include "config/jsonpos.h"
#include "config_files.h"

#include <orrery/gear.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ORR_SOURCE_DIR
#define ORR_SOURCE_DIR "."
#endif

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
    cr_expect_eq(c.ping_interval_ms, 0);
    cr_expect_eq(c.max_message_bytes, 5000000);
    cr_expect_eq(c.max_fragments, 100000);
    cr_expect_eq(c.drain_ms, 5000);
    cr_expect_eq(c.close_timeout_ms, 5000);
    cr_expect_eq(c.handshake_timeout_ms, 10000);
    cr_expect_eq(c.log_level, ORR_LOG_INFO);
    cr_expect_eq(c.ws_max_connections, 100);
    cr_expect_eq(c.max_outbound_bytes, 1048576);
    cr_expect_geq(c.max_buffered_bytes, 1048576); /* a quarter of physical memory */
    cr_expect_eq(c.max_pools, 4096);
    cr_expect_eq(c.retry_after_s, 5);
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
                       "  \"ping_interval_ms\": 86399999,\n"
                       "  \"max_message_bytes\": 2147483648,\n"
                       "  \"max_fragments\": 100000000,\n"
                       "  \"drain_ms\": 0,\n"
                       "  \"close_timeout_ms\": 600000,\n"
                       "  \"handshake_timeout_ms\": 1,\n"
                       "  \"log_level\": \"debug\",\n"
                       "  \"ws_max_connections\": 10000000,\n"
                       "  \"max_outbound_bytes\": 1024,\n"
                       "  \"max_buffered_bytes\": 2097152,\n"
                       "  \"max_pools\": 1000000,\n"
                       "  \"retry_after_s\": 86400,\n"
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
    cr_expect_eq(c.ping_interval_ms, 86399999u);
    cr_expect_eq(c.max_message_bytes, 2147483648ull);
    cr_expect_eq(c.max_fragments, 100000000u);
    cr_expect_eq(c.drain_ms, 0);
    cr_expect_eq(c.close_timeout_ms, 600000);
    cr_expect_eq(c.handshake_timeout_ms, 1);
    cr_expect_eq(c.log_level, ORR_LOG_DEBUG);
    cr_expect_eq(c.ws_max_connections, 10000000);
    cr_expect_eq(c.max_outbound_bytes, 1024);
    cr_expect_eq(c.max_buffered_bytes, 2097152);
    cr_expect_eq(c.max_pools, 1000000);
    cr_expect_eq(c.retry_after_s, 86400);
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

static const struct bad_case bad_cases[] = {
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
    {"ping_interval_ms", "-1", "must be from 0 to 86400000 (milliseconds), got -1"},
    {"ping_interval_ms", "86400001", "must be from 0 to 86400000 (milliseconds), got 86400001"},
    {"ping_interval_ms", "true", "expected a non-negative integer (milliseconds), got true"},
    {"ping_interval_ms", "60000",
     "must be less than idle_timeout_ms (60000), got 60000: the connection would be closed "
     "before its ping; 0 turns pings off"},
    {"max_fragments", "0", "must be from 1 to 100000000 (frames), got 0"},
    {"max_fragments", "100000001", "must be from 1 to 100000000 (frames), got 100000001"},
    {"max_fragments", "\"10\"", "expected a positive integer (frames), got \"10\""},
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
    {"max_buffered_bytes", "1048575", "must be from 1048576 to 1099511627776 (bytes), got 1048575"},
    {"max_buffered_bytes", "1099511627777",
     "must be from 1048576 to 1099511627776 (bytes), got 1099511627777"},
    {"max_pools", "0", "must be from 1 to 1000000 (pools), got 0"},
    {"max_pools", "1000001", "must be from 1 to 1000000 (pools), got 1000001"},
    {"retry_after_s", "-1", "must be from 0 to 86400 (seconds), got -1"},
    {"retry_after_s", "86401", "must be from 0 to 86400 (seconds), got 86401"},
    {"retry_after_s", "\"5\"", "expected a non-negative integer (seconds), got \"5\""},
    {"api_token", "\"\"", "empty; leave the key out to keep the push API off"},
    {"api_token", "\"ab cd\"", "byte 3 is 0x20, not a visible ASCII character 0x21..0x7e"},
    {"api_token", "\"ab\\tcd\"", "byte 3 is 0x09, not a visible ASCII character"},
    {"api_token", "\"ab\\u00e9\"", "byte 3 is 0xc3, not a visible ASCII character"},
    {"api_token", "\"ab\\u007f\"", "byte 3 is 0x7f"},
    {"api_token", "12345", "expected a string of 1 to 512 visible ASCII characters, got a number"},
    {"api_token", "null", "got null"},
    {"pools", "[]", "expected an object {\"<pool>\": {...}}, got []"},
    {"pools", "5", "expected an object {\"<pool>\": {...}}, got 5"},
    {"gears_dir", "\"\"", "expected a non-empty path string, got \"\""},
    {"gears_dir", "5", "expected a non-empty path string, got 5"},
    {"gear_config", "[]", "expected an object {\"<gear>\": {...}}, got []"},
    {"gear_config", "\"x\"", "expected an object {\"<gear>\": {...}}, got \"x\""},
};

/* Each gear's config comes back as its own JSON text; a gear without one
 * gets "{}"; a copy is deep. Bad entries name the gear's key. */
Test(config, gear_config) {
    orr_config c, d;
    char path[64], err[512];
    orr_config_defaults(&c);
    cr_assert_eq(load_text("{\"gear_config\": {\"counter\": {\"start\": 5, \"name\": \"x\"},\n"
                           "  \"chat\": {}}, \"gears_dir\": \"/opt/gears\"}\n",
                           &c, path, err, sizeof err),
                 0, "%s", err);
    cr_expect_str_eq(c.gears_dir, "/opt/gears");
    size_t len;
    char *j = orr_config_gear_json(c.gear_config, "counter", &len);
    cr_expect_str_eq(j, "{\"name\":\"x\",\"start\":5}");
    cr_expect_eq(len, strlen(j));
    free(j);
    j = orr_config_gear_json(c.gear_config, "echo", &len);
    cr_expect_str_eq(j, "{}");
    free(j);
    cr_assert_eq(orr_config_copy(&d, &c), 0);
    orr_config_free(&c);
    j = orr_config_gear_json(d.gear_config, "counter", &len);
    cr_expect_str_eq(j, "{\"name\":\"x\",\"start\":5}", "the copy keeps its own text");
    free(j);
    orr_config_free(&d);

    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\"gear_config\": {\"Bad-Name\": {}}}\n", &c, path, err, sizeof err),
                 -1);
    cr_expect(strstr(err, "gear_config.Bad-Name: not a gear name") != NULL, "%s", err);
    cr_expect_eq(load_text("{\"gear_config\": {\"chat\": 5}}\n", &c, path, err, sizeof err), -1);
    cr_expect(strstr(err, "gear_config.chat: expected the gear's config object, got 5") != NULL,
              "%s", err);
    orr_config_free(&c);
}

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

/* ping_interval_ms must stay below idle_timeout_ms, wherever either is set. */
Test(config, ping_interval_below_idle_timeout) {
    orr_config c, before;
    char path[64], err[512], want[512];
    orr_config_defaults(&c);
    /* Both in the file: the ping is blamed, in whichever order they come. */
    cr_expect_eq(load_text("{\n  \"ping_interval_ms\": 2000,\n  \"idle_timeout_ms\": 1500\n}", &c,
                           path, err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:2:23: ping_interval_ms: must be less than idle_timeout_ms (1500), got 2000: the "
             "connection would be closed before its ping; 0 turns pings off",
             path);
    cr_expect_str_eq(err, want);
    cr_expect_eq(load_text("{\"idle_timeout_ms\": 1500, \"ping_interval_ms\": 1500}", &c, path, err,
                           sizeof err),
                 -1);
    expect_prefix(err, path, 1, 47, "ping_interval_ms");
    /* Loaded over a config with pings: the idle timeout given is blamed. */
    cr_assert_eq(load_text("{\"ping_interval_ms\": 300, \"idle_timeout_ms\": 1500}", &c, path, err,
                           sizeof err),
                 0, "%s", err);
    before = c;
    cr_expect_eq(load_text("{\"idle_timeout_ms\": 300}", &c, path, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:1:21: idle_timeout_ms: must be greater than ping_interval_ms (300), got 300",
             path);
    cr_expect_str_eq(err, want);
    cr_expect(same_config(&c, &before));
    /* 0 turns pings off, whatever the idle timeout. */
    cr_expect_eq(
        load_text("{\"ping_interval_ms\": 0, \"idle_timeout_ms\": 1}", &c, path, err, sizeof err),
        0, "%s", err);
    cr_expect_eq(c.ping_interval_ms, 0);
    cr_expect_eq(c.idle_timeout_ms, 1);
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
    char path[64], err[1024], want[1024];
    orr_config_defaults(&c);
    cr_expect_eq(load_text("{\n  \"listen\": \"127.0.0.1:1\",\n    \"listen_port\": 5\n}", &c, path,
                           err, sizeof err),
                 -1);
    snprintf(want, sizeof want,
             "%s:3:5: listen_port: unknown key (known: listen, workers, base_domain, "
             "idle_timeout_ms, ping_interval_ms, max_message_bytes, max_fragments, drain_ms, "
             "close_timeout_ms, "
             "handshake_timeout_ms, log_level, ws_max_connections, max_outbound_bytes, "
             "max_buffered_bytes, max_pools, retry_after_s, api_token, allowed_origins, "
             "require_origin, deflate, deflate_min_bytes, park_ms, park_max_messages, "
             "park_max_bytes, pools, gears_dir, gear_config, "
             "lua_memory_limit_mb, lua_callback_timeout_ms, cluster, tls)",
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
    cr_expect(strstr(help, "RAM / 4 (") != NULL);
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
    cr_expect_eq(n, 31);
    /* Every listed key is one the loader knows ([1] is no key's value). */
    for (size_t i = 0; i < n; i++) {
        char text[128], path[64], err[512];
        orr_config c;
        orr_config_defaults(&c);
        snprintf(text, sizeof text, "{\"%s\": [1]}", names[i]);
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
    c.workers = d.workers; /* the defaults that depend on the machine */
    c.max_buffered_bytes = d.max_buffered_bytes;
    /* But for one pool, which shows how to set an Origin allowlist. */
    cr_assert_eq(c.n_pools, 1);
    cr_expect_str_eq(c.pools[0].name, "gear:chat");
    cr_expect_str_eq(c.pools[0].allowed_origins, "http://localhost:8080\nhttp://127.0.0.1:8080");
    cr_expect_eq(c.pools[0].ws_max_connections, d.ws_max_connections);
    /* And turns parking on for the chat's direct messages. */
    cr_expect_eq(c.pools[0].park_ms, 30000);
    cr_expect_eq(c.pools[0].park_max_messages, d.park_max_messages);
    orr_config shown = c;
    shown.pools = NULL;
    shown.n_pools = 0;
    cr_expect(same_config(&shown, &d), "a value in %s is not its default", file);

    json_t *root = json_load_file(file, 0, NULL);
    cr_assert_not_null(root);
    char *help = help_text();
    char names[32][64];
    size_t n = help_keys(help, names);
    /* Every key but api_token, cluster, gears_dir, allowed_origins and tls:
     * a secret has no place in an example, and neither "" (api_token's and
     * gears_dir's default: the binary's own), "no cluster", "no list" nor
     * "plain TCP" is a value a file may give. */
    static const char *const absent[] = {"api_token", "cluster", "gears_dir", "allowed_origins",
                                         "tls"};
    for (size_t i = 0; i < n; i++) {
        bool listed = true;
        for (size_t k = 0; k < (sizeof absent / sizeof absent[0]); k++)
            if (strcmp(names[i], absent[k]) == 0) listed = false;
        if (listed)
            cr_expect_not_null(json_object_get(root, names[i]), "%s lacks %s", file, names[i]);
    }
    for (size_t k = 0; k < (sizeof absent / sizeof absent[0]); k++)
        cr_expect_null(json_object_get(root, absent[k]), "%s", absent[k]);
    cr_expect_eq(json_object_size(root), n - (sizeof absent / sizeof absent[0]));
    free(help);
    json_decref(root);
    orr_config_free(&c);
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

/* ---- api_token ----------------------------------------------------------- */

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
