/*
 * Orrery's configuration: one JSON file (jansson), defaults for every key,
 * and errors that name the file, line, column and key:
 *   FILE:LINE:COL: key: why
 */
#ifndef ORR_CONFIG_H
#define ORR_CONFIG_H

#include "http/pool_name.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Where Redis is: "redis://HOST:PORT[/DB]" or "unix:PATH". */
typedef struct orr_redis_addr {
    char host[256]; /* TCP: host name or address ("[v6]" given without brackets); "" for unix */
    uint16_t port;  /* TCP: 1..65535 (6379 if the URL has none) */
    char path[108]; /* unix: socket path (sun_path's size); "" for TCP */
    int db;         /* SELECTed after connecting: 0..(2^31-1), default 0 */
} orr_redis_addr;

/* Parse a Redis address. Returns 0, or -1 with why ("expected redis://HOST:PORT[/DB] or
 * unix:PATH", "port out of range", "unix socket path longer than 107 bytes", ...). */
int orr_redis_addr_parse(const char *s, orr_redis_addr *out, char *why, size_t whylen);

/* "cluster": many nodes sharing the registry through Redis. */
typedef struct orr_cluster_config {
    bool enabled;          /* the file has a "cluster" object */
    char redis_url[1024];  /* "redis", as written (required when enabled) */
    orr_redis_addr redis;  /* parsed */
    char node_id[65];      /* 1..64 of [A-Za-z0-9_.:-]; "" = the server picks <hostname>:<port> */
    uint32_t heartbeat_ms; /* liveness refresh, default 3000, 50..600000 */
    uint32_t node_ttl_ms;  /* liveness TTL, default 10000, 100..3600000, more than heartbeat_ms */
    uint32_t inbox_max_messages; /* messages waiting in a node's inbox before sends to it are
                                    refused, default 100000, 100..100000000 */
} orr_cluster_config;

/* "tls": the listener speaks TLS (wss://, https://) with this pair. */
typedef struct orr_tls_config {
    bool enabled;       /* the file has a "tls" object */
    char cert[1024];    /* "cert": PEM certificate (chain, leaf first), readable at load */
    char key[1024];     /* "key": its PEM private key, unencrypted, readable at load */
    char cert_at[1200]; /* "FILE:LINE:COL" of each value in the file, for what only */
    char key_at[1200];  /* OpenSSL can tell (a key that does not match, at start-up or SIGHUP) */
} orr_tls_config;

/* One entry of "pools": the limits of one executor pool. */
typedef struct orr_pool_config {
    char name[ORR_POOL_NAME_MAX]; /* "gear:<gear>" or "tenant:<id>", see orr_pool_name_check */
    uint32_t ws_max_connections;  /* 0..10000000, 0 rejects everyone; default: the top-level
                                     ws_max_connections of the same load */
    char *allowed_origins;        /* owned (orr_config_free); NULL: the top-level list */
    int8_t require_origin;        /* -1: the top-level value */
    int deflate;                  /* 0 off, 1 on, -1: the top-level value */
    uint32_t deflate_min_bytes;   /* ORR__CONFIG_POOL_LIMIT_UNSET: the top-level value */
    uint32_t park_ms;             /* these three: ORR__CONFIG_POOL_LIMIT_UNSET: the top-level */
    uint32_t park_max_messages;
    uint32_t park_max_bytes;
} orr_pool_config;

/*
 * A config owns its pools array: a struct copy (`a = b`) shares it, so copy
 * with orr_config_copy and release with orr_config_free.
 */
typedef struct orr_config {
    char listen_host[256]; /* "listen": "HOST:PORT", default 127.0.0.1:8080 */
    uint16_t listen_port;
    int workers;                   /* default: number of online cores */
    char base_domain[256];         /* default "localhost" */
    uint32_t idle_timeout_ms;      /* default 60000 */
    uint32_t ping_interval_ms;     /* ping after this long without a byte; 0 (default): never;
                                      else less than idle_timeout_ms */
    uint64_t max_message_bytes;    /* default 5000000 */
    uint32_t max_fragments;        /* frames one data message may have, default 100000 */
    uint32_t drain_ms;             /* default 5000 */
    uint32_t close_timeout_ms;     /* default 5000 */
    uint32_t handshake_timeout_ms; /* default 10000 */
    int log_level;                 /* "log_level": "debug"|"info"|"warn"|"error", default info */
    uint32_t ws_max_connections;   /* limit of a pool not listed in "pools", default 100 */
    uint64_t max_outbound_bytes;   /* unsent output past this closes with 1008, default 1048576 */
    uint64_t max_buffered_bytes;   /* the node's memory budget for reassembly and output
                                      buffers, default a quarter of physical memory */
    uint32_t max_pools;            /* executor pools alive at once on one node, default 4096 */
    uint32_t retry_after_s;        /* Retry-After of every 503, default 5 */
    char api_token[513];           /* 1..512 visible ASCII characters; "" (default): push API off */
    orr_pool_config *pools;        /* "pools", owned: orr_config_free; sorted by name (the */
    size_t n_pools;                /* loader sorts them), so orr_config_pool_limit can bisect */
    orr_cluster_config cluster;    /* "cluster": absent = a single node */
    orr_tls_config tls;            /* "tls": absent = plain TCP */
    char gears_dir[1024];          /* every *.so there is a gear; "" (default): the binary's own
                                      (build/gears in the build tree, PREFIX/lib/orrery/gears
                                      installed) */
    char *gear_config; /* "gear_config": the object's JSON text, owned; NULL if absent */
    /* "allowed_origins": the Origins a handshake may come from, normalised,
     * one per line (exact origins, *.example.com patterns); owned; NULL
     * (default): any. "require_origin": refuse requests without Origin. */
    char *allowed_origins;
    bool require_origin;
    int deflate;                  /* "deflate": 1 "on" (default), 0 "off": permessage-deflate */
    uint32_t deflate_min_bytes;   /* messages shorter than this go out uncompressed, default 1024 */
    uint32_t lua_memory_limit_mb; /* per Lua gear per worker, default 256 */
    uint32_t lua_callback_timeout_ms; /* per Lua callback, default 100 */
    /* Parking (a Unique name whose connection ends keeps its messages for
     * its next holder): how long, 0 (default): never; the caps per name. */
    uint32_t park_ms;           /* 0..86400000 */
    uint32_t park_max_messages; /* default 256 */
    uint32_t park_max_bytes;    /* default 262144 */
} orr_config;

/* The config of one gear as JSON text, from gear_config's text (the
 * config's gear_config, or NULL): malloc'd (the caller frees it), "{}"
 * when there is none. */
char *orr_config_gear_json(const char *gear_config, const char *gear, size_t *len);

/* The Origin allowlist of a pool (NUL-terminated name: its own, else the
 * top-level one; NULL when there is none) and whether it requires an
 * Origin. */
void orr_config_origin_policy(const orr_config *c, const char *pool, const char **list,
                              bool *require);

/* Whether a pool negotiates permessage-deflate and its deflate_min_bytes
 * (its own, else the top-level ones). */
void orr_config_deflate_policy(const orr_config *c, const char *pool, bool *on, uint32_t *min);

/* A pool's parking: park_ms (0: off) and its caps (its own, else the
 * top-level ones). */
void orr_config_park_policy(const orr_config *c, const char *pool, uint32_t *park_ms,
                            uint32_t *max_messages, uint32_t *max_bytes);

/* Every key at its default: no pools (nothing to free, but orr_config_free
 * is safe on it). */
void orr_config_defaults(orr_config *c);

/* Frees the pools and sets pools/n_pools to NULL/0; the rest is untouched. */
void orr_config_free(orr_config *c);

/*
 * Makes dst a deep copy of src. dst is overwritten, not freed first (it may
 * be uninitialized): free it before if it owns pools. Returns 0 (out of
 * memory aborts, as for every small internal allocation).
 */
int orr_config_copy(orr_config *dst, const orr_config *src);

/* The entry of "pools" for the named pool (NUL-terminated), or NULL if
 * "pools" does not list it. */
const orr_pool_config *orr_config_pool_find(const orr_config *c, const char *pool);
/* The ws_max_connections of the named pool (NUL-terminated), or
 * c->ws_max_connections if "pools" does not list it. */
uint32_t orr_config_pool_limit(const orr_config *c, const char *pool);

/*
 * Load `path` over the defaults. Returns 0, or -1 with a message of the form
 * "FILE:LINE:COL: key: why" in err (for syntax errors, the key is the one
 * being parsed or "(json)"). On failure *c is left unchanged, so a reload
 * with a bad file keeps the running config, and nothing is leaked. On success
 * keys absent from the file keep the values *c had; a "pools" in the file
 * replaces c->pools (the old array is freed).
 */
int orr_config_load(const char *path, orr_config *c, char *err, size_t errlen);

/* Parse "HOST:PORT" ("[v6]:PORT" too). Returns 0 or -1 with a reason in err. */
int orr_config_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                            size_t errlen);

/* Every config key with its type, default and meaning, for --help. */
void orr_config_print_keys(FILE *out);

#endif
