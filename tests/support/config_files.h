/*
 * Test support for the config loader: loading a text as a config file (a
 * temporary file, removed after), checking the "FILE:LINE:COL: key: " prefix
 * of a message, comparing configs field by field, and the --help text.
 * Header-only, for tests/unit/test_config*.c.
 */
#ifndef ORR_TEST_CONFIG_FILES_H
#define ORR_TEST_CONFIG_FILES_H

#include "config/config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One bad value of a key: what the file says and a part of the message. */
struct bad_case {
    const char *key;
    const char *value; /* as written in the file */
    const char *why;   /* a part of the message after "key: " */
};

/* Writes text to a new temporary .json file; its name goes to path. */
static inline void write_tmp(const char *text, char path[64]) {
    strcpy(path, "/tmp/orr-config-XXXXXX.json");
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0, "mkstemps: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads text as a config file over c; path receives the file's name. */
static inline int load_text(const char *text, orr_config *c, char path[64], char *err,
                            size_t errlen) {
    write_tmp(text, path);
    err[0] = '\0';
    int rc = orr_config_load(path, c, err, errlen);
    unlink(path);
    return rc;
}

static inline void expect_prefix(const char *err, const char *path, int line, int col,
                                 const char *key) {
    char want[512];
    snprintf(want, sizeof want, "%s:%d:%d: %s: ", path, line, col, key);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "want prefix \"%s\", got \"%s\"", want, err);
}

/* Two optional strings (NULL: none). */
static inline int same_text(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static inline int same_pools(const orr_config *a, const orr_config *b) {
    if (a->n_pools != b->n_pools) return 0;
    for (size_t i = 0; i < a->n_pools; i++)
        if (strcmp(a->pools[i].name, b->pools[i].name) != 0 ||
            a->pools[i].ws_max_connections != b->pools[i].ws_max_connections ||
            !same_text(a->pools[i].allowed_origins, b->pools[i].allowed_origins) ||
            a->pools[i].require_origin != b->pools[i].require_origin)
            return 0;
    return 1;
}

static inline int same_cluster(const orr_cluster_config *a, const orr_cluster_config *b) {
    return a->enabled == b->enabled && strcmp(a->redis_url, b->redis_url) == 0 &&
           strcmp(a->redis.host, b->redis.host) == 0 && a->redis.port == b->redis.port &&
           strcmp(a->redis.path, b->redis.path) == 0 && a->redis.db == b->redis.db &&
           strcmp(a->node_id, b->node_id) == 0 && a->heartbeat_ms == b->heartbeat_ms &&
           a->node_ttl_ms == b->node_ttl_ms;
}

/* Field by field: struct padding is not part of a config. Pools by content. */
static inline int same_config(const orr_config *a, const orr_config *b) {
    return strcmp(a->listen_host, b->listen_host) == 0 && a->listen_port == b->listen_port &&
           a->workers == b->workers && strcmp(a->base_domain, b->base_domain) == 0 &&
           a->idle_timeout_ms == b->idle_timeout_ms && a->ping_interval_ms == b->ping_interval_ms &&
           a->max_message_bytes == b->max_message_bytes && a->max_fragments == b->max_fragments &&
           a->drain_ms == b->drain_ms && a->close_timeout_ms == b->close_timeout_ms &&
           a->handshake_timeout_ms == b->handshake_timeout_ms && a->log_level == b->log_level &&
           a->ws_max_connections == b->ws_max_connections &&
           a->max_outbound_bytes == b->max_outbound_bytes && a->max_pools == b->max_pools &&
           a->max_buffered_bytes == b->max_buffered_bytes && a->retry_after_s == b->retry_after_s &&
           strcmp(a->api_token, b->api_token) == 0 && same_pools(a, b) &&
           same_text(a->allowed_origins, b->allowed_origins) &&
           a->require_origin == b->require_origin && same_cluster(&a->cluster, &b->cluster) &&
           strcmp(a->gears_dir, b->gears_dir) == 0 &&
           strcmp(a->gear_config ? a->gear_config : "{}", b->gear_config ? b->gear_config : "{}") ==
               0;
}

/* What --help prints, NUL-terminated; the caller frees it. */
static inline char *help_text(void) {
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

#endif
