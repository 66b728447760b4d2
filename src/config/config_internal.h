/* What the files of src/config share and nobody else needs. */
#ifndef ORR_CONFIG_INTERNAL_H
#define ORR_CONFIG_INTERNAL_H

#include "config/config.h"
#include "config/jsonpos.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Whether s is a host name: dot-separated labels of ASCII letters, digits and
 * hyphens, each 1 to 63 long, neither starting nor ending with a hyphen, 253
 * bytes in all. A name of digits and dots alone must be a valid IPv4 address.
 * Returns NULL if so, else the reason.
 */
const char *orr__config_check_hostname(const char *s);

/* ---- the key tables (config.c, config_nested.c) -------------------------- */

/* One load of one file: where errors are reported, and the keys down to the
 * object being loaded. */
typedef struct orr__config_ctx {
    const char *file;
    const char *text;
    size_t len;
    const char *path[ORR__JSONPOS_MAX_PATH]; /* keys down to the object being loaded */
    size_t depth;
    char *err;
    size_t errlen;
} orr__config_ctx;

typedef struct orr__config_key orr__config_key;

/* A table of keys: the entries of an object key. */
typedef struct orr__config_table {
    const orr__config_key *keys;
    size_t n;
} orr__config_table;

/* Room for the struct an object key's entries describe, for --help. */
typedef union orr__config_sub_scratch {
    orr_pool_config pool;
    orr_cluster_config cluster;
    orr_tls_config tls;
} orr__config_sub_scratch;

struct orr__config_key {
    const char *name;
    const char *type; /* for --help; integer keys generate theirs from min and max */
    const char *meaning;
    size_t offset, size; /* the field in the struct the table describes */
    int (*load)(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
    void (*show)(const orr__config_key *k, const void *base, char *buf, size_t n);
    long long min, max;           /* integer keys: the accepted range */
    const char *unit;             /* integer keys: named in messages */
    const char *const *choices;   /* choice keys: the accepted strings, NULL-terminated */
    const int *choice_values;     /* choice keys: the value stored for each */
    const char *default_note;     /* a default that depends on something else: what it is */
    const orr__config_table *sub; /* an object key: the table of its entries, for --help */
    /* An object key: its entries at their defaults, given the top-level ones
     * (built in *s, or pointing into d). */
    const void *(*sub_defaults)(const orr_config *d, orr__config_sub_scratch *s);
};

/* The field k describes in the struct at base. */
static inline void *orr__config_field(void *base, const orr__config_key *k) {
    return (char *)base + k->offset;
}

static inline const void *orr__config_cfield(const void *base, const orr__config_key *k) {
    return (const char *)base + k->offset;
}

/* ---- config.c: messages and the generic loaders -------------------------- */

/* A value as written in JSON, cut short if long, in buf (n bytes): for
 * "got ..." in messages. Returns buf, or a stand-in if out of memory. */
const char *orr__config_got(const json_t *v, char *buf, size_t n);

/* Reports "FILE:LINE:COL: path.key: why" at the key or at its value (the
 * path is ctx->path, then key), and returns -1. */
int orr__config_fail_at(orr__config_ctx *ctx, const char *key, int at_value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "FILE:LINE:COL" of key's value (the path is ctx->path, then key) into
 * buf, or "FILE" when it cannot be found. */
void orr__config_where(orr__config_ctx *ctx, const char *key, char *buf, size_t n);

/* An integer key: k->min..k->max, stored in k->size bytes (4 or 8). */
int orr__config_load_int(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
void orr__config_show_int(const orr__config_key *k, const void *base, char *buf, size_t n);

/* Loads the members of obj into the struct at base, in file order, stopping
 * at the first error. A caller loading a nested object pushes its name on
 * ctx->path first. */
/* A choice key: one of k->choices, stored as its int from k->choice_values. */
int orr__config_load_choice(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
void orr__config_show_choice(const orr__config_key *k, const void *base, char *buf, size_t n);
extern const char *const orr__config_onoff_names[];
extern const int orr__config_onoff_values[];

/* config_origin.c: allowed_origins and require_origin. */
int orr__config_load_origins(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
void orr__config_show_origins(const orr__config_key *k, const void *base, char *buf, size_t n);
int orr__config_load_flag(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
void orr__config_show_flag(const orr__config_key *k, const void *base, char *buf, size_t n);

int orr__config_load_object(orr__config_ctx *ctx, const orr__config_key *keys, size_t n,
                            json_t *obj, void *base);

/* ---- config_nested.c: the object keys "pools" and "cluster" -------------- */

/* A pool entry whose ws_max_connections the file did not give: while loading
 * only (the key's range stops far below), then the top-level value. */
#define ORR__CONFIG_POOL_LIMIT_UNSET UINT32_MAX

/* "pools" over an orr_config. The load builds a new array and points
 * c->pools at it: the array c->pools had is the caller's, freed (or kept, on
 * failure) by orr_config_load, which also gives the entries still at
 * ORR__CONFIG_POOL_LIMIT_UNSET the top-level limit. */
int orr__config_load_gear_config(orr__config_ctx *ctx, const orr__config_key *k, json_t *v,
                                 void *base);
void orr__config_show_gear_config(const orr__config_key *k, const void *base, char *buf, size_t n);
int orr__config_load_pools(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
void orr__config_show_pools(const orr__config_key *k, const void *base, char *buf, size_t n);
const void *orr__config_pool_defaults(const orr_config *d, orr__config_sub_scratch *s);
extern const orr__config_table orr__config_pool_table;

#define ORR__CONFIG_CLUSTER_DEFAULTS                                                               \
    { .enabled = false, .heartbeat_ms = 3000, .node_ttl_ms = 10000, .inbox_max_messages = 100000 }

/* "cluster" over an orr_config: a "cluster" in the file replaces the
 * caller's whole, its absent entries at their defaults. */
int orr__config_load_cluster(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
void orr__config_show_cluster(const orr__config_key *k, const void *base, char *buf, size_t n);
const void *orr__config_cluster_defaults(const orr_config *d, orr__config_sub_scratch *s);
extern const orr__config_table orr__config_cluster_table;

/* A choice key's names: "a", "b" for messages, a|b for --help. */
void orr__config_choices_text(const orr__config_key *k, int for_help, char *buf, size_t n);

/* ---- config_help.c: --help ---------------------------------------------- */

/* The table of keys (and of their object keys' entries), with their
 * defaults, as --help prints it. */
void orr__config_print_table(FILE *out, const orr__config_key *keys, size_t n);

/* ---- config_tls.c: "tls" ---------------------------------------------- */

/* "tls" over an orr_config: {"cert": PATH, "key": PATH}, both required and
 * readable; it replaces the caller's whole. */
int orr__config_load_tls(orr__config_ctx *ctx, const orr__config_key *k, json_t *v, void *base);
void orr__config_show_tls(const orr__config_key *k, const void *base, char *buf, size_t n);
const void *orr__config_tls_defaults(const orr_config *d, orr__config_sub_scratch *s);
extern const orr__config_table orr__config_tls_table;

#endif
