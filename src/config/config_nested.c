/*
 * The object keys of the config file: "pools", the limits of each executor
 * pool by name, and "cluster", the Redis that the nodes of a cluster share.
 * Each loads its entries through a key table of its own over a struct of its
 * own (see config.c), with its name pushed on the path that errors name.
 */
#include "config/config.h"

#include "common/err.h"
#include "config/config_internal.h"
#include "http/pool_name.h"
#include "http/router.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- pools --------------------------------------------------------------- */

static const orr__config_key pool_keys[] = {
    {.name = "ws_max_connections",
     .meaning = "websocket connections of this pool at once on one node; 0 rejects everyone",
     .offset = offsetof(orr_pool_config, ws_max_connections),
     .size = sizeof(uint32_t),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 0,
     .max = 10000000,
     .unit = "connections",
     .default_note = "top-level"},
    {.name = "allowed_origins",
     .type = "[origin, ...]",
     .meaning = "the Origins this pool's handshakes may come from (as at the top level)",
     .offset = offsetof(orr_pool_config, allowed_origins),
     .size = sizeof(char *),
     .load = orr__config_load_origins,
     .show = orr__config_show_origins,
     .default_note = "top-level"},
    {.name = "require_origin",
     .type = "true|false",
     .meaning = "refuse (403) this pool's handshakes without Origin",
     .offset = offsetof(orr_pool_config, require_origin),
     .size = sizeof(int8_t),
     .load = orr__config_load_flag,
     .show = orr__config_show_flag,
     .min = -1, /* a tri-state: -1 is the top-level value */
     .default_note = "top-level"},
    {.name = "deflate",
     .meaning = "permessage-deflate for this pool's connections",
     .offset = offsetof(orr_pool_config, deflate),
     .size = sizeof(int),
     .load = orr__config_load_choice,
     .show = orr__config_show_choice,
     .choices = orr__config_onoff_names,
     .choice_values = orr__config_onoff_values,
     .default_note = "top-level"},
    {.name = "deflate_min_bytes",
     .meaning = "this pool's messages shorter than this go out uncompressed",
     .offset = offsetof(orr_pool_config, deflate_min_bytes),
     .size = sizeof(uint32_t),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 0,
     .max = 2147483648LL,
     .unit = "bytes",
     .default_note = "top-level"},
    {.name = "park_ms",
     .meaning = "how long this pool's Unique names keep their messages once their connection "
                "ends; 0: not kept",
     .offset = offsetof(orr_pool_config, park_ms),
     .size = sizeof(uint32_t),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 0,
     .max = 86400000,
     .unit = "milliseconds",
     .default_note = "top-level"},
    {.name = "park_max_messages",
     .meaning = "messages one parked name of this pool keeps (the oldest go past it)",
     .offset = offsetof(orr_pool_config, park_max_messages),
     .size = sizeof(uint32_t),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 1,
     .max = 1000000,
     .unit = "messages",
     .default_note = "top-level"},
    {.name = "park_max_bytes",
     .meaning = "payload bytes one parked name of this pool keeps (the oldest go past it)",
     .offset = offsetof(orr_pool_config, park_max_bytes),
     .size = sizeof(uint32_t),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 1,
     .max = 2147483648LL,
     .unit = "bytes",
     .default_note = "top-level"},
};

const orr__config_table orr__config_pool_table = {pool_keys, ORR_ARRAY_LEN(pool_keys)};

static int load_pool(orr__config_ctx *ctx, const char *name, json_t *v, orr_pool_config *p) {
    char g[80];
    size_t len = strlen(name);
    if (orr_pool_name_check(name, len) < 0)
        return orr__config_fail_at(
            ctx, name, 0,
            "not a pool name: expected gear:<gear> (a gear name: [a-z][a-z0-9_]*) or "
            "tenant:<id> (1 to 64 of A-Z a-z 0-9 _ . -)");
    if (!json_is_object(v))
        return orr__config_fail_at(ctx, name, 1,
                                   "expected an object {\"ws_max_connections\": N}, got %s",
                                   orr__config_got(v, g, sizeof g));
    _Static_assert(sizeof p->name > 7 + 64, "a pool name fits");
    memcpy(p->name, name, len + 1);
    p->ws_max_connections = ORR__CONFIG_POOL_LIMIT_UNSET;
    p->allowed_origins = NULL;
    p->require_origin = -1;
    p->deflate = -1;
    p->deflate_min_bytes = ORR__CONFIG_POOL_LIMIT_UNSET;
    p->park_ms = p->park_max_messages = p->park_max_bytes = ORR__CONFIG_POOL_LIMIT_UNSET;
    ctx->path[ctx->depth++] = name;
    int rc = orr__config_load_object(ctx, pool_keys, ORR_ARRAY_LEN(pool_keys), v, p);
    ctx->depth--;
    return rc;
}

static int pool_cmp(const void *a, const void *b) {
    return strcmp(((const orr_pool_config *)a)->name, ((const orr_pool_config *)b)->name);
}

/* Builds a new array and points c->pools at it: the array c->pools had is
 * the caller's, freed (or kept, on failure) by orr_config_load. */
int orr__config_load_pools(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    orr_config *c = base;
    char g[80];
    if (!json_is_object(v))
        return orr__config_fail_at(ctx, k->name, 1,
                                   "expected an object {\"<pool>\": {...}}, got %s",
                                   orr__config_got(v, g, sizeof g));
    size_t n = json_object_size(v), i = 0;
    orr_pool_config *pools = n ? orr_xcalloc(n, sizeof *pools) : NULL;
    const char *name;
    json_t *pv;
    ctx->path[ctx->depth++] = k->name;
    json_object_foreach(v, name, pv) {
        if (load_pool(ctx, name, pv, &pools[i]) < 0) {
            ctx->depth--;
            for (size_t j = 0; j <= i; j++)
                free(pools[j].allowed_origins);
            free(pools);
            return -1;
        }
        i++;
    }
    ctx->depth--;
    if (n) qsort(pools, n, sizeof *pools, pool_cmp);
    c->pools = pools;
    c->n_pools = n;
    return 0;
}

void orr__config_show_pools(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const orr_config *c = base;
    snprintf(buf, n, "%s", c->n_pools ? "{...}" : "{}");
}

/* The entries of a pool default to the top-level limit. */
const void *orr__config_pool_defaults(const orr_config *d, orr__config_sub_scratch *s) {
    s->pool = (orr_pool_config){.name = "",
                                .ws_max_connections = d->ws_max_connections,
                                .allowed_origins = d->allowed_origins,
                                .require_origin = d->require_origin,
                                .deflate = d->deflate,
                                .deflate_min_bytes = d->deflate_min_bytes,
                                .park_ms = d->park_ms,
                                .park_max_messages = d->park_max_messages,
                                .park_max_bytes = d->park_max_bytes};
    return &s->pool;
}

const orr_pool_config *orr_config_pool_find(const orr_config *c, const char *pool) {
    if (!pool || !c->n_pools) return NULL;
    orr_pool_config key;
    size_t len = strlen(pool);
    if (len >= sizeof key.name) return NULL;
    memcpy(key.name, pool, len + 1);
    return bsearch(&key, c->pools, c->n_pools, sizeof *c->pools, pool_cmp);
}

void orr_config_deflate_policy(const orr_config *c, const char *pool, bool *on, uint32_t *min) {
    const orr_pool_config *p = orr_config_pool_find(c, pool);
    *on = (p ? p->deflate : c->deflate) != 0;
    *min = p ? p->deflate_min_bytes : c->deflate_min_bytes;
}

void orr_config_park_policy(const orr_config *c, const char *pool, uint32_t *park_ms,
                            uint32_t *max_messages, uint32_t *max_bytes) {
    const orr_pool_config *p = orr_config_pool_find(c, pool);
    *park_ms = p ? p->park_ms : c->park_ms;
    *max_messages = p ? p->park_max_messages : c->park_max_messages;
    *max_bytes = p ? p->park_max_bytes : c->park_max_bytes;
}

uint32_t orr_config_pool_limit(const orr_config *c, const char *pool) {
    const orr_pool_config *p = orr_config_pool_find(c, pool);
    return p ? p->ws_max_connections : c->ws_max_connections;
}

/* ---- gear_config ---------------------------------------------------------- */

/* {"<gear>": {...}, ...}: each gear's own config, handed to its on_load as
 * JSON text. Kept as the object's text (jansson's own formatting). */
int orr__config_load_gear_config(orr__config_ctx *ctx, const orr__config_key *k, json_t *v,
                                 void *base) {
    orr_config *c = base;
    char g[80];
    if (!json_is_object(v))
        return orr__config_fail_at(ctx, k->name, 1,
                                   "expected an object {\"<gear>\": {...}}, got %s",
                                   orr__config_got(v, g, sizeof g));
    const char *name;
    json_t *gv;
    ctx->path[ctx->depth++] = k->name;
    json_object_foreach(v, name, gv) {
        int rc = 0;
        if (!orr_gear_name_valid(name))
            rc = orr__config_fail_at(ctx, name, 0, "not a gear name: expected [a-z][a-z0-9_]*");
        else if (!json_is_object(gv))
            rc = orr__config_fail_at(ctx, name, 1, "expected the gear's config object, got %s",
                                     orr__config_got(gv, g, sizeof g));
        if (rc < 0) {
            ctx->depth--;
            return rc;
        }
    }
    ctx->depth--;
    free(c->gear_config);
    c->gear_config = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    return c->gear_config ? 0 : orr__config_fail_at(ctx, k->name, 1, "out of memory");
}

void orr__config_show_gear_config(const orr__config_key *k, const void *base, char *buf, size_t n) {
    (void)k;
    const orr_config *c = base;
    snprintf(buf, n, "%s", c->gear_config ? "{...}" : "{}");
}

char *orr_config_gear_json(const char *gear_config, const char *gear, size_t *len) {
    char *out = NULL;
    json_t *all = gear_config ? json_loads(gear_config, 0, NULL) : NULL;
    json_t *one = all ? json_object_get(all, gear) : NULL;
    if (one) out = json_dumps(one, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(all);
    if (!out) out = orr_xstrdup("{}");
    *len = strlen(out);
    return out;
}

/* ---- cluster ------------------------------------------------------------- */

static int load_redis(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    orr_cluster_config *cl = base;
    char g[80], why[160];
    if (!json_is_string(v))
        return orr__config_fail_at(
            ctx, k->name, 1,
            "expected a string \"redis://HOST[:PORT][/DB]\" or \"unix:PATH\", got %s",
            orr__config_got(v, g, sizeof g));
    /* jansson refuses \u0000 (no JSON_ALLOW_NUL): the string is all of its bytes. */
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len >= sizeof cl->redis_url)
        return orr__config_fail_at(ctx, k->name, 1, "longer than %zu bytes, got %s",
                                   sizeof cl->redis_url - 1, orr__config_got(v, g, sizeof g));
    if (orr_redis_addr_parse(s, &cl->redis, why, sizeof why) < 0)
        return orr__config_fail_at(ctx, k->name, 1, "%s, got %s", why,
                                   orr__config_got(v, g, sizeof g));
    memcpy(cl->redis_url, s, len + 1);
    return 0;
}

static void show_required(const orr__config_key *k, const void *base, char *buf, size_t n) {
    snprintf(buf, n, "required");
}

static int node_id_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == ':' || ch == '-';
}

static int load_node_id(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base) {
    orr_cluster_config *cl = base;
    size_t max = sizeof cl->node_id - 1;
    char g[80];
    if (!json_is_string(v))
        return orr__config_fail_at(ctx, k->name, 1,
                                   "expected a string of 1 to %zu of A-Z a-z 0-9 _ . : -, got %s",
                                   max, orr__config_got(v, g, sizeof g));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return orr__config_fail_at(
            ctx, k->name, 1, "empty; leave the key out to let the node pick <hostname>:<port>");
    if (len > max)
        return orr__config_fail_at(ctx, k->name, 1, "%zu bytes long, at most %zu, got %s", len, max,
                                   orr__config_got(v, g, sizeof g));
    for (size_t i = 0; i < len; i++)
        if (!node_id_char(s[i]))
            return orr__config_fail_at(
                ctx, k->name, 1, "byte %zu (0x%02x) is not one of A-Z a-z 0-9 _ . : -, got %s",
                i + 1, (unsigned char)s[i], orr__config_got(v, g, sizeof g));
    memcpy(cl->node_id, s, len + 1);
    return 0;
}

static void show_node_id(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const char *id = orr__config_cfield(base, k);
    if (*id)
        snprintf(buf, n, "\"%s\"", id);
    else
        snprintf(buf, n, "<hostname>:<port>");
}

#define CLUSTER_INT_KEY(fld, lo, hi, meaning_)                                                     \
    {                                                                                              \
        .name = #fld, .meaning = meaning_, .offset = offsetof(orr_cluster_config, fld),            \
        .size = sizeof(((orr_cluster_config *)0)->fld), .load = orr__config_load_int,              \
        .show = orr__config_show_int, .min = lo, .max = hi, .unit = "milliseconds"                 \
    }

static const orr__config_key cluster_keys[] = {
    {.name = "redis",
     .type = "URL",
     .meaning = "redis://HOST[:PORT][/DB] (port 6379, database 0 if left out) or unix:PATH",
     .load = load_redis,
     .show = show_required},
    {.name = "node_id",
     .type = "string",
     .meaning = "this node's name in the cluster, 1 to 64 of A-Z a-z 0-9 _ . : -",
     .offset = offsetof(orr_cluster_config, node_id),
     .size = sizeof(((orr_cluster_config *)0)->node_id),
     .load = load_node_id,
     .show = show_node_id},
    CLUSTER_INT_KEY(heartbeat_ms, 50, 600000, "how often this node refreshes its liveness key"),
    CLUSTER_INT_KEY(node_ttl_ms, 100, 3600000,
                    "a node silent this long is dead: its names and memberships are freed; "
                    "more than heartbeat_ms"),
    {.name = "inbox_max_messages",
     .meaning =
         "messages that may wait in this node's inbox in Redis; sends to it past that answer "
         "not delivered",
     .offset = offsetof(orr_cluster_config, inbox_max_messages),
     .size = sizeof(((orr_cluster_config *)0)->inbox_max_messages),
     .load = orr__config_load_int,
     .show = orr__config_show_int,
     .min = 100,
     .max = 100000000,
     .unit = "messages"},
};

const orr__config_table orr__config_cluster_table = {cluster_keys, ORR_ARRAY_LEN(cluster_keys)};

/* The relation between two keys, checked once both are known. A TTL given
 * in the file is where the mistake is said to be; else the heartbeat that
 * outgrew the default TTL is. */
static int check_cluster_times(orr__config_ctx *ctx, json_t *v, const orr_cluster_config *cl) {
    if (cl->node_ttl_ms > cl->heartbeat_ms) return 0;
    if (json_object_get(v, "node_ttl_ms"))
        return orr__config_fail_at(
            ctx, "node_ttl_ms", 1,
            "must be greater than heartbeat_ms (%lu), got %lu: a node would expire "
            "between two heartbeats",
            (unsigned long)cl->heartbeat_ms, (unsigned long)cl->node_ttl_ms);
    return orr__config_fail_at(
        ctx, "heartbeat_ms", 1,
        "must be less than node_ttl_ms (%lu, its default), got %lu: a node would "
        "expire between two heartbeats; raise node_ttl_ms too",
        (unsigned long)cl->node_ttl_ms, (unsigned long)cl->heartbeat_ms);
}

/* A "cluster" in the file replaces the caller's whole: its absent entries
 * take their defaults, not the values of an earlier load. */
int orr__config_load_cluster(orr__config_ctx *ctx, const orr__config_key *k, json_t *v,
                             void *base) {
    orr_config *c = base;
    orr_cluster_config cl = ORR__CONFIG_CLUSTER_DEFAULTS;
    char g[80];
    if (!json_is_object(v))
        return orr__config_fail_at(ctx, k->name, 1,
                                   "expected an object {\"redis\": URL, ...}, got %s",
                                   orr__config_got(v, g, sizeof g));
    ctx->path[ctx->depth++] = k->name;
    int rc = orr__config_load_object(ctx, cluster_keys, ORR_ARRAY_LEN(cluster_keys), v, &cl);
    if (rc == 0 && !json_object_get(v, "redis")) {
        ctx->depth--;
        return orr__config_fail_at(
            ctx, k->name, 0,
            "\"redis\" is required: \"redis://HOST[:PORT][/DB]\" or \"unix:PATH\"");
    }
    if (rc == 0) rc = check_cluster_times(ctx, v, &cl);
    ctx->depth--;
    if (rc < 0) return -1;
    cl.enabled = true;
    c->cluster = cl;
    return 0;
}

void orr__config_show_cluster(const orr__config_key *k, const void *base, char *buf, size_t n) {
    const orr_config *c = base;
    snprintf(buf, n, "%s", c->cluster.enabled ? "{...}" : "none (single node)");
}

const void *orr__config_cluster_defaults(const orr_config *d, orr__config_sub_scratch *s) {
    s->cluster = (orr_cluster_config)ORR__CONFIG_CLUSTER_DEFAULTS;
    return &s->cluster;
}
