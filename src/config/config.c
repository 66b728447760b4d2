/*
 * The config file: one table of keys drives loading, checking and --help, so
 * the three never disagree. A key knows its field (offset and size in the
 * struct its table describes), how to load it and how to show its default.
 *
 * A nested object (such as the entries of `pools`, or `cluster`, loaded in
 * config_nested.c) is a key whose load function pushes its name on
 * ctx->path and calls orr__config_load_object() with a table of its own over
 * a struct of its own; errors inside it then name the dotted path and the
 * position of that nested key. Its table is also the key's `sub`, so that
 * --help lists it under the key, with the defaults its `sub_defaults` gives.
 *
 * This file holds the messages, the plain keys and their table, loading a
 * file and --help.
 */
#include "config/config.h"

#include "common/err.h"
#include "config/config_internal.h"
#include "config/jsonpos.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bigger than any sane config, small enough to read whole. */
#define MAX_FILE_BYTES ((size_t)16 << 20)

/* Integer fields are written through their size; `workers` is an int. */
_Static_assert(sizeof(int) == sizeof(uint32_t), "int fields are stored as 32 bits");

/* ---- messages ------------------------------------------------------------ */

/* Copies s into buf with control characters replaced, so that a key cannot
 * break the message line. */
static void append_clean(char *buf, size_t n, size_t *at, const char *s) {
    for (; *s && *at + 1 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        buf[(*at)++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    buf[*at] = '\0';
}

static void dotted(char *buf, size_t n, const char *const *path, size_t depth) {
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < depth; i++) {
        if (i) append_clean(buf, n, &at, ".");
        append_clean(buf, n, &at, path[i]);
    }
}

/* A value as written in JSON, cut short if long: for "got ..." in messages.
 * (json_dumpb writes nothing of a piece that does not fit, so the value is
 * dumped whole and then cut; this runs only on the way to an error.) */
const char *orr__config_got(const json_t *v, char *buf, size_t n) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!s) return "a value";
    size_t len = strlen(s);
    if (len > n - 1) {
        len = n - 1;
        memcpy(s + len - 3, "...", 3);
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    free(s);
    return buf;
}

/* The path down to key, and key's position (value or key): 0, or -1 when
 * the walk cannot find it. */
static int locate(orr__config_ctx *ctx, const char *key, int at_value, char *name, size_t n,
                  orr__jsonpos *p) {
    const char *path[ORR__JSONPOS_MAX_PATH + 1];
    orr__jsonpos kpos, vpos;
    memcpy(path, ctx->path, ctx->depth * sizeof *path);
    path[ctx->depth] = key;
    dotted(name, n, path, ctx->depth + 1);
    if (orr__jsonpos_find(ctx->text, ctx->len, path, ctx->depth + 1, &kpos, &vpos) != 0) return -1;
    *p = at_value ? vpos : kpos;
    return 0;
}

static int vfail_at(orr__config_ctx *ctx, const char *key, int at_value, const char *fmt,
                    va_list ap) {
    char name[512], why[768];
    orr__jsonpos p;
    vsnprintf(why, sizeof why, fmt, ap);
    if (locate(ctx, key, at_value, name, sizeof name, &p) == 0)
        snprintf(ctx->err, ctx->errlen, "%s:%u:%u: %s: %s", ctx->file, p.line, p.col, name, why);
    else
        snprintf(ctx->err, ctx->errlen, "%s: %s: %s", ctx->file, name, why);
    return -1;
}

void orr__config_where(orr__config_ctx *ctx, const char *key, char *buf, size_t n) {
    char name[512];
    orr__jsonpos p;
    if (locate(ctx, key, 1, name, sizeof name, &p) == 0)
        snprintf(buf, n, "%s:%u:%u", ctx->file, p.line, p.col);
    else
        snprintf(buf, n, "%s", ctx->file);
}

/* Reports "FILE:LINE:COL: path.key: why" at the key or at its value, and
 * returns -1. */
int orr__config_fail_at(orr__config_ctx *ctx, const char *key, int at_value, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail_at(ctx, key, at_value, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- loading one key ----------------------------------------------------- */

int orr__config_load_int(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    char g[64], unit[64] = "";
    if (k->unit) snprintf(unit, sizeof unit, " (%s)", k->unit);
    if (!json_is_integer(v))
        return orr__config_fail_at(ctx, k->name, 1, "expected a %s integer%s, got %s",
                                   k->min > 0 ? "positive" : "non-negative", unit,
                                   orr__config_got(v, g, sizeof g));
    long long x = json_integer_value(v);
    if (x < k->min || x > k->max)
        return orr__config_fail_at(ctx, k->name, 1, "must be from %lld to %lld%s, got %lld", k->min,
                                   k->max, unit, x);
    if (k->size == sizeof(uint64_t)) {
        uint64_t u = (uint64_t)x;
        memcpy(orr__config_field(base, k), &u, sizeof u);
    } else {
        uint32_t u = (uint32_t)x;
        memcpy(orr__config_field(base, k), &u, sizeof u);
    }
    return 0;
}

void orr__config_show_int(const orr__config_key *k, const void *base, char *buf, size_t n) {
    if (k->size == sizeof(uint64_t)) {
        uint64_t u;
        memcpy(&u, orr__config_cfield(base, k), sizeof u);
        snprintf(buf, n, "%llu", (unsigned long long)u);
    } else {
        uint32_t u;
        memcpy(&u, orr__config_cfield(base, k), sizeof u);
        snprintf(buf, n, "%lu", (unsigned long)u);
    }
}

static int load_listen(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    orr_config *c = base;
    char g[80], why[128];
    if (!json_is_string(v))
        return orr__config_fail_at(ctx, k->name, 1, "expected a \"HOST:PORT\" string, got %s",
                                   orr__config_got(v, g, sizeof g));
    if (orr_config_parse_listen(json_string_value(v), c->listen_host, sizeof c->listen_host,
                                &c->listen_port, why, sizeof why) < 0)
        return orr__config_fail_at(ctx, k->name, 1, "%s, got %s", why,
                                   orr__config_got(v, g, sizeof g));
    return 0;
}

static void show_listen(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const orr_config *c = base;
    int v6 = strchr(c->listen_host, ':') != NULL;
    snprintf(buf, n, "\"%s%s%s:%u\"", v6 ? "[" : "", c->listen_host, v6 ? "]" : "",
             (unsigned)c->listen_port);
}

/* A host name, stored in lower case (host names are case-insensitive). */
static int load_hostname(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    char g[80];
    if (!json_is_string(v))
        return orr__config_fail_at(ctx, k->name, 1, "expected a host name string, got %s",
                                   orr__config_got(v, g, sizeof g));
    const char *s = json_string_value(v);
    const char *why = orr__config_check_hostname(s);
    if (why)
        return orr__config_fail_at(ctx, k->name, 1, "%s, got %s", why,
                                   orr__config_got(v, g, sizeof g));
    size_t len = strlen(s);
    if (len >= k->size)
        return orr__config_fail_at(ctx, k->name, 1, "longer than %zu bytes, got %s", k->size - 1,
                                   orr__config_got(v, g, sizeof g));
    char *out = orr__config_field(base, k);
    for (size_t i = 0; i <= len; i++)
        out[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    return 0;
}

/* A file system path: 1 to size - 1 bytes, no NUL. */
static int load_path(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    char g[80];
    if (!json_is_string(v) || json_string_length(v) == 0)
        return orr__config_fail_at(ctx, k->name, 1, "expected a non-empty path string, got %s",
                                   orr__config_got(v, g, sizeof g));
    size_t len = json_string_length(v);
    if (len >= k->size || strlen(json_string_value(v)) != len)
        return orr__config_fail_at(ctx, k->name, 1, "a path of at most %zu bytes (and no NUL)",
                                   k->size - 1);
    memcpy(orr__config_field(base, k), json_string_value(v), len + 1);
    return 0;
}

static void show_string(const orr__config_key *k, const void *base, char *buf, size_t n) {
    snprintf(buf, n, "\"%s\"", (const char *)orr__config_cfield(base, k));
}

/* "a", "b" for messages, a|b for --help. */
void orr__config_choices_text(const orr__config_key *k, int for_help, char *buf, size_t n) {
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; k->choices[i]; i++) {
        const char *sep = i == 0 ? "" : for_help ? "|" : ", ";
        int w = for_help ? snprintf(buf + at, n - at, "%s%s", sep, k->choices[i])
                         : snprintf(buf + at, n - at, "%s\"%s\"", sep, k->choices[i]);
        if (w < 0 || (size_t)w >= n - at) break;
        at += (size_t)w;
    }
}

int orr__config_load_choice(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    char g[64], list[128];
    if (json_is_string(v)) {
        for (size_t i = 0; k->choices[i]; i++) {
            if (strcmp(json_string_value(v), k->choices[i]) == 0) {
                memcpy(orr__config_field(base, k), &k->choice_values[i], sizeof(int));
                return 0;
            }
        }
    }
    orr__config_choices_text(k, 0, list, sizeof list);
    return orr__config_fail_at(ctx, k->name, 1, "expected one of %s, got %s", list,
                               orr__config_got(v, g, sizeof g));
}

void orr__config_show_choice(const orr__config_key *k, const void *base, char *buf, size_t n) {
    int value;
    memcpy(&value, orr__config_cfield(base, k), sizeof value);
    for (size_t i = 0; k->choices[i]; i++) {
        if (k->choice_values[i] == value) {
            snprintf(buf, n, "\"%s\"", k->choices[i]);
            return;
        }
    }
    snprintf(buf, n, "%d", value);
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    default:
        return "an object";
    }
}

/* A secret: never echoed in a message (a near-miss token is still mostly the
 * token), only where and why it is wrong. */
static int load_token(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    size_t max = k->size - 1;
    if (!json_is_string(v))
        return orr__config_fail_at(ctx, k->name, 1,
                                   "expected a string of 1 to %zu visible ASCII characters, got %s",
                                   max, type_name(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return orr__config_fail_at(
            ctx, k->name, 1,
            "empty; leave the key out to keep the push API off, or give 1 to %zu "
            "visible ASCII characters",
            max);
    if (len > max)
        return orr__config_fail_at(ctx, k->name, 1, "%zu bytes long, at most %zu (value not shown)",
                                   len, max);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x21 || ch > 0x7e)
            return orr__config_fail_at(
                ctx, k->name, 1,
                "byte %zu is 0x%02x, not a visible ASCII character 0x21..0x7e (value "
                "not shown)",
                i + 1, ch);
    }
    memcpy(orr__config_field(base, k), s, len + 1);
    return 0;
}

/* Only ever shows defaults, but a set token would not be printed either. */
static void show_token(const orr__config_key *k, const void *base, char *buf, size_t n) {
    snprintf(buf, n, "%s", *(const char *)orr__config_cfield(base, k) ? "(set)" : "\"\"");
}

/* ---- the keys ------------------------------------------------------------ */

#define INT_KEY(fld, lo, hi, unit_, meaning_)                                                      \
    {                                                                                              \
        .name = #fld, .meaning = meaning_, .offset = offsetof(orr_config, fld),                    \
        .size = sizeof(((orr_config *)0)->fld), .load = orr__config_load_int,                      \
        .show = orr__config_show_int, .min = lo, .max = hi, .unit = unit_                          \
    }

const char *const orr__config_onoff_names[] = {"off", "on", NULL};
const int orr__config_onoff_values[] = {0, 1};
static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};
static const int log_level_values[] = {ORR_LOG_DEBUG, ORR_LOG_INFO, ORR_LOG_WARN, ORR_LOG_ERROR};

static const orr__config_key config_keys[] = {
    {.name = "listen",
     .type = "\"HOST:PORT\"",
     .meaning = "where to accept connections: IPv4, host name or [IPv6]; port 0 is any free one",
     .load = load_listen,
     .show = show_listen},
    {.name = "workers",
     .meaning = "worker threads, each with its own listener and connections",
     .offset = offsetof(orr_config, workers),
     .size = sizeof(int),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 1,
     .max = 256,
     .unit = "threads",
     .default_note = "online cores"},
    {.name = "base_domain",
     .type = "host name",
     .meaning = "gear G is also served at Host G.<base_domain>, without the /G prefix",
     .offset = offsetof(orr_config, base_domain),
     .size = sizeof(((orr_config *)0)->base_domain),
     .load = load_hostname,
     .show = show_string},
    INT_KEY(idle_timeout_ms, 1, 86400000, "milliseconds",
            "close (1000) a connection that sent nothing for this long"),
    INT_KEY(ping_interval_ms, 0, 86400000, "milliseconds",
            "ping a connection that sent nothing for this long (less than idle_timeout_ms); "
            "0: never"),
    INT_KEY(max_message_bytes, 1, 2147483648LL, "bytes",
            "largest message accepted; a bigger one is closed with 1009"),
    INT_KEY(max_fragments, 1, 100000000, "frames",
            "most frames one message may have (its continuations); more is closed with 1009"),
    INT_KEY(drain_ms, 0, 3600000, "milliseconds",
            "on SIGTERM/SIGINT, the close frames (1001) are spread over this long"),
    INT_KEY(close_timeout_ms, 1, 600000, "milliseconds",
            "how long to wait for the client's close frame after sending one"),
    INT_KEY(handshake_timeout_ms, 1, 600000, "milliseconds",
            "time allowed to receive a request head (408 after)"),
    {.name = "log_level",
     .meaning = "the lowest level logged",
     .offset = offsetof(orr_config, log_level),
     .size = sizeof(int),
     .load = orr__config_load_choice,
     .show = orr__config_show_choice,
     .choices = log_level_names,
     .choice_values = log_level_values},
    INT_KEY(ws_max_connections, 0, 10000000, "connections",
            "websocket connections at once of a pool not in \"pools\", on one node; 0 rejects "
            "everyone"),
    INT_KEY(max_outbound_bytes, 1024, 2147483648LL, "bytes",
            "a connection whose unsent output passes this is closed with 1008 (slow consumer)"),
    {.name = "max_buffered_bytes",
     .meaning = "memory all connections may make this node hold (reassembly, unsent output); "
                "near it: refused 1013, largest backlogs 1008",
     .offset = offsetof(orr_config, max_buffered_bytes),
     .size = sizeof(uint64_t),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 1048576,
     .max = 1LL << 40,
     .unit = "bytes",
     .default_note = "RAM / 4"},
    INT_KEY(
        max_pools, 1, 1000000, "pools",
        "executor pools alive at once on one node (fixed at start); listed and gear pools stay"),
    INT_KEY(retry_after_s, 0, 86400, "seconds",
            "the Retry-After every 503 carries (unless a gear's own answer has one)"),
    {.name = "api_token",
     .type = "token string",
     .meaning = "the push API's token, 1 to 512 visible ASCII characters; unset: push API off",
     .offset = offsetof(orr_config, api_token),
     .size = sizeof(((orr_config *)0)->api_token),
     .load = load_token,
     .show = show_token},
    {.name = "allowed_origins",
     .type = "[origin, ...]",
     .meaning = "Origins a handshake may come from (scheme://host[:port], *.example.com); "
                "others: 403",
     .offset = offsetof(orr_config, allowed_origins),
     .size = sizeof(char *),
     .load = orr__config_load_origins,
     .show = orr__config_show_origins},
    {.name = "require_origin",
     .type = "true|false",
     .meaning = "refuse (403) a handshake without Origin (a client that is not a browser)",
     .offset = offsetof(orr_config, require_origin),
     .size = sizeof(bool),
     .load = orr__config_load_flag,
     .show = orr__config_show_flag},
    {.name = "deflate",
     .meaning = "permessage-deflate (RFC 7692) with clients that offer it, no context takeover",
     .offset = offsetof(orr_config, deflate),
     .size = sizeof(int),
     .load = orr__config_load_choice,
     .show = orr__config_show_choice,
     .choices = orr__config_onoff_names,
     .choice_values = orr__config_onoff_values},
    INT_KEY(deflate_min_bytes, 0, 2147483648LL, "bytes",
            "a message shorter than this goes out uncompressed"),
    INT_KEY(park_ms, 0, 86400000, "milliseconds",
            "a Unique name whose connection ends keeps its messages this long for its next "
            "holder; 0: off"),
    INT_KEY(park_max_messages, 1, 1000000, "messages",
            "messages a parked name keeps; past it the oldest go (counted dropped)"),
    INT_KEY(park_max_bytes, 1, 2147483648LL, "bytes",
            "payload bytes a parked name keeps; past it the oldest go (counted dropped)"),
    {.name = "pools",
     .type = "{\"<pool>\": {...}}",
     .meaning = "limits per executor pool; <pool> is gear:<gear> or tenant:<id>",
     .load = orr__config_load_pools,
     .show = orr__config_show_pools,
     .sub = &orr__config_pool_table,
     .sub_defaults = orr__config_pool_defaults},
    {.name = "gears_dir",
     .type = "directory",
     .meaning = "every *.so file there is a gear, loaded at start and on reload",
     .offset = offsetof(orr_config, gears_dir),
     .size = sizeof(((orr_config *)0)->gears_dir),
     .load = load_path,
     .show = show_string,
     .default_note = "the build's"},
    {.name = "gear_config",
     .type = "{\"<gear>\": {...}}",
     .meaning = "each gear's own config, handed to its on_load as JSON text",
     .load = orr__config_load_gear_config,
     .show = orr__config_show_gear_config},
    INT_KEY(lua_memory_limit_mb, 1, 65536, "MiB",
            "memory each Lua gear may hold on each worker; the callback that passes it fails"),
    INT_KEY(lua_callback_timeout_ms, 1, 600000, "milliseconds",
            "longest a Lua gear's callback may run; one that runs longer fails"),
    {.name = "cluster",
     .type = "{\"redis\": URL, ...}",
     .meaning = "share the registry with other nodes through Redis; absent: a single node",
     .load = orr__config_load_cluster,
     .show = orr__config_show_cluster,
     .sub = &orr__config_cluster_table,
     .sub_defaults = orr__config_cluster_defaults},
    {.name = "tls",
     .type = "{\"cert\": PATH, \"key\": PATH}",
     .meaning = "serve TLS 1.2/1.3 (wss://, https://) with this PEM certificate and key; "
                "SIGHUP reads both again; absent: plain TCP",
     .load = orr__config_load_tls,
     .show = orr__config_show_tls,
     .sub = &orr__config_tls_table,
     .sub_defaults = orr__config_tls_defaults},
};

/* A quarter of physical memory (1 GiB if unknown), at least the key's minimum. */
static uint64_t default_buffered_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    uint64_t q = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 4 : (uint64_t)1 << 30;
    return q < 1048576 ? 1048576 : q;
}

void orr_config_defaults(orr_config *c) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *c = (orr_config){
        .listen_host = "127.0.0.1",
        .listen_port = 8080,
        .workers = cores < 1     ? 1
                   : cores > 256 ? 256
                                 : (int)cores,
        .base_domain = "localhost",
        .idle_timeout_ms = 60000,
        .ping_interval_ms = 0,
        .max_message_bytes = 5000000,
        .max_fragments = 100000,
        .drain_ms = 5000,
        .close_timeout_ms = 5000,
        .handshake_timeout_ms = 10000,
        .log_level = ORR_LOG_INFO,
        .ws_max_connections = 100,
        .max_outbound_bytes = 1048576,
        .max_buffered_bytes = default_buffered_bytes(),
        .max_pools = 4096,
        .retry_after_s = 5,
        .api_token = "",
        .deflate = 1,
        .deflate_min_bytes = 1024,
        .lua_memory_limit_mb = 256,
        .lua_callback_timeout_ms = 100,
        .park_ms = 0,
        .park_max_messages = 256,
        .park_max_bytes = 262144,
        .cluster = ORR__CONFIG_CLUSTER_DEFAULTS,
    };
}

/* A pool's parking keys it does not give are the top-level ones. */
static void fill_park(orr_pool_config *p, const orr_config *c) {
    if (p->park_ms == ORR__CONFIG_POOL_LIMIT_UNSET) p->park_ms = c->park_ms;
    if (p->park_max_messages == ORR__CONFIG_POOL_LIMIT_UNSET)
        p->park_max_messages = c->park_max_messages;
    if (p->park_max_bytes == ORR__CONFIG_POOL_LIMIT_UNSET) p->park_max_bytes = c->park_max_bytes;
}

/* A pools array and the lists it owns. */
static void pools_free(orr_pool_config *pools, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(pools[i].allowed_origins);
    free(pools);
}

void orr_config_free(orr_config *c) {
    free(c->gear_config);
    c->gear_config = NULL;
    free(c->allowed_origins);
    c->allowed_origins = NULL;
    pools_free(c->pools, c->n_pools);
    c->pools = NULL;
    c->n_pools = 0;
}

int orr_config_copy(orr_config *dst, const orr_config *src) {
    if (dst == src) return 0;
    *dst = *src; /* everything but the pools and the strings is plain data, cluster included */
    if (src->n_pools) {
        dst->pools = orr_xmalloc(src->n_pools * sizeof *src->pools);
        memcpy(dst->pools, src->pools, src->n_pools * sizeof *src->pools);
        for (size_t i = 0; i < src->n_pools; i++)
            if (src->pools[i].allowed_origins)
                dst->pools[i].allowed_origins = orr_xstrdup(src->pools[i].allowed_origins);
    } else {
        dst->pools = NULL;
    }
    dst->gear_config = src->gear_config ? orr_xstrdup(src->gear_config) : NULL;
    dst->allowed_origins = src->allowed_origins ? orr_xstrdup(src->allowed_origins) : NULL;
    return 0;
}

/* ---- loading a file ------------------------------------------------------ */

static int unknown_key(orr__config_ctx *ctx, const orr__config_key *keys, size_t n,
                       const char *name) {
    char known[1024];
    size_t at = 0;
    known[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i) append_clean(known, sizeof known, &at, ", ");
        append_clean(known, sizeof known, &at, keys[i].name);
    }
    return orr__config_fail_at(ctx, name, 0, "unknown key (known: %s)", known);
}

/* Loads the members of obj into the struct at base, in file order, stopping
 * at the first error. */
int orr__config_load_object(orr__config_ctx *ctx, const orr__config_key *keys, size_t n,
                            json_t *obj, void *base) {
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v) {
        const orr__config_key *k = NULL;
        for (size_t i = 0; i < n && !k; i++)
            if (strcmp(keys[i].name, name) == 0) k = &keys[i];
        if (!k) return unknown_key(ctx, keys, n, name);
        if (k->load(ctx, k, v, base) < 0) return -1;
    }
    return 0;
}

static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *buf = orr_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap > MAX_FILE_BYTES) {
                snprintf(err, errlen, "%s: cannot read: larger than %zu MiB", path,
                         MAX_FILE_BYTES >> 20);
                break;
            }
            cap = cap * 2 > MAX_FILE_BYTES ? MAX_FILE_BYTES + 1 : cap * 2;
            buf = orr_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
        if (r == 0) {
            close(fd);
            *out = buf;
            *outlen = len;
            return 0;
        }
        len += (size_t)r;
    }
    close(fd);
    free(buf);
    return -1;
}

/* The member whose key ends at `key_end`, or whose value is the last to
 * start at or before `value_at`: its dotted path and positions. */
typedef struct member_arg {
    size_t key_end, value_at;
    char path[ORR__JSONPOS_MAX_PATH][256];
    const char *segs[ORR__JSONPOS_MAX_PATH];
    size_t depth;
    orr__jsonpos key, value;
} member_arg;

static void keep_member(member_arg *a, const orr__jsonpos_member *m) {
    for (size_t i = 0; i < m->depth; i++) {
        orr__jsonpos_key_decode(m->path[i], a->path[i], sizeof a->path[i]);
        a->segs[i] = a->path[i];
    }
    a->depth = m->depth;
    a->key = m->key;
    a->value = m->value;
}

static int member_by_key_end(const orr__jsonpos_member *m, void *arg) {
    member_arg *a = arg;
    if (m->key_end != a->key_end) return 0;
    keep_member(a, m);
    return 1;
}

static int member_by_value(const orr__jsonpos_member *m, void *arg) {
    member_arg *a = arg;
    if (m->value.offset > a->value_at) return 1;
    keep_member(a, m);
    return 0;
}

/* jansson rejected the text: say where, naming the key when we can tell. */
static int syntax_error(const char *file, const char *text, size_t len, const json_error_t *je,
                        char *err, size_t errlen) {
    member_arg *a = orr_xcalloc(1, sizeof *a);
    char name[512];
    size_t pos = (size_t)je->position;
    int code = json_error_code(je);

    if (code == json_error_duplicate_key) {
        a->key_end = pos;
        if (orr__jsonpos_walk(text, len, member_by_key_end, a) == 1) {
            orr__jsonpos first;
            dotted(name, sizeof name, a->segs, a->depth);
            if (orr__jsonpos_find(text, len, a->segs, a->depth, &first, NULL) == 0 &&
                first.offset != a->key.offset)
                snprintf(err, errlen, "%s:%u:%u: %s: duplicate key (first at %u:%u)", file,
                         a->key.line, a->key.col, name, first.line, first.col);
            else
                snprintf(err, errlen, "%s:%u:%u: %s: duplicate key", file, a->key.line, a->key.col,
                         name);
            free(a);
            return -1;
        }
    } else if (code == json_error_numeric_overflow && pos > 0) {
        /* A number too big for jansson is a bad value of the key it belongs to. */
        a->value_at = pos - 1;
        orr__jsonpos_walk(text, len, member_by_value, a);
        if (a->depth > 0) {
            dotted(name, sizeof name, a->segs, a->depth);
            snprintf(err, errlen, "%s:%u:%u: %s: %s", file, a->value.line, a->value.col, name,
                     je->text);
            free(a);
            return -1;
        }
    }
    free(a);
    /* jansson's position counts the bytes it consumed: the last one is where
     * it stopped. */
    orr__jsonpos p = orr__jsonpos_at(text, len, pos > 0 ? pos - 1 : 0);
    snprintf(err, errlen, "%s:%u:%u: (json): %s", file, p.line, p.col, je->text);
    return -1;
}

/* The relation between two keys, checked once both are known: a ping must
 * go out before the idle timeout could close the connection. Said at
 * ping_interval_ms when the file gives it, else at idle_timeout_ms. */
static int check_ping_interval(orr__config_ctx *ctx, json_t *root, const orr_config *c) {
    if (c->ping_interval_ms == 0 || c->ping_interval_ms < c->idle_timeout_ms) return 0;
    if (json_object_get(root, "ping_interval_ms"))
        return orr__config_fail_at(ctx, "ping_interval_ms", 1,
                                   "must be less than idle_timeout_ms (%lu), got %lu: the "
                                   "connection would be closed before its ping; 0 turns pings off",
                                   (unsigned long)c->idle_timeout_ms,
                                   (unsigned long)c->ping_interval_ms);
    return orr__config_fail_at(
        ctx, "idle_timeout_ms", 1, "must be greater than ping_interval_ms (%lu), got %lu",
        (unsigned long)c->ping_interval_ms, (unsigned long)c->idle_timeout_ms);
}

int orr_config_load(const char *path, orr_config *c, char *err, size_t errlen) {
    char *text;
    size_t len;
    if (read_file(path, &text, &len, err, errlen) < 0) return -1;

    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    int rc = -1;
    if (!root) {
        syntax_error(path, text, len, &je, err, errlen);
    } else if (!json_is_object(root)) {
        size_t at = 0;
        while (at < len && strchr(" \t\r\n", text[at]) && text[at])
            at++;
        orr__jsonpos p = orr__jsonpos_at(text, len, at);
        snprintf(err, errlen, "%s:%u:%u: (json): the top level must be an object {...}, got %s",
                 path, p.line, p.col, type_name(root));
    } else {
        /* Loaded into a copy so that a bad file leaves *c as it was (a
         * reload keeps the running config). */
        orr_config next = *c;
        orr__config_ctx ctx = {
            .file = path, .text = text, .len = len, .err = err, .errlen = errlen};
        rc = orr__config_load_object(&ctx, config_keys, ORR_ARRAY_LEN(config_keys), root, &next);
        if (rc == 0) rc = check_ping_interval(&ctx, root, &next);
        /* next.pools differs from c->pools only if the file had "pools". */
        if (rc == 0 && next.pools != c->pools) {
            /* A pool without its own limit takes the top-level one, wherever
             * that stood in the file. */
            for (size_t i = 0; i < next.n_pools; i++)
                if (next.pools[i].ws_max_connections == ORR__CONFIG_POOL_LIMIT_UNSET)
                    next.pools[i].ws_max_connections = next.ws_max_connections;
            for (size_t i = 0; i < next.n_pools; i++) {
                if (next.pools[i].deflate < 0) next.pools[i].deflate = next.deflate;
                if (next.pools[i].deflate_min_bytes == ORR__CONFIG_POOL_LIMIT_UNSET)
                    next.pools[i].deflate_min_bytes = next.deflate_min_bytes;
                fill_park(&next.pools[i], &next);
            }
            pools_free(c->pools, c->n_pools);
        } else if (rc < 0 && next.pools != c->pools) {
            pools_free(next.pools, next.n_pools);
        }
        if (rc < 0 && next.allowed_origins != c->allowed_origins) free(next.allowed_origins);
        if (rc == 0) *c = next;
    }
    json_decref(root);
    free(text);
    return rc;
}

void orr_config_print_keys(FILE *out) {
    orr__config_print_table(out, config_keys, ORR_ARRAY_LEN(config_keys));
}
